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

#include "hints.h"

struct evbuffer;
struct manifest;

/* Signatures of base files made ahead by the caller (the pull-backup's
 * pullbackup/presign.c), posted instead of reading a base file. */
struct sync_sigs {
	/* The signature of content sha in blocks of block bytes, into sig:
	 * 0, or -1 when there is none. */
	int (*get)(void *arg, const char *sha, size_t block,
	    struct evbuffer *sig);
	/* The one get() gave did not serve (damaged, or not that content's):
	 * the sync makes one anew. */
	void (*bad)(void *arg, const char *sha, size_t block);
	void *arg;
};

/* A sync's progress, read by other threads (the status) while it runs. */
struct sync_progress {
	_Atomic long long total;    /* bytes of the version */
	_Atomic long long done;     /* of them, in staging */
	_Atomic long long received; /* over the wire */
};

struct sync_opts {
	const char *url;
	const char *token;
	size_t token_len;
	const char *source;
	const char *version;
	/* the generation the event named: the manifest must say it too (0:
	 * any) */
	int64_t generation;
	const char *base_dir;          /* local copy, or NULL */
	const struct manifest *base_m; /* its manifest, or NULL */
	/* made anew, or resumed: a pull cut short leaves it with a marker,
	 * <staging>SYNC_MARKER_SUFFIX */
	const char *staging;
	int link_unchanged; /* hard-link instead of copy */
	int verify_base;    /* and hash the base file first */
	int owners;         /* apply the manifest's owners (as root) */
	int special_bits;   /* and its setuid, setgid and sticky bits */
	/* keep the deltas received here (sync_kept_delta()), for the archive
	 * and the importers */
	const char *deltas_dir;
	int ask_stored;    /* ask for such a delta first */
	const char *hints; /* the delta-hints file, or NULL */
	/* with hints: set on success to the hints this sync saved */
	struct hints *hints_out;
	const struct sync_sigs *sigs;   /* or NULL */
	struct sync_progress *progress; /* or NULL */
	int64_t rate_limit;             /* bytes per second each way, or 0 */
	int zstd; /* ask for files and deltas compressed (wirez.h) */
	/* The server is still pulling the version (import.ready's staged):
	 * a file is asked for only once the server has it staged, and the
	 * sync ends only once the server committed the version
	 * (PROTO_PROGRESS). */
	int pipelined;
	/* The other side of it, for a pull that serves what it stages and
	 * builds increments meanwhile: once the manifest is taken and
	 * staging is ready, on_staging(arg, m, stagefd); then *staged counts
	 * the entries in staging and verified, in the manifest's order, and
	 * on_progress(arg) follows each.  If the sync fails after
	 * on_staging, on_abandon(arg) before m is freed: what used m must
	 * end there.  Any of them NULL: none. */
	void (*on_staging)(void *arg, const struct manifest *, int stagefd);
	void (*on_progress)(void *arg);
	void (*on_abandon)(void *arg);
	_Atomic size_t *staged;
	void *staged_arg;
};

struct sync_stats {
	int64_t files, unchanged, deltas, whole;
	int64_t moved;   /* of unchanged: found at another path */
	int64_t resumed; /* already fetched by a pull cut short */
	int64_t mended;  /* local copies found damaged, fetched again */
	int64_t stored;  /* of deltas: the server's stored one */
	/* of deltas: with a signature made ahead (sync_sigs) */
	int64_t ahead;
	int64_t bytes;    /* of the version */
	int64_t received; /* over the wire */
	int64_t sent;     /* signatures */
	/* bytes written (staged files, kept deltas) whose writeback was
	 * started before the syncfs() */
	int64_t flushed;
	/* pipelined (sync_opts): it failed before the server had committed
	 * the version (the server's trouble, likely, not ours) */
	int before_commit;
	/* a write failed for want of space: what was staged is better
	 * dropped than kept for a resume */
	int nospace;
};

/* Returns 0, or -1 with a one-line reason; *gone is set when the peer no
 * longer has the version (404/410), so retrying is pointless. */
int sync_run(const struct sync_opts *, struct manifest **out,
    struct sync_stats *, int *gone, char *err, size_t errlen);

/* The staging tree's marker: "<source> <version>\n" while a sync of that
 * version may be resumed. */
#define SYNC_MARKER_SUFFIX ".version"
/* Remove a staging tree and its marker: nothing left to resume. */
void sync_staging_drop(const char *staging);
/* Where a delta received is kept in deltas_dir: named by the hashes of
 * the content it starts from and of the one it makes, so that a name
 * always means the same delta.  The caller frees it. */
char *sync_kept_delta(const char *dir, const char *from, const char *to);

#endif
