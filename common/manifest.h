/* A version's manifest: every entry of the tree (file, directory, symlink)
 * with mode, size, mtime and, for files, SHA-256.  Sorted by path in byte
 * order, which puts every directory before what it holds.  The text form
 * is what travels on the wire and what the archive keeps; see
 * docs/protocol.md. */
#ifndef UNDERSTUDY_MANIFEST_H
#define UNDERSTUDY_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "owners.h"

#define MANIFEST_MAGIC "understudy-manifest 1"
#define MANIFEST_MAX_BYTES (512u << 20)

enum ment_type {
	MENT_FILE = 'F',
	MENT_DIR = 'D',
	MENT_LINK = 'L'
};

struct ment {
	char type;
	mode_t mode;  /* permission bits only, 07777 */
	int64_t size; /* file bytes, or symlink target length */
	int64_t mtime_sec;
	long mtime_nsec;
	char sha[HASH_HEX_SIZE]; /* files only; "-" otherwise */
	char *path;
	char *target;      /* symlinks only */
	uint32_t uid, gid; /* when the manifest has owners */
};

struct manifest {
	char *source;
	char *version;
	int64_t generation; /* generation.h; 1 unless the manifest says */
	struct ment *e;
	size_t n;
	int64_t files;
	int64_t bytes;
	/* Owners (owners.h): whether the entries carry them, the top
	 * directory's, and the names of the ids used. */
	int owners;
	uint32_t root_uid, root_gid;
	mode_t root_mode;
	struct mowner *users, *groups;
	size_t nusers, ngroups;
};

struct evbuffer;

int manifest_scan(const char *dir, const char *source, const char *version,
    struct manifest **out, char *err, size_t errlen);
/* The same, taking the SHA-256 of a file whose device, inode, size and
 * mtime are those the last scan saw from the cache file (NULL: none),
 * which is then rewritten with what this scan saw.  *hashed (if not NULL)
 * counts the files hashed. */
int manifest_scan_cached(const char *dir, const char *source,
    const char *version, const char *cache, struct manifest **out,
    int64_t *hashed, char *err, size_t errlen);
int manifest_parse(const char *buf, size_t len, struct manifest **out,
    char *err, size_t errlen);
int manifest_load(const char *path, struct manifest **out, char *err,
    size_t errlen);
void manifest_write(const struct manifest *, struct evbuffer *);
int manifest_save(const struct manifest *, const char *path);
/* backup.signature: its first max lines, or all with max 0. */
void manifest_signature(const struct manifest *, struct evbuffer *, size_t max);
const struct ment *manifest_find(const struct manifest *, const char *path);
/* Whether two entries of one path are the same: type, mode, owners,
 * mtime, and content (SHA-256, size, symlink target). */
int manifest_same(const struct ment *, const struct ment *);
/* What differs from old to new, in path order: fn(arg, o, n) with o the
 * old entry (NULL for a path only in new) and n the new one (NULL for a
 * path only in old); paths that are the same in both are skipped. */
typedef void manifest_diff_fn(void *arg, const struct ment *o,
    const struct ment *n);
void manifest_diff(const struct manifest *old, const struct manifest *new,
    manifest_diff_fn *, void *arg);
void manifest_free(struct manifest *);
/* Percent-encoding of paths in the text form. */
void manifest_encode(struct evbuffer *, const char *);
/* The reverse; NULL when malformed or holding a NUL byte. */
char *manifest_decode(const char *s, size_t len);

/* The files of a manifest by content: which file has a SHA-256 (one of
 * them when several do), or NULL; or all of them, *n of them. */
struct manifest_shas;
struct manifest_shas *manifest_shas_new(const struct manifest *);
const struct ment *manifest_shas_find(const struct manifest_shas *,
    const char *sha);
const struct ment *const *manifest_shas_all(const struct manifest_shas *,
    const char *sha, size_t *n);
void manifest_shas_free(struct manifest_shas *);

#endif
