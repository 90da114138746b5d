/* The store: the archive of one source (docs/archive-format.md), the
 * rdiff-backup idea of a newest version as plain files and older ones as
 * reverse increments.  It owns every name in its directory:
 *
 *   <archive_dir>/<source>/
 *     format                 "understudy-archive 1"
 *     HEAD                   the newest version's id: the commit point
 *     current/               the newest version as plain files
 *     versions/<id>/manifest every version's manifest (and .sha256)
 *     versions/<id>/increment/   older versions only: what turns the next
 *                            newer version back into this one, as gzip'd
 *                            librsync reverse deltas (<sha>.from.<sha>.
 *                            rdelta.gz) and whole files (<sha>.full.gz)
 *     journal                a commit or forget under way, rolled forward
 *                            at start-up
 *     rollback/              a forget's new current/, while it is made
 *     staging/ deltas/       a commit's new tree, and the deltas it came by
 *     lock daemon.lock       readers and writers; one daemon
 *     tmp/ trash/            work areas
 *     and the daemon's files (enum store_file)
 *
 * A version depends only on newer ones, so the oldest can always go.  The
 * store works from its directory's fd with *at() calls.  Its parts:
 *
 *   store.c      opening, locks, the version list, manifests, names
 *   commit.c     a commit: begin, commit or abort; the journal; recovery
 *   increment.c  the reverse increments: written at a commit, read back
 *   prune.c      retention
 *   reader.c     a version rebuilt file by file; verify
 *   restore.c    a version (or a subtree) written out, on two threads
 *   forget.c     the newest version forgotten: the way out of a bad one
 *   repair.c     damaged files mended from an intact copy */
#ifndef UNDERSTUDY_STORE_H
#define UNDERSTUDY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "delta.h"

struct manifest;
struct ment;

enum store_mode {
	STORE_READ,  /* list, restore, verify, export: shared lock */
	STORE_WRITE, /* prune: exclusive lock */
	/* the pull-backup daemon: creates, and takes the exclusive lock
	 * around each commit and prune */
	STORE_DAEMON,
	/* forget: the exclusive lock, with the daemon stopped */
	STORE_ALONE,
};

#define STORE_LOCK_WAIT 120 /* seconds a verb waits for the lock */

struct store {
	char *dir;
	char *source;
	enum store_mode mode;
	int dfd;    /* dir: every name below is reached from it */
	char **ids; /* oldest first; ids[n-1] is HEAD */
	size_t n;
	/* "lock": shared by readers, exclusive by writers (flock: a dead
	 * holder frees it) */
	int lockfd;
	int daemonfd;    /* "daemon.lock": one daemon at a time */
	char *recovered; /* what start-up recovery did, or NULL */
	/* increments written from now on: zstd, else gzip (the reader
	 * takes either) */
	int zstd_increments;
};

/* The daemon's files beside the versions. */
enum store_file {
	STORE_CURRENT,    /* current/: the newest version, served */
	STORE_DELTAS,     /* deltas/: of the last pull, relayed */
	STORE_SIGNATURES, /* signatures/: made ahead (presign.h) */
	STORE_HINTS,      /* delta-hints (hints.h) */
	STORE_ATTEMPT,    /* attempt.json: a pull under way or failed */
	STORE_PUSH,       /* push.json: what was pushed to importers */
	STORE_LAST,       /* last-pull.json: the last pull's result */
	STORE_TMP,        /* tmp/: temporaries, emptied at start-up */
	STORE_GENERATION, /* generation.json: the source's (generation.h) */
};

struct version_info {
	char id[32];
	char time[32];
	int64_t generation;
	int64_t files, bytes;
	int64_t stored; /* bytes this version costs in the archive */
};

/* store.c */
/* Open an archive: READ holds the shared lock until closed, WRITE the
 * exclusive one; DAEMON creates the archive if needed and holds only the
 * daemon lock, taking the exclusive lock around each commit and prune.
 * Whoever opens first finishes an interrupted commit. */
int store_open(const char *archive_dir, const char *source, enum store_mode,
    struct store **out, char *err, size_t errlen);
void store_close(struct store *);
/* Take the lock (and re-read the version list, which a prune may have
 * changed); store_unlock() releases it. */
int store_lock(struct store *, int exclusive, char *err, size_t errlen);
void store_unlock(struct store *);
const char *store_head(const struct store *);
/* The path of one of the daemon's files; the caller frees it. */
char *store_path(const struct store *, enum store_file);
/* The path of version index's manifest, as the version server sends it. */
char *store_manifest_path(const struct store *, size_t index);
/* Version index's manifest, checked against its SHA-256. */
int store_manifest(const struct store *, size_t index, struct manifest **out,
    char *err, size_t errlen);
int store_info(const struct store *, size_t index, struct version_info *,
    char *err, size_t errlen);

/* commit.c */
/* A commit of the next version: the trees to fill before it. */
struct store_txn {
	struct store *st;
	/* the new version: made by the sync, which resumes it after a pull
	 * cut short */
	char *staging;
	/* the deltas its files came by, kept for the reverse increments and
	 * the importers */
	char *deltas;
	struct prebuild *pre; /* store_prebuild(), or NULL */
};
void store_begin(struct store *, struct store_txn *);
/* Make the verified tree in staging, described by m, the newest version,
 * under the exclusive lock.  The tree it replaces is moved into trash/:
 * with replaced NULL it is removed before returning; otherwise *replaced
 * is its path (or NULL), for the caller to remove later (start-up removes
 * it if nobody does).  Ends the transaction when it succeeds; otherwise
 * the caller ends it with store_abort(). */
int store_commit(struct store_txn *, const struct manifest *m, char **replaced,
    char *err, size_t errlen);
/* End a transaction without a commit: the staging tree stays for a retry
 * to resume, or with drop it goes. */
void store_abort(struct store_txn *, int drop);
/* Start building the increments that turn m back into old_m (the
 * newest version, in current/) on a thread of its own, while m is staged:
 * the commit then only waits for the end of it.  staged: how many of m's
 * entries are in staging/ and verified (entries are staged in m's order);
 * store_prebuild_staged() says when there are more, and a file's
 * increment waits until its new content is there.  Both manifests must
 * live until store_commit() or store_prebuild_stop().  What is written
 * stays in versions/OLD/increment.tmp, which no reader looks at until
 * the commit's journal names it; a build that failed, or that is not for
 * the version committed, is done again under the lock. */
void store_prebuild(struct store_txn *, const struct manifest *old_m,
    const struct manifest *m, size_t staged);
void store_prebuild_staged(struct store_txn *, size_t staged);
/* Stop it, wait for it and drop what it wrote. */
void store_prebuild_stop(struct store_txn *);

/* prune.c */
/* Remove versions by retention, never the newest: a version goes when it
 * is not among the keep_last newest (0: no such rule) and is older than
 * older_than seconds (-1: no such rule).  Lists what goes (or would go)
 * in *gone (ids to free). */
int store_prune(struct store *, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen);

/* forget.c */
/* Forget version, which must be the newest: the one before it becomes
 * the newest again (or the archive is left empty).  STORE_ALONE. */
int store_forget(struct store *, const char *version, char *err, size_t errlen);

/* reader.c: versions rebuilt file by file. */
struct store_reader;
struct store_reader *store_reader_new(const struct store *, char *err,
    size_t errlen);
void store_reader_free(struct store_reader *);
const struct manifest *store_reader_manifest(struct store_reader *,
    size_t index, char *err, size_t errlen);
/* An fd on the content of file e (an entry of version index's manifest),
 * at offset 0, or -1.  Not yet checked against e's SHA-256. */
int store_reader_content(struct store_reader *, size_t index,
    const struct ment *e, char *err, size_t errlen);
/* The content of e at version index into out (or only hashed when out is
 * -1): 0 when it matches the manifest. */
int store_reader_copy(struct store_reader *, size_t index, const struct ment *e,
    int out, char *err, size_t errlen);
/* Rebuild and hash every file of version index; call bad() for each
 * damaged one.  Returns the number of bad entries.  With unchecked, a
 * file that could not be rebuilt for want of space is not called bad but
 * counted there (and logged): nothing is known of it. */
typedef void (*store_bad_fn)(void *arg, const char *version, const char *path,
    const char *why);
int store_verify(const struct store *, size_t index, store_bad_fn, void *arg,
    int64_t *files, int64_t *bytes, int *unchecked);

/* repair.c */
/* e's content (of version) into fd, from outside the archive (the
 * exporter): 0 with from saying where, or -1.  It is checked after. */
typedef int (*store_fetch_fn)(void *arg, const char *version,
    const struct ment *e, int fd, char *from, size_t fromlen);
/* Each damaged file: mended (how: from where), or not (how: why). */
typedef void (*store_mend_fn)(void *arg, const char *version, const char *path,
    const char *how, int ok);
/* Mend the damaged files of versions first..last: from another version,
 * else from fetch (may be NULL).  Returns how many could not be.  The
 * exclusive lock. */
int store_repair(struct store *, size_t first, size_t last,
    store_fetch_fn fetch, void *farg, store_mend_fn note, void *narg);

/* restore.c */
/* Write version index, or its subtree sub ("" or NULL for all), into dest:
 * an absent or empty directory, or for a single file a path where there is
 * none.  Every file is checked against its SHA-256.  flags: treemeta.h's
 * TREEMETA_OWNERS (the manifest's owners, when root) and TREEMETA_SPECIAL
 * (setuid, setgid and sticky bits). */
int store_restore(const struct store *, size_t index, const char *sub,
    const char *dest, int flags, char *err, size_t errlen);

/* Inside the store. */
/* store.c */
char *store_vpath(const struct store *, const char *id, const char *what);
int store_load_ids(struct store *, char *err, size_t errlen);
void store_note(struct store *, const char *what);
int store_read_head(const struct store *, char *head, size_t len);
/* An unnamed temporary file in tmp/. */
int store_tmpfile(const struct store *);
/* commit.c */
int commit_recover(struct store *, char *err, size_t errlen);
/* forget.c: finish a forget whose journal is on disk (prev "": none). */
int forget_roll_forward(struct store *, const char *gone, const char *prev,
    char *err, size_t errlen);
/* increment.c */
/* Write into versions/<old>/increment.tmp/ what turns the tree of new_m
 * (at newfd) back into that of old_m (at oldfd), using the forward deltas
 * the pull kept in deltas/.  With ready, ready(arg, ne) before a file's
 * increment is built from ne, new_m's file at its path: 0 once ne is in
 * newfd, or -1 (with err) to stop there. */
int increment_build(struct store *, const struct manifest *old_m,
    const struct manifest *new_m, int oldfd, int newfd,
    int (*ready)(void *arg, const struct ment *ne, char *err, size_t errlen),
    void *arg, char *err, size_t errlen);
/* The increment of content sha in version id, kept whole (.full.gz) or as
 * a reverse delta from the content sha next has in the newer version: an
 * fd to read it compressed, or -1 (errno ENOENT when there is none); its
 * path, for messages, in *path (to free either way). */
int increment_open_full(const struct store *, const char *id, const char *sha,
    char **path);
int increment_open_rdelta(const struct store *, const char *id, const char *sha,
    const char *next, char **path);
/* Uncompress the increment at fd (which this takes) into sink, or, with
 * basefd >= 0, patch basefd with it into sink. */
int increment_read(int fd, const char *path, int basefd, delta_sink, void *arg,
    char *err, size_t errlen);

#endif
