/* Mending damaged files of an archive (store.h, store_repair()): each file
 * of the versions asked that does not rebuild to its SHA-256 is made
 * again from an intact copy of its content, found in another version (any
 * path with the same SHA-256 that does rebuild), or brought by fetch()
 * (the exporter, if it still serves it) and checked.  In the newest
 * version the file in current/ is replaced; in an older one the content
 * goes whole into its increment (<sha>.full.gz), which the reader takes
 * before any reverse delta.  Older versions rebuilt from a mended one are
 * mended with it.  What has no intact copy anywhere is said, not
 * guessed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "fsutil.h"
#include "hash.h"
#include "manifest.h"
#include "store.h"
#include "treemeta.h"
#include "xmalloc.h"

struct bad {
	size_t k; /* the version's index */
	char *path;
};

struct bads {
	const struct store *st;
	struct bad *v;
	size_t n;
};

static void
collect(void *arg, const char *version, const char *path, const char *why)
{
	struct bads *b = arg;
	size_t k;

	for (k = 0; k < b->st->n; k++)
		if (strcmp(b->st->ids[k], version) == 0)
			break;
	b->v = xreallocarray(b->v, b->n + 1, sizeof *b->v);
	b->v[b->n].k = k;
	b->v[b->n++].path = xstrdup(path);
}

static int
is_bad(const struct bads *b, size_t k, const char *path)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->v[i].k == k && strcmp(b->v[i].path, path) == 0)
			return 1;
	return 0;
}

/* Whether fd, from its start, holds e's content; fd at 0 after. */
static int
holds(int fd, const struct ment *e)
{
	char hex[HASH_HEX_SIZE];
	int64_t n;

	lseek(fd, 0, SEEK_SET);
	n = hash_fd(fd, hex);
	lseek(fd, 0, SEEK_SET);
	return n == e->size && strcmp(hex, e->sha) == 0;
}

static void
empty(int fd)
{
	if (ftruncate(fd, 0) != 0)
		return;
	lseek(fd, 0, SEEK_SET);
}

/* e's content into fd, from another version: 0 with *from set, or -1. */
static int
from_versions(struct store_reader *r, const struct bads *b, size_t k,
    const struct ment *e, int fd, char *from, size_t fromlen)
{
	const struct store *st = b->st;
	const struct manifest *m;
	const struct ment *q;
	char err[512];
	size_t j, i;

	for (j = st->n; j-- > 0;) {
		if ((m = store_reader_manifest(r, j, err, sizeof err)) == NULL)
			continue;
		for (i = 0; i < m->n; i++) {
			q = &m->e[i];
			if (q->type != MENT_FILE ||
			    strcmp(q->sha, e->sha) != 0 ||
			    (j == k && strcmp(q->path, e->path) == 0) ||
			    is_bad(b, j, q->path))
				continue;
			empty(fd);
			if (store_reader_copy(r, j, q, fd, err, sizeof err) ==
				0 &&
			    holds(fd, e)) {
				snprintf(from, fromlen, "from %s of version %s",
				    q->path, st->ids[j]);
				return 0;
			}
		}
	}
	return -1;
}

/* e's content into fd: from another version, else from fetch(). */
static int
find_content(struct store_reader *r, const struct bads *b, size_t k,
    const struct ment *e, int fd, store_fetch_fn fetch, void *farg, char *from,
    size_t fromlen)
{
	if (from_versions(r, b, k, e, fd, from, fromlen) == 0)
		return 0;
	if (fetch == NULL)
		return -1;
	empty(fd);
	if (fetch(farg, b->st->ids[k], e, fd, from, fromlen) != 0)
		return -1;
	return holds(fd, e) ? 0 : -1;
}

/* Copy fd (from 0) to out. */
static int
copy_fd(int fd, int out)
{
	static char buf[1 << 16];
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (fs_write_all(out, buf, (size_t)n) != 0)
			return -1;
	return n == 0 ? 0 : -1;
}

/* The newest version: current/<path> replaced, its mode and mtime as the
 * mirror keeps them. */
static int
mend_current(struct store *st, const struct ment *e, int fd, char *err,
    size_t errlen)
{
	struct timespec ts[2];
	const char *base;
	char *tmp = NULL;
	int cur, dfd = -1, out = -1, rc = -1;

	if ((cur = openat(st->dfd, "current",
		 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (dfd = fs_open_parent(cur, e->path, &base)) < 0)
		goto out;
	tmp = xasprintf(".%s.repair", base);
	if ((out = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		 0600)) < 0 ||
	    copy_fd(fd, out) != 0 ||
	    fchmod(out, treemeta_mode(e, TREEMETA_OWNER_ACCESS)) != 0)
		goto out;
	ts[0].tv_sec = e->mtime_sec;
	ts[0].tv_nsec = e->mtime_nsec;
	ts[1] = ts[0];
	if (futimens(out, ts) != 0 || fsync(out) != 0 ||
	    renameat(dfd, tmp, dfd, base) != 0 || fsync(dfd) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		snprintf(err, errlen, "current/%s: %s", e->path,
		    strerror(errno));
		if (dfd >= 0 && tmp != NULL)
			unlinkat(dfd, tmp, 0);
	}
	if (out >= 0)
		close(out);
	if (dfd >= 0)
		close(dfd);
	if (cur >= 0)
		close(cur);
	free(tmp);
	return rc;
}

/* An older version: the content whole in its increment. */
static int
mend_increment(struct store *st, size_t k, const struct ment *e, int fd,
    char *err, size_t errlen)
{
	static char buf[1 << 16];
	char *dir = store_vpath(st, st->ids[k], "increment");
	char *name = xasprintf("%s/%s.full.gz", dir, e->sha);
	char *tmp = xasprintf("%s.tmp", name);
	gzFile gz = NULL;
	ssize_t n;
	int out, rc = -1;

	if ((mkdirat(st->dfd, dir, 0700) != 0 && errno != EEXIST) ||
	    (out = openat(st->dfd, tmp,
		 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto out;
	if ((gz = gzdopen(out, "wb1")) == NULL) {
		close(out);
		goto out;
	}
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (gzwrite(gz, buf, (unsigned)n) != (int)n)
			break;
	if (n != 0 || gzflush(gz, Z_FINISH) != Z_OK || fsync(out) != 0) {
		gzclose(gz);
		goto out;
	}
	if (gzclose(gz) != Z_OK || renameat(st->dfd, tmp, st->dfd, name) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		snprintf(err, errlen, "%s/%s: %s", st->dir, name,
		    errno != 0 ? strerror(errno) : "cannot write");
		unlinkat(st->dfd, tmp, 0);
	}
	free(dir);
	free(name);
	free(tmp);
	return rc;
}

int
store_repair(struct store *st, size_t first, size_t last, store_fetch_fn fetch,
    void *farg, store_mend_fn note, void *narg)
{
	struct bads b = { st, NULL, 0 };
	struct store_reader *r = NULL;
	const struct manifest *m;
	const struct ment *e;
	char err[1024], from[512];
	int64_t files, bytes;
	size_t i;
	int fd = -1, left = 0, ok, unchecked;

	/* A file that could not be rebuilt for want of space is not
	 * damage to mend. */
	for (i = first; i <= last; i++)
		store_verify(st, i, collect, &b, &files, &bytes, &unchecked);
	if (b.n == 0)
		goto out;
	if ((r = store_reader_new(st, err, sizeof err)) == NULL ||
	    (fd = store_tmpfile(st)) < 0) {
		for (i = 0; i < b.n; i++)
			note(narg, st->ids[b.v[i].k], b.v[i].path,
			    r == NULL ? err : strerror(errno), 0);
		left = (int)b.n;
		goto out;
	}
	for (i = 0; i < b.n; i++) {
		ok = 0;
		m = store_reader_manifest(r, b.v[i].k, err, sizeof err);
		e = m != NULL ? manifest_find(m, b.v[i].path) : NULL;
		if (e == NULL || e->type != MENT_FILE)
			snprintf(err, sizeof err,
			    "not a file: only files are mended");
		else if (find_content(r, &b, b.v[i].k, e, fd, fetch, farg, from,
			     sizeof from) != 0)
			snprintf(err, sizeof err,
			    "no intact copy of its content (SHA-256 %.12s...) "
			    "in any version%s",
			    e->sha, fetch != NULL ? " or on the exporter" : "");
		else if (b.v[i].k + 1 == st->n)
			ok = mend_current(st, e, fd, err, sizeof err) == 0;
		else
			ok = mend_increment(st, b.v[i].k, e, fd, err,
				 sizeof err) == 0;
		note(narg, st->ids[b.v[i].k], b.v[i].path, ok ? from : err, ok);
		left += !ok;
		empty(fd);
	}
out:
	if (fd >= 0)
		close(fd);
	store_reader_free(r);
	for (i = 0; i < b.n; i++)
		free(b.v[i].path);
	free(b.v);
	return left;
}
