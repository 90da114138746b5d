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

struct archive {
	char *dir;
	char *source;
	char **ids;		/* oldest first; ids[n-1] is HEAD */
	size_t n;
	int lockfd;		/* writers hold an flock */
	char *recovered;	/* what start-up recovery did, or NULL */
};

struct version_info {
	char id[32];
	char time[32];
	int64_t files, bytes;
	int64_t stored;		/* bytes this version costs in the archive */
};

/* writer: create if needed, lock, recover an interrupted commit. */
int archive_open(const char *archive_dir, const char *source, int writer,
    struct archive **out, char *err, size_t errlen);
void archive_close(struct archive *);
const char *archive_head(const struct archive *);
char *archive_path(const struct archive *, const char *what);
int archive_manifest(const struct archive *, size_t index,
    struct manifest **out, char *err, size_t errlen);
int archive_info(const struct archive *, size_t index,
    struct version_info *, char *err, size_t errlen);
/* Make the verified tree at staging, described by m, the newest version. */
int archive_commit(struct archive *, const struct manifest *m, char *err,
    size_t errlen);
/* Remove versions by retention; never the newest.  Lists what goes (or
 * would go) in *gone (ids to free). */
int archive_prune(struct archive *, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen);
/* Write version index into dest (absent or empty), verified. */
int archive_restore(const struct archive *, size_t index, const char *dest,
    char *err, size_t errlen);

#endif
