/* A tree's modes and mtimes, set from its manifest once its content is in
 * place: entries last to first, so that a directory's mtime is set after
 * what it holds.  Used by the sync client and the archive's restore. */
#ifndef UNDERSTUDY_TREEMETA_H
#define UNDERSTUDY_TREEMETA_H

#include <stddef.h>

struct manifest;

int treemeta_apply(int rootfd, const struct manifest *, char *err,
    size_t errlen);

#endif
