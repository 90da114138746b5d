#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/openat2.h>

#include "fault.h"
#include "fsutil.h"
#include "xmalloc.h"

const char *
path_check(const char *rel)
{
	const char *p = rel, *slash;
	size_t n, total = strlen(rel);

	if (total == 0)
		return "empty path";
	if (total >= PATH_MAX)
		return "path too long";
	if (rel[0] == '/')
		return "absolute path";
	for (;;) {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 0)
			return "empty path component";
		if (n > NAME_MAX)
			return "path component too long";
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return "\".\" or \"..\" in path";
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return NULL;
}

/* openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS resolves a checked
 * relative path in one call where walking it costs a call a component
 * (20,000 files four deep: 100,000 calls).  -1 with errno ENOSYS where the
 * kernel (before 5.6) or a seccomp filter does not have it: the caller
 * walks then. */
static int openat2_missing;

static int
open_resolved(int rootfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how;
	long fd;

	if (__atomic_load_n(&openat2_missing, __ATOMIC_RELAXED)) {
		errno = ENOSYS;
		return -1;
	}
	memset(&how, 0, sizeof how);
	how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
	how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS;
	do
		fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
	while (fd < 0 && (errno == EINTR || errno == EAGAIN));
	/* EPERM may be a seccomp filter's answer to an unknown call: walk
	 * this once, which answers EPERM too if it was the file's. */
	if (fd < 0 && errno == ENOSYS)
		__atomic_store_n(&openat2_missing, 1, __ATOMIC_RELAXED);
	else if (fd < 0 && errno == EPERM)
		errno = ENOSYS;
	return (int)fd;
}

/* The directory holding rel, component by component, none a symlink. */
static int
walk_parent(int rootfd, const char *rel, const char **base)
{
	char comp[NAME_MAX + 1];
	const char *p = rel, *slash;
	int fd, next;
	size_t n;

	fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((slash = strchr(p, '/')) != NULL) {
		n = (size_t)(slash - p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		next = openat(fd, comp,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		if (next < 0)
			return -1;
		fd = next;
		p = slash + 1;
	}
	*base = p;
	return fd;
}

int
fs_open_parent(int rootfd, const char *rel, const char **base)
{
	char dir[PATH_MAX];
	const char *slash;
	int fd;

	if (path_check(rel) != NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((slash = strrchr(rel, '/')) == NULL) {
		*base = rel;
		return openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	fd = open_resolved(rootfd, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd >= 0 || errno != ENOSYS) {
		if (fd >= 0)
			*base = slash + 1;
		return fd;
	}
	return walk_parent(rootfd, rel, base);
}

int
fs_parent_open(struct fs_parent *c, int rootfd, const char *rel,
    const char **base)
{
	const char *slash = strrchr(rel, '/');
	size_t len = slash != NULL ? (size_t)(slash - rel) : 0;

	if (c->fd >= 0 && c->root == rootfd && c->len == len &&
	    memcmp(c->dir, rel, len) == 0 && path_check(rel) == NULL) {
		*base = slash != NULL ? slash + 1 : rel;
		return c->fd;
	}
	fs_parent_close(c);
	if (len >= sizeof c->dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((c->fd = fs_open_parent(rootfd, rel, base)) < 0)
		return -1;
	memcpy(c->dir, rel, len);
	c->len = len;
	c->root = rootfd;
	return c->fd;
}

void
fs_parent_close(struct fs_parent *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int
fs_open_beneath(int rootfd, const char *rel, int flags, mode_t mode)
{
	const char *base;
	int dfd, fd, saved;

	if (path_check(rel) != NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = open_resolved(rootfd, rel, flags, mode);
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	if ((dfd = walk_parent(rootfd, rel, &base)) < 0)
		return -1;
	fd = openat(dfd, base, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	saved = errno;
	close(dfd);
	errno = saved;
	return fd;
}

int
fs_fsync_path(const char *path)
{
	int fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
fs_fsync_dir(const char *path)
{
	return fs_fsync_path(path);
}

int
fs_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A name for a temporary file beside name: "<name>.tmp.<pid>.<n>", so that
 * two threads of one process never share one. */
static char *
tmp_name(const char *name)
{
	static atomic_uint seq;

	return xasprintf("%s.tmp.%d.%u", name, (int)getpid(),
	    atomic_fetch_add(&seq, 1));
}

static int
write_renamed(int dfd, const char *name, const void *data, size_t len,
    int durable)
{
	char *tmp;
	int fd, saved;

	if (fault_enospc("atomic-write"))
		return -1;
	tmp = tmp_name(name);
	fd = openat(dfd, tmp,
	    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	if (fs_write_all(fd, data, len) != 0 || (durable && fsync(fd) != 0)) {
		saved = errno;
		close(fd);
		unlinkat(dfd, tmp, 0);
		free(tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) != 0 || renameat(dfd, tmp, dfd, name) != 0) {
		saved = errno;
		unlinkat(dfd, tmp, 0);
		free(tmp);
		errno = saved;
		return -1;
	}
	free(tmp);
	return 0;
}

static ssize_t
read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len && (n = read(fd, buf + got, len - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
fs_size_time_cmp(const struct stat *a, const struct stat *b)
{
	if (a->st_size != b->st_size)
		return a->st_size < b->st_size ? -1 : 1;
	if (a->st_mtim.tv_sec != b->st_mtim.tv_sec)
		return a->st_mtim.tv_sec < b->st_mtim.tv_sec ? -1 : 1;
	if (a->st_mtim.tv_nsec != b->st_mtim.tv_nsec)
		return a->st_mtim.tv_nsec < b->st_mtim.tv_nsec ? -1 : 1;
	return 0;
}

size_t
fs_size_time_first(const void *v, size_t n, size_t stride, size_t off,
    const struct stat *key)
{
	const char *base = v;
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (fs_size_time_cmp((const struct stat *)(const void *)(base +
					 mid * stride + off),
			key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
fs_same_bytes(int a, int b)
{
	enum {
		CHUNK = 1 << 17
	};
	char *x = xmalloc(2 * CHUNK), *y = x + CHUNK;
	ssize_t n, m;
	int rc = 1;

	do {
		n = read_full(a, x, CHUNK);
		m = read_full(b, y, CHUNK);
		if (n < 0 || m < 0)
			rc = -1;
		else if (n != m || memcmp(x, y, (size_t)n) != 0)
			rc = 0;
	} while (rc == 1 && n > 0);
	free(x);
	return rc;
}

int
fs_copy_fd(int in, int out, struct fs_flusher *fl)
{
	char buf[1 << 16];
	/* Where out is, for the writeback only. */
	int64_t end = fl != NULL ? lseek(out, 0, SEEK_CUR) : 0, kicked;
	ssize_t n;

	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	if (end < 0)
		end = 0;
	for (;;) {
		n = copy_file_range(in, NULL, out, NULL,
		    fl != NULL ? (size_t)FS_FLUSH_STEP : (size_t)1 << 30, 0);
		if (n <= 0)
			break;
		fs_flusher_add(fl, out, end, n);
		end += n;
	}
	if (n == 0)
		return 0;
	/* Not across these filesystems: read and write, from where the
	 * offsets are. */
	if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP &&
	    errno != EINVAL)
		return -1;
	kicked = end;
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (fs_write_all(out, buf, (size_t)n) != 0)
			return -1;
		end += n;
		fs_flusher_wrote(fl, out, &kicked, end, 0);
	}
	fs_flusher_wrote(fl, out, &kicked, end, 1);
	return n < 0 ? -1 : 0;
}

int
fs_set_meta_at(int dfd, const char *name, const struct stat *st, int owners)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, st->st_mtim };

	if (owners &&
	    fchownat(dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) !=
		0)
		return -1;
	if (!S_ISLNK(st->st_mode) &&
	    fchmodat(dfd, name, st->st_mode & 07777, 0) != 0)
		return -1;
	return utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

int
fs_copy_symlink_at(int sfd, const char *sname, int dfd, const char *name,
    const struct stat *st, int owners)
{
	char target[PATH_MAX];
	ssize_t len;

	if ((len = readlinkat(sfd, sname, target, sizeof target - 1)) < 0)
		return -1;
	target[len] = '\0';
	if (symlinkat(target, dfd, name) != 0)
		return -1;
	return fs_set_meta_at(dfd, name, st, owners);
}

#define FLUSH_QUEUE 32

struct fs_flusher {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct flush_range {
		int fd;
		int64_t off, len;
	} q[FLUSH_QUEUE];
	unsigned head, n;
	int stop;
	int64_t started;
};

static void *
flusher_run(void *arg)
{
	struct fs_flusher *f = arg;
	struct flush_range r;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (f->n == 0 && !f->stop)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->n == 0)
			break;
		r = f->q[f->head];
		f->head = (f->head + 1) % FLUSH_QUEUE;
		f->n--;
		pthread_mutex_unlock(&f->mu);
		/* A failure here is the syncfs()'s to find and say. */
		if (sync_file_range(r.fd, r.off, r.len,
			SYNC_FILE_RANGE_WRITE) == 0)
			f->started += r.len; /* read after the join */
		close(r.fd);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct fs_flusher *
fs_flusher_new(void)
{
	struct fs_flusher *f = xcalloc(1, sizeof *f);

	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->t, NULL, flusher_run, f) != 0) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f);
		return NULL;
	}
	return f;
}

void
fs_flusher_add(struct fs_flusher *f, int fd, int64_t off, int64_t len)
{
	int dfd;

	if (f == NULL || len <= 0)
		return;
	pthread_mutex_lock(&f->mu);
	if (f->n < FLUSH_QUEUE && (dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		f->q[(f->head + f->n) % FLUSH_QUEUE] =
		    (struct flush_range){ dfd, off, len };
		f->n++;
		pthread_cond_signal(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
}

void
fs_flusher_wrote(struct fs_flusher *f, int fd, int64_t *kicked, int64_t end,
    int last)
{
	if (end < *kicked)
		*kicked = 0;
	if (end - *kicked >= (last ? 1 : FS_FLUSH_STEP)) {
		fs_flusher_add(f, fd, *kicked, end - *kicked);
		*kicked = end;
	}
}

int64_t
fs_flusher_free(struct fs_flusher *f)
{
	int64_t started;

	if (f == NULL)
		return 0;
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->t, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	started = f->started;
	free(f);
	return started;
}

static void *
syncfs_thread(void *arg)
{
	struct fs_syncfs *b = arg;

	b->rc = fault_enospc("syncfs") ? -1 : syncfs(b->fd);
	b->err = errno;
	return NULL;
}

void
fs_syncfs_start(struct fs_syncfs *b, const char *path)
{
	b->rc = -1;
	b->started = 0;
	if ((b->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		b->err = errno;
		return;
	}
	if (pthread_create(&b->t, NULL, syncfs_thread, b) == 0)
		b->started = 1;
	else
		syncfs_thread(b); /* no thread: here and now */
}

int
fs_syncfs_wait(struct fs_syncfs *b)
{
	if (b->started)
		pthread_join(b->t, NULL);
	b->started = 0;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	errno = b->err;
	return b->rc;
}

int
fs_write_renamed_at(int dfd, const char *name, const void *data, size_t len)
{
	return write_renamed(dfd, name, data, len, 1);
}

int
fs_write_scratch(const char *path, const void *data, size_t len)
{
	return write_renamed(AT_FDCWD, path, data, len, 0);
}

int
fs_write_renamed(const char *path, const void *data, size_t len)
{
	return fs_write_renamed_at(AT_FDCWD, path, data, len);
}

int
fs_same_dir(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa != NULL ? (size_t)(sa - a) : 0;
	size_t lb = sb != NULL ? (size_t)(sb - b) : 0;

	return (sa == NULL) == (sb == NULL) && la == lb &&
	    memcmp(a, b, la) == 0;
}

/* fsync the directory holding name (relative to dfd, or absolute). */
static int
fsync_parent_at(int dfd, const char *name)
{
	char *dir, *slash;
	int fd, rc, saved;

	dir = xstrdup(name);
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		strcpy(dir, ".");
	fd = openat(dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
fs_write_atomic_at(int dfd, const char *name, const void *data, size_t len)
{
	if (fs_write_renamed_at(dfd, name, data, len) != 0)
		return -1;
	return fsync_parent_at(dfd, name);
}

int
fs_write_atomic(const char *path, const void *data, size_t len)
{
	return fs_write_atomic_at(AT_FDCWD, path, data, len);
}

int
fs_tmpfile(const char *dir)
{
	char *tmpl;
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 ||
	    (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	tmpl = xasprintf("%s/.tmp.XXXXXX", dir);
	if ((fd = mkostemp(tmpl, O_CLOEXEC)) >= 0)
		unlink(tmpl);
	free(tmpl);
	return fd;
}

int
fs_read_file_at(int dfd, const char *name, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		close(fd);
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			errno = saved;
			return -1;
		}
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	*len = off;
	return 0;
}

int
fs_read_file(const char *path, size_t max, char **out, size_t *len)
{
	return fs_read_file_at(AT_FDCWD, path, max, out, len);
}

/* Everything in the directory fd (which this closes): removed, or with
 * bytes set, left and the regular files' sizes added up. */
static int
walk_dir(int fd, int64_t *bytes)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int sub, rc = 0, isdir, flags;

	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN ||
		    (bytes != NULL && de->d_type == DT_REG)) {
			if (fstatat(dirfd(d), de->d_name, &st,
				AT_SYMLINK_NOFOLLOW) != 0) {
				if (errno != ENOENT)
					rc = -1;
				continue;
			}
			isdir = S_ISDIR(st.st_mode);
			if (bytes != NULL && S_ISREG(st.st_mode))
				*bytes += st.st_size;
		}
		if (isdir) {
			/* A read-only directory cannot be emptied; open it
			 * up. */
			if (bytes == NULL)
				fchmodat(dirfd(d), de->d_name, 0700, 0);
			sub = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || walk_dir(sub, bytes) != 0)
				rc = -1;
		}
		if (bytes != NULL)
			continue;
		flags = isdir ? AT_REMOVEDIR : 0;
		if (unlinkat(dirfd(d), de->d_name, flags) != 0 &&
		    errno != ENOENT)
			rc = -1;
	}
	closedir(d);
	return rc;
}

int
fs_rm_rf_at(int dfd, const char *name)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0);
	fchmodat(dfd, name, 0700, 0);
	if ((fd = openat(dfd, name,
		 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    walk_dir(fd, NULL) != 0)
		return -1;
	return unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT ? -1 :
									   0;
}

int
fs_rm_rf(const char *path)
{
	return fs_rm_rf_at(AT_FDCWD, path);
}

int
fs_mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = '/';
	}
	if (rc == 0 && mkdir(p, mode) != 0 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

int
fs_exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
fs_exists(const char *path)
{
	return fs_exists_at(AT_FDCWD, path);
}

int64_t
fs_tree_bytes_at(int dfd, const char *name)
{
	int64_t bytes = 0;
	int fd;

	if ((fd = openat(dfd, name,
		 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    walk_dir(fd, &bytes) != 0)
		return -1;
	return bytes;
}

int
fs_no_room(int err)
{
	return err == ENOSPC || err == EDQUOT;
}
