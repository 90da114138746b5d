/* The archive of one source (docs/archive-format.md):
 *
 *   <archive_dir>/<source>/
 *     format                 "understudy-archive 1"
 *     HEAD                   the newest version's id: the commit point
 *     current/               the newest version as plain files
 *     versions/<id>/manifest every version's manifest
 *     versions/<id>/increment/   older versions only: what turns the next
 *                            newer version back into this one, as gzip'd
 *                            librsync reverse deltas (<sha>.from.<sha>.
 *                            rdelta.gz) and whole files (<sha>.full.gz)
 *     journal                a commit under way, rolled forward at start-up
 *     staging/ tmp/ trash/   work areas
 *
 * A version depends only on newer ones, so the oldest can always go. */
#ifndef UNDERSTUDY_ARCHIVE_H
#define UNDERSTUDY_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

struct manifest;
struct ment;

enum archive_mode {
	ARCHIVE_READ,		/* list, restore, verify, export: shared lock */
	ARCHIVE_WRITE,		/* prune: exclusive lock */
	ARCHIVE_DAEMON,		/* the pull-backup daemon: creates, and takes
				 * the lock around each commit */
};

#define ARCHIVE_LOCK_WAIT 120	/* seconds a verb waits for the lock */

struct archive {
	char *dir;
	char *source;
	enum archive_mode mode;
	char **ids;		/* oldest first; ids[n-1] is HEAD */
	size_t n;
	int lockfd;		/* "lock": shared by readers, exclusive by
				 * writers (flock: a dead holder frees it) */
	int daemonfd;		/* "daemon.lock": one daemon at a time */
	char *recovered;	/* what start-up recovery did, or NULL */
};

struct version_info {
	char id[32];
	char time[32];
	int64_t files, bytes;
	int64_t stored;		/* bytes this version costs in the archive */
};

/* Open an archive: READ holds the shared lock until closed, WRITE the
 * exclusive one; DAEMON creates the archive if needed and holds only the
 * daemon lock, taking the exclusive lock around each commit with
 * archive_lock().  Whoever opens first finishes an interrupted commit. */
int archive_open(const char *archive_dir, const char *source,
    enum archive_mode, struct archive **out, char *err, size_t errlen);
/* Take the lock (and re-read the version list, which a prune may have
 * changed); archive_unlock() releases it. */
int archive_lock(struct archive *, int exclusive, char *err, size_t errlen);
void archive_unlock(struct archive *);
void archive_close(struct archive *);
const char *archive_head(const struct archive *);
char *archive_path(const struct archive *, const char *what);
int archive_manifest(const struct archive *, size_t index,
    struct manifest **out, char *err, size_t errlen);
int archive_info(const struct archive *, size_t index,
    struct version_info *, char *err, size_t errlen);
/* Make the verified tree at staging, described by m, the newest version.
 * The tree it replaces is moved into trash/: with replaced NULL it is
 * removed before returning; otherwise *replaced is its path (or NULL),
 * for the caller to remove later (start-up removes it if nobody does). */
int archive_commit(struct archive *, const struct manifest *m,
    char **replaced, char *err, size_t errlen);
/* Remove versions by retention; never the newest.  Lists what goes (or
 * would go) in *gone (ids to free). */
int archive_prune(struct archive *, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen);
/* Rebuilding versions, file by file. */
struct archive_reader;
struct archive_reader *archive_reader_new(const struct archive *, char *err,
    size_t errlen);
void archive_reader_free(struct archive_reader *);
const struct manifest *archive_reader_manifest(struct archive_reader *,
    size_t index, char *err, size_t errlen);
/* An fd on the content of file e (an entry of version index's manifest),
 * at offset 0, or -1.  Not yet checked against e's SHA-256. */
int archive_reader_content(struct archive_reader *, size_t index,
    const struct ment *e, char *err, size_t errlen);

/* Write version index, or its subtree sub ("" or NULL for all), into dest:
 * an absent or empty directory, or for a single file a path where there is
 * none.  Every file is checked against its SHA-256. */
int archive_restore(const struct archive *, size_t index, const char *sub,
    const char *dest, char *err, size_t errlen);

/* Rebuild and hash every file of version index; call bad() for each
 * damaged one.  Returns the number of bad entries. */
typedef void (*archive_bad_fn)(void *arg, const char *version,
    const char *path, const char *why);
int archive_verify(const struct archive *, size_t index, archive_bad_fn,
    void *arg, int64_t *files, int64_t *bytes);

#endif
