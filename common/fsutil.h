/* Filesystem helpers: confined opens beneath a root directory (no "..",
 * no symlink followed), crash-safe writes, recursive removal that follows
 * no symlink either. */
#ifndef UNDERSTUDY_FSUTIL_H
#define UNDERSTUDY_FSUTIL_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A relative path from the wire or a manifest: no leading "/", no empty,
 * "." or ".." component, no trailing "/", bounded length.  Returns NULL when
 * valid, or a reason. */
const char *path_check(const char *rel);

/* Open rel beneath rootfd: every directory on the way is opened with
 * O_NOFOLLOW, and so is the last component.  Fails with ELOOP or ENOTDIR
 * if a symlink stands in the way. */
int fs_open_beneath(int rootfd, const char *rel, int flags, mode_t mode);
/* Open the parent directory of rel beneath rootfd; *base points into rel. */
int fs_open_parent(int rootfd, const char *rel, const char **base);
/* The same, for a walk through paths in order: the last parent stays
 * open while the next paths share it (and the root: a path beneath
 * another root is opened anew).  The fd returned is the cache's (not to
 * be closed); fs_parent_close() closes it. */
struct fs_parent {
	int fd; /* -1: none yet */
	int root;
	size_t len;
	char dir[PATH_MAX];
};
#define FS_PARENT_INIT \
	{ \
		-1, -1, 0, "" \
	}
int fs_parent_open(struct fs_parent *, int rootfd, const char *rel,
    const char **base);
void fs_parent_close(struct fs_parent *);

/* 1 when errno says the filesystem has no room (full, or over quota). */
int fs_no_room(int err);
int fs_fsync_dir(const char *path);
/* Do the two paths name entries of one directory (same text up to the
 * last slash)? */
int fs_same_dir(const char *a, const char *b);
int fs_fsync_path(const char *path);
/* Temporary file, fsync, rename over path, fsync of the directory. */
int fs_write_atomic(const char *path, const void *data, size_t len);
/* The same without the directory's fsync: for many files made durable
 * by one fs_fsync_dir() afterwards. */
int fs_write_renamed(const char *path, const void *data, size_t len);
/* Temporary file and rename, no fsync: for a file read only while this
 * process lives, which a crash may leave half written (or not at all). */
int fs_write_scratch(const char *path, const void *data, size_t len);
/* The *_at() forms take a name relative to the directory dfd (or
 * AT_FDCWD), as the archive, which works from its directory's fd, does. */
int fs_write_atomic_at(int dfd, const char *name, const void *data, size_t len);
int fs_write_renamed_at(int dfd, const char *name, const void *data,
    size_t len);
int fs_read_file_at(int dfd, const char *name, size_t max, char **out,
    size_t *len);
int fs_rm_rf_at(int dfd, const char *name);
int fs_exists_at(int dfd, const char *name);
/* Bytes used by a tree's regular files (for "increment bytes"). */
int64_t fs_tree_bytes_at(int dfd, const char *name);
/* An unnamed temporary file in dir: O_TMPFILE, or a name unlinked at
 * once where the filesystem has no O_TMPFILE. */
int fs_tmpfile(const char *dir);
int fs_read_file(const char *path, size_t max, char **out, size_t *len);
int fs_rm_rf(const char *path);
int fs_mkdir_p(const char *path, mode_t mode);
int fs_exists(const char *path);
int fs_write_all(int fd, const void *p, size_t n);
struct fs_flusher;
/* Copy the content of in (from its offset) to out: a reflink, else
 * copy_file_range() (in the kernel), else read and write.  With fl (or
 * NULL), the writeback of every FS_FLUSH_STEP bytes copied is started
 * as it goes (see fs_flusher below).  0, or -1 with errno. */
int fs_copy_fd(int in, int out, struct fs_flusher *fl);
/* Whether two files, read from where their offsets are to their ends,
 * have the same bytes: 1, 0, or -1 with errno. */
int fs_same_bytes(int a, int b);
/* Files that may have the same bytes: stats ordered by size, then mtime
 * (fs_size_time_cmp); in n elements of stride bytes so sorted by the
 * struct stat at offset off in each, the first not before key. */
int fs_size_time_cmp(const struct stat *a, const struct stat *b);
size_t fs_size_time_first(const void *v, size_t n, size_t stride, size_t off,
    const struct stat *key);
/* Owners (when owners is set: as root), mode and mtime of the entry name
 * in dfd, as st says, no symlink followed (a symlink keeps its mode).
 * Owners first: chown drops set-id bits.  0, or -1 with errno. */
int fs_set_meta_at(int dfd, const char *name, const struct stat *st,
    int owners);
/* A symlink name in dfd pointing where sname in sfd points, with st's
 * metadata (st: sname's lstat).  0, or -1 with errno. */
int fs_copy_symlink_at(int sfd, const char *sname, int dfd, const char *name,
    const struct stat *st, int owners);

/* syncfs() of the filesystem holding path, on a thread of its own, so that
 * the disk writes while the caller goes on (hashing what it syncs, from
 * the page cache); fs_syncfs_wait() joins it: 0, or -1 with errno. */
struct fs_syncfs {
	pthread_t t;
	int fd, rc, err, started;
};
void fs_syncfs_start(struct fs_syncfs *, const char *path);
int fs_syncfs_wait(struct fs_syncfs *);

/* A thread that starts the writeback of ranges of files as they are
 * written (sync_file_range(), SYNC_FILE_RANGE_WRITE), so that the disk
 * writes while the writer goes on and a syncfs() at the end has little
 * left: the page cache of a large machine otherwise holds everything
 * until then.  Only a head start: durability is still the syncfs()'s.
 * fs_flusher_add() never blocks: it takes its own fd (a dup), and drops
 * the range when its queue is full or it has no thread.
 * fs_flusher_free() starts what is queued, joins the thread, and says how
 * many bytes' writeback it started. */
#define FS_FLUSH_STEP ((int64_t)8 << 20)
struct fs_flusher *fs_flusher_new(void);
void fs_flusher_add(struct fs_flusher *, int fd, int64_t off, int64_t len);
int64_t fs_flusher_free(struct fs_flusher *);
/* For a writer going through fd: the file was written up to end, its
 * writeback started up to *kicked.  Hands what lies between to the
 * flusher once it reaches FS_FLUSH_STEP, or whatever it is when last (the
 * file's end), and moves *kicked; a file that went back (truncated, end
 * below *kicked) starts again from 0. */
void fs_flusher_wrote(struct fs_flusher *, int fd, int64_t *kicked, int64_t end,
    int last);

#endif
