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
 * A file at a path the previous version lacks (renamed, moved, or in a
 * directory renamed) is linked to a file of the previous version at any
 * path with the same size, mtime, mode (and owners), when their bytes are
 * the same (read and compared) and the rule on recent files allows it;
 * else it is copied.  Those files are seen to once the tree is read,
 * with one walk of the previous version to find their likely matches.
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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "timespec.h"
#include "xmalloc.h"

#define RACY_SECS 2

/* A file at a path the previous version lacks, seen to after the walk:
 * rel in DIR, its lstat then, and a file of the previous version that
 * may have its bytes (match, NULL when none). */
struct fx_later {
	char *rel;
	struct stat st;
	char *match[4];
	int nmatch;
};

/* A directory of the copy that such a file goes in: its metadata, set
 * after that file (walk() adds it after its entries, so a directory is
 * the last added when it has some). */
struct fx_dir {
	char *rel;
	struct stat st;
};

struct fx {
	const char *src;  /* DIR, for messages */
	int root;         /* owners are copied, and compared */
	int linking;      /* a previous version to link to */
	time_t racy_from; /* mtimes from here on are always copied */
	char **exclude;   /* argv from the first pattern: every second one */
	int nexclude;
	long long copied, linked, moved, bytes;
	int sroot, proot, droot; /* DIR, the previous version, the copy */
	struct fx_later *later;  /* sorted by size and mtime after the walk */
	size_t nlater, caplater;
	struct fx_dir *dirs;
	size_t ndirs, capdirs;
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

static int
same_size_time(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Whether prev (the previous version's file) may stand for st. */
static int
same_file(const struct fx *x, const struct stat *st, const struct stat *prev)
{
	return S_ISREG(prev->st_mode) && same_size_time(prev, st) &&
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

static int walk(struct fx *, int sfd, int pfd, int dfd, const char *rel,
    const struct stat *dst);

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

static int
later_add(struct fx *x, const char *rel, const struct stat *st)
{
	struct fx_later *l;

	if (x->nlater == x->caplater) {
		x->caplater = x->caplater ? x->caplater * 2 : 64;
		x->later = xreallocarray(x->later, x->caplater,
		    sizeof *x->later);
	}
	l = &x->later[x->nlater++];
	memset(l, 0, sizeof *l);
	l->rel = xstrdup(rel);
	l->st = *st;
	return 0;
}

static void
dir_add(struct fx *x, const char *rel, const struct stat *st)
{
	if (x->ndirs == x->capdirs) {
		x->capdirs = x->capdirs ? x->capdirs * 2 : 16;
		x->dirs = xreallocarray(x->dirs, x->capdirs, sizeof *x->dirs);
	}
	x->dirs[x->ndirs].rel = xstrdup(*rel ? rel : ".");
	x->dirs[x->ndirs++].st = *st;
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
		    fstatat(pfd, name, &prev, AT_SYMLINK_NOFOLLOW) == 0) {
			if (same_file(x, &st, &prev) &&
			    linkat(pfd, name, dfd, name, 0) == 0) {
				x->linked++;
				return 0;
			}
		} else if (x->linking && st.st_size > 0 &&
		    st.st_mtim.tv_sec < x->racy_from &&
		    (pfd < 0 || errno == ENOENT))
			return later_add(x, rel, &st);
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
	rc = cd < 0 ? -1 : walk(x, cs, cp, cd, rel, &st);
	if (cp >= 0)
		close(cp);
	if (cd >= 0)
		close(cd);
	/* Its metadata after its entries, which change its mtime; for one
	 * that files seen to later go in, after them (its mode may not let
	 * us write in it). */
	if (rc == 0 &&
	    (x->ndirs == 0 || strcmp(x->dirs[x->ndirs - 1].rel, rel) != 0))
		rc = fs_set_meta_at(dfd, name, &st, x->root);
	return rc;
}

/* Every entry of the directory sfd; rel its path in DIR ("" for DIR),
 * dst its lstat.  Closes sfd.  0, -1 with errno (said by the caller) or
 * -2 (said). */
static int
walk(struct fx *x, int sfd, int pfd, int dfd, const char *rel,
    const struct stat *dst)
{
	struct dirent *de;
	char path[PATH_MAX];
	size_t nlater;
	DIR *d;
	int rc = 0, later = 0;

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
		nlater = x->nlater;
		rc = entry(x, dirfd(d), pfd, dfd, de->d_name, path);
		/* Seen to later: this entry, not one in a subdirectory. */
		if (x->nlater > nlater &&
		    strcmp(x->later[x->nlater - 1].rel, path) == 0)
			later = 1;
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
	if (later)
		dir_add(x, rel, dst);
	return rc;
}

static int
later_cmp(const void *a, const void *b)
{
	return fs_size_time_cmp(&((const struct fx_later *)a)->st,
	    &((const struct fx_later *)b)->st);
}

/* A file of the previous version (rel, prev): a match for each file seen
 * to later that it may stand for. */
static void
later_match(struct fx *x, const char *rel, const struct stat *prev)
{
	struct fx_later *l, *end = x->later + x->nlater;

	for (l = x->later +
		 fs_size_time_first(x->later, x->nlater, sizeof *x->later,
		     offsetof(struct fx_later, st), prev);
	     l < end && fs_size_time_cmp(&l->st, prev) == 0; l++)
		if (l->nmatch < (int)(sizeof l->match / sizeof l->match[0]) &&
		    same_file(x, &l->st, prev))
			l->match[l->nmatch++] = xstrdup(rel);
}

/* The previous version's directory rel ("" for its top), at any depth:
 * what matches the files seen to later.  What cannot be read is only not
 * matched. */
static void
later_scan(struct fx *x, const char *rel)
{
	struct dirent *de;
	struct stat st;
	char path[PATH_MAX], **sub = NULL;
	size_t nsub = 0, cap = 0, i;
	int fd;
	DIR *d;

	fd = openat(x->proot, *rel ? rel : ".",
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (de->d_type != DT_UNKNOWN && de->d_type != DT_REG &&
			de->d_type != DT_DIR) ||
		    (size_t)snprintf(path, sizeof path, "%s%s%s", rel,
			*rel ? "/" : "", de->d_name) >= sizeof path ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			0)
			continue;
		if (S_ISREG(st.st_mode))
			later_match(x, path, &st);
		else if (S_ISDIR(st.st_mode)) {
			if (nsub == cap) {
				cap = cap ? cap * 2 : 16;
				sub = xreallocarray(sub, cap, sizeof *sub);
			}
			sub[nsub++] = xstrdup(path);
		}
	}
	closedir(d);
	for (i = 0; i < nsub; i++) {
		later_scan(x, sub[i]);
		free(sub[i]);
	}
	free(sub);
}

/* A file seen to later: a link to a match with its bytes, else a copy.
 * 0, -1 with errno or -2 (said), as entry(). */
static int
later_one(struct fx *x, const struct fx_later *l)
{
	const char *sname, *dname;
	struct stat a, b;
	int sdir, ddir = -1, in, p, k, same, rc;

	if ((sdir = fs_open_parent(x->sroot, l->rel, &sname)) < 0)
		return errno == ENOENT ? 0 : -1; /* gone meanwhile */
	if ((ddir = fs_open_parent(x->droot, l->rel, &dname)) < 0) {
		close(sdir);
		return -1;
	}
	for (k = 0; k < l->nmatch; k++) {
		in = openat(sdir, sname,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (in < 0)
			break; /* copy_file says why, or that it went */
		p = fs_open_beneath(x->proot, l->match[k], O_RDONLY, 0);
		/* The file as the walk saw it, before and after its read. */
		same = p >= 0 && fstat(in, &a) == 0 && S_ISREG(a.st_mode) &&
		    same_size_time(&a, &l->st) && fs_same_bytes(in, p) == 1 &&
		    fstat(in, &b) == 0 && same_size_time(&b, &l->st);
		close(in);
		if (p >= 0)
			close(p);
		if (same &&
		    linkat(x->proot, l->match[k], ddir, dname, 0) == 0) {
			x->linked++;
			x->moved++;
			rc = 0;
			goto out;
		}
	}
	rc = copy_file(x, sdir, ddir, sname, l->rel);
out:
	close(sdir);
	close(ddir);
	return rc;
}

/* After the walk: the files at paths the previous version lacks, then
 * the metadata of the directories they went in.  0 or -2 (said). */
static int
later_run(struct fx *x)
{
	size_t i;
	int rc = 0;

	if (x->nlater == 0)
		return 0;
	qsort(x->later, x->nlater, sizeof *x->later, later_cmp);
	later_scan(x, "");
	for (i = 0; rc == 0 && i < x->nlater; i++) {
		rc = later_one(x, &x->later[i]);
		if (rc == -1) {
			say_err("%s/%s: %s", x->src, x->later[i].rel,
			    fs_no_room(errno) ? "no room to copy it" :
						strerror(errno));
			rc = -2;
		}
	}
	for (i = 0; rc == 0 && i < x->ndirs; i++)
		if (fs_set_meta_at(x->droot, x->dirs[i].rel, &x->dirs[i].st,
			x->root) != 0) {
			say_err("%s/%s: %s", x->src, x->dirs[i].rel,
			    strerror(errno));
			rc = -2;
		}
	return rc;
}

static void
later_free(struct fx *x)
{
	size_t i;
	int k;

	for (i = 0; i < x->nlater; i++) {
		for (k = 0; k < x->later[i].nmatch; k++)
			free(x->later[i].match[k]);
		free(x->later[i].rel);
	}
	for (i = 0; i < x->ndirs; i++)
		free(x->dirs[i].rel);
	free(x->later);
	free(x->dirs);
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
	x.sroot = dup(sfd); /* the walk closes sfd */
	x.proot = pfd;
	x.droot = dfd;
	rc = x.sroot < 0 ? -1 : walk(&x, sfd, pfd, dfd, "", &st);
	if (rc == 0)
		rc = later_run(&x);
	fs_flusher_free(x.fl);
	later_free(&x);
	if (x.sroot >= 0)
		close(x.sroot);
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
	if (x.linking && x.moved > 0)
		printf("files-export: copied what changed since version %s, "
		       "linked the rest %s (%lld files: %lld copied, %lld "
		       "bytes; %lld linked, %lld of them renamed or moved)\n",
		    pv, x.src, x.copied + x.linked, x.copied, x.bytes, x.linked,
		    x.moved);
	else if (x.linking)
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
