/* The sync client, used by the pull-backup (against an exporter) and the
 * importer (against a pull-backup): build a staging tree equal to a remote
 * version.  Unchanged files (same SHA-256 as the local base copy) are
 * linked or copied locally, changed ones come as librsync deltas against
 * the base copy, new ones whole.  Every file is hashed as it is written and
 * must match the manifest; paths are confined to the staging tree.
 * sync_run() blocks: run it on a worker. */
#ifndef UNDERSTUDY_SYNC_H
#define UNDERSTUDY_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct manifest;

struct sync_opts {
	const char *url;
	const char *token;
	size_t token_len;
	const char *source;
	const char *version;
	const char *base_dir;		/* local copy, or NULL */
	const struct manifest *base_m;	/* its manifest, or NULL */
	const char *staging;		/* made anew, or resumed: a pull cut
					 * short leaves it with a marker,
					 * <staging>.version */
	int link_unchanged;		/* hard-link instead of copy */
	int verify_base;		/* and hash the base file first */
	const char *deltas_dir;		/* keep the deltas received here,
					 * named <base sha>.<sha>.delta, for
					 * the archive and the importers */
	int ask_stored;			/* ask for such a delta first */
	const char *hints;		/* the delta-hints file (see
					 * docs/protocol.md), or NULL */
	const char *sigs_dir;		/* signatures made ahead
					 * (sync_presign_*), or NULL */
	struct sync_presign **presign;	/* with sigs_dir: set on success
					 * to what to sign ahead */
};

struct sync_stats {
	int64_t files, unchanged, deltas, whole;
	int64_t resumed;		/* already fetched by a pull cut short */
	int64_t stored;			/* of deltas: the server's stored one */
	int64_t ahead;			/* of deltas: with a signature made
					 * ahead (sync_presign_run) */
	int64_t bytes;			/* of the version */
	int64_t received;		/* over the wire */
	int64_t sent;			/* signatures */
};

/* Returns 0, or -1 with a one-line reason; *gone is set when the peer no
 * longer has the version (404/410), so retrying is pointless. */
int sync_run(const struct sync_opts *, struct manifest **out,
    struct sync_stats *, int *gone, char *err, size_t errlen);
/* Signatures made ahead, off the chain's way.  A file that changed is
 * likely to change again (a dump): at its end, a sync_run() with sigs_dir
 * and presign takes the files of at least SYNC_PRESIGN_MIN bytes that
 * changed since base_m, hard-linked from staging into sigs_dir as
 * <sha>.src (so their content stays that, whatever replaces the tree),
 * with the block sizes the next sync will choose from the hints this one
 * saved.  Once the version is committed and reported,
 * sync_presign_run(), on a worker, makes their signatures at the lowest
 * CPU priority into sigs_dir as <sha>.<block>.sig and removes everything
 * else there; it frees p.  A sync_run() with sigs_dir posts such a
 * signature instead of reading its base file for one, and makes it anew
 * if the delta it brings does not serve. */
#define SYNC_PRESIGN_MIN ((int64_t)1 << 20)
struct sync_presign;
void sync_presign_run(struct sync_presign *p);
void sync_presign_free(struct sync_presign *p);
/* Apply modes and mtimes to a tree from its manifest (directories last). */
int sync_apply_meta(int rootfd, const struct manifest *, char *err,
    size_t errlen);

#endif
