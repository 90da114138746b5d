/*
 * files-export DIR: the export hook for plain files.  Copies the tree DIR
 * into UNDERSTUDY_BACKUP_DIR: files, directories and symlinks, with their
 * modes and mtimes (and owners, when run as root).
 *
 * When the exporter still serves the previous version
 * (UNDERSTUDY_PREVIOUS_BACKUP_DIR, of UNDERSTUDY_PREVIOUS_VERSION), a file
 * whose size, mtime (to the nanosecond), mode (and owners, as root) are
 * those of the previous version's file at the same path is a hard link to
 * that one instead of a copy.  Nothing is ever linked to DIR: a file
 * edited in place there changes no version.  Two rules keep a link from
 * hiding a change that kept size and mtime:
 *
 *   - a file whose mtime is less than 2 s older than the previous
 *     export's start (the version's time) is always copied: a write in
 *     the clock tick of its last copy would look unchanged;
 *   - a copy gets the mtime its file had before it was read: one written
 *     meanwhile has another by then, and is copied again next time.
 *
 * An entry that goes while the tree is read (a temporary file) is left
 * out, as if it had gone just before.
 *
 * --exclude PATTERN (repeated) leaves entries out: a pattern with a slash
 * is matched against the entry's path in DIR (a leading slash is
 * optional; `*` does not cross a slash), one without against its name at
 * any depth.  An excluded directory is not read.
 *
 * One process, the kernel copying (reflinks where the filesystem has
 * them, else copy_file_range): the shell hook it replaces ran rsync
 * --link-dest, three processes talking through pipes.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "timespec.h"

#define RACY_SECS 2

struct fx {
	const char *src;  /* DIR, for messages */
	int root;         /* owners are copied, and compared */
	int linking;      /* a previous version to link to */
	time_t racy_from; /* mtimes from here on are always copied */
	char **exclude;   /* argv from the first pattern: every second one */
	int nexclude;
	long long copied, linked, bytes;
	/* the writeback of the copies, started as they are made: the
	 * exporter's syncfs then finds less to write */
	struct fs_flusher *fl;
};

static void say_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "files-export: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Whether prev (the previous version's file) may stand for st. */
static int
same_file(const struct fx *x, const struct stat *st, const struct stat *prev)
{
	return S_ISREG(prev->st_mode) && prev->st_size == st->st_size &&
	    prev->st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    prev->st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
	    (prev->st_mode & 07777) == (st->st_mode & 07777) &&
	    (!x->root ||
		(prev->st_uid == st->st_uid && prev->st_gid == st->st_gid)) &&
	    st->st_mtim.tv_sec < x->racy_from;
}

/* A copy of the file name in sfd (rel in DIR) as name in dfd.  Opened
 * without blocking: a named pipe put in its place meanwhile would wait for
 * a writer. */
static int
copy_file(struct fx *x, int sfd, int dfd, const char *name, const char *rel)
{
	struct stat before;
	int in, out, rc;

	fault_point("files-export-copy");
	if ((in = openat(sfd, name,
		 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1; /* gone meanwhile */
	if (fstat(in, &before) != 0) {
		close(in);
		return -1;
	}
	if (!S_ISREG(before.st_mode)) {
		say_err("%s/%s: no longer a file when read (the tree changed)",
		    x->src, rel);
		close(in);
		return -2;
	}
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	rc = fault_enospc("files-export-copy") ? (errno = ENOSPC, -1) :
						 fs_copy_fd(in, out, x->fl);
	close(in);
	if (close(out) != 0)
		rc = -1;
	if (rc == 0)
		rc = fs_set_meta_at(dfd, name, &before, x->root);
	if (rc == 0) {
		x->copied++;
		x->bytes += before.st_size;
	}
	return rc;
}

static int walk(struct fx *, int sfd, int pfd, int dfd, const char *rel);

/* Whether the entry name, at rel in DIR, is left out. */
static int
excluded(const struct fx *x, const char *name, const char *rel)
{
	const char *p;
	int i;

	for (i = 0; i < x->nexclude; i++) {
		p = x->exclude[2 * i];
		if (strchr(p, '/') == NULL ?
			fnmatch(p, name, 0) == 0 :
			fnmatch(p + (*p == '/'), rel, FNM_PATHNAME) == 0)
			return 1;
	}
	return 0;
}

/* One entry of a directory: name in sfd (the source), pfd (the previous
 * version's, or -1) and dfd (the copy). */
static int
entry(struct fx *x, int sfd, int pfd, int dfd, const char *name,
    const char *rel)
{
	struct stat st, prev;
	int cs, cp, cd, rc;

	fault_point("files-export-entry");
	if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1; /* gone meanwhile */
	if (S_ISREG(st.st_mode)) {
		if (pfd >= 0 &&
		    fstatat(pfd, name, &prev, AT_SYMLINK_NOFOLLOW) == 0 &&
		    same_file(x, &st, &prev) &&
		    linkat(pfd, name, dfd, name, 0) == 0) {
			x->linked++;
			return 0;
		}
		/* Else (or the link refused: too many links, another
		 * filesystem), a copy. */
		return copy_file(x, sfd, dfd, name, rel);
	}
	if (S_ISLNK(st.st_mode))
		return fs_copy_symlink_at(sfd, name, dfd, name, &st, x->root);
	if (!S_ISDIR(st.st_mode)) {
		errno = 0;
		say_err("%s/%s: not a file, directory or symlink (mode %o): "
			"nothing else can be backed up",
		    x->src, rel, (unsigned)(st.st_mode & S_IFMT));
		return -2;
	}
	if ((cs = openat(sfd, name,
		 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -1; /* gone meanwhile */
	if (mkdirat(dfd, name, 0700) != 0) {
		close(cs);
		return -1;
	}
	cd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	cp = pfd < 0 ?
	    -1 :
	    openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cd < 0)
		close(cs);
	rc = cd < 0 ? -1 : walk(x, cs, cp, cd, rel);
	if (cp >= 0)
		close(cp);
	if (cd >= 0)
		close(cd);
	/* Its metadata after its entries, which change its mtime. */
	if (rc == 0)
		rc = fs_set_meta_at(dfd, name, &st, x->root);
	return rc;
}

/* Every entry of the directory sfd; rel its path in DIR ("" for DIR).
 * Closes sfd.  0, -1 with errno (said by the caller) or -2 (said). */
static int
walk(struct fx *x, int sfd, int pfd, int dfd, const char *rel)
{
	struct dirent *de;
	char path[PATH_MAX];
	DIR *d;
	int rc = 0;

	if ((d = fdopendir(sfd)) == NULL) {
		close(sfd);
		return -1;
	}
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s%s%s", rel,
			*rel ? "/" : "", de->d_name) >= sizeof path) {
			say_err("%s/%s/%s: path too long", x->src, rel,
			    de->d_name);
			rc = -2;
			break;
		}
		if (excluded(x, de->d_name, path))
			continue;
		rc = entry(x, dirfd(d), pfd, dfd, de->d_name, path);
		if (rc == -1) {
			say_err("%s/%s: %s", x->src, path,
			    fs_no_room(errno) ? "no room to copy it" :
						strerror(errno));
			rc = -2;
		}
	}
	if (rc == 0 && errno != 0) {
		say_err("%s/%s: cannot read the directory: %s", x->src,
		    *rel ? rel : ".", strerror(errno));
		rc = -2;
	}
	closedir(d);
	return rc;
}

int
main(int argc, char *argv[])
{
	const char *dest = getenv("UNDERSTUDY_BACKUP_DIR");
	const char *prev = getenv("UNDERSTUDY_PREVIOUS_BACKUP_DIR");
	const char *pv = getenv("UNDERSTUDY_PREVIOUS_VERSION");
	struct fx x;
	struct stat st;
	int sfd, pfd = -1, dfd, rc, i;

	memset(&x, 0, sizeof x);
	x.exclude = argv + 2;
	for (i = 1; i + 1 < argc && strcmp(argv[i], "--exclude") == 0; i += 2) {
		const char *p = argv[i + 1];
		size_t n = strlen(p);

		if (n == 0 || strcmp(p, "/") == 0 || p[n - 1] == '/') {
			say_err("--exclude '%s': a pattern is a name or a path "
				"in DIR, without a trailing slash",
			    p);
			return 2;
		}
		x.nexclude++;
	}
	if (argc - i != 1 || argv[i][0] == '-') {
		fprintf(stderr,
		    "usage: files-export [--exclude PATTERN]... DIR\n");
		return 2;
	}
	if (dest == NULL || *dest == '\0') {
		say_err("UNDERSTUDY_BACKUP_DIR is not set: not run by "
			"understudy-exporter");
		return 2;
	}
	x.src = argv[i];
	x.root = geteuid() == 0;
	sfd = open(x.src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) != 0) {
		say_err("%s: not a directory to export: %s", x.src,
		    strerror(errno));
		return 1;
	}
	if ((dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		say_err("%s: %s", dest, strerror(errno));
		close(sfd);
		return 1;
	}
	/* Links only with the previous version's time, for the rule on
	 * files written in the clock tick of its copy. */
	if (prev != NULL && *prev != '\0' && pv != NULL &&
	    version_id_valid(pv) &&
	    (pfd = open(prev, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		x.linking = 1;
		x.racy_from = (time_t)(version_id_ms(pv) / 1000) - RACY_SECS;
	}
	x.fl = fs_flusher_new();
	rc = walk(&x, sfd, pfd, dfd, "");
	fs_flusher_free(x.fl);
	if (rc == -1)
		say_err("%s: %s", x.src, strerror(errno));
	if (rc == 0 && fs_set_meta_at(dfd, ".", &st, x.root) != 0) {
		say_err("%s: %s", dest, strerror(errno));
		rc = -1;
	}
	if (pfd >= 0)
		close(pfd);
	close(dfd);
	if (rc != 0)
		return 1;
	if (x.linking)
		printf("files-export: copied what changed since version %s, "
		       "linked the rest %s (%lld files: %lld copied, %lld "
		       "bytes; %lld linked)\n",
		    pv, x.src, x.copied + x.linked, x.copied, x.bytes,
		    x.linked);
	else
		printf("files-export: copied %s (%lld files, %lld bytes)\n",
		    x.src, x.copied, x.bytes);
	return 0;
}
