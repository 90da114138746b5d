/* A tree's modes, mtimes and owners, set from its manifest once its content is in
 * place: entries last to first, so that a directory's mtime is set after
 * what it holds.  Used by the sync client and the archive's restore. */
#ifndef UNDERSTUDY_TREEMETA_H
#define UNDERSTUDY_TREEMETA_H

#include <stddef.h>

struct manifest;
struct ment;

/* With TREEMETA_OWNER_ACCESS, the owner keeps the access the daemon needs
 * whatever the manifest says: directories at least 0700, files at least
 * 0400.  A daemon that does not run as root can then read, link and
 * remove the tree it keeps (a mirror, a standby's copy); the manifest
 * keeps the modes as exported, for a restore to apply exactly. */
#define TREEMETA_OWNER_ACCESS 1
/* With TREEMETA_OWNERS, when running as root and the manifest has owners,
 * every entry gets its user and group, mapped by name (owners.h). */
#define TREEMETA_OWNERS 2
/* With TREEMETA_TOP, rootfd itself gets the manifest's top directory mode
 * (and owners, as above), when the manifest has them. */
#define TREEMETA_TOP 4
/* Setuid, setgid and sticky bits are applied only with TREEMETA_SPECIAL:
 * a tree from another host does not give a root restore or a standby new
 * set-id programs unless the operator says so.  The manifest keeps them. */
#define TREEMETA_SPECIAL 8

int treemeta_apply(int rootfd, const struct manifest *, int flags, char *err,
    size_t errlen);
/* The mode e gets on disk with flags. */
unsigned int treemeta_mode(const struct ment *e, int flags);

#endif
