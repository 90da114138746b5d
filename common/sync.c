/* The sync client (sync.h).  One pass over the version's manifest: each
 * file is resumed (a pull cut short fetched it), linked or copied from the
 * base copy when unchanged, patched with a delta (the one the server kept,
 * else one against a signature posted now), or fetched whole; each way
 * ends with the file hashed and checked against the manifest, and falls
 * back to the next when it does not serve.  A file renamed or moved is
 * found in the base copy by its content (its SHA-256), and one moved and
 * changed is patched against the file of the same name the base had
 * where the version no longer has it.  Then directories and symlinks,
 * modes and mtimes, and one syncfs() for all.  A resumed staging tree is
 * first rid of what the manifest fetched again does not list. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "basecheck.h"
#include "delta.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "hashsink.h"
#include "hints.h"
#include "http.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "sync.h"
#include "timespec.h"
#include "treemeta.h"
#include "wirez.h"
#include "worker.h"
#include "xmalloc.h"

struct syncer {
	const struct sync_opts *o;
	struct hints old, now; /* delta hints: last sync's, this one's */
	int resuming;
	struct http_client *hc;
	int stagefd;
	int basefd;
	struct sync_stats *st;
	char *err;
	size_t errlen;
	int gone;
	int64_t wire;             /* of the last delta */
	struct basecheck *bc;     /* or NULL */
	const struct manifest *m; /* the version's */
	/* The base's files by content, and by file name. */
	struct manifest_shas *by_sha; /* the base's files by content */
	const struct ment **by_name;
	size_t nbase;
	/* Pipelined: what the server said it has staged, and whether it
	 * committed the version. */
	int64_t known;
	int committed;
	struct fs_flusher *fl; /* writeback started as files are written */
	/* The directories the last link went from and to. */
	struct fs_parent link_from, link_to;
};

/* A file being written into staging: from the bytes of a whole-file
 * reply, or patched from a delta's; hashed on the way. */
struct writer {
	struct sync_progress *progress; /* or NULL */
	/* A file resumed from byte from: the reply must start there (206),
	 * or be the whole file, which then replaces what was there. */
	const struct http_call *call;
	int64_t from;
	int checked; /* the reply's status was looked at */
	int nospace; /* a write failed for want of space */
	struct sync_stats *st;
	struct hashsink hs;
	struct delta_patch *patch; /* the reply is a delta, or NULL */
	int64_t wire;              /* bytes received */
	int encoding_checked;      /* the reply's Content-Encoding */
	struct wirez_dec *dec;     /* the reply is zstd: its decoder */
	int savefd;                /* a copy of the delta, or -1 */
	int save_failed;
	char err[256];
	int failed;
	struct fs_flusher *fl;
	int64_t kicked; /* writeback started up to here */
};

static int
writer_sink(void *arg, const void *p, size_t n)
{
	struct writer *w = arg;

	if (fault_enospc("staging-write") ||
	    hashsink_write(&w->hs, p, n) != 0) {
		if (fs_no_room(errno))
			w->nospace = 1;
		return -1;
	}
	if (w->progress != NULL)
		w->progress->done += (long long)n;
	/* The file's offset is hs.n (a resumed file was hashed to its end
	 * first); it went back to 0 if a resume was refused. */
	fs_flusher_wrote(w->fl, w->hs.fd, &w->kicked, w->hs.n, 0);
	return 0;
}

static int
writer_feed(struct writer *w, const void *p, size_t n)
{
	if (w->patch == NULL) {
		if (writer_sink(w, p, n) == 0)
			return 0;
		if (w->hs.overflow)
			snprintf(w->err, sizeof w->err,
			    "the peer sent more "
			    "bytes than the manifest says");
		else
			snprintf(w->err, sizeof w->err, "%s", strerror(errno));
		return -1;
	}
	if (w->savefd >= 0 && !w->save_failed &&
	    fs_write_all(w->savefd, p, n) != 0)
		w->save_failed = 1;
	return delta_patch_feed(w->patch, p, n, w->err, sizeof w->err);
}

/* A resumed file's reply, at its first bytes: from where it was cut
 * (206, from that byte), or whole (200: what was there goes). */
static int
writer_resumed(struct writer *w)
{
	const char *cr;

	w->checked = 1;
	if (w->call->reply_status == PROTO_PARTIAL) {
		cr = evhttp_find_header(evhttp_request_get_input_headers(
					    w->call->req),
		    "Content-Range");
		if (proto_content_range_check(cr, w->from, w->hs.limit) == 0)
			return 0;
		snprintf(w->err, sizeof w->err,
		    "the peer sent Content-Range \"%s\" when asked from "
		    "byte %lld of %lld",
		    cr ? cr : "(none)", (long long)w->from,
		    (long long)w->hs.limit);
		return -1;
	}
	hashsink_abort(&w->hs);
	if (ftruncate(w->hs.fd, 0) != 0 || lseek(w->hs.fd, 0, SEEK_SET) != 0) {
		snprintf(w->err, sizeof w->err, "%s", strerror(errno));
		return -1;
	}
	hashsink_init(&w->hs, w->hs.fd, w->hs.limit);
	w->from = 0;
	return 0;
}

static int
writer_feed_sink(void *arg, const void *p, size_t n)
{
	return writer_feed(arg, p, n);
}

/* At the reply's first bytes: compressed (a decoder between the wire
 * and the writer), or not; an encoding we did not ask for is refused. */
static int
writer_encoding(struct writer *w)
{
	const char *ce = evhttp_find_header(evhttp_request_get_input_headers(
						w->call->req),
	    PROTO_CONTENT_ENCODING);

	w->encoding_checked = 1;
	if (ce == NULL || strcasecmp(ce, "identity") == 0)
		return 0;
	if (!w->call->accept_zstd || strcasecmp(ce, PROTO_ENCODING_ZSTD) != 0) {
		snprintf(w->err, sizeof w->err,
		    "the peer sent the reply as \"%.60s\", not asked for", ce);
		return -1;
	}
	if ((w->dec = wirez_dec_new(writer_feed_sink, w)) == NULL) {
		snprintf(w->err, sizeof w->err, "zstd: cannot start");
		return -1;
	}
	return 0;
}

/* A compressed reply ended where its frame does. */
static int
writer_ended(struct writer *w)
{
	return w->dec == NULL ? 0 :
				wirez_dec_finish(w->dec, w->err, sizeof w->err);
}

/* Reply bytes of a whole-file GET, or of a delta to patch with. */
static int
writer_data(void *arg, struct evbuffer *chunk)
{
	struct writer *w = arg;
	struct evbuffer_iovec v[8];
	int i, n, rc;

	if (w->failed)
		return -1;
	if ((w->from > 0 && !w->checked && writer_resumed(w) != 0) ||
	    (!w->encoding_checked && writer_encoding(w) != 0)) {
		w->failed = 1;
		return -1;
	}
	w->wire += (int64_t)evbuffer_get_length(chunk);
	if (w->progress != NULL)
		w->progress->received += (long long)evbuffer_get_length(chunk);
	/* A few extents at a time, each consumed: a chunk of a chunked
	 * reply may hold more extents than v (evbuffer_peek() then fills v
	 * and says nothing of the rest). */
	while (evbuffer_get_length(chunk) > 0) {
		size_t used = 0;

		n = evbuffer_peek(chunk, -1, NULL, v, 8);
		for (i = 0; i < n && i < 8; i++) {
			rc = w->dec != NULL ?
			    wirez_dec_feed(w->dec, v[i].iov_base, v[i].iov_len,
				w->err, sizeof w->err) :
			    writer_feed(w, v[i].iov_base, v[i].iov_len);
			if (rc != 0) {
				w->failed = 1;
				return -1;
			}
			used += v[i].iov_len;
		}
		evbuffer_drain(chunk, used);
	}
	return 0;
}

/* Open e's file in staging for writing (keep: what is there stays, to be
 * resumed), and a writer on it. */
static int
writer_open(struct syncer *s, struct writer *w, const struct ment *e, int keep)
{
	int fd;

	memset(w, 0, sizeof *w);
	w->savefd = -1;
	w->fl = s->fl;
	w->progress = s->o->progress;
	w->st = s->st;
	fd = fs_open_beneath(s->stagefd, e->path,
	    O_RDWR | O_CREAT | (keep ? 0 : O_TRUNC), 0600);
	if (fd < 0) {
		if (fs_no_room(errno))
			s->st->nospace = 1;
		snprintf(s->err, s->errlen, "staging %s: %s", e->path,
		    strerror(errno));
		return -1;
	}
	hashsink_init(&w->hs, fd, e->size);
	return 0;
}

/* 0 when what was written is e's content. */
static int
writer_check(struct syncer *s, struct writer *w, const struct ment *e,
    const char *how)
{
	char why[200];

	if (hashsink_check(&w->hs, e, why, sizeof why) == 0)
		return 0;
	snprintf(s->err, s->errlen, "%s (%s): got %s", e->path, how, why);
	return -1;
}

static void
writer_close(struct writer *w)
{
	if (w->nospace && w->st != NULL)
		w->st->nospace = 1;
	hashsink_abort(&w->hs);
	delta_patch_free(w->patch);
	wirez_dec_free(w->dec);
	/* The rest of the file, or all of a small one. */
	fs_flusher_wrote(w->fl, w->hs.fd, &w->kicked, w->hs.n, 1);
	close(w->hs.fd);
}

/* Whether an unchanged file may be a link to its base: same metadata. */
static int
linkable(const struct ment *be, const struct ment *e)
{
	return be->mode == e->mode && be->mtime_sec == e->mtime_sec &&
	    be->mtime_nsec == e->mtime_nsec;
}

static const char *
file_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

static int
by_name_cmp(const void *a, const void *b)
{
	const struct ment *x = *(const struct ment *const *)a;
	const struct ment *y = *(const struct ment *const *)b;

	return strcmp(file_name(x->path), file_name(y->path));
}

static void
base_index(struct syncer *s)
{
	const struct manifest *bm = s->o->base_m;
	size_t i, n = 0;

	if (bm == NULL || bm->n == 0)
		return;
	s->by_sha = manifest_shas_new(bm);
	s->by_name = xreallocarray(NULL, bm->n, sizeof *s->by_name);
	for (i = 0; i < bm->n; i++)
		if (bm->e[i].type == MENT_FILE)
			s->by_name[n++] = &bm->e[i];
	s->nbase = n;
	qsort(s->by_name, n, sizeof *s->by_name, by_name_cmp);
}

/* The first of a sorted index not before e by cmp. */
static size_t
lower_bound(const struct ment **v, size_t n, const struct ment *e,
    int (*cmp)(const void *, const void *))
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (cmp(&v[mid], &e) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The base's file with e's content: the one at e's path, else one at
 * another path (renamed, moved), one that can be linked first; or NULL. */
static const struct ment *
base_same(const struct syncer *s, const struct ment *e)
{
	const struct ment *be = NULL;
	const struct ment *const *same;
	size_t i, n;

	if (s->o->base_m != NULL)
		be = manifest_find(s->o->base_m, e->path);
	if (be != NULL && be->type == MENT_FILE && strcmp(be->sha, e->sha) == 0)
		return be;
	if (s->by_sha == NULL)
		return NULL;
	same = manifest_shas_all(s->by_sha, e->sha, &n);
	for (i = 0; i < n; i++)
		if (linkable(same[i], e))
			return same[i];
	return n > 0 ? same[0] : NULL;
}

/* For a file the base does not have at its path: the base's file of the
 * same name at a path the version no longer has (moved, then changed),
 * of a size within a factor of two, the closest; or NULL.  Among the
 * first SYNC_LIKELY_MAX of that name (a name as common as index.html
 * costs no more). */
#define SYNC_LIKELY_MAX 64
static const struct ment *
base_likely(const struct syncer *s, const struct ment *e)
{
	const struct ment *best = NULL, *c;
	int64_t d, bestd = 0;
	size_t i, seen = 0;

	for (i = lower_bound(s->by_name, s->nbase, e, by_name_cmp);
	     i < s->nbase && by_name_cmp(&s->by_name[i], &e) == 0 &&
	     seen++ < SYNC_LIKELY_MAX;
	     i++) {
		c = s->by_name[i];
		if (c->size > 2 * e->size || e->size > 2 * c->size ||
		    manifest_find(s->m, c->path) != NULL)
			continue;
		d = c->size > e->size ? c->size - e->size : e->size - c->size;
		if (best == NULL || d < bestd)
			best = c, bestd = d;
	}
	return best;
}

/* The base entry of e, when e is a file the sync will link from it. */
static const struct ment *
link_candidate(void *arg, const struct ment *e)
{
	const struct syncer *s = arg;
	const struct ment *be;

	if (e->type != MENT_FILE || (be = base_same(s, e)) == NULL)
		return NULL;
	return linkable(be, e) ? be : NULL;
}

static char *
route(const struct syncer *s, enum proto_what what, const char *path,
    const char *from)
{
	return proto_version_route(s->o->source, s->o->version, what, path,
	    from);
}

static int
call_failed(struct syncer *s, struct http_call *c, const char *what)
{
	char d[600];

	http_call_describe(c, d, sizeof d);
	if (c->status == PROTO_UNKNOWN || c->status == PROTO_GONE)
		s->gone = 1;
	snprintf(s->err, s->errlen, "%s: %s", what, d);
	return -1;
}

static int
fetch_manifest(struct syncer *s, struct manifest **out)
{
	struct http_call c;
	char *path = route(s, PROTO_MANIFEST, NULL, NULL), perr[512];
	int rc = -1;

	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.max_reply = MANIFEST_MAX_BYTES;
	c.progress = 1;
	if (http_client_call(s->hc, &c) != 0 || c.status != PROTO_OK)
		call_failed(s, &c, "fetching the manifest");
	else if (manifest_parse((const char *)evbuffer_pullup(c.reply, -1),
		     evbuffer_get_length(c.reply), out, perr, sizeof perr) != 0)
		snprintf(s->err, s->errlen,
		    "manifest of version %s from %s: %s", s->o->version,
		    s->o->url, perr);
	else if (strcmp((*out)->source, s->o->source) != 0 ||
	    strcmp((*out)->version, s->o->version) != 0) {
		snprintf(s->err, s->errlen,
		    "%s sent the manifest of %s %s when asked for %s %s",
		    s->o->url, (*out)->source, (*out)->version, s->o->source,
		    s->o->version);
		manifest_free(*out);
		*out = NULL;
	} else if (s->o->generation > 0 &&
	    (*out)->generation != s->o->generation) {
		snprintf(s->err, s->errlen,
		    "%s sent a manifest of generation %lld for version %s, "
		    "whose event named generation %lld",
		    s->o->url, (long long)(*out)->generation, s->o->version,
		    (long long)s->o->generation);
		manifest_free(*out);
		*out = NULL;
	} else
		rc = 0;
	http_call_clear(&c);
	free(path);
	return rc;
}

/* What a progress reply says: 0, or -1 with the error set. */
static int
progress_take(struct syncer *s, struct evbuffer *reply)
{
	struct doc *d = NULL;
	int64_t staged, entries;
	int committed, rc = -1;
	char perr[256];

	if (doc_parse((const char *)evbuffer_pullup(reply, -1),
		evbuffer_get_length(reply), &d, perr, sizeof perr) != 0)
		snprintf(s->err, s->errlen, "progress of %s %s from %s: %s",
		    s->o->source, s->o->version, s->o->url, perr);
	else if (doc_get_i64(d, PROGRESS_STAGED, &staged) != 0 ||
	    doc_get_i64(d, PROGRESS_ENTRIES, &entries) != 0 ||
	    doc_get_bool(d, PROGRESS_COMMITTED, &committed) != 0 ||
	    entries != (int64_t)s->m->n || staged < 0 || staged > entries)
		snprintf(s->err, s->errlen,
		    "progress of %s %s from %s: the reply's %s, %s and %s do "
		    "not fit a manifest of %zu entries",
		    s->o->source, s->o->version, s->o->url, PROGRESS_STAGED,
		    PROGRESS_ENTRIES, PROGRESS_COMMITTED, s->m->n);
	else {
		s->known = committed ? entries : staged;
		s->committed = committed;
		rc = 0;
	}
	doc_free(d);
	return rc;
}

/* Pipelined: wait until the server has want entries of the version staged
 * (the file at index want - 1 and all before), or, with PROTO_WAIT_ALL,
 * until it committed the version.  0, or -1 with the error set. */
static int
await_server(struct syncer *s, int64_t want)
{
	struct http_call c;
	char *base, *path;
	int rc;

	while (s->o->pipelined && !s->committed &&
	    (want == PROTO_WAIT_ALL || want > s->known)) {
		if (worker_stopping()) {
			snprintf(s->err, s->errlen,
			    "stopped: the daemon is shutting down");
			return -1;
		}
		base = route(s, PROTO_PROGRESS, NULL, NULL);
		if (want == PROTO_WAIT_ALL)
			path = xasprintf("%s?%s=%s", base, PROTO_Q_WAIT,
			    PROTO_WAIT_COMMITTED);
		else
			path = xasprintf("%s?%s=%lld", base, PROTO_Q_WAIT,
			    (long long)want);
		http_call_init(&c, "GET", s->o->url, path, s->o->token,
		    s->o->token_len);
		c.cancel = worker_stopping;
		c.max_reply = 4096;
		c.head_timeout = proto_timeout() + PROTO_PROGRESS_HOLD_SECS;
		if (http_client_call(s->hc, &c) != 0 || c.status != PROTO_OK)
			rc = call_failed(s, &c, "waiting for it to be pulled");
		else
			rc = progress_take(s, c.reply);
		http_call_clear(&c);
		free(path);
		free(base);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Pipelined: wait until the server has e. */
static int
await_entry(struct syncer *s, const struct ment *e)
{
	return await_server(s, (int64_t)(e - s->m->e) + 1);
}

/* What a fetch cut short left of e in staging: its first bytes, taken
 * into w's hash, the file left open at their end; 0 when there is
 * nothing to take (the file is then empty). */
static int64_t
writer_resume(struct syncer *s, struct writer *w, const struct ment *e)
{
	struct stat st;
	int fd = w->hs.fd;

	if (!s->resuming || fstat(fd, &st) != 0 || st.st_size <= 0 ||
	    st.st_size >= e->size)
		goto none;
	w->hs.fd = -1; /* hashed, not written again */
	if (hashsink_read(&w->hs, fd) != 0)
		goto none;
	w->hs.fd = fd; /* the rest is appended */
	return st.st_size;
none:
	hashsink_abort(&w->hs);
	hashsink_init(&w->hs, fd, e->size);
	if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
		log_warn("%s: cannot empty it", e->path);
	return 0;
}

static int
fetch_whole(struct syncer *s, const struct ment *e)
{
	struct http_call c;
	struct writer w;
	char *path, range[48];
	int rc = -1;

	if (writer_open(s, &w, e, s->resuming) != 0)
		return -1;
	path = route(s, PROTO_FILE, e->path, NULL);
	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.cancel = worker_stopping;
	c.on_data = writer_data;
	c.data_arg = &w;
	c.progress = 1;
	c.accept_zstd = s->o->zstd;
	w.call = &c;
	if ((w.from = writer_resume(s, &w, e)) > 0) {
		snprintf(range, sizeof range, "bytes=%lld-", (long long)w.from);
		c.header = "Range";
		c.header_value = range;
		if (w.progress != NULL)
			w.progress->done += w.from;
	}
	if (http_client_call(s->hc, &c) != 0 ||
	    (c.status != PROTO_OK && c.status != PROTO_PARTIAL))
		call_failed(s, &c, e->path);
	else if (w.failed || writer_ended(&w) != 0)
		snprintf(s->err, s->errlen, "writing %s/%s: %s", s->o->staging,
		    e->path, w.err);
	else if (writer_check(s, &w, e,
		     w.from > 0 ? "resumed file" : "whole file") == 0)
		rc = 0;
	s->st->received += w.wire;
	if (rc == 0) {
		s->st->whole++;
		if (w.from > 0)
			s->st->resumed++;
	}
	http_call_clear(&c);
	free(path);
	writer_close(&w);
	/* What was there before did not serve: once more, from byte 0. */
	if (rc != 0 && w.from > 0 && c.status == PROTO_PARTIAL && !w.failed) {
		log_warnx("%s %s: %s resumed from byte %lld did not match its "
			  "manifest; fetching it whole",
		    s->o->source, s->o->version, e->path, (long long)w.from);
		s->resuming = 0;
		rc = fetch_whole(s, e);
		s->resuming = 1;
	}
	return rc;
}

/* Make e in staging by patching basefd with the delta call c brings: 1 when
 * done and verified (2: but the copy to savefd failed), 0 when the caller
 * should try another way, -1 when fatal. */
static int
patch_with(struct syncer *s, const struct ment *e, int basefd,
    struct http_call *c, const char *how, int savefd)
{
	struct writer w;
	int rc = 0;

	if (writer_open(s, &w, e, 0) != 0)
		return -1;
	w.savefd = savefd;
	w.patch = delta_patch_new(basefd, writer_sink, &w);
	c->cancel = worker_stopping;
	c->on_data = writer_data;
	c->data_arg = &w;
	c->progress = 1;
	c->accept_zstd = s->o->zstd;
	w.call = c;
	if (http_client_call(s->hc, c) != 0 ||
	    (c->status != PROTO_OK && c->status != PROTO_NO_STORED)) {
		call_failed(s, c, e->path);
		/* Another way may do, unless the peer is gone or refuses. */
		if (s->gone || c->status == PROTO_UNAUTHORIZED ||
		    c->status == 0)
			rc = -1;
	} else if (c->status == PROTO_NO_STORED) {
		/* nothing stored: ask another way */
	} else if (w.failed || writer_ended(&w) != 0 ||
	    delta_patch_finish(w.patch, w.err, sizeof w.err) != 0)
		log_warnx("%s of %s: %s; fetching it another way", how, e->path,
		    w.hs.overflow ? "patched file larger than the manifest "
				    "says" :
				    w.err);
	else if (writer_check(s, &w, e, how) == 0)
		rc = w.save_failed ? 2 : 1;
	else
		log_warnx("%s; fetching it another way", s->err);
	s->st->received += w.wire;
	if (rc > 0) {
		s->st->deltas++;
		s->wire = w.wire;
	}
	writer_close(&w);
	return rc;
}

/* The delta the pull-backup kept when it pulled this file from the very
 * base we hold: no signature to compute or send, no delta to compute. */
static int
fetch_stored(struct syncer *s, const struct ment *e, const struct ment *be,
    const struct hint *h, int basefd)
{
	struct http_call c;
	char *path = route(s, PROTO_DELTA, e->path, be->sha);
	int rc;

	http_call_init(&c, "GET", s->o->url, path, s->o->token,
	    s->o->token_len);
	rc = patch_with(s, e, basefd, &c, "stored delta", -1);
	if (rc > 0) {
		s->st->stored++;
		if (h != NULL)
			hints_add_delta(&s->now, e->path, h->block, s->wire,
			    e->size);
	}
	http_call_clear(&c);
	free(path);
	return rc < 0 ? -1 : rc > 0;
}

/* The signature of a base file: made ahead, if there is one, or now. */
static int
base_signature(struct syncer *s, const struct ment *be, int basefd,
    size_t block, struct evbuffer *sig, int *ahead)
{
	const struct sync_sigs *sigs = s->o->sigs;
	char serr[256];

	*ahead = sigs != NULL && sigs->get(sigs->arg, be->sha, block, sig) == 0;
	if (*ahead)
		return 0;
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
	char *path, *tmp = NULL, *keep = NULL;
	int rc, ahead, savefd = -1;
	size_t siglen, block;

	block = hints_block(h, be->size);
	if (base_signature(s, be, basefd, block, sig, &ahead) != 0) {
		evbuffer_free(sig);
		return 0;
	}
	siglen = evbuffer_get_length(sig);
	if (s->o->deltas_dir != NULL) {
		keep = sync_kept_delta(s->o->deltas_dir, be->sha, e->sha);
		tmp = xasprintf("%s.tmp", keep);
		savefd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	}
	path = route(s, PROTO_DELTA, e->path, NULL);
	http_call_init(&c, "POST", s->o->url, path, s->o->token,
	    s->o->token_len);
	c.body = sig;
	c.content_type = PROTO_CT_SIGNATURE;
	c.head_timeout = proto_delta_wait(e->size);
	rc = patch_with(s, e, basefd, &c, "delta", savefd);
	s->st->sent += (int64_t)siglen;
	if (rc > 0)
		hints_add_delta(&s->now, e->path, (uint32_t)block, s->wire,
		    e->size);
	if (rc > 0 && ahead)
		s->st->ahead++;
	if (savefd >= 0) {
		fs_flusher_add(s->fl, savefd, 0, lseek(savefd, 0, SEEK_CUR));
		close(savefd);
		if (rc != 1 || rename(tmp, keep) != 0)
			unlink(tmp);
	}
	free(keep);
	free(tmp);
	http_call_clear(&c);
	free(path);
	if (rc == 0 && ahead) {
		/* Damaged, or not the base's: made now, it may do. */
		log_warnx("the signature made ahead for %s did not serve; "
			  "making it anew",
		    e->path);
		s->o->sigs->bad(s->o->sigs->arg, be->sha, block);
		return fetch_delta(s, e, be, h, basefd);
	}
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

static int
link_unchanged(struct syncer *s, const struct ment *e, const struct ment *be)
{
	const char *bname, *sname;
	int bdir, sdir;

	bdir = fs_parent_open(&s->link_from, s->basefd, be->path, &bname);
	sdir = fs_parent_open(&s->link_to, s->stagefd, e->path, &sname);
	return bdir >= 0 && sdir >= 0 ? linkat(bdir, bname, sdir, sname, 0) :
					-1;
}

static int
copy_unchanged(struct syncer *s, const struct ment *e, const struct ment *be,
    int bfd)
{
	static __thread char buf[1 << 16];
	struct writer w;
	ssize_t n;

	if (s->o->link_unchanged && linkable(be, e)) {
		if (s->o->verify_base && !basecheck_file(s->bc, e, bfd)) {
			log_warnx("%s %s: the local copy of %s is damaged (it "
				  "does not match its manifest); mending it: "
				  "fetching it again from %s",
			    s->o->source, s->o->version, e->path, s->o->url);
			s->st->mended++;
			return 0;
		}
		if (link_unchanged(s, e, be) == 0) {
			s->st->unchanged++;
			return 1;
		}
	}
	/* Copy, hashing on the way: the local copy must still be right. */
	if (writer_open(s, &w, e, 0) != 0)
		return -1;
	while ((n = read(bfd, buf, sizeof buf)) > 0)
		if (writer_sink(&w, buf, (size_t)n) != 0)
			break;
	if (n != 0 || writer_check(s, &w, e, "local copy") != 0) {
		log_warnx("%s %s: the local copy of %s is damaged (it does "
			  "not match its manifest); mending it: fetching it "
			  "again from %s",
		    s->o->source, s->o->version, e->path, s->o->url);
		s->st->mended++;
		writer_close(&w);
		return 0;
	}
	writer_close(&w);
	s->st->unchanged++;
	return 1;
}

/* A file a pull cut short already fetched, and verified again now. */
static int
already_staged(struct syncer *s, const struct ment *e)
{
	struct stat st;
	int fd, ok;

	fd = fs_open_beneath(s->stagefd, e->path, O_RDONLY, 0);
	if (fd < 0)
		return 0;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == e->size && hashsink_fd_matches(fd, e);
	close(fd);
	return ok;
}

static int
sync_file(struct syncer *s, const struct ment *e)
{
	const struct ment *be = NULL, *same;
	const struct hint *h = hints_find(&s->old, e->path);
	int64_t t0 = time_mono_ms();
	int bfd, rc = 0;

	if (s->o->base_m != NULL)
		be = manifest_find(s->o->base_m, e->path);
	if ((same = base_same(s, e)) != NULL)
		be = same;
	else if (be == NULL || be->type != MENT_FILE)
		be = base_likely(s, e);
	if (s->resuming && already_staged(s, e)) {
		s->st->resumed++;
		if (h != NULL)
			hints_add(&s->now, e->path, h->block, h->ppm);
		return 0;
	}
	bfd = open_base(s, be);
	if (bfd >= 0 && strcmp(be->sha, e->sha) == 0) {
		rc = copy_unchanged(s, e, be, bfd);
		if (rc == 1 && strcmp(be->path, e->path) != 0)
			s->st->moved++;
		if (h != NULL)
			hints_add(&s->now, e->path, h->block, h->ppm);
	} else if (bfd >= 0 && e->size > 0) {
		/* The server is asked only once it has the file. */
		if ((rc = await_entry(s, e)) == 0 && s->o->ask_stored)
			rc = fetch_stored(s, e, be, h, bfd);
		if (rc == 0)
			rc = fetch_delta(s, e, be, h, bfd);
	}
	if (bfd >= 0)
		close(bfd);
	if (rc == 0)
		rc = await_entry(s, e) == 0 && fetch_whole(s, e) == 0 ? 1 : -1;
	/* Where a slow cycle's time went, for whoever looks (debug). */
	if (rc >= 0 && time_mono_ms() - t0 >= 500)
		log_debug("%s: %lld bytes staged in %.2fs", e->path,
		    (long long)e->size, (double)(time_mono_ms() - t0) / 1000);
	return rc < 0 ? -1 : 0;
}

/* A directory or a symlink of the staging tree. */
static int
sync_entry(struct syncer *s, const struct ment *e)
{
	const char *base;
	struct stat sb;
	int dfd, rc;

	if ((dfd = fs_open_parent(s->stagefd, e->path, &base)) < 0) {
		snprintf(s->err, s->errlen, "staging %s: %s", e->path,
		    strerror(errno));
		return -1;
	}
	if (e->type == MENT_DIR) {
		rc = mkdirat(dfd, base, 0700);
		if (rc != 0 && errno == EEXIST && s->resuming) {
			/* A directory the pull cut short made: fine. */
			if (fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(sb.st_mode))
				rc = 0;
			errno = EEXIST;
		}
	} else {
		if (s->resuming)
			unlinkat(dfd, base, 0);
		rc = symlinkat(e->target, dfd, base);
	}
	close(dfd);
	if (rc != 0 && fs_no_room(errno))
		s->st->nospace = 1;
	if (rc != 0)
		snprintf(s->err, s->errlen, "staging %s: %s", e->path,
		    strerror(errno));
	return rc != 0 ? -1 : 0;
}

/* A staging tree left by a sync of this very version is resumed; anything
 * else there is thrown away. */
static int
staging_open(struct syncer *s)
{
	const struct sync_opts *o = s->o;
	char *marker, *mark, *buf;
	size_t len;
	int rc = -1;

	marker = xasprintf("%s%s", o->staging, SYNC_MARKER_SUFFIX);
	mark = xasprintf("%s %s\n", o->source, o->version);
	if (fs_read_file(marker, 256, &buf, &len) == 0) {
		s->resuming = strcmp(buf, mark) == 0 && fs_exists(o->staging);
		free(buf);
	}
	if (!s->resuming &&
	    (fs_rm_rf(o->staging) != 0 ||
		fs_write_atomic(marker, mark, strlen(mark)) != 0)) {
		snprintf(s->err, s->errlen, "staging directory %s: %s",
		    o->staging, strerror(errno));
		goto out;
	}
	if (o->deltas_dir != NULL &&
	    ((!s->resuming && fs_rm_rf(o->deltas_dir) != 0) ||
		(mkdir(o->deltas_dir, 0700) != 0 && errno != EEXIST))) {
		snprintf(s->err, s->errlen, "%s: %s", o->deltas_dir,
		    strerror(errno));
		goto out;
	}
	if (s->resuming)
		log_info("resuming the pull of %s %s in %s", o->source,
		    o->version, o->staging);
	if ((mkdir(o->staging, 0700) != 0 && errno != EEXIST) ||
	    (s->stagefd = open(o->staging,
		 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(s->err, s->errlen, "staging directory %s: %s",
		    o->staging, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(marker);
	free(mark);
	return rc;
}

static int
ment_is(const struct ment *e, mode_t mode)
{
	switch (e->type) {
	case MENT_FILE:
		return S_ISREG(mode);
	case MENT_DIR:
		return S_ISDIR(mode);
	default:
		return S_ISLNK(mode);
	}
}

/* Drop from the resumed staging directory fd (prefix: its path in the
 * tree, "" at the top) what the manifest fetched again does not list, or
 * lists as another kind: the version committed holds exactly its
 * manifest.  fd is closed. */
static int
staging_prune(struct syncer *s, const struct manifest *m, int fd,
    const char *prefix)
{
	const struct ment *e;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	char *rel;
	int sub, rc = 0;

	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		snprintf(s->err, s->errlen, "staging %s: %s",
		    *prefix ? prefix : ".", strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		rel = *prefix ? xasprintf("%s/%s", prefix, de->d_name) :
				xstrdup(de->d_name);
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) !=
		    0) {
			snprintf(s->err, s->errlen, "staging %s: %s", rel,
			    strerror(errno));
			rc = -1;
		} else if ((e = manifest_find(m, rel)) == NULL ||
		    !ment_is(e, sb.st_mode)) {
			log_info("resumed pull of %s %s: dropping %s, %s",
			    s->o->source, s->o->version, rel,
			    e == NULL ? "no longer in the manifest" :
					"of another kind in the manifest");
			if (fs_rm_rf_at(dirfd(d), de->d_name) != 0) {
				snprintf(s->err, s->errlen,
				    "staging %s: cannot remove: %s", rel,
				    strerror(errno));
				rc = -1;
			}
		} else if (S_ISDIR(sb.st_mode)) {
			fchmodat(dirfd(d), de->d_name, 0700, 0);
			if ((sub = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				     O_CLOEXEC)) < 0) {
				snprintf(s->err, s->errlen, "staging %s: %s",
				    rel, strerror(errno));
				rc = -1;
			} else
				rc = staging_prune(s, m, sub, rel);
		}
		free(rel);
	}
	closedir(d);
	return rc;
}

/* For a pull that serves what it stages: n entries are. */
static void
staged(const struct sync_opts *o, size_t n)
{
	if (o->staged == NULL)
		return;
	atomic_store(o->staged, n);
	if (o->on_progress != NULL)
		o->on_progress(o->staged_arg);
}

int
sync_run(const struct sync_opts *o, struct manifest **out,
    struct sync_stats *st, int *gone, char *err, size_t errlen)
{
	struct syncer s;
	struct manifest *m = NULL;
	const struct ment *e;
	size_t i;
	int rc = -1, handed = 0;
	int64_t t0 = time_mono_ms(), t1, t2;

	memset(&s, 0, sizeof s);
	memset(st, 0, sizeof *st);
	s.o = o;
	s.st = st;
	s.err = err;
	s.errlen = errlen;
	s.basefd = s.stagefd = -1;
	s.link_from = s.link_to = (struct fs_parent)FS_PARENT_INIT;
	*gone = 0;
	*out = NULL;
	if ((s.hc = http_client_new(o->url)) == NULL) {
		snprintf(err, errlen, "bad URL %s", o->url);
		return -1;
	}
	if (o->rate_limit > 0)
		http_client_set_rate(s.hc, o->rate_limit);
	if (fetch_manifest(&s, &m) != 0)
		goto out;
	if (o->progress != NULL)
		o->progress->total = m->bytes;
	s.m = m;
	base_index(&s);
	hints_load(&s.old, o->hints);
	if (staging_open(&s) != 0)
		goto out;
	if (s.resuming && staging_prune(&s, m, dup(s.stagefd), "") != 0)
		goto out;
	if (o->base_dir != NULL)
		s.basefd = open(o->base_dir,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->verify_base && o->link_unchanged && o->base_m != NULL)
		s.bc = basecheck_start(m, s.basefd, link_candidate, &s);
	if (o->on_staging != NULL) {
		o->on_staging(o->staged_arg, m, s.stagefd);
		handed = 1;
	}
	s.fl = fs_flusher_new();
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		if (worker_stopping()) {
			snprintf(err, errlen,
			    "stopped: the daemon is shutting down");
			goto out;
		}
		if (e->type != MENT_FILE) {
			if (sync_entry(&s, e) != 0)
				goto out;
			staged(o, i + 1);
			continue;
		}
		st->files++;
		st->bytes += e->size;
		if (sync_file(&s, e) != 0)
			goto out;
		/* The file is whole in staging, however it got there. */
		if (o->progress != NULL)
			o->progress->done = st->bytes;
		staged(o, i + 1);
		fault_point("sync-file");
	}
	st->flushed = fs_flusher_free(s.fl);
	s.fl = NULL;
	t1 = time_mono_ms();
	if (treemeta_apply(s.stagefd, m,
		TREEMETA_OWNER_ACCESS | TREEMETA_TOP |
		    (o->owners ? TREEMETA_OWNERS : 0) |
		    (o->special_bits ? TREEMETA_SPECIAL : 0),
		err, errlen) != 0)
		goto out;
	/* Every file and directory entry must be on disk before a commit
	 * renames the tree into place: one syncfs() does it for all, where
	 * an fsync() per file cost a journal commit each. */
	if (syncfs(s.stagefd) != 0) {
		st->nospace = fs_no_room(errno);
		snprintf(err, errlen, "staging %s: syncfs: %s", o->staging,
		    strerror(errno));
		goto out;
	}
	t2 = time_mono_ms();
	log_debug("%s: %lld files staged in %.2fs, their metadata set and "
		  "synced in %.2fs",
	    o->staging, (long long)st->files, (double)(t1 - t0) / 1000,
	    (double)(t2 - t1) / 1000);
	/* Pipelined: verified and on disk here, the version is taken only
	 * once the server has committed it too. */
	if (await_server(&s, PROTO_WAIT_ALL) != 0)
		goto out;
	if (o->hints != NULL)
		hints_save(&s.now, o->hints);
	if (o->hints_out != NULL) {
		*o->hints_out = s.now;
		memset(&s.now, 0, sizeof s.now);
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	st->before_commit = rc != 0 && o->pipelined && !s.committed;
	fs_flusher_free(s.fl);
	if (handed && rc != 0 && o->on_abandon != NULL)
		o->on_abandon(o->staged_arg);
	basecheck_stop(s.bc);
	fs_parent_close(&s.link_from);
	fs_parent_close(&s.link_to);
	manifest_shas_free(s.by_sha);
	free(s.by_name);
	hints_free(&s.old);
	hints_free(&s.now);
	*gone = s.gone;
	manifest_free(m);
	if (s.stagefd >= 0)
		close(s.stagefd);
	if (s.basefd >= 0)
		close(s.basefd);
	http_client_free(s.hc);
	return rc;
}

void
sync_staging_drop(const char *staging)
{
	char *marker = xasprintf("%s%s", staging, SYNC_MARKER_SUFFIX);

	fs_rm_rf(staging);
	unlink(marker);
	free(marker);
}

char *
sync_kept_delta(const char *dir, const char *from, const char *to)
{
	return xasprintf("%s/%s.%s.delta", dir, from, to);
}
