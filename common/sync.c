#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "delta.h"
#include "fault.h"
#include "fsutil.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "manifest.h"
#include "sync.h"
#include "worker.h"
#include "xmalloc.h"

struct writer {
	int fd;
	struct hash h;
	int64_t written;
	int64_t limit;
	int64_t wire;		/* bytes received */
	int overflow;
	struct delta_patch *patch;
	int savefd;		/* a copy of the delta, or -1 */
	int save_failed;
	char err[256];
	int failed;
};

static int
writer_sink(void *arg, const void *p, size_t n)
{
	struct writer *w = arg;

	if (fault_enospc("staging-write"))
		return -1;
	if (w->written + (int64_t)n > w->limit) {
		w->overflow = 1;
		errno = EFBIG;
		return -1;
	}
	hash_update(&w->h, p, n);
	w->written += (int64_t)n;
	return fs_write_all(w->fd, p, n);
}

/* Reply bytes of a whole-file GET, or of a delta to patch with. */
static int
writer_data(void *arg, struct evbuffer *chunk)
{
	struct writer *w = arg;
	struct evbuffer_iovec v[8];
	int i, n;

	if (w->failed)
		return -1;
	w->wire += (int64_t)evbuffer_get_length(chunk);
	n = evbuffer_peek(chunk, -1, NULL, v, 8);
	if (n > 8) {
		/* More segments than we peeked: linearize what is there. */
		size_t len = evbuffer_get_length(chunk);
		v[0].iov_base = evbuffer_pullup(chunk, -1);
		v[0].iov_len = len;
		n = 1;
	}
	for (i = 0; i < n; i++) {
		if (w->patch != NULL) {
			if (w->savefd >= 0 && !w->save_failed &&
			    fs_write_all(w->savefd, v[i].iov_base,
			    v[i].iov_len) != 0)
				w->save_failed = 1;
			if (delta_patch_feed(w->patch, v[i].iov_base,
			    v[i].iov_len, w->err, sizeof w->err) != 0) {
				w->failed = 1;
				return -1;
			}
		} else if (writer_sink(w, v[i].iov_base, v[i].iov_len) != 0) {
			snprintf(w->err, sizeof w->err, "%s", w->overflow ?
			    "the peer sent more bytes than the manifest says" :
			    strerror(errno));
			w->failed = 1;
			return -1;
		}
	}
	return 0;
}

/* What the last sync saw of a file's changes: the block size its delta
 * used and the share of the file that came as literal data, in parts per
 * million.  Kept in o->hints between syncs, sorted by path. */
struct hint {
	char *path;
	uint32_t block, ppm;
};

struct hints {
	struct hint *h;
	size_t n, cap;
};

#define HINTS_MAGIC "understudy-delta-hints 1\n"

static void
hints_add(struct hints *hs, const char *path, uint32_t block, uint32_t ppm)
{
	if (hs->n == hs->cap) {
		hs->cap = hs->cap ? hs->cap * 2 : 64;
		hs->h = xreallocarray(hs->h, hs->cap, sizeof *hs->h);
	}
	hs->h[hs->n].path = xstrdup(path);
	hs->h[hs->n].block = block;
	hs->h[hs->n].ppm = ppm;
	hs->n++;
}

static void
hints_free(struct hints *hs)
{
	size_t i;

	for (i = 0; i < hs->n; i++)
		free(hs->h[i].path);
	free(hs->h);
	memset(hs, 0, sizeof *hs);
}

/* Hints only make deltas smaller: a damaged file is dropped, whole. */
static void
hints_load(struct hints *hs, const char *file)
{
	char *buf, *p, *nl, *end, *path;
	unsigned long block, ppm;
	size_t len;

	if (file == NULL || fs_read_file(file, 64 << 20, &buf, &len) != 0)
		return;
	if (len < strlen(HINTS_MAGIC) || memcmp(buf, HINTS_MAGIC,
	    strlen(HINTS_MAGIC)) != 0 || buf[len - 1] != '\n')
		goto bad;
	for (p = buf + strlen(HINTS_MAGIC); p < buf + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		errno = 0;
		block = strtoul(p, &end, 10);
		if (errno || *end != ' ' || block < DELTA_BLOCK_MIN ||
		    block > DELTA_BLOCK_MAX)
			goto bad;
		ppm = strtoul(end + 1, &end, 10);
		if (errno || *end != ' ' || ppm > 1000000 || end + 1 >= nl ||
		    (path = manifest_decode(end + 1, (size_t)(nl - end - 1))) ==
		    NULL)
			goto bad;
		if (hs->n > 0 && strcmp(hs->h[hs->n - 1].path, path) >= 0) {
			free(path);
			goto bad;
		}
		hints_add(hs, path, (uint32_t)block, (uint32_t)ppm);
		free(path);
	}
	free(buf);
	return;
bad:
	log_warnx("%s is damaged; deltas start afresh", file);
	hints_free(hs);
	free(buf);
}

static const struct hint *
hints_find(const struct hints *hs, const char *path)
{
	size_t lo = 0, hi = hs->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(path, hs->h[mid].path)) == 0)
			return &hs->h[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void
hints_save(const struct hints *hs, const char *file)
{
	struct evbuffer *b = evbuffer_new();
	size_t i;

	evbuffer_add(b, HINTS_MAGIC, strlen(HINTS_MAGIC));
	for (i = 0; i < hs->n; i++) {
		evbuffer_add_printf(b, "%u %u ", hs->h[i].block, hs->h[i].ppm);
		manifest_encode(b, hs->h[i].path);
		evbuffer_add(b, "\n", 1);
	}
	if (fs_write_atomic(file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b)) != 0)
		log_warn("%s", file);
	evbuffer_free(b);
}

struct syncer {
	const struct sync_opts *o;
	struct hints old, now;		/* delta hints: last sync's, this one's */
	int resuming;
	struct http_client *hc;
	int stagefd;
	int basefd;
	struct sync_stats *st;
	char *err;
	size_t errlen;
	int gone;
	int64_t wire;		/* of the last delta */
	struct ahead *ahead;	/* or NULL */
};

/* Checking the base files that will be linked (verify_base) on a second
 * thread: it takes them from the end of the manifest backwards, while the
 * sync goes forwards, until they meet.  Each entry is taken once. */
enum { AHEAD_FREE, AHEAD_TAKEN, AHEAD_OK, AHEAD_BAD };

struct ahead {
	const struct syncer *s;
	const struct manifest *m;
	atomic_uchar *state;		/* per entry of m */
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t t;
};

static int base_intact(int, const struct ment *);

/* Whether an unchanged file may be a link to its base: same metadata. */
static int
linkable(const struct ment *be, const struct ment *e)
{
	return be->mode == e->mode && be->mtime_sec == e->mtime_sec &&
	    be->mtime_nsec == e->mtime_nsec;
}

/* The base entry of e, when e is a file the sync will link from it. */
static const struct ment *
link_candidate(const struct syncer *s, const struct ment *e)
{
	const struct ment *be;

	if (e->type != MENT_FILE || s->o->base_m == NULL ||
	    (be = manifest_find(s->o->base_m, e->path)) == NULL ||
	    be->type != MENT_FILE)
		return NULL;
	return strcmp(be->sha, e->sha) == 0 && linkable(be, e) ? be : NULL;
}

static void *
ahead_run(void *arg)
{
	struct ahead *a = arg;
	const struct ment *e, *be;
	unsigned char want;
	size_t i = a->m->n;
	int fd, ok;

	while (i-- > 0 && !atomic_load(&a->stop) && !worker_stopping()) {
		e = &a->m->e[i];
		if ((be = link_candidate(a->s, e)) == NULL)
			continue;
		want = AHEAD_FREE;
		if (!atomic_compare_exchange_strong(&a->state[i], &want,
		    AHEAD_TAKEN))
			break;		/* the sync got here: they met */
		fd = fs_open_beneath(a->s->basefd, be->path, O_RDONLY, 0);
		ok = fd >= 0 && base_intact(fd, e);
		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&a->mu);
		atomic_store(&a->state[i], ok ? AHEAD_OK : AHEAD_BAD);
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	return NULL;
}

static void
ahead_start(struct syncer *s, const struct manifest *m)
{
	struct ahead *a;

	if (!s->o->verify_base || !s->o->link_unchanged ||
	    s->o->base_m == NULL || s->basefd < 0 || m->n < 2)
		return;
	a = xcalloc(1, sizeof *a);
	a->s = s;
	a->m = m;
	a->state = xcalloc(m->n, sizeof *a->state);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->t, NULL, ahead_run, a) != 0) {
		free(a->state);
		free(a);
		return;
	}
	s->ahead = a;
}

static void
ahead_stop(struct syncer *s)
{
	struct ahead *a = s->ahead;

	if (a == NULL)
		return;
	atomic_store(&a->stop, 1);
	pthread_join(a->t, NULL);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a->state);
	free(a);
	s->ahead = NULL;
}

/* Whether the base file of e (at bfd) holds what the manifest says:
 * checked here, or by the thread ahead. */
static int
base_checked(struct syncer *s, const struct ment *e, int bfd)
{
	struct ahead *a = s->ahead;
	unsigned char st = AHEAD_FREE;
	size_t i;

	if (a == NULL || e < a->m->e || e >= a->m->e + a->m->n)
		return base_intact(bfd, e);
	i = (size_t)(e - a->m->e);
	if (atomic_compare_exchange_strong(&a->state[i], &st, AHEAD_TAKEN))
		return base_intact(bfd, e);
	pthread_mutex_lock(&a->mu);
	while ((st = atomic_load(&a->state[i])) == AHEAD_TAKEN)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
	return st == AHEAD_OK;
}

static char *
route(const struct syncer *s, const char *what, const char *path)
{
	char *enc, *r;

	if (path == NULL)
		return xasprintf("/v1/sources/%s/versions/%s/%s",
		    s->o->source, s->o->version, what);
	enc = evhttp_uriencode(path, -1, 0);
	r = xasprintf("/v1/sources/%s/versions/%s/%s?path=%s",
	    s->o->source, s->o->version, what, enc);
	free(enc);
	return r;
}

static int
call_failed(struct syncer *s, struct http_call *c, const char *what)
{
	char d[600];

	http_call_describe(c, d, sizeof d);
	if (c->status == 404 || c->status == 410)
		s->gone = 1;
	snprintf(s->err, s->errlen, "%s: %s", what, d);
	return -1;
}

static int
fetch_manifest(struct syncer *s, struct manifest **out)
{
	struct http_call c;
	char *path = route(s, "manifest", NULL), perr[512];
	int rc = -1;

	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.max_reply = MANIFEST_MAX_BYTES;
	if (http_client_call(s->hc, &c) != 0 || c.status != 200)
		call_failed(s, &c, "fetching the manifest");
	else if (manifest_parse((const char *)evbuffer_pullup(c.reply, -1),
	    evbuffer_get_length(c.reply), out, perr, sizeof perr) != 0)
		snprintf(s->err, s->errlen, "manifest of version %s from %s: "
		    "%s", s->o->version, s->o->url, perr);
	else if (strcmp((*out)->source, s->o->source) != 0 ||
	    strcmp((*out)->version, s->o->version) != 0) {
		snprintf(s->err, s->errlen, "%s sent the manifest of %s %s "
		    "when asked for %s %s", s->o->url, (*out)->source,
		    (*out)->version, s->o->source, s->o->version);
		manifest_free(*out);
		*out = NULL;
	} else
		rc = 0;
	http_call_clear(&c);
	free(path);
	return rc;
}

/* Open a new file in the staging tree for writing. */
static int
stage_create(struct syncer *s, const char *path)
{
	int fd = fs_open_beneath(s->stagefd, path, O_WRONLY | O_CREAT |
	    O_TRUNC, 0600);

	if (fd < 0)
		snprintf(s->err, s->errlen, "staging %s: %s", path,
		    strerror(errno));
	return fd;
}

static int
check_written(struct syncer *s, struct writer *w, const struct ment *e,
    const char *how)
{
	char hex[HASH_HEX_SIZE];

	hash_final(&w->h, hex);
	if (w->written != e->size || strcmp(hex, e->sha) != 0) {
		snprintf(s->err, s->errlen, "%s (%s): got %lld bytes with "
		    "SHA-256 %.12s..., the manifest says %lld bytes, %.12s...",
		    e->path, how, (long long)w->written, hex,
		    (long long)e->size, e->sha);
		return -1;
	}
	return 0;
}

static int
fetch_whole(struct syncer *s, const struct ment *e)
{
	struct http_call c;
	struct writer w;
	char *path;
	int rc = -1;

	memset(&w, 0, sizeof w);
	if ((w.fd = stage_create(s, e->path)) < 0)
		return -1;
	w.limit = e->size;
	hash_init(&w.h);
	path = route(s, "file", e->path);
	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.cancel = worker_stopping;
	c.on_data = writer_data;
	c.data_arg = &w;
	if (http_client_call(s->hc, &c) != 0 || c.status != 200) {
		hash_abort(&w.h);
		call_failed(s, &c, e->path);
	} else if (w.failed) {
		hash_abort(&w.h);
		snprintf(s->err, s->errlen, "writing %s/%s: %s", s->o->staging,
		    e->path, w.err);
	} else if (check_written(s, &w, e, "whole file") == 0)
		rc = 0;
	s->st->received += w.wire;
	if (rc == 0)
		s->st->whole++;
	http_call_clear(&c);
	free(path);
	close(w.fd);
	return rc;
}

/* Where a pull-backup keeps the forward delta that made a file from its
 * base: named by both hashes, so a name always means the same content. */
static char *
stored_name(const struct syncer *s, const struct ment *be,
    const struct ment *e, const char *suffix)
{
	return xasprintf("%s/%s.%s.delta%s", s->o->deltas_dir, be->sha,
	    e->sha, suffix);
}

/* Make e in staging by patching basefd with the delta call c brings: 1 when
 * done and verified, 0 when the caller should try another way, -1 when
 * fatal.  With a non-negative savefd the delta is kept there too. */
static int
patch_with(struct syncer *s, const struct ment *e, int basefd,
    struct http_call *c, const char *how, int savefd)
{
	struct writer w;
	int rc = 0;

	memset(&w, 0, sizeof w);
	if ((w.fd = stage_create(s, e->path)) < 0)
		return -1;
	w.limit = e->size;
	w.savefd = savefd;
	hash_init(&w.h);
	w.patch = delta_patch_new(basefd, writer_sink, &w);
	c->cancel = worker_stopping;
	c->on_data = writer_data;
	c->data_arg = &w;
	if (http_client_call(s->hc, c) != 0 || (c->status != 200 &&
	    c->status != 204)) {
		call_failed(s, c, e->path);
		rc = s->gone || c->status == 401 || c->status == 0 ? -1 : 0;
		hash_abort(&w.h);
	} else if (c->status == 204) {
		hash_abort(&w.h);	/* nothing stored: ask another way */
	} else if (w.failed ||
	    delta_patch_finish(w.patch, w.err, sizeof w.err) != 0) {
		log_warnx("%s of %s: %s; fetching it another way", how,
		    e->path, w.overflow ? "patched file larger than the "
		    "manifest says" : w.err);
		hash_abort(&w.h);
	} else if (check_written(s, &w, e, how) == 0)
		rc = w.save_failed ? 2 : 1;
	else
		log_warnx("%s; fetching it another way", s->err);
	s->st->received += w.wire;
	if (rc > 0) {
		s->st->deltas++;
		s->wire = w.wire;
	}
	delta_patch_free(w.patch);
	close(w.fd);
	return rc;
}

/* The delta the pull-backup kept when it pulled this file from the very
 * base we hold: no signature to compute or send, no delta to compute. */
static int
fetch_stored(struct syncer *s, const struct ment *e, const struct ment *be,
    const struct hint *h, int basefd)
{
	struct http_call c;
	char *path, *r = route(s, "delta", e->path);
	int rc;

	path = xasprintf("%s&from=%s", r, be->sha);
	free(r);
	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	rc = patch_with(s, e, basefd, &c, "stored delta", -1);
	if (rc > 0) {
		s->st->stored++;
		if (h != NULL)
			hints_add(&s->now, e->path, h->block, (uint32_t)(
			    s->wire >= e->size ? 1000000 :
			    s->wire * 1000000 / e->size));
	}
	http_call_clear(&c);
	free(path);
	return rc < 0 ? -1 : rc > 0;
}

/* The block size a delta of a file of size bytes uses, given its hint. */
static size_t
block_for(int64_t size, const struct hint *h)
{
	return h != NULL ? delta_block_choose(size, h->block, h->ppm / 1e6) :
	    delta_block_default(size);
}

/* A signature made ahead (sync_presign_run) of content sha with blocks of
 * block bytes: its name in the directory, and its path. */
#define PRESIGNED_BASE_MAX (HASH_HEX_SIZE + 32)

static void
presigned_base(char buf[PRESIGNED_BASE_MAX], const char *sha, size_t block)
{
	snprintf(buf, PRESIGNED_BASE_MAX, "%s.%zu.sig", sha, block);
}

static char *
presigned_name(const char *dir, const char *sha, size_t block)
{
	char base[PRESIGNED_BASE_MAX];

	presigned_base(base, sha, block);
	return xasprintf("%s/%s", dir, base);
}

/* The signature of a base file: made ahead, if there is one, or now. */
static int
base_signature(struct syncer *s, const struct ment *be, int basefd,
    size_t block, struct evbuffer *sig, char **ahead)
{
	char *buf, serr[256];
	size_t len;

	*ahead = NULL;
	if (s->o->sigs_dir != NULL) {
		*ahead = presigned_name(s->o->sigs_dir, be->sha, block);
		if (fs_read_file(*ahead, DELTA_MAX_SIGNATURE, &buf, &len) ==
		    0) {
			evbuffer_add(sig, buf, len);
			free(buf);
			return 0;
		}
		free(*ahead);
		*ahead = NULL;
	}
	if (delta_signature(basefd, block, delta_sink_evbuffer, sig, serr,
	    sizeof serr) != 0) {
		log_warnx("signature of local %s: %s; fetching it whole",
		    be->path, serr);
		return -1;
	}
	return 0;
}

/* 1: done by delta; 0: could not, fetch whole; -1: fatal. */
static int
fetch_delta(struct syncer *s, const struct ment *e, const struct ment *be,
    const struct hint *h, int basefd)
{
	struct http_call c;
	struct evbuffer *sig = evbuffer_new();
	char *path, *tmp = NULL, *keep, *ahead;
	int rc, savefd = -1;
	size_t siglen, block;

	block = block_for(be->size, h);
	if (base_signature(s, be, basefd, block, sig, &ahead) != 0) {
		evbuffer_free(sig);
		return 0;
	}
	siglen = evbuffer_get_length(sig);
	if (s->o->deltas_dir != NULL) {
		tmp = stored_name(s, be, e, ".tmp");
		savefd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	}
	path = route(s, "delta", e->path);
	http_call_init(&c, "POST", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.body = sig;
	c.content_type = "application/x-librsync-signature";
	rc = patch_with(s, e, basefd, &c, "delta", savefd);
	s->st->sent += (int64_t)siglen;
	if (rc > 0)
		hints_add(&s->now, e->path, (uint32_t)block, (uint32_t)(
		    s->wire >= e->size ? 1000000 : s->wire * 1000000 /
		    e->size));
	if (rc > 0 && ahead != NULL)
		s->st->ahead++;
	if (savefd >= 0) {
		close(savefd);
		keep = stored_name(s, be, e, "");
		if (rc != 1 || rename(tmp, keep) != 0)
			unlink(tmp);
		free(keep);
	}
	free(tmp);
	http_call_clear(&c);
	free(path);
	if (rc == 0 && ahead != NULL) {
		/* Damaged, or not the base's: made now, it may do. */
		log_warnx("the signature made ahead for %s did not serve; "
		    "making it anew", e->path);
		unlink(ahead);
		free(ahead);
		return fetch_delta(s, e, be, h, basefd);
	}
	free(ahead);
	return rc < 0 ? -1 : rc > 0;
}

/* The base copy's file, when its manifest says it is a file. */
static int
open_base(struct syncer *s, const struct ment *be)
{
	if (s->basefd < 0 || be == NULL || be->type != MENT_FILE)
		return -1;
	return fs_open_beneath(s->basefd, be->path, O_RDONLY, 0);
}

/* Whether the base file still holds what its manifest says. */
static int
base_intact(int fd, const struct ment *e)
{
	char hex[HASH_HEX_SIZE];

	return hash_fd(fd, hex) == e->size && strcmp(hex, e->sha) == 0 &&
	    lseek(fd, 0, SEEK_SET) == 0;
}

static int
copy_unchanged(struct syncer *s, const struct ment *e, const struct ment *be,
    int bfd)
{
	const char *bname, *sname;
	int bdir, sdir, rc;
	struct writer w;
	char buf[1 << 16];
	ssize_t n;

	if (s->o->link_unchanged && linkable(be, e)) {
		if (s->o->verify_base && !base_checked(s, e, bfd)) {
			log_warnx("local copy of %s does not match its "
			    "manifest; fetching it whole", e->path);
			return 0;
		}
		bdir = fs_open_parent(s->basefd, be->path, &bname);
		sdir = fs_open_parent(s->stagefd, e->path, &sname);
		rc = bdir >= 0 && sdir >= 0 ?
		    linkat(bdir, bname, sdir, sname, 0) : -1;
		if (bdir >= 0)
			close(bdir);
		if (sdir >= 0)
			close(sdir);
		if (rc == 0) {
			s->st->unchanged++;
			return 1;
		}
	}
	/* Copy, hashing on the way: the local copy must still be right. */
	memset(&w, 0, sizeof w);
	if ((w.fd = stage_create(s, e->path)) < 0)
		return -1;
	w.limit = e->size;
	hash_init(&w.h);
	while ((n = read(bfd, buf, sizeof buf)) > 0) {
		if (writer_sink(&w, buf, (size_t)n) != 0)
			break;
	}
	if (n != 0 || check_written(s, &w, e, "local copy") != 0) {
		if (n != 0)
			hash_abort(&w.h);
		log_warnx("local copy of %s does not match its manifest; "
		    "fetching it whole", e->path);
		close(w.fd);
		return 0;
	}
	close(w.fd);
	s->st->unchanged++;
	return 1;
}

/* A file a pull cut short already fetched, and verified again now. */
static int
already_staged(struct syncer *s, const struct ment *e)
{
	char hex[HASH_HEX_SIZE];
	struct stat st;
	int fd, ok;

	fd = fs_open_beneath(s->stagefd, e->path, O_RDONLY, 0);
	if (fd < 0)
		return 0;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == e->size && hash_fd(fd, hex) == e->size &&
	    strcmp(hex, e->sha) == 0;
	close(fd);
	return ok;
}

static int
sync_file(struct syncer *s, const struct ment *e)
{
	const struct ment *be = s->o->base_m ?
	    manifest_find(s->o->base_m, e->path) : NULL;
	int bfd, rc = 0;

	const struct hint *h = hints_find(&s->old, e->path);

	if (s->resuming && already_staged(s, e)) {
		s->st->resumed++;
		if (h != NULL)
			hints_add(&s->now, e->path, h->block, h->ppm);
		return 0;
	}
	bfd = open_base(s, be);

	if (bfd >= 0 && strcmp(be->sha, e->sha) == 0) {
		rc = copy_unchanged(s, e, be, bfd);
		if (h != NULL)
			hints_add(&s->now, e->path, h->block, h->ppm);
	}
	else if (bfd >= 0 && e->size > 0) {
		if (s->o->ask_stored)
			rc = fetch_stored(s, e, be, h, bfd);
		if (rc == 0)
			rc = fetch_delta(s, e, be, h, bfd);
	}
	if (bfd >= 0)
		close(bfd);
	if (rc == 0)
		rc = fetch_whole(s, e) == 0 ? 1 : -1;
	return rc < 0 ? -1 : 0;
}

/* Whether the entry at dfd/base already has e's mode and mtime. */
static int
meta_same(int dfd, const char *base, const struct ment *e)
{
	struct stat sb;

	return fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (e->type == MENT_LINK || (sb.st_mode & 07777) == e->mode) &&
	    sb.st_mtim.tv_sec == e->mtime_sec &&
	    sb.st_mtim.tv_nsec == e->mtime_nsec;
}

int
sync_apply_meta(int rootfd, const struct manifest *m, char *err,
    size_t errlen)
{
	const struct ment *e, *pe = NULL;
	struct timespec ts[2];
	const char *base, *slash;
	size_t i, plen, pelen = 0;
	int dfd = -1, rc;

	for (i = m->n; i-- > 0;) {
		e = &m->e[i];
		/* Siblings come together: their directory is opened once. */
		slash = strrchr(e->path, '/');
		plen = slash != NULL ? (size_t)(slash - e->path) : 0;
		if (dfd >= 0 && plen == pelen &&
		    strncmp(e->path, pe->path, plen) == 0)
			base = slash != NULL ? slash + 1 : e->path;
		else {
			if (dfd >= 0)
				close(dfd);
			if ((dfd = fs_open_parent(rootfd, e->path, &base)) <
			    0) {
				snprintf(err, errlen, "%s: %s", e->path,
				    strerror(errno));
				return -1;
			}
			pe = e;
			pelen = plen;
		}
		/* A file linked from the base copy mostly has them already. */
		if (meta_same(dfd, base, e))
			continue;
		ts[0].tv_sec = e->mtime_sec;
		ts[0].tv_nsec = e->mtime_nsec;
		ts[1] = ts[0];
		rc = 0;
		if (e->type != MENT_LINK)
			rc = fchmodat(dfd, base, e->mode, 0);
		if (rc == 0)
			rc = utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW);
		if (rc != 0) {
			snprintf(err, errlen, "%s: setting mode and mtime: %s",
			    e->path, strerror(errno));
			close(dfd);
			return -1;
		}
	}
	if (dfd >= 0)
		close(dfd);
	return 0;
}

static struct sync_presign *presign_build(const struct syncer *,
    const struct manifest *);

int
sync_run(const struct sync_opts *o, struct manifest **out,
    struct sync_stats *st, int *gone, char *err, size_t errlen)
{
	struct syncer s;
	struct manifest *m = NULL;
	const struct ment *e;
	const char *base;
	size_t i;
	int dfd, rc = -1;
	char *marker = NULL, *mark = NULL, *buf;
	size_t len;

	memset(&s, 0, sizeof s);
	memset(st, 0, sizeof *st);
	s.o = o;
	s.st = st;
	s.err = err;
	s.errlen = errlen;
	s.basefd = s.stagefd = -1;
	*gone = 0;
	*out = NULL;
	if ((s.hc = http_client_new(o->url)) == NULL) {
		snprintf(err, errlen, "bad URL %s", o->url);
		return -1;
	}
	if (fetch_manifest(&s, &m) != 0)
		goto out;
	hints_load(&s.old, o->hints);
	/* A staging tree left by a pull of this very version is resumed;
	 * anything else there is thrown away. */
	marker = xasprintf("%s.version", o->staging);
	mark = xasprintf("%s %s\n", o->source, o->version);
	if (fs_read_file(marker, 256, &buf, &len) == 0) {
		s.resuming = strcmp(buf, mark) == 0 && fs_exists(o->staging);
		free(buf);
	}
	if (!s.resuming && (fs_rm_rf(o->staging) != 0 ||
	    fs_write_atomic(marker, mark, strlen(mark)) != 0)) {
		snprintf(err, errlen, "staging directory %s: %s", o->staging,
		    strerror(errno));
		goto out;
	}
	if (o->deltas_dir != NULL && ((!s.resuming &&
	    fs_rm_rf(o->deltas_dir) != 0) || (mkdir(o->deltas_dir, 0700) != 0 &&
	    errno != EEXIST))) {
		snprintf(err, errlen, "%s: %s", o->deltas_dir,
		    strerror(errno));
		goto out;
	}
	if (s.resuming)
		log_info("resuming the pull of %s %s in %s", o->source,
		    o->version, o->staging);
	if ((mkdir(o->staging, 0700) != 0 && errno != EEXIST) ||
	    (s.stagefd = open(o->staging, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "staging directory %s: %s", o->staging,
		    strerror(errno));
		goto out;
	}
	if (o->base_dir != NULL)
		s.basefd = open(o->base_dir, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
	ahead_start(&s, m);
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (worker_stopping()) {
			snprintf(err, errlen, "stopped: the daemon is shutting "
			    "down");
			goto out;
		}
		if (e->type == MENT_FILE) {
			st->files++;
			st->bytes += e->size;
			if (sync_file(&s, e) != 0)
				goto out;
			fault_point("sync-file");
			continue;
		}
		if ((dfd = fs_open_parent(s.stagefd, e->path, &base)) < 0) {
			snprintf(err, errlen, "staging %s: %s", e->path,
			    strerror(errno));
			goto out;
		}
		if (e->type == MENT_DIR) {
			rc = mkdirat(dfd, base, 0700);
			if (rc != 0 && errno == EEXIST && s.resuming) {
				struct stat sb;
				rc = fstatat(dfd, base, &sb,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISDIR(sb.st_mode) ? 0 : -1;
				errno = EEXIST;
			}
		} else {
			if (s.resuming)
				unlinkat(dfd, base, 0);
			rc = symlinkat(e->target, dfd, base);
		}
		close(dfd);
		if (rc != 0) {
			snprintf(err, errlen, "staging %s: %s", e->path,
			    strerror(errno));
			rc = -1;
			goto out;
		}
		rc = -1;
	}
	if (sync_apply_meta(s.stagefd, m, err, errlen) != 0)
		goto out;
	/* Every file and directory entry must be on disk before a commit
	 * renames the tree into place: one syncfs() does it for all, where
	 * an fsync() per file cost a journal commit each. */
	if (syncfs(s.stagefd) != 0) {
		snprintf(err, errlen, "staging %s: syncfs: %s", o->staging,
		    strerror(errno));
		goto out;
	}
	if (o->hints != NULL)
		hints_save(&s.now, o->hints);
	if (o->presign != NULL && o->sigs_dir != NULL)
		*o->presign = presign_build(&s, m);
	*out = m;
	m = NULL;
	rc = 0;
out:
	ahead_stop(&s);
	hints_free(&s.old);
	hints_free(&s.now);
	*gone = s.gone;
	free(marker);
	free(mark);
	manifest_free(m);
	if (s.stagefd >= 0)
		close(s.stagefd);
	if (s.basefd >= 0)
		close(s.basefd);
	http_client_free(s.hc);
	return rc;
}

struct presign_file {
	char sha[HASH_HEX_SIZE];
	size_t block;
};

struct sync_presign {
	char *dir;
	struct presign_file *f;
	size_t n;
};

static char *
presign_src(const char *dir, const char *sha)
{
	return xasprintf("%s/%s.src", dir, sha);
}

/* What the version just staged (m) has to sign ahead, with the hints
 * this sync made: they are what the next one will read. */
static struct sync_presign *
presign_build(const struct syncer *s, const struct manifest *m)
{
	const char *dir = s->o->sigs_dir, *name;
	struct sync_presign *p;
	const struct ment *e, *be;
	char *src;
	size_t i;
	int pfd, rc;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_warn("%s", dir);
		return NULL;
	}
	p = xcalloc(1, sizeof *p);
	p->dir = xstrdup(dir);
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (e->type != MENT_FILE || e->size < SYNC_PRESIGN_MIN)
			continue;
		be = s->o->base_m != NULL ? manifest_find(s->o->base_m,
		    e->path) : NULL;
		if (be != NULL && be->type == MENT_FILE &&
		    strcmp(be->sha, e->sha) == 0)
			continue;
		if ((pfd = fs_open_parent(s->stagefd, e->path, &name)) < 0)
			continue;
		src = presign_src(dir, e->sha);
		rc = linkat(pfd, name, AT_FDCWD, src, 0);
		close(pfd);
		free(src);
		if (rc != 0)
			continue;	/* EEXIST: the same content twice */
		p->f = xreallocarray(p->f, p->n + 1, sizeof *p->f);
		memcpy(p->f[p->n].sha, e->sha, sizeof p->f[p->n].sha);
		p->f[p->n].block = block_for(e->size, hints_find(&s->now,
		    e->path));
		p->n++;
	}
	return p;
}

static int
presign_sink(void *arg, const void *buf, size_t n)
{
	if (worker_stopping()) {
		errno = ECANCELED;
		return -1;
	}
	return fs_write_all(*(int *)arg, buf, n);
}

/* Whether name in dir is one of p's signatures. */
static int
presign_keeps(const struct sync_presign *p, const char *name)
{
	char want[PRESIGNED_BASE_MAX];
	size_t i;

	for (i = 0; i < p->n; i++) {
		presigned_base(want, p->f[i].sha, p->f[i].block);
		if (strcmp(want, name) == 0)
			return 1;
	}
	return 0;
}

static void *
presign_thread(void *arg)
{
	struct sync_presign *p = arg;
	struct dirent *de;
	char *src, *out, *tmp, err[256];
	size_t i;
	int fd, ofd, rc;
	DIR *d;

	/* Only what the machine leaves idle: a chain may be under way. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	for (i = 0; i < p->n && !worker_stopping(); i++) {
		src = presign_src(p->dir, p->f[i].sha);
		out = presigned_name(p->dir, p->f[i].sha, p->f[i].block);
		tmp = xasprintf("%s.tmp", out);
		fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
		rc = fd >= 0 && ofd >= 0 ? delta_signature_alone(fd,
		    p->f[i].block, presign_sink, &ofd, err, sizeof err) : -1;
		if (fd >= 0)
			close(fd);
		if (ofd >= 0 && close(ofd) != 0)
			rc = -1;
		if (rc != 0 || rename(tmp, out) != 0)
			unlink(tmp);	/* the next sync makes it then */
		unlink(src);
		free(src);
		free(out);
		free(tmp);
	}
	/* The signatures of older versions, and what a stop left. */
	if (!worker_stopping() && (d = opendir(p->dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    !presign_keeps(p, de->d_name))
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	return NULL;
}

void
sync_presign_run(struct sync_presign *p)
{
	pthread_t t;

	if (p == NULL)
		return;
	/* A thread of its own, whose priority can be lowered for good. */
	if (pthread_create(&t, NULL, presign_thread, p) != 0)
		presign_thread(p);
	else
		pthread_join(t, NULL);
	sync_presign_free(p);
}

void
sync_presign_free(struct sync_presign *p)
{
	if (p == NULL)
		return;
	free(p->f);
	free(p->dir);
	free(p);
}
