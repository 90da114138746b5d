/* The store (store.h): opening an archive, its locks, the list of its
 * versions, their manifests, and the names of everything in it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "manifest.h"
#include "store.h"
#include "timespec.h"
#include "xmalloc.h"

#define STORE_FORMAT "understudy-archive 1\n"

static const char *const file_names[] = {
	[STORE_CURRENT] = "current",
	[STORE_DELTAS] = "deltas",
	[STORE_SIGNATURES] = "signatures",
	[STORE_HINTS] = "delta-hints",
	[STORE_ATTEMPT] = "attempt.json",
	[STORE_PUSH] = "push.json",
	[STORE_LAST] = "last-pull.json",
	[STORE_TMP] = "tmp",
	[STORE_GENERATION] = "generation.json",
};

char *
store_path(const struct store *st, enum store_file f)
{
	return xasprintf("%s/%s", st->dir, file_names[f]);
}

/* versions/<id>/<what>, relative to the store's directory. */
char *
store_vpath(const struct store *st, const char *id, const char *what)
{
	(void)st;
	return xasprintf("versions/%s%s%s", id, *what ? "/" : "", what);
}

char *
store_manifest_path(const struct store *st, size_t index)
{
	return xasprintf("%s/versions/%s/manifest", st->dir, st->ids[index]);
}

const char *
store_head(const struct store *st)
{
	return st->n > 0 ? st->ids[st->n - 1] : NULL;
}

int
store_tmpfile(const struct store *st)
{
	char *p = store_path(st, STORE_TMP);
	int fd = fs_tmpfile(p);

	free(p);
	return fd;
}

void
store_note(struct store *st, const char *what)
{
	char *old = st->recovered;

	st->recovered = old ? xasprintf("%s; %s", old, what) : xstrdup(what);
	free(old);
}

static void
ids_free(struct store *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		free(st->ids[i]);
	free(st->ids);
	st->ids = NULL;
	st->n = 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	ids_free(st);
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->daemonfd >= 0)
		close(st->daemonfd);
	if (st->dfd >= 0)
		close(st->dfd);
	free(st->dir);
	free(st->source);
	free(st->recovered);
	free(st);
}

static int
id_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

int
store_read_head(const struct store *st, char *head, size_t len)
{
	char *buf;
	size_t n;
	int rc = -1;

	head[0] = '\0';
	if (fs_read_file_at(st->dfd, "HEAD", 256, &buf, &n) != 0)
		return errno == ENOENT ? 0 : -1;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (version_id_valid(buf) && n < len) {
		memcpy(head, buf, n + 1);
		rc = 0;
	}
	free(buf);
	return rc;
}

/* The versions: every versions/<id> up to HEAD. */
int
store_load_ids(struct store *st, char *err, size_t errlen)
{
	char head[64];
	struct dirent *de;
	DIR *d;
	int fd;

	ids_free(st);
	if (store_read_head(st, head, sizeof head) != 0) {
		snprintf(err, errlen,
		    "%s/HEAD: not a version id; the archive is damaged",
		    st->dir);
		return -1;
	}
	if (head[0] == '\0')
		return 0;
	if ((fd = openat(st->dfd, "versions",
		 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (d = fdopendir(fd)) == NULL) {
		snprintf(err, errlen, "%s/versions: %s", st->dir,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!version_id_valid(de->d_name) ||
		    strcmp(de->d_name, head) > 0)
			continue;
		st->ids = xreallocarray(st->ids, st->n + 1, sizeof *st->ids);
		st->ids[st->n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (st->n > 0)
		qsort(st->ids, st->n, sizeof *st->ids, id_cmp);
	if (st->n == 0 || strcmp(st->ids[st->n - 1], head) != 0) {
		snprintf(err, errlen,
		    "%s: HEAD names %s, which is not in versions/; the archive "
		    "is damaged",
		    st->dir, head);
		return -1;
	}
	return 0;
}

/* Take the lock, shared or exclusive, waiting at most STORE_LOCK_WAIT
 * seconds for the holder (a commit, a long restore). */
static int
lock_take(struct store *st, int op, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < STORE_LOCK_WAIT * 10; i++) {
		if (flock(st->lockfd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "%s/lock: %s", st->dir,
			    strerror(errno));
			return -1;
		}
		usleep(100000);
	}
	snprintf(err, errlen,
	    "%s is busy: another process has held its lock for %ds (a commit, "
	    "a prune or a long restore); try again",
	    st->dir, STORE_LOCK_WAIT);
	return -1;
}

int
store_lock(struct store *st, int exclusive, char *err, size_t errlen)
{
	if (lock_take(st, exclusive ? LOCK_EX : LOCK_SH, err, errlen) != 0)
		return -1;
	if (store_load_ids(st, err, errlen) != 0) {
		flock(st->lockfd, LOCK_UN);
		return -1;
	}
	return 0;
}

void
store_unlock(struct store *st)
{
	flock(st->lockfd, LOCK_UN);
}

/* The format file: there and right, or made for a daemon. */
static int
check_format(struct store *st, const char *archive_dir, char *err,
    size_t errlen)
{
	char *buf;
	size_t len;

	if (fs_read_file_at(st->dfd, "format", 256, &buf, &len) == 0) {
		if (len != strlen(STORE_FORMAT) ||
		    memcmp(buf, STORE_FORMAT, len) != 0) {
			snprintf(err, errlen,
			    "%s/format: not an understudy archive of a format "
			    "this version reads",
			    st->dir);
			free(buf);
			return -1;
		}
		free(buf);
		return 0;
	}
	if (errno == ENOENT && st->mode == STORE_DAEMON) {
		if (fs_write_atomic_at(st->dfd, "format", STORE_FORMAT,
			strlen(STORE_FORMAT)) == 0)
			return 0;
		snprintf(err, errlen, "%s: cannot create the archive: %s",
		    st->dir, strerror(errno));
		return -1;
	}
	snprintf(err, errlen, "no archive for source \"%s\" in %s%s%s",
	    st->source, archive_dir, errno == ENOENT ? "" : ": ",
	    errno == ENOENT ? "" : strerror(errno));
	return -1;
}

/* The source's directory, made for a daemon. */
static int
open_dir(struct store *st, const char *archive_dir, char *err, size_t errlen)
{
	if (st->mode == STORE_DAEMON && fs_mkdir_p(st->dir, 0700) != 0) {
		snprintf(err, errlen, "%s: cannot create the archive: %s",
		    st->dir, strerror(errno));
		return -1;
	}
	st->dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dfd >= 0)
		return 0;
	if (errno == ENOENT)
		snprintf(err, errlen, "no archive for source \"%s\" in %s",
		    st->source, archive_dir);
	else
		snprintf(err, errlen, "%s: %s", st->dir, strerror(errno));
	return -1;
}

static int
open_locks(struct store *st, char *err, size_t errlen)
{
	static const char *const dirs[] = { "versions", "tmp", "trash", NULL };
	int i;

	for (i = 0; st->mode != STORE_READ && dirs[i] != NULL; i++)
		if (mkdirat(st->dfd, dirs[i], 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s/%s: %s", st->dir, dirs[i],
			    strerror(errno));
			return -1;
		}
	if (st->mode == STORE_DAEMON || st->mode == STORE_ALONE) {
		/* One daemon per archive, for as long as it runs. */
		st->daemonfd = openat(st->dfd, "daemon.lock",
		    O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (st->daemonfd < 0 ||
		    flock(st->daemonfd, LOCK_EX | LOCK_NB) != 0) {
			if (errno == EWOULDBLOCK && st->mode == STORE_ALONE)
				snprintf(err, errlen,
				    "%s/daemon.lock: the pull-backup daemon "
				    "runs on this archive; stop it first",
				    st->dir);
			else if (errno == EWOULDBLOCK)
				snprintf(err, errlen,
				    "%s/daemon.lock: another "
				    "pull-backup daemon runs on this archive; "
				    "two writers are refused",
				    st->dir);
			else
				snprintf(err, errlen, "%s/daemon.lock: %s",
				    st->dir, strerror(errno));
			return -1;
		}
	}
	st->lockfd = openat(st->dfd, "lock",
	    (st->mode == STORE_READ ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC,
	    0600);
	if (st->lockfd < 0 && st->mode == STORE_READ && errno == ENOENT)
		st->lockfd = openat(st->dfd, "lock",
		    O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lockfd < 0) {
		snprintf(err, errlen, "%s/lock: %s", st->dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
store_open(const char *archive_dir, const char *source, enum store_mode mode,
    struct store **out, char *err, size_t errlen)
{
	struct store *st = xcalloc(1, sizeof *st);
	int pending;

	*out = NULL;
	st->lockfd = st->daemonfd = st->dfd = -1;
	st->mode = mode;
	st->source = xstrdup(source);
	st->dir = xasprintf("%s/%s", archive_dir, source);
	if (open_dir(st, archive_dir, err, errlen) != 0 ||
	    check_format(st, archive_dir, err, errlen) != 0 ||
	    open_locks(st, err, errlen) != 0)
		goto fail;
	/* A journal means a commit was cut short: whoever opens the archive
	 * first finishes it, under the exclusive lock. */
	pending = fs_exists_at(st->dfd, "journal");
	if (mode != STORE_READ || pending) {
		if (lock_take(st, LOCK_EX, err, errlen) != 0 ||
		    commit_recover(st, err, errlen) != 0)
			goto fail;
		if (mode == STORE_DAEMON)
			flock(st->lockfd, LOCK_UN);
	}
	if (mode == STORE_READ && lock_take(st, LOCK_SH, err, errlen) != 0)
		goto fail;
	if (store_load_ids(st, err, errlen) != 0)
		goto fail;
	*out = st;
	return 0;
fail:
	store_close(st);
	return -1;
}

int
store_manifest(const struct store *st, size_t index, struct manifest **out,
    char *err, size_t errlen)
{
	char *p = store_vpath(st, st->ids[index], "manifest"), *cp, *buf;
	char *want, hex[HASH_HEX_SIZE], inner[512];
	struct hash h;
	size_t len, wlen;
	int rc = -1;

	*out = NULL;
	cp = xasprintf("%s.sha256", p);
	if (fs_read_file_at(st->dfd, p, MANIFEST_MAX_BYTES, &buf, &len) != 0) {
		snprintf(err, errlen, "version %s: %s/%s: %s", st->ids[index],
		    st->dir, p, strerror(errno));
		goto out;
	}
	hash_init(&h);
	hash_update(&h, buf, len);
	hash_final(&h, hex);
	if (fs_read_file_at(st->dfd, cp, 256, &want, &wlen) != 0) {
		snprintf(err, errlen, "version %s: %s/%s: %s", st->ids[index],
		    st->dir, cp, strerror(errno));
	} else if (wlen < HASH_HEX_LEN || memcmp(want, hex, HASH_HEX_LEN)) {
		snprintf(err, errlen,
		    "version %s: its manifest is damaged (SHA-256 %.12s..., "
		    "manifest.sha256 says %.12s...)",
		    st->ids[index], hex, want);
		free(want);
	} else if (manifest_parse(buf, len, out, inner, sizeof inner) != 0) {
		snprintf(err, errlen, "version %s: %s/%s: %s", st->ids[index],
		    st->dir, p, inner);
		free(want);
	} else {
		free(want);
		rc = 0;
	}
	free(buf);
out:
	free(cp);
	free(p);
	return rc;
}

int
store_info(const struct store *st, size_t index, struct version_info *vi,
    char *err, size_t errlen)
{
	struct manifest *m;
	char *p;

	if (store_manifest(st, index, &m, err, errlen) != 0)
		return -1;
	memset(vi, 0, sizeof *vi);
	snprintf(vi->id, sizeof vi->id, "%s", st->ids[index]);
	version_id_iso(st->ids[index], vi->time, sizeof vi->time);
	vi->generation = m->generation;
	vi->files = m->files;
	vi->bytes = m->bytes;
	manifest_free(m);
	if (index + 1 == st->n)
		p = xstrdup(file_names[STORE_CURRENT]);
	else
		p = store_vpath(st, st->ids[index], "increment");
	vi->stored = fs_tree_bytes_at(st->dfd, p);
	free(p);
	return 0;
}
