/* The archive: reverse-delta history of one source.  See archive.h and
 * docs/archive-format.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "archive.h"
#include "delta.h"
#include "fault.h"
#include "fsutil.h"
#include "hash.h"
#include "log.h"
#include "manifest.h"
#include "sync.h"
#include "timespec.h"
#include "xmalloc.h"

#define ARCHIVE_FORMAT "understudy-archive 1\n"

char *
archive_path(const struct archive *a, const char *what)
{
	return xasprintf("%s/%s", a->dir, what);
}

static char *
vpath(const struct archive *a, const char *id, const char *what)
{
	return xasprintf("%s/versions/%s%s%s", a->dir, id, *what ? "/" : "",
	    what);
}

const char *
archive_head(const struct archive *a)
{
	return a->n > 0 ? a->ids[a->n - 1] : NULL;
}

static void
ids_free(struct archive *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->ids[i]);
	free(a->ids);
	a->ids = NULL;
	a->n = 0;
}

void
archive_close(struct archive *a)
{
	if (a == NULL)
		return;
	ids_free(a);
	if (a->lockfd >= 0)
		close(a->lockfd);
	if (a->daemonfd >= 0)
		close(a->daemonfd);
	free(a->dir);
	free(a->source);
	free(a->recovered);
	free(a);
}

static int
id_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static int
read_head(const struct archive *a, char *head, size_t len)
{
	char *p = archive_path(a, "HEAD"), *buf;
	size_t n;
	int rc = -1;

	head[0] = '\0';
	if (fs_read_file(p, 256, &buf, &n) != 0) {
		free(p);
		return errno == ENOENT ? 0 : -1;
	}
	free(p);
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
static int
load_ids(struct archive *a, char *err, size_t errlen)
{
	char head[64], *p;
	DIR *d;
	struct dirent *de;

	ids_free(a);
	if (read_head(a, head, sizeof head) != 0) {
		snprintf(err, errlen, "%s/HEAD: not a version id; the archive "
		    "is damaged", a->dir);
		return -1;
	}
	if (head[0] == '\0')
		return 0;
	p = archive_path(a, "versions");
	d = opendir(p);
	free(p);
	if (d == NULL) {
		snprintf(err, errlen, "%s/versions: %s", a->dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!version_id_valid(de->d_name) ||
		    strcmp(de->d_name, head) > 0)
			continue;
		a->ids = xreallocarray(a->ids, a->n + 1, sizeof *a->ids);
		a->ids[a->n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (a->n > 0)
		qsort(a->ids, a->n, sizeof *a->ids, id_cmp);
	if (a->n == 0 || strcmp(a->ids[a->n - 1], head) != 0) {
		snprintf(err, errlen, "%s: HEAD names %s, which is not in "
		    "versions/; the archive is damaged", a->dir, head);
		return -1;
	}
	return 0;
}

static void
note_recovery(struct archive *a, const char *what)
{
	char *old = a->recovered;

	a->recovered = old ? xasprintf("%s; %s", old, what) : xstrdup(what);
	free(old);
}

/* Where a commit of version new puts the tree it replaces: garbage from
 * the moment it is there (staging/ is complete), removed by whoever
 * commits, later, or at start-up with the rest of trash/. */
static char *
replaced_path(const struct archive *a, const char *new)
{
	return xasprintf("%s/trash/before.%s", a->dir, new);
}

/* Finish a commit whose journal is on disk: every step is skipped when
 * already done, so this may run any number of times.  Leaves the tree it
 * replaced in trash/. */
static int
roll_forward(struct archive *a, const char *old, const char *new, char *err,
    size_t errlen)
{
	char *tmp = NULL, *dst = NULL, *cur, *stg, *trash, *head;
	int rc = -1;

	tmp = xasprintf("%s/versions/%s.tmp", a->dir, new);
	dst = vpath(a, new, "");
	if (fs_exists(tmp) && rename(tmp, dst) != 0)
		goto fail;
	fault_point("commit-version-renamed");
	free(tmp);
	free(dst);
	tmp = dst = NULL;
	if (*old != '\0') {
		tmp = vpath(a, old, "increment.tmp");
		dst = vpath(a, old, "increment");
		if (fs_exists(tmp) && rename(tmp, dst) != 0)
			goto fail;
	}
	cur = archive_path(a, "current");
	stg = archive_path(a, "staging");
	trash = replaced_path(a, new);
	if (fs_exists(stg)) {
		if (fs_exists(cur) && (fs_rm_rf(trash) != 0 ||
		    rename(cur, trash) != 0)) {
			free(cur);
			free(stg);
			free(trash);
			goto fail;
		}
		fault_point("commit-current-moved");
		if (rename(stg, cur) != 0) {
			free(cur);
			free(stg);
			free(trash);
			goto fail;
		}
	}
	free(cur);
	free(stg);
	if (fs_fsync_dir(a->dir) != 0) {
		free(trash);
		goto fail;
	}
	head = archive_path(a, "HEAD");
	{
		char line[64];
		snprintf(line, sizeof line, "%s\n", new);
		if (fs_write_atomic(head, line, strlen(line)) != 0) {
			free(head);
			free(trash);
			goto fail;
		}
	}
	free(head);
	fault_point("commit-head-written");
	free(trash);
	head = archive_path(a, "staging.version");
	unlink(head);
	free(head);
	head = archive_path(a, "journal");
	unlink(head);
	free(head);
	fs_fsync_dir(a->dir);
	rc = 0;
fail:
	if (rc != 0)
		snprintf(err, errlen, "%s: finishing the commit of %s: %s",
		    a->dir, new, strerror(errno));
	free(tmp);
	free(dst);
	return rc;
}

/* Remove what a step that never reached its journal left behind. */
static void
clean_leftovers(struct archive *a)
{
	char *p = archive_path(a, "versions"), *q, head[64];
	DIR *d;
	struct dirent *de;

	read_head(a, head, sizeof head);
	if ((d = opendir(p)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			q = xasprintf("%s/%s", p, de->d_name);
			if (!version_id_valid(de->d_name) ||
			    strcmp(de->d_name, head) > 0) {
				note_recovery(a, "removed an unfinished "
				    "version");
				fs_rm_rf(q);
			} else {
				char *inc = xasprintf("%s/increment.tmp", q);
				if (fs_exists(inc)) {
					note_recovery(a, "removed unfinished "
					    "increments");
					fs_rm_rf(inc);
				}
				free(inc);
			}
			free(q);
		}
		closedir(d);
	}
	free(p);
	p = archive_path(a, "trash");
	if ((d = opendir(p)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			q = xasprintf("%s/%s", p, de->d_name);
			note_recovery(a, "finished an interrupted removal");
			fs_rm_rf(q);
			free(q);
		}
		closedir(d);
	}
	free(p);
	p = archive_path(a, "tmp");
	fs_rm_rf(p);
	mkdir(p, 0700);
	free(p);
}

static int
recover(struct archive *a, char *err, size_t errlen)
{
	char *p = archive_path(a, "journal"), *buf, old[64], new[64];
	size_t len;
	int rc = 0;

	if (fs_read_file(p, 1024, &buf, &len) == 0) {
		if (sscanf(buf, "commit %63s %63s", old, new) != 2 ||
		    !version_id_valid(new)) {
			snprintf(err, errlen, "%s: damaged journal; move it "
			    "aside after checking the archive by hand", p);
			free(buf);
			free(p);
			return -1;
		}
		free(buf);
		if (strcmp(old, "-") == 0)
			old[0] = '\0';
		rc = roll_forward(a, old, new, err, errlen);
		if (rc == 0) {
			char note[128];
			snprintf(note, sizeof note, "finished the interrupted "
			    "commit of %s", new);
			note_recovery(a, note);
		}
	}
	free(p);
	if (rc == 0)
		clean_leftovers(a);
	return rc;
}

/* Take the archive's lock, shared or exclusive, waiting at most
 * ARCHIVE_LOCK_WAIT seconds for the holder (a commit, a long restore). */
static int
lock_take(struct archive *a, int op, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < ARCHIVE_LOCK_WAIT * 10; i++) {
		if (flock(a->lockfd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "%s/lock: %s", a->dir,
			    strerror(errno));
			return -1;
		}
		usleep(100000);
	}
	snprintf(err, errlen, "%s is busy: another process has held its lock "
	    "for %ds (a commit, a prune or a long restore); try again",
	    a->dir, ARCHIVE_LOCK_WAIT);
	return -1;
}

int
archive_lock(struct archive *a, int exclusive, char *err, size_t errlen)
{
	if (lock_take(a, exclusive ? LOCK_EX : LOCK_SH, err, errlen) != 0)
		return -1;
	if (load_ids(a, err, errlen) != 0) {
		flock(a->lockfd, LOCK_UN);
		return -1;
	}
	return 0;
}

void
archive_unlock(struct archive *a)
{
	flock(a->lockfd, LOCK_UN);
}

int
archive_open(const char *archive_dir, const char *source,
    enum archive_mode mode, struct archive **out, char *err, size_t errlen)
{
	struct archive *a = xcalloc(1, sizeof *a);
	char *p, *buf;
	size_t len;
	static const char *const dirs[] = { "versions", "tmp", "trash",
	    NULL };
	int i, pending;

	*out = NULL;
	a->lockfd = a->daemonfd = -1;
	a->mode = mode;
	a->source = xstrdup(source);
	a->dir = xasprintf("%s/%s", archive_dir, source);
	p = archive_path(a, "format");
	if (fs_read_file(p, 256, &buf, &len) == 0) {
		if (len != strlen(ARCHIVE_FORMAT) ||
		    memcmp(buf, ARCHIVE_FORMAT, len) != 0) {
			snprintf(err, errlen, "%s: not an understudy archive of "
			    "a format this version reads", p);
			free(buf);
			free(p);
			goto fail;
		}
		free(buf);
	} else if (errno == ENOENT && mode == ARCHIVE_DAEMON) {
		if (fs_mkdir_p(a->dir, 0700) != 0 || fs_write_atomic(p,
		    ARCHIVE_FORMAT, strlen(ARCHIVE_FORMAT)) != 0) {
			snprintf(err, errlen, "%s: cannot create the archive: "
			    "%s", a->dir, strerror(errno));
			free(p);
			goto fail;
		}
	} else {
		snprintf(err, errlen, "no archive for source \"%s\" in %s%s%s",
		    source, archive_dir, errno == ENOENT ? "" : ": ",
		    errno == ENOENT ? "" : strerror(errno));
		free(p);
		goto fail;
	}
	free(p);
	for (i = 0; mode != ARCHIVE_READ && dirs[i] != NULL; i++) {
		p = archive_path(a, dirs[i]);
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			free(p);
			goto fail;
		}
		free(p);
	}
	if (mode == ARCHIVE_DAEMON) {
		/* One daemon per archive, for as long as it runs. */
		p = archive_path(a, "daemon.lock");
		a->daemonfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (a->daemonfd < 0 ||
		    flock(a->daemonfd, LOCK_EX | LOCK_NB) != 0) {
			snprintf(err, errlen, "%s: %s", p, errno ==
			    EWOULDBLOCK ? "another pull-backup daemon runs on "
			    "this archive; two writers are refused" :
			    strerror(errno));
			free(p);
			goto fail;
		}
		free(p);
	}
	p = archive_path(a, "lock");
	a->lockfd = open(p, (mode == ARCHIVE_READ ? O_RDONLY : O_RDWR |
	    O_CREAT) | O_CLOEXEC, 0600);
	if (a->lockfd < 0 && mode == ARCHIVE_READ && errno == ENOENT)
		a->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lockfd < 0) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		free(p);
		goto fail;
	}
	free(p);
	/* A journal means a commit was cut short: whoever opens the archive
	 * first finishes it, under the exclusive lock. */
	p = archive_path(a, "journal");
	pending = fs_exists(p);
	free(p);
	if (mode != ARCHIVE_READ || pending) {
		if (lock_take(a, LOCK_EX, err, errlen) != 0 ||
		    recover(a, err, errlen) != 0)
			goto fail;
		if (mode == ARCHIVE_DAEMON)
			flock(a->lockfd, LOCK_UN);
	}
	if (mode == ARCHIVE_READ && lock_take(a, LOCK_SH, err, errlen) != 0)
		goto fail;
	if (load_ids(a, err, errlen) != 0)
		goto fail;
	*out = a;
	return 0;
fail:
	archive_close(a);
	return -1;
}

/* Each manifest has its SHA-256 beside it, so that a damaged manifest is
 * found rather than trusted. */
static int
save_checksum(const char *mpath)
{
	char hex[HASH_HEX_SIZE + 1], *cpath;
	int fd, rc;

	if ((fd = open(mpath, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	rc = hash_fd(fd, hex) < 0 ? -1 : 0;
	close(fd);
	if (rc != 0)
		return -1;
	strcat(hex, "\n");
	cpath = xasprintf("%s.sha256", mpath);
	rc = fs_write_atomic(cpath, hex, strlen(hex));
	free(cpath);
	return rc;
}

int
archive_manifest(const struct archive *a, size_t index,
    struct manifest **out, char *err, size_t errlen)
{
	char *p = vpath(a, a->ids[index], "manifest"), *cp, *buf, *want;
	char hex[HASH_HEX_SIZE], inner[512];
	struct hash h;
	size_t len, wlen;
	int rc = -1;

	*out = NULL;
	cp = xasprintf("%s.sha256", p);
	if (fs_read_file(p, MANIFEST_MAX_BYTES, &buf, &len) != 0) {
		snprintf(err, errlen, "version %s: %s: %s", a->ids[index], p,
		    strerror(errno));
		goto out;
	}
	hash_init(&h);
	hash_update(&h, buf, len);
	hash_final(&h, hex);
	if (fs_read_file(cp, 256, &want, &wlen) != 0) {
		snprintf(err, errlen, "version %s: %s: %s", a->ids[index], cp,
		    strerror(errno));
	} else if (wlen < HASH_HEX_LEN || memcmp(want, hex, HASH_HEX_LEN)) {
		snprintf(err, errlen, "version %s: its manifest is damaged "
		    "(SHA-256 %.12s..., manifest.sha256 says %.12s...)",
		    a->ids[index], hex, want);
		free(want);
	} else if (manifest_parse(buf, len, out, inner, sizeof inner) != 0) {
		snprintf(err, errlen, "version %s: %s: %s", a->ids[index], p,
		    inner);
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
archive_info(const struct archive *a, size_t index, struct version_info *vi,
    char *err, size_t errlen)
{
	struct manifest *m;
	char *p;

	if (archive_manifest(a, index, &m, err, errlen) != 0)
		return -1;
	memset(vi, 0, sizeof *vi);
	snprintf(vi->id, sizeof vi->id, "%s", a->ids[index]);
	version_id_iso(a->ids[index], vi->time, sizeof vi->time);
	vi->files = m->files;
	vi->bytes = m->bytes;
	manifest_free(m);
	if (index + 1 == a->n)
		p = archive_path(a, "current");
	else
		p = vpath(a, a->ids[index], "increment");
	vi->stored = fs_tree_bytes(p);
	free(p);
	return 0;
}

/* Compressed writing, for increments. */

static int
gz_sink(void *arg, const void *p, size_t n)
{
	gzFile gz = arg;

	if (fault_enospc("increment-write"))
		return -1;
	while (n > 0) {
		unsigned int chunk = n > (1u << 30) ? 1u << 30 : (unsigned)n;
		if (gzwrite(gz, p, chunk) != (int)chunk) {
			errno = EIO;
			return -1;
		}
		p = (const char *)p + chunk;
		n -= chunk;
	}
	return 0;
}

/* Create path, let fill() write through gzip (the caller makes it
 * durable). */
static int
gz_create(const char *path, int (*fill)(void *, gzFile, char *, size_t),
    void *arg, char *err, size_t errlen)
{
	gzFile gz;
	int fd, fd2, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fd2 = dup(fd)) < 0 || (gz = gzdopen(fd2, "wb1")) == NULL) {
		snprintf(err, errlen, "%s: cannot start compression", path);
		close(fd);
		return -1;
	}
	rc = fill(arg, gz, err, errlen);
	if (gzclose(gz) != Z_OK && rc == 0) {
		snprintf(err, errlen, "%s: compression failed (disk full?)",
		    path);
		rc = -1;
	}
	close(fd);
	if (rc != 0)
		unlink(path);
	return rc;
}

struct inc_job {
	int newfd;		/* the new version's file */
	int oldfd;		/* the old version's file */
	int fwdfd;		/* the delta that pulled it, or -1 */
	int64_t old_size, new_size;
};

static int
fill_full(void *arg, gzFile gz, char *err, size_t errlen)
{
	struct inc_job *j = arg;
	char buf[1 << 16];
	ssize_t n;

	while ((n = read(j->oldfd, buf, sizeof buf)) > 0)
		if (gz_sink(gz, buf, (size_t)n) != 0) {
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
fill_delta(void *arg, gzFile gz, char *err, size_t errlen)
{
	struct inc_job *j = arg;
	struct evbuffer *sig = evbuffer_new();
	int rc;

	rc = delta_signature(j->newfd, 0, delta_sink_evbuffer, sig, err, errlen);
	if (rc == 0)
		rc = delta_compute(evbuffer_pullup(sig, -1),
		    evbuffer_get_length(sig), j->oldfd, gz_sink, gz, err,
		    errlen);
	evbuffer_free(sig);
	return rc;
}

/* From the forward delta the pull kept: no pass of the rsync algorithm. */
static int
fill_reverse(void *arg, gzFile gz, char *err, size_t errlen)
{
	struct inc_job *j = arg;

	return delta_reverse(j->fwdfd, j->oldfd, j->old_size, j->new_size,
	    gz_sink, gz, err, errlen);
}

/* Increments that turn the new version (staging) back into the old one
 * (current), for the old version. */
static int
build_increments(struct archive *a, const struct manifest *old_m,
    const struct manifest *new_m, const char *incdir, char *err,
    size_t errlen)
{
	const struct ment *e, *ne;
	struct inc_job j;
	char *name, *path, *fwd, *deltas = archive_path(a, "deltas");
	int curfd, stgfd, incfd = -1, rc = 0;
	size_t i;

	if (fs_rm_rf(incdir) != 0 || mkdir(incdir, 0700) != 0) {
		snprintf(err, errlen, "%s: %s", incdir, strerror(errno));
		free(deltas);
		return -1;
	}
	path = archive_path(a, "current");
	curfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(path);
	path = archive_path(a, "staging");
	stgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(path);
	if (curfd < 0 || stgfd < 0) {
		snprintf(err, errlen, "%s: current/ or staging/ missing: %s",
		    a->dir, strerror(errno));
		rc = -1;
		goto out;
	}
	for (i = 0; rc == 0 && i < old_m->n; i++) {
		e = &old_m->e[i];
		if (e->type != MENT_FILE)
			continue;
		ne = manifest_find(new_m, e->path);
		if (ne != NULL && ne->type == MENT_FILE &&
		    strcmp(ne->sha, e->sha) == 0)
			continue;
		memset(&j, 0, sizeof j);
		j.newfd = j.fwdfd = -1;
		if ((j.oldfd = fs_open_beneath(curfd, e->path, O_RDONLY,
		    0)) < 0) {
			snprintf(err, errlen, "current/%s: %s", e->path,
			    strerror(errno));
			rc = -1;
			break;
		}
		if (ne != NULL && ne->type == MENT_FILE && ne->size > 0 &&
		    e->size > 0 && (j.newfd = fs_open_beneath(stgfd, ne->path,
		    O_RDONLY, 0)) >= 0) {
			name = xasprintf("%s/%s.from.%s.rdelta.gz", incdir,
			    e->sha, ne->sha);
			fwd = xasprintf("%s/%s.%s.delta", deltas, e->sha,
			    ne->sha);
			j.fwdfd = open(fwd, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			j.old_size = e->size;
			j.new_size = ne->size;
			free(fwd);
			rc = 0;
			if (j.fwdfd >= 0 && !fs_exists(name) &&
			    (rc = gz_create(name, fill_reverse, &j, err,
			    errlen)) != 0)
				log_warnx("reverse delta of %s from the pull's "
				    "delta: %s; computing it anew", e->path,
				    err);
			if ((rc != 0 || j.fwdfd < 0) && !fs_exists(name))
				rc = gz_create(name, fill_delta, &j, err,
				    errlen);
		} else {
			name = xasprintf("%s/%s.full.gz", incdir, e->sha);
			if (!fs_exists(name))
				rc = gz_create(name, fill_full, &j, err,
				    errlen);
		}
		if (rc != 0) {
			char inner[512];
			snprintf(inner, sizeof inner, "%s", err);
			snprintf(err, errlen, "writing the increment of %s for "
			    "version %s: %s", e->path, old_m->version, inner);
		}
		free(name);
		close(j.oldfd);
		if (j.newfd >= 0)
			close(j.newfd);
		if (j.fwdfd >= 0)
			close(j.fwdfd);
	}
	/* Every increment and its directory entry on disk before the
	 * journal: one syncfs() for all, where an fsync() a file cost a
	 * journal commit each (one per changed file). */
	if (rc == 0 && ((incfd = open(incdir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0 || syncfs(incfd) != 0)) {
		snprintf(err, errlen, "%s: syncfs: %s", incdir,
		    strerror(errno));
		rc = -1;
	}
	if (incfd >= 0)
		close(incfd);
out:
	free(deltas);
	if (curfd >= 0)
		close(curfd);
	if (stgfd >= 0)
		close(stgfd);
	return rc;
}

int
archive_commit(struct archive *a, const struct manifest *m, char **replaced,
    char *err, size_t errlen)
{
	const char *old = archive_head(a);
	struct manifest *old_m = NULL;
	char *p, *incdir = NULL, line[128];
	int rc = -1;

	if (replaced != NULL)
		*replaced = NULL;
	if (old != NULL && strcmp(m->version, old) <= 0) {
		snprintf(err, errlen, "version %s is not newer than the "
		    "archive's newest, %s", m->version, old);
		return -1;
	}
	if (old != NULL) {
		if (archive_manifest(a, a->n - 1, &old_m, err, errlen) != 0)
			return -1;
		incdir = vpath(a, old, "increment.tmp");
		if (build_increments(a, old_m, m, incdir, err, errlen) != 0)
			goto out;
		fault_point("commit-increments-built");
	}
	p = xasprintf("%s/versions/%s.tmp", a->dir, m->version);
	if (fs_rm_rf(p) != 0 || mkdir(p, 0700) != 0) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		free(p);
		goto out;
	}
	{
		char *mp = xasprintf("%s/manifest", p);
		if (manifest_save(m, mp) != 0 || save_checksum(mp) != 0) {
			snprintf(err, errlen, "%s: %s", mp, strerror(errno));
			free(mp);
			free(p);
			goto out;
		}
		free(mp);
	}
	free(p);
	p = archive_path(a, "versions");
	fs_fsync_dir(p);
	free(p);
	/* The commit point of no return: from here recovery rolls forward. */
	snprintf(line, sizeof line, "commit %s %s\n", old ? old : "-",
	    m->version);
	p = archive_path(a, "journal");
	if (fs_write_atomic(p, line, strlen(line)) != 0) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		free(p);
		goto out;
	}
	free(p);
	fault_point("commit-journal-written");
	if (roll_forward(a, old ? old : "", m->version, err, errlen) != 0)
		goto out;
	p = replaced_path(a, m->version);
	if (!fs_exists(p))
		free(p);
	else if (replaced != NULL)
		*replaced = p;
	else {
		fs_rm_rf(p);
		free(p);
	}
	rc = load_ids(a, err, errlen);
out:
	free(incdir);
	manifest_free(old_m);
	return rc;
}

int
archive_prune(struct archive *a, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen)
{
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	size_t i, keep_from = 0;
	char *src, *dst;

	*gone = NULL;
	*ngone = 0;
	if (a->n <= 1)
		return 0;
	/* Ages count from the clock, never from a version's time: a version
	 * from the future (clock skew) is never the reason another goes. */
	for (i = 0; i + 1 < a->n; i++) {
		int drop = 0;
		if (keep_last > 0 && a->n - i > (size_t)keep_last)
			drop = 1;
		if (older_than > 0 && version_id_ms(a->ids[i]) <
		    now_ms - older_than * 1000)
			drop = 1;
		if (!drop)
			break;
		keep_from = i + 1;
	}
	for (i = 0; i < keep_from; i++) {
		*gone = xreallocarray(*gone, *ngone + 1, sizeof **gone);
		(*gone)[(*ngone)++] = xstrdup(a->ids[i]);
		if (dry_run)
			continue;
		/* Oldest first: every version left keeps what it needs. */
		src = vpath(a, a->ids[i], "");
		dst = xasprintf("%s/trash/%s", a->dir, a->ids[i]);
		if (rename(src, dst) != 0) {
			snprintf(err, errlen, "removing version %s: %s",
			    a->ids[i], strerror(errno));
			free(src);
			free(dst);
			return -1;
		}
		fs_fsync_dir(a->dir);
		fault_point("prune-version-moved");
		fs_rm_rf(dst);
		free(src);
		free(dst);
	}
	if (!dry_run && keep_from > 0)
		return load_ids(a, err, errlen);
	return 0;
}

/* Restoring. */

static int
open_tmp(const struct archive *a)
{
	char *p = archive_path(a, "tmp"), *tmpl;
	int fd;

	fd = open(p, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		tmpl = xasprintf("%s/restore.XXXXXX", p);
		if ((fd = mkostemp(tmpl, O_CLOEXEC)) >= 0)
			unlink(tmpl);
		free(tmpl);
	}
	free(p);
	return fd;
}

static void
free_chain(char **chain, size_t n)
{
	while (n-- > 0)
		free(chain[n]);
	free(chain);
}

static int
gunzip_to(const char *path, int (*sink)(void *, const void *, size_t),
    void *arg, struct delta_patch *dp, char *err, size_t errlen)
{
	gzFile gz;
	char buf[1 << 16];
	int n, rc = 0;

	if ((gz = gzopen(path, "rb")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
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
		int zerr;
		/* gzerror names the file already. */
		snprintf(err, errlen, "damaged increment: %s",
		    gzerror(gz, &zerr));
		rc = -1;
	}
	gzclose(gz);
	if (rc == 0 && dp != NULL)
		rc = delta_patch_finish(dp, err, errlen);
	return rc;
}

struct archive_reader {
	const struct archive *a;
	struct manifest **ms;	/* per version, loaded on demand */
	int curfd;
};

const struct manifest *
archive_reader_manifest(struct archive_reader *r, size_t j, char *err, size_t errlen)
{
	if (r->ms[j] == NULL && archive_manifest(r->a, j, &r->ms[j], err,
	    errlen) != 0)
		return NULL;
	return r->ms[j];
}

/* Where the content of e at version k comes from: an fd open at offset 0
 * on a plain base (the current file, or a full increment unpacked), and
 * the reverse deltas that take it back to version k, to be applied from
 * chain[*nchain - 1] down to chain[0]. */
static int
content_base(struct archive_reader *r, size_t k, const struct ment *e,
    char ***chainp, size_t *nchainp, char *err, size_t errlen)
{
	const struct archive *a = r->a;
	const struct manifest *nm;
	const struct ment *ne;
	char **chain = NULL, *name, *sha = xstrdup(e->sha);
	size_t nchain = 0, j = k;
	int fd = -1;

	for (;;) {
		if (j + 1 == a->n) {
			fd = fs_open_beneath(r->curfd, e->path, O_RDONLY, 0);
			if (fd < 0)
				snprintf(err, errlen, "current/%s: %s", e->path,
				    strerror(errno));
			break;
		}
		name = xasprintf("%s/versions/%s/increment/%s.full.gz", a->dir,
		    a->ids[j], sha);
		if (fs_exists(name)) {
			if ((fd = open_tmp(a)) < 0 || gunzip_to(name,
			    delta_sink_fd, &fd, NULL, err, errlen) != 0) {
				if (fd >= 0)
					close(fd);
				fd = -1;
			} else
				lseek(fd, 0, SEEK_SET);
			free(name);
			break;
		}
		free(name);
		if ((nm = archive_reader_manifest(r, j + 1, err, errlen)) == NULL)
			break;
		ne = manifest_find(nm, e->path);
		if (ne == NULL || ne->type != MENT_FILE) {
			snprintf(err, errlen, "archive damaged: %s of version "
			    "%s has no increment in %s", e->path, a->ids[k],
			    a->ids[j]);
			break;
		}
		if (strcmp(ne->sha, sha) != 0) {
			name = xasprintf("%s/versions/%s/increment/%s.from.%s."
			    "rdelta.gz", a->dir, a->ids[j], sha, ne->sha);
			if (!fs_exists(name)) {
				snprintf(err, errlen, "archive damaged: %s of "
				    "version %s: no increment %s", e->path,
				    a->ids[k], name);
				free(name);
				break;
			}
			chain = xreallocarray(chain, nchain + 1,
			    sizeof *chain);
			chain[nchain++] = name;
			free(sha);
			sha = xstrdup(ne->sha);
		}
		j++;
	}
	free(sha);
	if (fd < 0) {
		free_chain(chain, nchain);
		chain = NULL;
		nchain = 0;
	}
	*chainp = chain;
	*nchainp = nchain;
	return fd;
}

/* Apply the reverse delta at path to the content at basefd, into sink. */
static int
apply_rdelta(int basefd, const char *path, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	struct delta_patch *dp = delta_patch_new(basefd, sink, arg);
	int rc = gunzip_to(path, NULL, NULL, dp, err, errlen);

	delta_patch_free(dp);
	return rc;
}

/* Apply chain[n - 1] .. chain[stop] to fd, each into a temporary file;
 * the fd of the last, at offset 0 (fd itself when there is nothing to
 * apply), or -1.  fd is closed if it is replaced. */
static int
walk_back(const struct archive *a, int fd, char **chain, size_t n,
    size_t stop, char *err, size_t errlen)
{
	int out, sink;

	while (fd >= 0 && n-- > stop) {
		if ((out = open_tmp(a)) < 0)
			snprintf(err, errlen, "temporary file: %s",
			    strerror(errno));
		sink = out;
		if (out >= 0 && apply_rdelta(fd, chain[n], delta_sink_fd,
		    &sink, err, errlen) != 0) {
			close(out);
			out = -1;
		}
		close(fd);
		fd = out;
		if (fd >= 0)
			lseek(fd, 0, SEEK_SET);
	}
	return fd;
}

/* An fd open on the content of path at version k, at offset 0. */
int
archive_reader_content(struct archive_reader *r, size_t k, const struct ment *e, char *err,
    size_t errlen)
{
	char **chain;
	size_t nchain;
	int fd;

	fd = content_base(r, k, e, &chain, &nchain, err, errlen);
	fd = walk_back(r->a, fd, chain, nchain, 0, err, errlen);
	free_chain(chain, nchain);
	return fd;
}

/* What the last reverse delta of a chain writes, when it goes straight
 * to the restored file: hashed on the way. */
struct hashing_sink {
	struct hash h;
	int64_t total;
	int out;
};

static int
hashing_sink_write(void *arg, const void *p, size_t n)
{
	struct hashing_sink *hs = arg;

	hash_update(&hs->h, p, n);
	hs->total += (int64_t)n;
	return hs->out >= 0 ? fs_write_all(hs->out, p, n) : 0;
}

static int
check_hash(const struct ment *e, const char *version, int64_t total,
    const char *hex, char *err, size_t errlen)
{
	if (total == e->size && strcmp(hex, e->sha) == 0)
		return 0;
	snprintf(err, errlen, "%s of version %s does not match its SHA-256 "
	    "(rebuilt %lld bytes, %.12s...; the manifest says %lld bytes, "
	    "%.12s...)", e->path, version, (long long)total, hex,
	    (long long)e->size, e->sha);
	return -1;
}

/* Copy the rebuilt content of e into out, hashing it; 0 when it matches
 * the manifest. */
static int
copy_verified(int in, int out, const struct ment *e, const char *version,
    char *err, size_t errlen)
{
	char buf[1 << 16], hex[HASH_HEX_SIZE];
	struct hashing_sink hs = { .out = out };
	ssize_t n;

	hash_init(&hs.h);
	while ((n = read(in, buf, sizeof buf)) > 0) {
		if (hashing_sink_write(&hs, buf, (size_t)n) != 0) {
			hash_abort(&hs.h);
			snprintf(err, errlen, "%s: writing: %s", e->path,
			    strerror(errno));
			return -1;
		}
	}
	hash_final(&hs.h, hex);
	if (n < 0) {
		snprintf(err, errlen, "%s: reading: %s", e->path,
		    strerror(errno));
		return -1;
	}
	return check_hash(e, version, hs.total, hex, err, errlen);
}

/* The content of e at version k into out (or only hashed when out is
 * -1); 0 when it matches the manifest.  The last reverse delta of the
 * chain writes into out directly, not through a temporary file. */
static int
reader_copy(struct archive_reader *r, size_t k, const struct ment *e,
    int out, char *err, size_t errlen)
{
	char **chain, hex[HASH_HEX_SIZE];
	struct hashing_sink hs = { .out = out };
	size_t nchain;
	int fd, rc;

	fd = content_base(r, k, e, &chain, &nchain, err, errlen);
	fd = walk_back(r->a, fd, chain, nchain, 1, err, errlen);
	if (fd < 0)
		rc = -1;
	else if (nchain == 0)
		rc = copy_verified(fd, out, e, r->a->ids[k], err, errlen);
	else {
		hash_init(&hs.h);
		rc = apply_rdelta(fd, chain[0], hashing_sink_write, &hs, err,
		    errlen);
		hash_final(&hs.h, hex);
		if (rc == 0)
			rc = check_hash(e, r->a->ids[k], hs.total, hex, err,
			    errlen);
	}
	if (fd >= 0)
		close(fd);
	free_chain(chain, nchain);
	return rc;
}

struct archive_reader *
archive_reader_new(const struct archive *a, char *err, size_t errlen)
{
	struct archive_reader *r = xcalloc(1, sizeof *r);
	char *p = archive_path(a, "current");

	r->a = a;
	r->ms = xcalloc(a->n ? a->n : 1, sizeof *r->ms);
	r->curfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(p);
	if (r->curfd < 0 && a->n > 0) {
		snprintf(err, errlen, "%s/current: %s", a->dir,
		    strerror(errno));
		archive_reader_free(r);
		return NULL;
	}
	return r;
}

void
archive_reader_free(struct archive_reader *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->a->n; i++)
		manifest_free(r->ms[i]);
	free(r->ms);
	if (r->curfd >= 0)
		close(r->curfd);
	free(r);
}

/* The entries of m under sub ("" for all), with paths relative to it. */
static struct manifest *
subtree(const struct manifest *m, const char *sub, const struct ment **root)
{
	struct manifest *t = xcalloc(1, sizeof *t);
	size_t i, n = strlen(sub);

	*root = NULL;
	t->e = xcalloc(m->n ? m->n : 1, sizeof *t->e);
	for (i = 0; i < m->n; i++) {
		const struct ment *e = &m->e[i];
		if (n > 0 && strcmp(e->path, sub) == 0) {
			*root = e;
			continue;
		}
		if (n > 0 && (strncmp(e->path, sub, n) != 0 ||
		    e->path[n] != '/'))
			continue;
		t->e[t->n] = *e;
		t->e[t->n].path = xstrdup(e->path + (n ? n + 1 : 0));
		t->e[t->n].target = e->target ? xstrdup(e->target) : NULL;
		t->n++;
	}
	return t;
}

/* The files of a restore, on RESTORE_THREADS threads: each takes the
 * next file of the list.  The directories are made before, their times
 * set after. */
#define RESTORE_THREADS 2

struct restore_files {
	struct archive_reader *r;
	size_t index;
	const struct manifest *m, *t;
	const char *sub, *dest;
	int destfd;
	size_t *files, nfiles;
	atomic_size_t next;
	atomic_int failed;
	pthread_mutex_t mu;
	char err[1024];		/* the first failure */
};

static int
restore_file(struct restore_files *rf, const struct ment *e, char *err,
    size_t errlen)
{
	const struct ment *orig;
	const char *base;
	char *full;
	int dfd, out, rc;

	if ((dfd = fs_open_parent(rf->destfd, e->path, &base)) < 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		return -1;
	}
	full = *rf->sub ? xasprintf("%s/%s", rf->sub, e->path) :
	    xstrdup(e->path);
	orig = manifest_find(rf->m, full);
	free(full);
	out = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	close(dfd);
	if (out < 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		return -1;
	}
	rc = reader_copy(rf->r, rf->index, orig, out, err, errlen);
	if (close(out) != 0 && rc == 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		rc = -1;
	}
	return rc;
}

static void *
restore_files_run(void *arg)
{
	struct restore_files *rf = arg;
	char err[1024];
	size_t i;

	while (!atomic_load(&rf->failed) &&
	    (i = atomic_fetch_add(&rf->next, 1)) < rf->nfiles) {
		err[0] = '\0';
		if (restore_file(rf, &rf->t->e[rf->files[i]], err,
		    sizeof err) == 0)
			continue;
		pthread_mutex_lock(&rf->mu);
		if (!atomic_load(&rf->failed)) {
			snprintf(rf->err, sizeof rf->err, "%s", err[0] ? err :
			    "restore failed");
			atomic_store(&rf->failed, 1);
		}
		pthread_mutex_unlock(&rf->mu);
	}
	return NULL;
}

int
archive_restore(const struct archive *a, size_t index, const char *sub,
    const char *dest, char *err, size_t errlen)
{
	struct archive_reader *r;
	const struct manifest *m;
	struct manifest *t = NULL;
	const struct ment *e, *root = NULL;
	struct restore_files rf;
	pthread_t th[RESTORE_THREADS];
	const char *base;
	int destfd = -1, dfd, out, rc = -1;
	size_t i, n;
	DIR *d;

	err[0] = '\0';
	if ((r = archive_reader_new(a, err, errlen)) == NULL)
		return -1;
	if ((m = archive_reader_manifest(r, index, err, errlen)) == NULL)
		goto out;
	if (sub == NULL)
		sub = "";
	t = subtree(m, sub, &root);
	if (*sub != '\0' && root == NULL) {
		snprintf(err, errlen, "version %s has no %s", a->ids[index],
		    sub);
		goto out;
	}
	/* A single file or symlink goes to dest itself. */
	if (root != NULL && root->type != MENT_DIR) {
		struct manifest one = { .e = (struct ment *)root, .n = 1 };
		char *slash, *parent = xstrdup(dest);
		if ((slash = strrchr(parent, '/')) != NULL)
			*(slash == parent ? slash + 1 : slash) = '\0';
		else
			strcpy(parent, ".");
		if (fs_exists(dest)) {
			snprintf(err, errlen, "%s exists; restore writes a "
			    "file only where there is none", dest);
			free(parent);
			goto out;
		}
		destfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(parent);
		if (destfd < 0) {
			snprintf(err, errlen, "%s: %s", dest, strerror(errno));
			goto out;
		}
		base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
		if (root->type == MENT_LINK)
			rc = symlinkat(root->target, destfd, base);
		else {
			out = openat(destfd, base, O_WRONLY | O_CREAT |
			    O_EXCL | O_CLOEXEC, 0600);
			rc = out < 0 ? -1 : reader_copy(r, index, root, out,
			    err, errlen);
			if (rc == 0)
				rc = fsync(out);
			if (out >= 0)
				close(out);
		}
		if (rc != 0 && err[0] == '\0')
			snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		if (rc == 0) {
			one.e[0].path = (char *)base;
			rc = sync_apply_meta(destfd, &one, err, errlen);
			one.e[0].path = root->path;
		}
		goto out;
	}
	if (mkdir(dest, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		goto out;
	}
	if ((d = opendir(dest)) == NULL) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		goto out;
	}
	n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	if (n > 2) {
		snprintf(err, errlen, "%s is not empty; restore writes into an "
		    "absent or empty directory", dest);
		goto out;
	}
	if ((destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		goto out;
	}
	/* The threads read the manifests: all they need is loaded first (a
	 * file's history is looked up in every newer version's). */
	for (i = index + 1; i < a->n; i++)
		if (archive_reader_manifest(r, i, err, errlen) == NULL)
			goto out;
	memset(&rf, 0, sizeof rf);
	rf.files = xcalloc(t->n ? t->n : 1, sizeof *rf.files);
	for (i = 0; i < t->n; i++) {
		e = &t->e[i];
		if (e->type == MENT_FILE) {
			rf.files[rf.nfiles++] = i;
			continue;
		}
		if ((dfd = fs_open_parent(destfd, e->path, &base)) < 0) {
			snprintf(err, errlen, "%s/%s: %s", dest, e->path,
			    strerror(errno));
			free(rf.files);
			goto out;
		}
		rc = e->type == MENT_DIR ? mkdirat(dfd, base, 0700) :
		    symlinkat(e->target, dfd, base);
		if (rc != 0)
			snprintf(err, errlen, "%s/%s: %s", dest, e->path,
			    strerror(errno));
		close(dfd);
		if (rc != 0) {
			free(rf.files);
			goto out;
		}
	}
	rf.r = r;
	rf.index = index;
	rf.m = m;
	rf.t = t;
	rf.sub = sub;
	rf.dest = dest;
	rf.destfd = destfd;
	pthread_mutex_init(&rf.mu, NULL);
	for (n = 0; n + 1 < RESTORE_THREADS && rf.nfiles > 1; n++)
		if (pthread_create(&th[n], NULL, restore_files_run, &rf) != 0)
			break;
	restore_files_run(&rf);
	while (n-- > 0)
		pthread_join(th[n], NULL);
	pthread_mutex_destroy(&rf.mu);
	free(rf.files);
	if (atomic_load(&rf.failed)) {
		snprintf(err, errlen, "%s", rf.err);
		rc = -1;
		goto out;
	}
	rc = sync_apply_meta(destfd, t, err, errlen);
	if (rc == 0 && root != NULL) {
		struct timespec ts[2];
		ts[0].tv_sec = root->mtime_sec;
		ts[0].tv_nsec = root->mtime_nsec;
		ts[1] = ts[0];
		if (fchmod(destfd, root->mode) != 0 ||
		    futimens(destfd, ts) != 0) {
			snprintf(err, errlen, "%s: %s", dest, strerror(errno));
			rc = -1;
		}
	}
	/* One syncfs() makes every file and directory written durable, where
	 * an fsync() a file would cost a journal commit each. */
	if (rc == 0 && syncfs(destfd) != 0) {
		snprintf(err, errlen, "%s: syncfs: %s", dest, strerror(errno));
		rc = -1;
	}
out:
	if (rc != 0 && err[0] == '\0')
		snprintf(err, errlen, "restore failed");
	if (destfd >= 0)
		close(destfd);
	manifest_free(t);
	archive_reader_free(r);
	return rc;
}

int
archive_verify(const struct archive *a, size_t index, archive_bad_fn bad,
    void *arg, int64_t *files, int64_t *bytes)
{
	struct archive_reader *r;
	const struct manifest *m;
	const struct ment *e;
	char err[1024], target[4096];
	struct stat st;
	int nbad = 0;
	ssize_t n;
	size_t i;

	*files = *bytes = 0;
	err[0] = '\0';
	if ((r = archive_reader_new(a, err, sizeof err)) == NULL ||
	    (m = archive_reader_manifest(r, index, err, sizeof err)) == NULL) {
		bad(arg, a->ids[index], "manifest", err);
		archive_reader_free(r);
		return 1;
	}
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (e->type != MENT_FILE) {
			/* The newest version's plain tree must hold the
			 * directories and symlinks too. */
			if (index + 1 != a->n)
				continue;
			if (fstatat(r->curfd, e->path, &st,
			    AT_SYMLINK_NOFOLLOW) != 0)
				snprintf(err, sizeof err, "current/%s: %s",
				    e->path, strerror(errno));
			else if (e->type == MENT_DIR && !S_ISDIR(st.st_mode))
				snprintf(err, sizeof err, "current/%s is not a "
				    "directory", e->path);
			else if (e->type == MENT_LINK && (!S_ISLNK(st.st_mode) ||
			    (n = readlinkat(r->curfd, e->path, target,
			    sizeof target - 1)) < 0 || (target[n] = '\0',
			    strcmp(target, e->target) != 0)))
				snprintf(err, sizeof err, "current/%s: not the "
				    "symlink the manifest says", e->path);
			else
				continue;
			bad(arg, a->ids[index], e->path, err);
			nbad++;
			continue;
		}
		err[0] = '\0';
		if (reader_copy(r, index, e, -1, err, sizeof err) != 0) {
			bad(arg, a->ids[index], e->path, err);
			nbad++;
		} else {
			(*files)++;
			*bytes += e->size;
		}
	}
	archive_reader_free(r);
	return nbad;
}
