/* The reverse increments of the store (store.h): what turns a version's
 * newer neighbour back into it, file by file, compressed with gzip (.gz)
 * or, as the source's increment_compression says, zstd (.zst; the reader
 * takes either, by the file's first bytes).  A file that changed is kept
 * as a librsync delta from its new content to its old, named
 * <old sha>.from.<new sha>.rdelta.gz, made from the forward delta the pull
 * kept when there is one (common/rdelta.c: no pass of the rsync algorithm)
 * or computed anew; a file that went, or one either side of which is
 * empty, is kept whole, <old sha>.full.gz.  A file whose content the new
 * version has at another path (renamed, moved, two files swapped) needs
 * none: the reader takes that file (docs/archive-format.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "delta.h"
#include "fault.h"
#include "fsutil.h"
#include "log.h"
#include "manifest.h"
#include "store.h"
#include "sync.h"
#include "wirez.h"
#include "xmalloc.h"

/* zstd at rest: a better ratio than on the wire, still faster than gzip's
 * fastest level. */
#define INCREMENT_ZSTD_LEVEL 3

static char *
full_name(const char *incdir, const char *sha, int zstd)
{
	return xasprintf("%s/%s.full.%s", incdir, sha, zstd ? "zst" : "gz");
}

static char *
rdelta_name(const char *incdir, const char *sha, const char *next, int zstd)
{
	return xasprintf("%s/%s.from.%s.rdelta.%s", incdir, sha, next,
	    zstd ? "zst" : "gz");
}

/* An increment being written: through gzip, or through zstd into a
 * buffer written out as it fills. */
struct inc_out {
	gzFile gz;
	struct wirez_enc *z;
	struct evbuffer *zbuf;
	int fd;
};

static int
zbuf_flush(struct inc_out *o)
{
	while (evbuffer_get_length(o->zbuf) > 0)
		if (evbuffer_write(o->zbuf, o->fd) < 0)
			return -1;
	return 0;
}

static int
inc_sink(void *arg, const void *p, size_t n)
{
	struct inc_out *o = arg;

	if (fault_enospc("increment-write"))
		return -1;
	if (o->z != NULL) {
		if (wirez_enc_step(o->z, p, n, 0, o->zbuf) != 0) {
			errno = EIO;
			return -1;
		}
		/* written out a MiB at a time */
		return evbuffer_get_length(o->zbuf) < (1 << 20) ? 0 :
								  zbuf_flush(o);
	}
	while (n > 0) {
		unsigned int chunk = n > (1u << 30) ? 1u << 30 : (unsigned)n;
		if (gzwrite(o->gz, p, chunk) != (int)chunk) {
			errno = EIO;
			return -1;
		}
		p = (const char *)p + chunk;
		n -= chunk;
	}
	return 0;
}

struct inc_job {
	int newfd; /* the new version's file */
	int oldfd; /* the old version's file */
	int fwdfd; /* the delta that pulled it, or -1 */
	int64_t old_size, new_size;
};

/* Create name (relative to the store), let fill() write through gzip or
 * zstd (the caller makes it durable).  Nothing when it, or its other
 * form, is there already (a commit done again after a crash). */
static int
inc_create(struct store *st, const char *name, const char *other,
    int (*fill)(struct inc_job *, struct inc_out *, char *, size_t),
    struct inc_job *j, char *err, size_t errlen)
{
	struct inc_out o = { .fd = -1 };
	int fd, fd2 = -1, rc;

	if (fs_exists_at(st->dfd, other))
		return 0;
	fd = openat(st->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "%s/%s: %s", st->dir, name,
		    strerror(errno));
		return -1;
	}
	o.fd = fd;
	if (st->zstd_increments) {
		o.z = wirez_enc_new(INCREMENT_ZSTD_LEVEL);
		o.zbuf = evbuffer_new();
	} else if ((fd2 = dup(fd)) >= 0)
		o.gz = gzdopen(fd2, "wb1");
	if (o.z == NULL && o.gz == NULL) {
		snprintf(err, errlen, "%s/%s: cannot start compression",
		    st->dir, name);
		if (fd2 >= 0)
			close(fd2);
		close(fd);
		unlinkat(st->dfd, name, 0);
		return -1;
	}
	rc = fill(j, &o, err, errlen);
	if (o.z != NULL) {
		if (rc == 0 &&
		    (wirez_enc_step(o.z, NULL, 0, 1, o.zbuf) != 0 ||
			zbuf_flush(&o) != 0)) {
			snprintf(err, errlen, "%s/%s: %s", st->dir, name,
			    strerror(errno));
			rc = -1;
		}
		wirez_enc_free(o.z);
		evbuffer_free(o.zbuf);
	} else if (gzclose(o.gz) != Z_OK && rc == 0) {
		snprintf(err, errlen, "%s/%s: compression failed (disk full?)",
		    st->dir, name);
		rc = -1;
	}
	close(fd);
	if (rc != 0)
		unlinkat(st->dfd, name, 0);
	return rc;
}

static int
fill_full(struct inc_job *j, struct inc_out *o, char *err, size_t errlen)
{
	char buf[1 << 16];
	ssize_t n;

	while ((n = read(j->oldfd, buf, sizeof buf)) > 0)
		if (inc_sink(o, buf, (size_t)n) != 0) {
			snprintf(err, errlen, "compressing: %s",
			    strerror(errno));
			return -1;
		}
	if (n < 0) {
		snprintf(err, errlen, "reading: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
fill_delta(struct inc_job *j, struct inc_out *o, char *err, size_t errlen)
{
	struct evbuffer *sig = evbuffer_new();
	int rc;

	rc = delta_signature(j->newfd, 0, delta_sink_evbuffer, sig, err,
	    errlen);
	if (rc == 0)
		rc = delta_compute(evbuffer_pullup(sig, -1),
		    evbuffer_get_length(sig), j->oldfd, inc_sink, o, err,
		    errlen);
	evbuffer_free(sig);
	return rc;
}

/* From the forward delta the pull kept: no pass of the rsync algorithm. */
static int
fill_reverse(struct inc_job *j, struct inc_out *o, char *err, size_t errlen)
{
	return delta_reverse(j->fwdfd, j->oldfd, j->old_size, j->new_size,
	    inc_sink, o, err, errlen);
}

/* The increment of one file of the old version: e, which the new version
 * has as ne (or not at all). */
static int
build_one(struct store *st, const char *incdir, const struct ment *e,
    const struct ment *ne, int oldfd, int newfd, char *err, size_t errlen)
{
	struct inc_job j = { .newfd = -1, .fwdfd = -1 };
	char *name, *other, *fwd, *deltas;
	int z = st->zstd_increments;
	int rc = 0;

	if ((j.oldfd = fs_open_beneath(oldfd, e->path, O_RDONLY, 0)) < 0) {
		snprintf(err, errlen, "current/%s: %s", e->path,
		    strerror(errno));
		return -1;
	}
	if (ne != NULL && ne->type == MENT_FILE && ne->size > 0 &&
	    e->size > 0 &&
	    (j.newfd = fs_open_beneath(newfd, ne->path, O_RDONLY, 0)) >= 0) {
		name = rdelta_name(incdir, e->sha, ne->sha, z);
		other = rdelta_name(incdir, e->sha, ne->sha, !z);
		deltas = store_path(st, STORE_DELTAS);
		fwd = sync_kept_delta(deltas, e->sha, ne->sha);
		j.fwdfd = open(fwd, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		free(fwd);
		free(deltas);
		j.old_size = e->size;
		j.new_size = ne->size;
		if (j.fwdfd >= 0)
			rc = inc_create(st, name, other, fill_reverse, &j, err,
			    errlen);
		if (rc != 0) {
			log_warnx("reverse delta of %s from the pull's delta: "
				  "%s; computing it anew",
			    e->path, err);
			lseek(j.oldfd, 0, SEEK_SET);
		}
		if (rc != 0 || j.fwdfd < 0)
			rc = inc_create(st, name, other, fill_delta, &j, err,
			    errlen);
	} else {
		name = full_name(incdir, e->sha, z);
		other = full_name(incdir, e->sha, !z);
		rc = inc_create(st, name, other, fill_full, &j, err, errlen);
	}
	free(name);
	free(other);
	close(j.oldfd);
	if (j.newfd >= 0)
		close(j.newfd);
	if (j.fwdfd >= 0)
		close(j.fwdfd);
	return rc;
}

int
increment_build(struct store *st, const struct manifest *old_m,
    const struct manifest *new_m, int oldfd, int newfd,
    int (*ready)(void *arg, const struct ment *ne, char *err, size_t errlen),
    void *arg, char *err, size_t errlen)
{
	const struct ment *e, *ne;
	struct manifest_shas *shas = manifest_shas_new(new_m);
	char *incdir, inner[512];
	int incfd = -1, rc = 0;
	size_t i;

	incdir = store_vpath(st, old_m->version, "increment.tmp");
	if (fs_rm_rf_at(st->dfd, incdir) != 0 ||
	    mkdirat(st->dfd, incdir, 0700) != 0) {
		snprintf(err, errlen, "%s/%s: %s", st->dir, incdir,
		    strerror(errno));
		free(incdir);
		return -1;
	}
	for (i = 0; rc == 0 && i < old_m->n; i++) {
		e = &old_m->e[i];
		if (e->type != MENT_FILE)
			continue;
		ne = manifest_find(new_m, e->path);
		if (ne != NULL && ne->type == MENT_FILE &&
		    strcmp(ne->sha, e->sha) == 0)
			continue;
		if (manifest_shas_find(shas, e->sha) != NULL)
			continue; /* moved: the new version has it */
		if (ready != NULL && ne != NULL && ne->type == MENT_FILE &&
		    (rc = ready(arg, ne, err, errlen)) != 0)
			break;
		if ((rc = build_one(st, incdir, e, ne, oldfd, newfd, err,
			 errlen)) != 0) {
			snprintf(inner, sizeof inner, "%s", err);
			snprintf(err, errlen,
			    "writing the increment of %s for version %s: %s",
			    e->path, old_m->version, inner);
		}
	}
	/* Every increment and its directory entry on disk before the
	 * journal: one syncfs() for all, where an fsync() a file cost a
	 * journal commit each (one per changed file). */
	if (rc == 0 &&
	    ((incfd = openat(st->dfd, incdir,
		  O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
		syncfs(incfd) != 0)) {
		snprintf(err, errlen, "%s/%s: syncfs: %s", st->dir, incdir,
		    strerror(errno));
		rc = -1;
	}
	if (incfd >= 0)
		close(incfd);
	free(incdir);
	manifest_shas_free(shas);
	return rc;
}

/* The increment in either form: gzip first (what repair writes over a
 * damaged one), then zstd.  *path names the one found, or the gzip one. */
static int
open_increment(const struct store *st, char *gz, char *zst, char **path)
{
	int fd = openat(st->dfd, gz, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT &&
	    (fd = openat(st->dfd, zst, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
		*path = xasprintf("%s/%s", st->dir, zst);
	else {
		int saved = errno;
		*path = xasprintf("%s/%s", st->dir, gz);
		errno = saved;
	}
	free(gz);
	free(zst);
	return fd;
}

int
increment_open_full(const struct store *st, const char *id, const char *sha,
    char **path)
{
	char *dir = store_vpath(st, id, "increment"), *gz, *zst;

	gz = full_name(dir, sha, 0);
	zst = full_name(dir, sha, 1);
	free(dir);
	return open_increment(st, gz, zst, path);
}

int
increment_open_rdelta(const struct store *st, const char *id, const char *sha,
    const char *next, char **path)
{
	char *dir = store_vpath(st, id, "increment"), *gz, *zst;

	gz = rdelta_name(dir, sha, next, 0);
	zst = rdelta_name(dir, sha, next, 1);
	free(dir);
	return open_increment(st, gz, zst, path);
}

/* A zstd increment (its magic number first). */
struct zread {
	struct delta_patch *dp;
	delta_sink sink;
	void *arg;
	char *err;
	size_t errlen;
};

static int
zread_sink(void *arg, const void *p, size_t n)
{
	struct zread *z = arg;

	if (z->dp != NULL)
		return delta_patch_feed(z->dp, p, n, z->err, z->errlen);
	if (z->sink(z->arg, p, n) != 0) {
		snprintf(z->err, z->errlen, "writing: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
read_zstd(int fd, const char *path, int basefd, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	struct zread z = { NULL, sink, arg, err, errlen };
	struct wirez_dec *d = wirez_dec_new(zread_sink, &z);
	char buf[1 << 16], why[200];
	ssize_t n;
	int rc = 0;

	err[0] = '\0';
	if (basefd >= 0)
		z.dp = delta_patch_new(basefd, sink, arg);
	while (rc == 0 && (n = read(fd, buf, sizeof buf)) > 0)
		if (wirez_dec_feed(d, buf, (size_t)n, why, sizeof why) != 0) {
			if (err[0] == '\0')
				snprintf(err, errlen,
				    "damaged increment: %s: %s", path, why);
			rc = -1;
		}
	if (rc == 0 && n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && wirez_dec_finish(d, why, sizeof why) != 0) {
		snprintf(err, errlen, "damaged increment: %s: %s", path, why);
		rc = -1;
	}
	if (rc == 0 && z.dp != NULL)
		rc = delta_patch_finish(z.dp, err, errlen);
	delta_patch_free(z.dp);
	wirez_dec_free(d);
	close(fd);
	return rc;
}

int
increment_read(int fd, const char *path, int basefd, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	struct delta_patch *dp = NULL;
	char buf[1 << 16];
	gzFile gz;
	int n, rc = 0, zerr;

	if (pread(fd, buf, 4, 0) == 4 &&
	    memcmp(buf, "\x28\xb5\x2f\xfd", 4) == 0)
		return read_zstd(fd, path, basefd, sink, arg, err, errlen);
	if ((gz = gzdopen(fd, "rb")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (basefd >= 0)
		dp = delta_patch_new(basefd, sink, arg);
	while ((n = gzread(gz, buf, sizeof buf)) > 0) {
		if (dp != NULL)
			rc = delta_patch_feed(dp, buf, (size_t)n, err, errlen);
		else if (sink(arg, buf, (size_t)n) != 0) {
			snprintf(err, errlen, "writing: %s", strerror(errno));
			rc = -1;
		}
		if (rc != 0)
			break;
	}
	if (n < 0 && rc == 0) {
		const char *msg = gzerror(gz, &zerr);
		snprintf(err, errlen, "damaged increment: %s: %s", path,
		    strstr(msg, ": ") != NULL ? strstr(msg, ": ") + 2 : msg);
		rc = -1;
	}
	gzclose(gz);
	if (rc == 0 && dp != NULL)
		rc = delta_patch_finish(dp, err, errlen);
	delta_patch_free(dp);
	return rc;
}
