/* Signatures made ahead, off the chain's way (docs/protocol.md).  A file
 * that changed is likely to change again (a dump): once a pull is
 * committed and reported, the pull-backup signs each file of at least
 * PRESIGN_MIN bytes that changed in it, with the block size the next pull
 * will choose, at the lowest CPU priority, into the source's signatures
 * directory as <sha>.<block>.sig.  The next pull posts that signature
 * instead of reading its base file (presign_sigs()). */
#ifndef UNDERSTUDY_PRESIGN_H
#define UNDERSTUDY_PRESIGN_H

#include <stdint.h>

struct hints;
struct manifest;
struct sync_sigs;
struct presign;

#define PRESIGN_MIN ((int64_t)1 << 20)

/* The sync_sigs of the signatures kept in dir (which must outlive it). */
void presign_sigs(struct sync_sigs *, const char *dir);
/* Right after a sync, while staging holds the version m: what to sign
 * ahead, the files that changed since base_m hard-linked from staging
 * into dir as <sha>.src (so that their content stays that, whatever
 * replaces the tree), with the blocks hints choose.  NULL if nothing can
 * be done. */
struct presign *presign_build(const char *dir, const struct manifest *m,
    const struct manifest *base_m, const struct hints *, const char *staging);
/* On a worker, once the version is committed and reported: make the
 * signatures, remove everything else in dir, free p. */
void presign_run(struct presign *);
void presign_free(struct presign *);

#endif
