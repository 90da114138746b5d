/*
 * files-import DIR: the import hook for plain files.  Makes DIR an exact
 * copy of the verified version in UNDERSTUDY_BACKUP_DIR (what went is
 * removed), sharing nothing with it: writing to DIR after a promotion
 * cannot damage understudy's copy.
 *
 * The first import, or one into a DIR this program did not leave as the
 * previous version, copies the whole tree beside DIR (DIR.understudy-new)
 * and renames it into place.  After that (DIR.understudy-version, the
 * mark, names UNDERSTUDY_PREVIOUS_VERSION) DIR is updated in place, at a
 * cost in proportion to what changed:
 *
 *   1. walk both trees comparing what lstat says (type, size, mtime to
 *      the nanosecond, mode, owners when root, symlink targets); the
 *      paths in UNDERSTUDY_CHANGED are written whatever they look like
 *      (a change that kept size and mtime); what DIR has that the version
 *      lacks goes.  A file changed in DIR on the standby is put back.
 *   2. copy every file to write into DIR.understudy-undo/new (reflinks
 *      where the filesystem has them), with its metadata; syncfs.  A file
 *      that DIR has at a path the update removes or replaces, with the
 *      same size, mtime, mode (owners) and bytes (compared), is linked
 *      there instead: a file renamed or moved is moved within DIR, not
 *      written again.  DIR's content is untouched so far: a failure here
 *      (a full disk) changes nothing.
 *   3. write the plan, DIR.understudy-undo/journal, and fsync it; then
 *      for each path, move DIR's entry aside into DIR.understudy-undo/old
 *      and rename the new one in; then the directories' metadata.
 *   4. syncfs, write the mark (the commit), remove the undo area.
 *
 * A failure in step 3 puts back what was moved aside (the journal says
 * what); so does the next run, or files-promote, after a crash there.
 * DIR is always one whole version once either has run.  This relies on the
 * filesystem keeping the order of renames in one directory tree across a
 * crash, as ext4 and XFS journal them.
 *
 * A DIR without the mark was not put there by this hook, or took writes
 * since (files-promote removes the mark): it is kept as
 * DIR.understudy-kept-<UTC time>, never removed.
 *
 * Built a second time as files-promote DIR: rolls back an update a crash
 * cut short, then removes the mark.
 */
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fault.h"
#include "fsutil.h"
#include "manifest.h"
#include "xmalloc.h"

#define FI_JOURNAL_MAGIC "understudy files-import undo 1"
#define FI_JOURNAL_MAX (256L << 20)

static const char *prog = "files-import";
#ifdef FILES_PROMOTE
static const int promote = 1;
#else
static const int promote = 0;
#endif

/* What step 3 does to one path, in the order of the walk (a directory is
 * made before what goes in it). */
enum fi_kind {
	FI_PUT = 'P',   /* a file or symlink from new/<i> */
	FI_MKDIR = 'D', /* a directory */
	FI_DEL = 'R'    /* DIR's entry goes */
};

struct fi_act {
	char kind;
	int had_old; /* DIR had an entry there: it goes to old/<i> */
	char *path;
};

/* A directory whose metadata step 3 sets from the version's, and what
 * DIR had before (had_old), which a roll-back puts back. */
struct fi_dir {
	char *path; /* "." for DIR */
	int has_want, had_old;
	struct stat want;
	struct stat old;
};

/* A file of DIR that the update removes or replaces (it goes aside into
 * old/), which a file of the version with the same content can be instead
 * of a copy (used: it has been). */
struct fi_gone {
	char *path;
	struct stat st;
	int used;
};

struct fi {
	const char *dir, *src;
	char *work, *mark;
	int root; /* owners are given: running as root */
	int srcfd, dirfd, workfd;
	char **changed; /* UNDERSTUDY_CHANGED, sorted */
	size_t nchanged;
	struct fi_act *act;
	size_t nact, capact;
	struct fi_dir *dirs;
	size_t ndirs, capdirs;
	struct fi_gone *gone; /* sorted by size and mtime */
	size_t ngone, capgone;
	long long files, removed, moved;
	/* the writeback of what is copied, started as it is (the syncfs
	 * after the copies then finds less to write) */
	struct fs_flusher *fl;
};

static void say_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char *
join(const char *rel, const char *name)
{
	return rel[0] == '\0' ? xstrdup(name) : xasprintf("%s/%s", rel, name);
}

/* A path for DIR's *at() calls: "." for DIR itself. */
static const char *
at_path(const char *rel)
{
	return rel[0] == '\0' ? "." : rel;
}

static int
by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* UNDERSTUDY_CHANGED: NUL-ended paths.  A missing list is an error when
 * asked for (the importer wrote it); a bad path in it is one the walk
 * never meets, so it is dropped. */
static int
changed_load(struct fi *fi, const char *path)
{
	char *buf, *p, *end;
	size_t len, cap = 0;

	if (fs_read_file(path, FI_JOURNAL_MAX, &buf, &len) != 0) {
		say_err("UNDERSTUDY_CHANGED: %s: %s", path, strerror(errno));
		return -1;
	}
	for (p = buf, end = buf + len; p < end; p += strlen(p) + 1) {
		if (memchr(p, '\0', (size_t)(end - p)) == NULL)
			break; /* the last path lacks its NUL: not ours */
		if (path_check(p) != NULL)
			continue;
		if (fi->nchanged == cap) {
			cap = cap ? cap * 2 : 64;
			fi->changed = xreallocarray(fi->changed, cap,
			    sizeof *fi->changed);
		}
		fi->changed[fi->nchanged++] = xstrdup(p);
	}
	free(buf);
	if (fi->nchanged > 0)
		qsort(fi->changed, fi->nchanged, sizeof *fi->changed, by_str);
	return 0;
}

static int
is_changed(const struct fi *fi, const char *path)
{
	return fi->nchanged > 0 &&
	    bsearch(&path, fi->changed, fi->nchanged, sizeof *fi->changed,
		by_str) != NULL;
}

static size_t
act_add(struct fi *fi, char kind, int had_old, const char *path)
{
	if (fi->nact == fi->capact) {
		fi->capact = fi->capact ? fi->capact * 2 : 64;
		fi->act = xreallocarray(fi->act, fi->capact, sizeof *fi->act);
	}
	fi->act[fi->nact].kind = kind;
	fi->act[fi->nact].had_old = had_old;
	fi->act[fi->nact].path = xstrdup(path);
	return fi->nact++;
}

static void
dir_add(struct fi *fi, const char *path, const struct stat *want,
    const struct stat *old)
{
	struct fi_dir *d;

	if (fi->ndirs == fi->capdirs) {
		fi->capdirs = fi->capdirs ? fi->capdirs * 2 : 64;
		fi->dirs = xreallocarray(fi->dirs, fi->capdirs,
		    sizeof *fi->dirs);
	}
	d = &fi->dirs[fi->ndirs++];
	memset(d, 0, sizeof *d);
	d->path = xstrdup(at_path(path));
	if (want != NULL) {
		d->has_want = 1;
		d->want = *want;
	}
	if (old != NULL) {
		d->had_old = 1;
		d->old = *old;
	}
}

/* One directory's entries, sorted by name, each with its lstat. */
struct fi_ent {
	char *name;
	struct stat st;
};

static int
ents_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fi_ent *)a)->name,
	    ((const struct fi_ent *)b)->name);
}

/* where names the directory in messages; NULL: none. */
static int
ents_read(int fd, const char *where, struct fi_ent **out, size_t *nout)
{
	struct fi_ent *e = NULL;
	struct dirent *de;
	size_t n = 0, cap = 0;
	int dup_fd;
	DIR *d;

	if ((dup_fd = dup(fd)) < 0 || (d = fdopendir(dup_fd)) == NULL) {
		if (where != NULL)
			say_err("%s: %s", where, strerror(errno));
		if (dup_fd >= 0)
			close(dup_fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			e = xreallocarray(e, cap, sizeof *e);
		}
		if (fstatat(fd, de->d_name, &e[n].st, AT_SYMLINK_NOFOLLOW) !=
		    0) {
			if (where != NULL)
				say_err("%s/%s: %s", where, de->d_name,
				    strerror(errno));
			goto fail;
		}
		e[n++].name = xstrdup(de->d_name);
	}
	if (errno != 0) {
		if (where != NULL)
			say_err("%s: %s", where, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (n > 0)
		qsort(e, n, sizeof *e, ents_cmp);
	*out = e;
	*nout = n;
	return 0;
fail:
	closedir(d);
	while (n > 0)
		free(e[--n].name);
	free(e);
	return -1;
}

static void
ents_free(struct fi_ent *e, size_t n)
{
	while (n > 0)
		free(e[--n].name);
	free(e);
}

static int
same_time(const struct stat *a, const struct stat *b)
{
	return a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int
same_meta(const struct fi *fi, const struct stat *a, const struct stat *b)
{
	return (a->st_mode & 07777) == (b->st_mode & 07777) &&
	    same_time(a, b) &&
	    (!fi->root || (a->st_uid == b->st_uid && a->st_gid == b->st_gid));
}

/* Whether a symlink of the version points where DIR's does. */
static int
same_target(int sfd, int dfd, const char *name)
{
	char a[PATH_MAX], b[PATH_MAX];
	ssize_t la = readlinkat(sfd, name, a, sizeof a);
	ssize_t lb = readlinkat(dfd, name, b, sizeof b);

	return la >= 0 && la == lb && memcmp(a, b, (size_t)la) == 0;
}

static int
supported(const struct stat *st)
{
	return S_ISREG(st->st_mode) || S_ISDIR(st->st_mode) ||
	    S_ISLNK(st->st_mode);
}

/* A directory of DIR that goes aside: moving it needs it writable (its
 * ".."), so a roll-back puts its mode back. */
static void
moved_dir(struct fi *fi, const char *path, const struct stat *st)
{
	if (S_ISDIR(st->st_mode) && (st->st_mode & 0700) != 0700)
		dir_add(fi, path, NULL, st);
}

/* Whether DIR's entry d must be written over with the version's s. */
static int
differs(const struct fi *fi, int sfd, int dfd, const struct fi_ent *s,
    const struct fi_ent *d, const char *path)
{
	if ((d->st.st_mode & S_IFMT) != (s->st.st_mode & S_IFMT) ||
	    !same_meta(fi, &s->st, &d->st) || is_changed(fi, path))
		return 1;
	if (S_ISREG(s->st.st_mode))
		return s->st.st_size != d->st.st_size;
	return S_ISLNK(s->st.st_mode) && !same_target(sfd, dfd, s->name);
}

static int walk(struct fi *, int sfd, int dfd, const char *rel,
    const struct stat *want, const struct stat *have);

/* The version's entry s under rel, against DIR's entry d there (NULL when
 * DIR has none): what to do, and whether it touched rel. */
static int
walk_entry(struct fi *fi, int sfd, int dfd, const char *rel,
    const struct fi_ent *s, const struct fi_ent *d, int *touched)
{
	char *path = join(rel, s->name);
	int rc = 0, csfd, cdfd = -1;

	if (!supported(&s->st)) {
		say_err("%s/%s: not a file, directory or symlink", fi->src,
		    path);
		free(path);
		return -1;
	}
	if (S_ISREG(s->st.st_mode))
		fi->files++;
	if (S_ISDIR(s->st.st_mode)) {
		if (d != NULL && !S_ISDIR(d->st.st_mode)) {
			act_add(fi, FI_MKDIR, 1, path);
			*touched = 1;
			d = NULL;
		} else if (d == NULL) {
			act_add(fi, FI_MKDIR, 0, path);
			*touched = 1;
		}
		csfd = openat(sfd, s->name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (csfd >= 0 && d != NULL)
			cdfd = openat(dfd, s->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (csfd < 0 || (d != NULL && cdfd < 0)) {
			say_err("%s/%s: %s", csfd < 0 ? fi->src : fi->dir, path,
			    strerror(errno));
			rc = -1;
		} else
			rc = walk(fi, csfd, cdfd, path, &s->st,
			    d != NULL ? &d->st : NULL);
		if (csfd >= 0)
			close(csfd);
		if (cdfd >= 0)
			close(cdfd);
	} else if (d == NULL || differs(fi, sfd, dfd, s, d, path)) {
		if (d != NULL)
			moved_dir(fi, path, &d->st);
		act_add(fi, FI_PUT, d != NULL, path);
		*touched = 1;
	}
	free(path);
	return rc;
}

/* Compare the version's directory rel (sfd) with DIR's (dfd, -1 when DIR
 * has none there).  Directories are noted after their entries. */
static int
walk(struct fi *fi, int sfd, int dfd, const char *rel, const struct stat *want,
    const struct stat *have)
{
	struct fi_ent *s = NULL, *d = NULL;
	size_t ns = 0, nd = 0, i = 0, j = 0;
	int rc = 0, c, touched = 0;
	char *where = xasprintf("%s/%s", fi->src, rel);

	if (ents_read(sfd, where, &s, &ns) != 0)
		rc = -1;
	free(where);
	where = xasprintf("%s/%s", fi->dir, rel);
	if (rc == 0 && dfd >= 0 && ents_read(dfd, where, &d, &nd) != 0)
		rc = -1;
	free(where);
	while (rc == 0 && (i < ns || j < nd)) {
		c = i == ns ? 1 : j == nd ? -1 : strcmp(s[i].name, d[j].name);
		if (c > 0) {
			/* DIR's own: it goes. */
			char *path = join(rel, d[j].name);
			moved_dir(fi, path, &d[j].st);
			act_add(fi, FI_DEL, 1, path);
			free(path);
			fi->removed++;
			touched = 1;
			j++;
			continue;
		}
		rc = walk_entry(fi, sfd, dfd, rel, &s[i], c == 0 ? &d[j] : NULL,
		    &touched);
		i++;
		if (c == 0)
			j++;
	}
	if (rc == 0 && (have == NULL || touched || !same_meta(fi, want, have)))
		dir_add(fi, rel, want, have);
	ents_free(s, ns);
	ents_free(d, nd);
	return rc;
}

static void
gone_add(struct fi *fi, const char *path, const struct stat *st)
{
	/* A file with one path (another would stay in DIR, sharing its
	 * writes), and ours when not root, as a copy would be. */
	if (!S_ISREG(st->st_mode) || st->st_nlink != 1 || st->st_size == 0 ||
	    (!fi->root && st->st_uid != geteuid()))
		return;
	if (fi->ngone == fi->capgone) {
		fi->capgone = fi->capgone ? fi->capgone * 2 : 64;
		fi->gone = xreallocarray(fi->gone, fi->capgone,
		    sizeof *fi->gone);
	}
	fi->gone[fi->ngone].path = xstrdup(path);
	fi->gone[fi->ngone].st = *st;
	fi->gone[fi->ngone++].used = 0;
}

/* The files of DIR's directory path, which goes, at any depth.  What
 * cannot be read is left out: it is only not moved. */
static void
gone_dir(struct fi *fi, const char *path)
{
	struct fi_ent *e;
	size_t n, i;
	char *child;
	int fd;

	if ((fd = fs_open_beneath(fi->dirfd, path, O_RDONLY | O_DIRECTORY, 0)) <
	    0)
		return;
	if (ents_read(fd, NULL, &e, &n) != 0) {
		close(fd);
		return;
	}
	close(fd);
	for (i = 0; i < n; i++) {
		child = join(path, e[i].name);
		if (S_ISDIR(e[i].st.st_mode))
			gone_dir(fi, child);
		else
			gone_add(fi, child, &e[i].st);
		free(child);
	}
	ents_free(e, n);
}

static int
gone_cmp(const void *a, const void *b)
{
	return fs_size_time_cmp(&((const struct fi_gone *)a)->st,
	    &((const struct fi_gone *)b)->st);
}

/* After the walk: the files of DIR that the plan moves aside. */
static void
gone_collect(struct fi *fi)
{
	struct stat st;
	size_t i;

	for (i = 0; i < fi->nact; i++) {
		if (!fi->act[i].had_old ||
		    fstatat(fi->dirfd, fi->act[i].path, &st,
			AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			gone_dir(fi, fi->act[i].path);
		else
			gone_add(fi, fi->act[i].path, &st);
	}
	if (fi->ngone > 1)
		qsort(fi->gone, fi->ngone, sizeof *fi->gone, gone_cmp);
}

/* Step 2 for the version's file rel, when DIR has its content in a file
 * that goes: that file linked as name in the undo area.  1 if it was. */
static int
move_entry(struct fi *fi, const char *rel, const char *name)
{
	struct fi_gone *g, *end = fi->gone + fi->ngone;
	struct stat st, ost, lst;
	int in, old, same;

	if (fi->ngone == 0 ||
	    fstatat(fi->srcfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	for (g = fi->gone +
		 fs_size_time_first(fi->gone, fi->ngone, sizeof *fi->gone,
		     offsetof(struct fi_gone, st), &st);
	     g < end && fs_size_time_cmp(&g->st, &st) == 0; g++) {
		if (g->used || !same_meta(fi, &st, &g->st))
			continue;
		if ((old = fs_open_beneath(fi->dirfd, g->path, O_RDONLY, 0)) <
		    0)
			continue;
		in = openat(fi->srcfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		same = in >= 0 && fstat(old, &ost) == 0 &&
		    ost.st_ino == g->st.st_ino && ost.st_dev == g->st.st_dev &&
		    fs_same_bytes(in, old) == 1;
		if (in >= 0)
			close(in);
		close(old);
		if (!same)
			continue;
		if (linkat(fi->dirfd, g->path, fi->workfd, name, 0) != 0)
			return 0; /* too many links, a protected file: a copy */
		/* The file compared, and no other path has it. */
		if (fstatat(fi->workfd, name, &lst, AT_SYMLINK_NOFOLLOW) != 0 ||
		    lst.st_ino != ost.st_ino || lst.st_dev != ost.st_dev ||
		    lst.st_nlink != 2) {
			unlinkat(fi->workfd, name, 0);
			return 0;
		}
		g->used = 1;
		fi->moved++;
		return 1;
	}
	return 0;
}

/* The version's file or symlink rel, as name in dfd, with its metadata. */
static int
copy_entry(struct fi *fi, const char *rel, int dfd, const char *name)
{
	struct stat st;
	int in, out, rc;

	if (fstatat(fi->srcfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	if (S_ISLNK(st.st_mode))
		return fs_copy_symlink_at(fi->srcfd, rel, dfd, name, &st,
		    fi->root);
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if ((in = openat(fi->srcfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) <
	    0)
		return -1;
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	rc = fault_enospc("files-import-copy") ? (errno = ENOSPC, -1) :
						 fs_copy_fd(in, out, fi->fl);
	close(in);
	if (close(out) != 0)
		rc = -1;
	if (rc == 0)
		rc = fs_set_meta_at(dfd, name, &st, fi->root);
	return rc;
}

/* Step 2: the files to write, into new/. */
static int
stage(struct fi *fi)
{
	char name[32];
	size_t i;

	for (i = 0; i < fi->nact; i++) {
		if (fi->act[i].kind != FI_PUT)
			continue;
		snprintf(name, sizeof name, "new/%zu", i);
		if (move_entry(fi, fi->act[i].path, name))
			continue;
		if (copy_entry(fi, fi->act[i].path, fi->workfd, name) != 0) {
			say_err("%s/%s: %s", fi->dir, fi->act[i].path,
			    fs_no_room(errno) ?
				"no room to copy it (DIR is unchanged)" :
				strerror(errno));
			return -1;
		}
	}
	if (syncfs(fi->workfd) != 0) {
		say_err("%s: syncfs: %s", fi->work, strerror(errno));
		return -1;
	}
	return 0;
}

static void
journal_meta(struct evbuffer *b, const char *path, const struct stat *st)
{
	evbuffer_add_printf(b, "M %o %u %u %lld %ld ",
	    (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid,
	    (unsigned)st->st_gid, (long long)st->st_mtim.tv_sec,
	    (long)st->st_mtim.tv_nsec);
	manifest_encode(b, path);
	evbuffer_add(b, "\n", 1);
}

/* Step 3's plan, durable before DIR changes: the target version, each
 * action, and the metadata of DIR's directories it changes. */
static int
journal_write(struct fi *fi, const char *version)
{
	struct evbuffer *b = evbuffer_new();
	size_t i;
	int rc;

	evbuffer_add_printf(b, "%s\nto %s\n", FI_JOURNAL_MAGIC, version);
	for (i = 0; i < fi->nact; i++) {
		evbuffer_add_printf(b, "%c %zu %d ", fi->act[i].kind, i,
		    fi->act[i].had_old);
		manifest_encode(b, fi->act[i].path);
		evbuffer_add(b, "\n", 1);
	}
	for (i = 0; i < fi->ndirs; i++)
		if (fi->dirs[i].had_old)
			journal_meta(b, fi->dirs[i].path, &fi->dirs[i].old);
	evbuffer_add_printf(b, "end\n");
	rc = fs_write_atomic_at(fi->workfd, "journal", evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	if (rc != 0)
		say_err("%s/journal: %s", fi->work, strerror(errno));
	return rc;
}

/* A directory of DIR that an action writes in or moves: writable by us
 * while step 3 runs (its mode is set, or put back, afterwards). */
static void
writable(const struct fi *fi, const char *path)
{
	struct stat st;

	if (fstatat(fi->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode) && (st.st_mode & 0700) != 0700)
		fchmodat(fi->dirfd, path, (st.st_mode & 07777) | 0700, 0);
}

static char *
parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash == NULL ? xstrdup(".") :
			       xstrndup(path, (size_t)(slash - path));
}

static int
apply_one(struct fi *fi, size_t i)
{
	const struct fi_act *a = &fi->act[i];
	char name[32], *parent = parent_of(a->path);

	fault_point("files-import-apply");
	writable(fi, parent);
	free(parent);
	if (fault_enospc("files-import-apply") && i + 1 == fi->nact) {
		errno = ENOSPC;
		return -1;
	}
	if (a->had_old) {
		writable(fi, a->path);
		snprintf(name, sizeof name, "old/%zu", i);
		if (renameat(fi->dirfd, a->path, fi->workfd, name) != 0)
			return -1;
	}
	if (a->kind == FI_PUT) {
		snprintf(name, sizeof name, "new/%zu", i);
		return renameat(fi->workfd, name, fi->dirfd, a->path);
	}
	if (a->kind == FI_MKDIR)
		return mkdirat(fi->dirfd, a->path, 0700);
	return 0;
}

/* Step 3: the actions, then the directories' metadata. */
static int
apply(struct fi *fi)
{
	size_t i;

	for (i = 0; i < fi->nact; i++)
		if (apply_one(fi, i) != 0) {
			say_err("%s/%s: %s", fi->dir, fi->act[i].path,
			    strerror(errno));
			return -1;
		}
	for (i = 0; i < fi->ndirs; i++)
		if (fi->dirs[i].has_want &&
		    fs_set_meta_at(fi->dirfd, fi->dirs[i].path,
			&fi->dirs[i].want, fi->root) != 0) {
			say_err("%s/%s: %s", fi->dir, fi->dirs[i].path,
			    strerror(errno));
			return -1;
		}
	return 0;
}

/* Roll back a journal's actions, last first: what an action put in DIR
 * goes, what it moved aside comes back; then the directories' metadata
 * as it was.  An action not done yet leaves its own traces: its new/<i>
 * still there, DIR's entry not in old/<i>. */
static int
rollback(struct fi *fi)
{
	char name[32];
	struct stat st;
	size_t i;
	int rc = 0, placed;

	for (i = fi->nact; i-- > 0;) {
		const struct fi_act *a = &fi->act[i];

		placed = 0;
		if (a->kind == FI_PUT) {
			snprintf(name, sizeof name, "new/%zu", i);
			placed = !fs_exists_at(fi->workfd, name);
		} else if (a->kind == FI_MKDIR)
			placed = fstatat(fi->dirfd, a->path, &st,
				     AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode);
		if (placed) {
			writable(fi, a->path);
			if (fs_rm_rf_at(fi->dirfd, a->path) != 0) {
				say_err("roll-back: %s/%s: %s", fi->dir,
				    a->path, strerror(errno));
				rc = -1;
				continue;
			}
		}
		snprintf(name, sizeof name, "old/%zu", i);
		if (a->had_old && fs_exists_at(fi->workfd, name) &&
		    renameat(fi->workfd, name, fi->dirfd, a->path) != 0) {
			say_err("roll-back: %s/%s: %s", fi->dir, a->path,
			    strerror(errno));
			rc = -1;
		}
	}
	for (i = fi->ndirs; i-- > 0;)
		if (fi->dirs[i].had_old &&
		    fs_set_meta_at(fi->dirfd, fi->dirs[i].path,
			&fi->dirs[i].old, fi->root) != 0 &&
		    errno != ENOENT) {
			say_err("roll-back: %s/%s: %s", fi->dir,
			    fi->dirs[i].path, strerror(errno));
			rc = -1;
		}
	if (syncfs(fi->dirfd) != 0)
		rc = -1;
	return rc;
}

/* The next space-separated field of a journal line. */
static char *
field(char **p)
{
	char *f = *p, *sp;

	if (f == NULL)
		return NULL;
	sp = strchr(f, ' ');
	if (sp != NULL) {
		*sp = '\0';
		*p = sp + 1;
	} else
		*p = NULL;
	return f;
}

static int
parse_num(const char *s, int base, long long max, long long *out)
{
	char *end;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoll(s, &end, base);
	return errno != 0 || *end != '\0' || *out > max ? -1 : 0;
}

static int
journal_line(struct fi *fi, char *line, char **to)
{
	char *p = line, *kind = field(&p), *path;
	long long v[5];
	struct stat st;

	if (strcmp(kind, "to") == 0 && p != NULL && *to == NULL) {
		*to = xstrdup(p);
		return 0;
	}
	if ((strcmp(kind, "P") == 0 || strcmp(kind, "D") == 0 ||
		strcmp(kind, "R") == 0) &&
	    parse_num(field(&p), 10, LLONG_MAX, &v[0]) == 0 &&
	    (size_t)v[0] == fi->nact &&
	    parse_num(field(&p), 10, 1, &v[1]) == 0 && p != NULL) {
		if ((path = manifest_decode(p, strlen(p))) == NULL ||
		    path_check(path) != NULL) {
			free(path);
			return -1;
		}
		act_add(fi, kind[0], (int)v[1], path);
		free(path);
		return 0;
	}
	if (strcmp(kind, "M") == 0 &&
	    parse_num(field(&p), 8, 07777, &v[0]) == 0 &&
	    parse_num(field(&p), 10, UINT32_MAX, &v[1]) == 0 &&
	    parse_num(field(&p), 10, UINT32_MAX, &v[2]) == 0 &&
	    parse_num(field(&p), 10, LLONG_MAX, &v[3]) == 0 &&
	    parse_num(field(&p), 10, 999999999, &v[4]) == 0 && p != NULL) {
		if ((path = manifest_decode(p, strlen(p))) == NULL ||
		    (strcmp(path, ".") != 0 && path_check(path) != NULL)) {
			free(path);
			return -1;
		}
		memset(&st, 0, sizeof st);
		st.st_mode = S_IFDIR | (mode_t)v[0];
		st.st_uid = (uid_t)v[1];
		st.st_gid = (gid_t)v[2];
		st.st_mtim.tv_sec = (time_t)v[3];
		st.st_mtim.tv_nsec = (long)v[4];
		dir_add(fi, path, NULL, &st);
		free(path);
		return 0;
	}
	return -1;
}

/* The journal of an update cut short: its actions and directories into
 * fi; *to, the version it was making.  1 when there is none. */
static int
journal_read(struct fi *fi, char **to)
{
	char *buf, *p, *nl;
	size_t len, lineno = 0;
	int rc = 0;

	*to = NULL;
	if (fs_read_file_at(fi->workfd, "journal", FI_JOURNAL_MAX, &buf,
		&len) != 0)
		return errno == ENOENT ? 1 : -1;
	for (p = buf; rc == 0 && p < buf + len; p = nl + 1) {
		if ((nl = memchr(p, '\n', len - (size_t)(p - buf))) == NULL ||
		    memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			rc = -1;
			break;
		}
		*nl = '\0';
		if (lineno++ == 0)
			rc = strcmp(p, FI_JOURNAL_MAGIC) == 0 ? 0 : -1;
		else if (strcmp(p, "end") == 0)
			break;
		else
			rc = journal_line(fi, p, to);
	}
	if (rc == 0 && (p >= buf + len || *to == NULL))
		rc = -1; /* no "end": fs_write_atomic makes that impossible */
	free(buf);
	if (rc != 0) {
		errno = EINVAL;
		free(*to);
		*to = NULL;
	}
	return rc;
}

static char *
mark_read(const struct fi *fi)
{
	char *buf, *nl;
	size_t len;

	if (fs_read_file(fi->mark, 4096, &buf, &len) != 0)
		return NULL;
	buf[len] = '\0';
	if ((nl = strchr(buf, '\n')) != NULL)
		*nl = '\0';
	return buf;
}

static int
mark_write(const struct fi *fi, const char *version)
{
	char *line = xasprintf("%s\n", version);
	int rc = fs_write_atomic(fi->mark, line, strlen(line));

	if (rc != 0)
		say_err("%s: %s", fi->mark, strerror(errno));
	free(line);
	return rc;
}

static void
plan_free(struct fi *fi)
{
	size_t i;

	for (i = 0; i < fi->nact; i++)
		free(fi->act[i].path);
	for (i = 0; i < fi->ndirs; i++)
		free(fi->dirs[i].path);
	free(fi->act);
	free(fi->dirs);
	fi->act = NULL;
	fi->dirs = NULL;
	fi->nact = fi->capact = fi->ndirs = fi->capdirs = 0;
}

static void
fi_free(struct fi *fi)
{
	size_t i;

	plan_free(fi);
	while (fi->nchanged > 0)
		free(fi->changed[--fi->nchanged]);
	free(fi->changed);
	if (fi->srcfd >= 0)
		close(fi->srcfd);
	if (fi->dirfd >= 0)
		close(fi->dirfd);
	for (i = 0; i < fi->ngone; i++)
		free(fi->gone[i].path);
	free(fi->gone);
	free((char *)fi->dir);
	free(fi->work);
	free(fi->mark);
}

static int
open_dir(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		say_err("%s: %s", path, strerror(errno));
	return *fd < 0 ? -1 : 0;
}

/* An undo area left by a run that did not end: roll DIR back to the
 * version it had, unless the mark says the update was committed. */
static int
recover(struct fi *fi)
{
	char *to = NULL, *mark;
	int rc;

	if (!fs_exists(fi->work))
		return 0;
	if (open_dir(fi->work, &fi->workfd) != 0)
		return -1;
	rc = journal_read(fi, &to);
	if (rc < 0) {
		say_err("%s/journal: %s; nothing rolled back, remove %s "
			"once DIR is checked",
		    fi->work, strerror(errno), fi->work);
		goto out;
	}
	mark = mark_read(fi);
	if (rc == 0 && (mark == NULL || strcmp(mark, to) != 0)) {
		if (fi->dirfd < 0 && open_dir(fi->dir, &fi->dirfd) != 0)
			rc = -1;
		else if ((rc = rollback(fi)) == 0)
			printf("%s: %s: rolled back an update to version %s "
			       "that was cut short\n",
			    prog, fi->dir, to);
	}
	free(mark);
	/* The undo area goes only once DIR is whole again (or was). */
	if (rc >= 0 && fs_rm_rf(fi->work) != 0) {
		say_err("%s: %s", fi->work, strerror(errno));
		rc = -1;
	} else if (rc > 0)
		rc = 0;
out:
	free(to);
	plan_free(fi);
	close(fi->workfd);
	fi->workfd = -1;
	return rc;
}

/* The update in place (steps 1-4). */
static int
update(struct fi *fi, const char *version)
{
	struct stat want, have;
	char *new, *old;
	int rc = -1;

	if (fstat(fi->srcfd, &want) != 0 || fstat(fi->dirfd, &have) != 0) {
		say_err("%s: %s", fi->dir, strerror(errno));
		return -1;
	}
	if (walk(fi, fi->srcfd, fi->dirfd, "", &want, &have) != 0)
		return -1;
	gone_collect(fi);
	if (mkdir(fi->work, 0700) != 0 ||
	    open_dir(fi->work, &fi->workfd) != 0) {
		say_err("%s: %s", fi->work, strerror(errno));
		return -1;
	}
	new = xasprintf("%s/new", fi->work);
	old = xasprintf("%s/old", fi->work);
	if (mkdir(new, 0700) != 0 || mkdir(old, 0700) != 0 ||
	    fstat(fi->workfd, &want) != 0)
		say_err("%s: %s", fi->work, strerror(errno));
	else if (want.st_dev != have.st_dev)
		say_err("%s is on another filesystem than %s (a mount point?): "
			"it is where an update is made; mount DIR's parent "
			"instead",
		    fi->work, fi->dir);
	else if (stage(fi) == 0 && journal_write(fi, version) == 0) {
		if (apply(fi) != 0) {
			if (rollback(fi) == 0)
				say_err("%s: rolled back to the previous "
					"version",
				    fi->dir);
			else {
				say_err("%s: the roll-back failed; the next "
					"run tries again",
				    fi->dir);
				goto out;
			}
		} else if (syncfs(fi->dirfd) != 0)
			say_err("%s: syncfs: %s", fi->dir, strerror(errno));
		else if (mark_write(fi, version) == 0)
			rc = 0;
		else
			(void)rollback(fi);
	}
	if (fs_rm_rf(fi->work) != 0)
		say_err("%s: %s", fi->work, strerror(errno));
out:
	free(new);
	free(old);
	return rc;
}

/* The whole version into dfd's entry name, made (a directory, file or
 * symlink), metadata last. */
static int
copy_tree(struct fi *fi, const char *rel, int dfd, const char *name)
{
	struct fi_ent *e;
	struct stat st;
	size_t n, i;
	int sfd, cfd, rc = 0;
	char *path;

	if (fstatat(fi->srcfd, at_path(rel), &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		if (S_ISREG(st.st_mode))
			fi->files++;
		else if (!S_ISLNK(st.st_mode)) {
			say_err("%s/%s: not a file, directory or symlink",
			    fi->src, rel);
			return -1;
		}
		if (copy_entry(fi, rel, dfd, name) != 0) {
			say_err("%s/%s: %s", fi->src, rel, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (mkdirat(dfd, name, 0700) != 0 ||
	    (cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		say_err("%s: %s", name, strerror(errno));
		return -1;
	}
	sfd = openat(fi->srcfd, at_path(rel),
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || ents_read(sfd, fi->src, &e, &n) != 0) {
		if (sfd >= 0)
			close(sfd);
		close(cfd);
		return -1;
	}
	close(sfd);
	for (i = 0; rc == 0 && i < n; i++) {
		path = join(rel, e[i].name);
		rc = copy_tree(fi, path, cfd, e[i].name);
		free(path);
	}
	ents_free(e, n);
	close(cfd);
	if (rc == 0 && fs_set_meta_at(dfd, name, &st, fi->root) != 0) {
		say_err("%s: %s", name, strerror(errno));
		rc = -1;
	}
	return rc;
}

static int
sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0 || (rc = syncfs(fd)) != 0) {
		say_err("%s: syncfs: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return rc;
}

static void
utc_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

/* The whole tree, made beside DIR and renamed into place.  *kept: where a
 * DIR without the mark went. */
static int
replace(struct fi *fi, const char *version, char **kept)
{
	char *new = xasprintf("%s.understudy-new", fi->dir);
	char *old = xasprintf("%s.understudy-old", fi->dir), stamp[32];
	int had = fs_exists(fi->dir), rc = -1;

	*kept = NULL;
	if (copy_tree(fi, "", AT_FDCWD, new) != 0 || sync_path(new) != 0)
		goto out;
	if (had && !fs_exists(fi->mark)) {
		utc_now(stamp, sizeof stamp);
		free(old);
		old = xasprintf("%s.understudy-kept-%s", fi->dir, stamp);
		*kept = xstrdup(old);
	}
	if (unlink(fi->mark) != 0 && errno != ENOENT) {
		say_err("%s: %s", fi->mark, strerror(errno));
		goto out;
	}
	if (had &&
	    renameat2(AT_FDCWD, fi->dir, AT_FDCWD, old, RENAME_NOREPLACE) !=
		0) {
		say_err("%s: %s", old, strerror(errno));
		goto out;
	}
	if (rename(new, fi->dir) != 0) {
		say_err("%s: %s", fi->dir, strerror(errno));
		goto out;
	}
	if (mark_write(fi, version) != 0)
		goto out;
	rc = 0;
	if (had && *kept == NULL && fs_rm_rf(old) != 0)
		say_err("%s: %s", old, strerror(errno));
out:
	if (rc != 0)
		fs_rm_rf(new);
	free(new);
	free(old);
	return rc;
}

/* The previous run's leftovers of a whole copy (the shell hook's too). */
static void
clean_leftovers(const struct fi *fi)
{
	static const char *const kinds[] = { "new", "old", "rules" };
	char *p;
	size_t i;

	for (i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		p = xasprintf("%s.understudy-%s", fi->dir, kinds[i]);
		fs_rm_rf(p);
		free(p);
	}
}

static size_t
count_puts(const struct fi *fi)
{
	size_t i, n = 0;

	for (i = 0; i < fi->nact; i++)
		n += fi->act[i].kind == FI_PUT;
	return n;
}

static int
import_main(struct fi *fi)
{
	const char *version = getenv("UNDERSTUDY_VERSION");
	const char *prev = getenv("UNDERSTUDY_PREVIOUS_VERSION");
	const char *changed = getenv("UNDERSTUDY_CHANGED");
	char *mark, *kept = NULL, *how;
	struct stat st;
	int rc;

	if ((fi->src = getenv("UNDERSTUDY_BACKUP_DIR")) == NULL ||
	    fi->src[0] == '\0') {
		say_err(
		    "UNDERSTUDY_BACKUP_DIR: not run by understudy-importer");
		return 1;
	}
	if (version == NULL || version[0] == '\0' || strchr(version, '\n'))
		version = "?";
	if (stat(fi->dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		say_err("%s exists and is not a directory", fi->dir);
		return 1;
	}
	if (open_dir(fi->src, &fi->srcfd) != 0 || recover(fi) != 0)
		return 1;
	clean_leftovers(fi);
	mark = mark_read(fi);
	fi->fl = fs_flusher_new();
	if (fs_exists(fi->dir) && mark != NULL && prev != NULL &&
	    strcmp(mark, prev) == 0 && changed != NULL && changed[0] != '\0') {
		if (changed_load(fi, changed) != 0 ||
		    open_dir(fi->dir, &fi->dirfd) != 0)
			rc = -1;
		else
			rc = update(fi, version);
		if (fi->moved > 0)
			how = xasprintf("updated from version %s: %zu "
					"written (%lld of them moved within "
					"DIR), %lld removed",
			    prev, count_puts(fi), fi->moved, fi->removed);
		else
			how = xasprintf("updated from version %s: %zu written, "
					"%lld removed",
			    prev, count_puts(fi), fi->removed);
	} else {
		rc = replace(fi, version, &kept);
		how = xstrdup("copied");
	}
	free(mark);
	fs_flusher_free(fi->fl);
	fi->fl = NULL;
	if (rc == 0)
		printf("%s: %s is version %s (%lld files, %s)\n", prog, fi->dir,
		    version, fi->files, how);
	if (rc == 0 && kept != NULL)
		printf("%s: %s was not a copy made by this hook, or took "
		       "writes since (a former primary's?): kept it as %s; "
		       "remove it once you no longer need it\n",
		    prog, fi->dir, kept);
	free(how);
	free(kept);
	return rc == 0 ? 0 : 1;
}

static int
promote_main(struct fi *fi)
{
	const char *version = getenv("UNDERSTUDY_VERSION");
	struct stat st;

	if (stat(fi->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		say_err("%s: no such directory", fi->dir);
		return 1;
	}
	if (recover(fi) != 0)
		return 1;
	if (unlink(fi->mark) != 0 && errno != ENOENT) {
		say_err("%s: %s", fi->mark, strerror(errno));
		return 1;
	}
	printf("%s: %s takes writes (version %s); a later import keeps it "
	       "aside\n",
	    prog, fi->dir, version != NULL ? version : "?");
	return 0;
}

int
main(int argc, char *argv[])
{
	struct fi fi;
	char *dir, *cwd;
	size_t len;
	int rc;

	if (promote)
		prog = "files-promote";
	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: %s DIR\n", prog);
		return 2;
	}
	memset(&fi, 0, sizeof fi);
	fi.srcfd = fi.dirfd = fi.workfd = -1;
	len = strlen(argv[1]);
	while (len > 1 && argv[1][len - 1] == '/')
		len--;
	dir = xstrndup(argv[1], len);
	if (dir[0] != '/') {
		if ((cwd = getcwd(NULL, 0)) == NULL) {
			say_err("getcwd: %s", strerror(errno));
			return 1;
		}
		fi.dir = xasprintf("%s/%s", cwd, dir);
		free(cwd);
		free(dir);
	} else
		fi.dir = dir;
	fi.work = xasprintf("%s.understudy-undo", fi.dir);
	fi.mark = xasprintf("%s.understudy-version", fi.dir);
	fi.root = geteuid() == 0;
	rc = promote ? promote_main(&fi) : import_main(&fi);
	fflush(stdout);
	fi_free(&fi);
	return rc;
}
