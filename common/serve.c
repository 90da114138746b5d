/* The version server (serve.h): GET manifest, GET file, POST delta (a
 * delta computed on a worker against the client's signature) and GET
 * delta (one the last pull kept), for the route proto_parse() found. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "delta.h"
#include "fault.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "serve.h"
#include "timespec.h"
#include "tls.h"
#include "sync.h"
#include "wirez.h"
#include "worker.h"
#include "xmalloc.h"

struct delta_job {
	struct serve *sv;
	struct http_held held;
	char *sig;
	size_t siglen;
	int fd;    /* the version's file */
	int outfd; /* the delta */
	off_t outlen;
	char *path;
	char err[512];
	int rc;
	/* On the loop's thread: */
	int refs;           /* the worker's, and a pump's sending it */
	int done;           /* the worker is through */
	int answered;       /* the reply began, or the client left */
	struct zpump *pump; /* sending it as it is made */
	struct event *tick; /* until then: looking for its first bytes */
};

/* The delta of a file of at least DELTA_STREAM_MIN bytes goes out as it
 * is made, once its first command is written (the signature was taken):
 * the client patches while the server computes, on one thread (two, in
 * halves, left the client idle half the time and cost a live host both
 * its cores: no faster, docs/benchmarks.md).  The job's last byte written
 * is held back until it is through, so a job that fails after the reply
 * began ends it without the delta's END command: the client's patch
 * refuses it and fetches the file another way.  Smaller files' deltas
 * take less than a tick: they are sent whole once made. */
#define DELTA_STREAM_MIN ((off_t)8 << 20)
#define DELTA_STREAM_START 5 /* magic and a command's first byte */
static const struct timeval delta_tick = { 0, 5000 };
static void delta_job_unref(struct delta_job *);

/* A file sent through TLS, a step at a time: OpenSSL cannot use
 * sendfile (a sendfile segment written through it went out as zeros), so
 * the file is mapped and encrypted from the mapping; and libevent hands
 * OpenSSL a chain whole, draining the output only once all of it is
 * written, so the chains are small (a drain is progress: the connection's
 * timeouts start again, http.h) and a step of them is queued when the
 * last is sent (memory stays bounded). */
#define PUMP_CHAIN (64 * 1024)
#define PUMP_STEP (16 * PUMP_CHAIN)

struct pump {
	struct evhttp_request *req;
	struct evbuffer_file_segment *seg;
	off_t off, len; /* in the segment */
};

static void
pump_free(struct pump *p)
{
	evbuffer_file_segment_free(p->seg);
	free(p);
}

/* The client went away: the request outlives its connection, and ending
 * the reply frees it. */
static void
pump_closed(struct evhttp_connection *conn, void *arg)
{
	struct pump *p = arg;

	(void)conn;
	evhttp_send_reply_end(p->req);
	pump_free(p);
}

static void
pump_next(struct evhttp_connection *conn, void *arg)
{
	struct pump *p = arg;
	struct evbuffer *b;
	off_t n;

	if (p->off >= p->len) {
		evhttp_connection_set_closecb(conn, NULL, NULL);
		evhttp_send_reply_end(p->req);
		pump_free(p);
		return;
	}
	b = evbuffer_new();
	for (n = 0; n < PUMP_STEP && p->off < p->len; n += PUMP_CHAIN) {
		off_t len = p->len - p->off < PUMP_CHAIN ? p->len - p->off :
							   PUMP_CHAIN;
		evbuffer_add_file_segment(b, p->seg, p->off, len);
		p->off += len;
	}
	evhttp_send_reply_chunk_with_cb(p->req, b, pump_next, p);
	evbuffer_free(b);
}

/* Send len bytes of fd from byte from as the reply (code, with the
 * headers already set but Content-Length); fd is taken.  Never a 200 with
 * less than the file: a file that cannot be mapped is a 500. */
static void
send_file(struct evhttp_request *req, int code, const char *ctype, int fd,
    off_t from, off_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b;
	struct pump *p;
	char v[32];

	if (len <= 0 || !tls_on()) {
		b = evbuffer_new();
		if (len > 0) {
			/* sendfile: without the flag, libevent would map the
			 * whole file to add it. */
			evbuffer_set_flags(b, EVBUFFER_FLAG_DRAINS_TO_FD);
			evbuffer_add_file(b, fd, from, len);
		} else
			close(fd);
		http_reply(req, code, ctype, b);
		evbuffer_free(b);
		return;
	}
	p = xcalloc(1, sizeof *p);
	p->seg = evbuffer_file_segment_new(fd, from, len,
	    EVBUF_FS_CLOSE_ON_FREE | EVBUF_FS_DISABLE_SENDFILE);
	if (p->seg == NULL) {
		close(fd);
		free(p);
		http_reply_error(req, 500, "cannot map the file to send it: %s",
		    strerror(errno));
		return;
	}
	p->req = req;
	p->len = len;
	snprintf(v, sizeof v, "%d", PROTO_VERSION);
	evhttp_add_header(h, PROTO_HEADER, v);
	if (ctype != NULL)
		evhttp_add_header(h, "Content-Type", ctype);
	/* With a length, the reply is not chunked. */
	snprintf(v, sizeof v, "%lld", (long long)len);
	evhttp_add_header(h, "Content-Length", v);
	evhttp_send_reply_start(req, code, http_reason(code));
	evhttp_connection_set_closecb(evhttp_request_get_connection(req),
	    pump_closed, p);
	pump_next(evhttp_request_get_connection(req), p);
}

static void
reply_file(struct evhttp_request *req, const char *ctype, int fd, off_t len)
{
	send_file(req, PROTO_OK, ctype, fd, 0, len);
}

/* A body compressed as it goes (wirez.h): a step of the file read,
 * compressed into a chunk of the reply (chunked: its length is not known
 * ahead), the next step when that chunk is sent.  Counted as sent on the
 * wire. */
#define ZPUMP_STEP (256 * 1024)

struct zpump {
	struct serve *sv;
	struct evhttp_request *req;
	struct wirez_enc *enc; /* NULL: sent as it is (a growing delta) */
	char *buf;
	int fd;
	off_t off, end;
	int ended;             /* the frame is out */
	struct delta_job *job; /* growing: sent as far as the job wrote */
	struct event *wait;    /* caught up with the job: look again */
};

static void
zpump_free(struct zpump *p)
{
	if (p->job != NULL) {
		p->job->pump = NULL;
		delta_job_unref(p->job);
	}
	if (p->wait != NULL)
		event_free(p->wait);
	wirez_enc_free(p->enc);
	close(p->fd);
	free(p->buf);
	free(p);
}

/* Of a growing delta: 1 with more to send (p->end moved on), 0 with
 * nothing yet.  Once the job is through, the end is its end, or where
 * the pump is if it failed. */
static int
zpump_grow(struct zpump *p)
{
	struct delta_job *j = p->job;
	struct stat st;

	if (j->done) {
		if (j->rc != 0)
			log_warnx("delta of %s: %s (after %lld bytes sent: the "
				  "client fetches the file another way)",
			    j->path, j->err, (long long)p->off);
		p->end = j->rc == 0 ? j->outlen : p->off;
		j->pump = NULL;
		delta_job_unref(j);
		p->job = NULL;
		return 1;
	}
	if (fstat(p->fd, &st) == 0 && st.st_size - 1 > p->end)
		p->end = st.st_size - 1;
	return p->off < p->end;
}

static void
zpump_closed(struct evhttp_connection *conn, void *arg)
{
	struct zpump *p = arg;

	(void)conn;
	evhttp_send_reply_end(p->req);
	zpump_free(p);
}

static void
zpump_next(struct evhttp_connection *conn, void *arg)
{
	struct zpump *p = arg;
	struct evbuffer *b;
	ssize_t n;
	size_t want, len;

	if (p->ended) {
		evhttp_connection_set_closecb(conn, NULL, NULL);
		evhttp_send_reply_end(p->req);
		zpump_free(p);
		return;
	}
	/* Steps until one gives bytes to send: zstd may keep a step's
	 * output back, and an empty chunk would end the reply. */
	b = evbuffer_new();
	while (!p->ended && evbuffer_get_length(b) == 0) {
		if (p->job != NULL && !zpump_grow(p)) {
			evbuffer_free(b);
			evtimer_add(p->wait, &delta_tick);
			return;
		}
		want = p->end - p->off < ZPUMP_STEP ?
		    (size_t)(p->end - p->off) :
		    ZPUMP_STEP;
		n = want > 0 ? pread(p->fd, p->buf, want, p->off) : 0;
		if (want > 0 && n <= 0) {
			/* The reply ends without the frame's end: the
			 * client says "cut short" and fetches again. */
			log_warn("sending a file compressed: read at byte "
				 "%lld",
			    (long long)p->off);
			p->ended = 1;
			break;
		}
		p->off += n;
		if (p->enc == NULL)
			evbuffer_add(b, p->buf, (size_t)n);
		else if (wirez_enc_step(p->enc, p->buf, (size_t)n,
			     p->job == NULL && p->off >= p->end, b) != 0) {
			log_warnx("sending a file compressed: zstd failed");
			p->ended = 1;
			break;
		}
		p->ended = p->job == NULL && p->off >= p->end;
	}
	len = evbuffer_get_length(b);
	p->sv->bytes_sent += len;
	if (len > 0)
		evhttp_send_reply_chunk_with_cb(p->req, b, zpump_next, p);
	evbuffer_free(b);
	if (len == 0)
		zpump_next(conn, p); /* ended: nothing more to send */
}

static void
zpump_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct zpump *p = arg;

	(void)fd;
	(void)what;
	zpump_next(evhttp_request_get_connection(p->req), p);
}

/* A chunked reply of fd's bytes [from, end), compressed (zstd) or not,
 * or of what the delta job writes to it (job; end moves on as it
 * writes); fd is taken. */
static void
zpump_start(struct serve *sv, struct evhttp_request *req, int code, int fd,
    off_t from, off_t end, int zstd, struct delta_job *job)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct zpump *p = xcalloc(1, sizeof *p);
	char v[16];

	if (zstd && (p->enc = wirez_enc_new(WIREZ_LEVEL)) == NULL) {
		close(fd);
		free(p);
		http_reply_error(req, PROTO_FAILED, "zstd: cannot start");
		return;
	}
	p->sv = sv;
	p->req = req;
	p->fd = fd;
	p->off = from;
	p->end = end;
	p->buf = xmalloc(ZPUMP_STEP);
	if (job != NULL) {
		p->job = job;
		p->wait = evtimer_new(sv->base, zpump_wait_cb, p);
		job->pump = p;
		job->refs++;
	}
	snprintf(v, sizeof v, "%d", PROTO_VERSION);
	evhttp_add_header(h, PROTO_HEADER, v);
	evhttp_add_header(h, "Content-Type", PROTO_CT_BYTES);
	if (zstd)
		evhttp_add_header(h, PROTO_CONTENT_ENCODING,
		    PROTO_ENCODING_ZSTD);
	evhttp_send_reply_start(req, code, http_reason(code));
	evhttp_connection_set_closecb(evhttp_request_get_connection(req),
	    zpump_closed, p);
	zpump_next(evhttp_request_get_connection(req), p);
}

/* The reply to a GET of a file or a delta: len bytes of fd from byte
 * from, compressed when the client accepts zstd; fd is taken. */
static void
send_body(struct serve *sv, struct evhttp_request *req, int code, int fd,
    off_t from, off_t len)
{
	if (!wirez_accepted(
		evhttp_find_header(evhttp_request_get_input_headers(req),
		    PROTO_ACCEPT_ENCODING))) {
		sv->bytes_sent += (unsigned long long)len;
		send_file(req, code, PROTO_CT_BYTES, fd, from, len);
		return;
	}
	zpump_start(sv, req, code, fd, from, from + len, 1, NULL);
}

static void
delta_job_work(void *arg)
{
	struct delta_job *j = arg;
	struct stat st;
	int64_t t0 = time_mono_ms();

	j->rc = delta_compute(j->sig, j->siglen, j->fd, delta_sink_fd,
	    &j->outfd, j->err, sizeof j->err);
	if (j->rc == 0 && fstat(j->outfd, &st) == 0)
		j->outlen = st.st_size;
	/* For the tests: held while what was made is sent, or failing
	 * after it was. */
	fault_point("delta-made");
	if (j->rc == 0 && fault_enospc("delta-made")) {
		j->rc = -1;
		snprintf(j->err, sizeof j->err, "writing the delta: %s",
		    strerror(errno));
	}
	if (time_mono_ms() - t0 >= 500)
		log_debug("delta of %s: %lld bytes made in %.2fs", j->path,
		    (long long)j->outlen, (double)(time_mono_ms() - t0) / 1000);
}

static void
delta_job_unref(struct delta_job *j)
{
	if (--j->refs > 0)
		return;
	if (j->tick != NULL)
		event_free(j->tick);
	if (j->outfd >= 0)
		close(j->outfd);
	close(j->fd);
	free(j->sig);
	free(j->path);
	free(j);
}

static void
delta_job_done(void *arg)
{
	struct delta_job *j = arg;
	struct evhttp_request *req;

	j->done = 1;
	if (j->tick != NULL)
		evtimer_del(j->tick);
	if (j->rc == 0) {
		j->sv->deltas_sent++;
		j->sv->sig_bytes += (unsigned long long)j->siglen;
	}
	/* A pump waiting for more: the rest, now. */
	if (j->pump != NULL && evtimer_pending(j->pump->wait, NULL)) {
		evtimer_del(j->pump->wait);
		event_active(j->pump->wait, EV_TIMEOUT, 0);
	}
	if (!j->answered) {
		req = http_unhold(&j->held);
		if (req == NULL)
			log_info("delta of %s: the client went away", j->path);
		else if (j->rc != 0)
			http_reply_error(req, PROTO_BAD, "delta of %s: %s",
			    j->path, j->err);
		else {
			send_body(j->sv, req, PROTO_OK, j->outfd, 0, j->outlen);
			j->outfd = -1;
		}
	}
	delta_job_unref(j);
}

/* A tick while a large file's delta is made: once its first command is
 * written, the reply starts, sent by a pump that follows the job. */
static void
delta_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delta_job *j = arg;
	struct evhttp_request *req;
	struct stat st;
	int dfd;

	(void)fd;
	(void)what;
	if (fstat(j->outfd, &st) != 0 || st.st_size < DELTA_STREAM_START) {
		evtimer_add(j->tick, &delta_tick);
		return;
	}
	if ((dfd = fcntl(j->outfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return; /* sent whole when made */
	j->answered = 1;
	if ((req = http_unhold(&j->held)) == NULL) {
		log_info("delta of %s: the client went away", j->path);
		close(dfd);
		return;
	}
	zpump_start(j->sv, req, PROTO_OK, dfd, 0, 0,
	    wirez_accepted(
		evhttp_find_header(evhttp_request_get_input_headers(req),
		    PROTO_ACCEPT_ENCODING)),
	    j);
}

/* GET delta?path=P&from=SHA: the delta the last pull kept that turns a
 * file with hash SHA into this version's P; 204 when there is none (the
 * client then posts a signature).  Safe whatever the file holds: the
 * client checks what it patches against the manifest. */
static void
serve_stored(struct serve *sv, struct evhttp_request *req,
    const struct serve_version *v, const struct ment *e, const char *from)
{
	struct evbuffer *b;
	struct stat st;
	char *name;
	int fd = -1;

	if (from[0] == '\0') {
		http_reply_error(req, PROTO_BAD,
		    "a GET of a delta needs %s=SHA-256", PROTO_Q_FROM);
		return;
	}
	if (v->deltas_dir != NULL) {
		name = sync_kept_delta(v->deltas_dir, from, e->sha);
		fd = open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		free(name);
	}
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		b = evbuffer_new();
		http_reply(req, PROTO_NO_STORED, NULL, b);
		evbuffer_free(b);
		return;
	}
	sv->deltas_sent++;
	sv->stored_sent++;
	send_body(sv, req, PROTO_OK, fd, 0, st.st_size);
}

/* POST delta?path=P: the delta against the posted signature, made on a
 * worker into a temporary file. */
static void
serve_delta(struct serve *sv, struct evhttp_request *req,
    const struct serve_version *v, const char *path, int fd, off_t size)
{
	struct delta_job *j = xcalloc(1, sizeof *j);

	j->refs = 1; /* the worker's */
	j->sv = sv;
	j->fd = fd;
	j->path = xstrdup(path);
	j->sig = http_body(req, PROTO_MAX_BODY, &j->siglen);
	j->outfd = fs_tmpfile(v->tmp_dir);
	/* Without it, the delta is made on one thread. */
	if (j->sig == NULL || j->outfd < 0) {
		http_reply_error(req,
		    j->sig == NULL ? PROTO_TOO_LARGE : PROTO_FAILED,
		    "delta of %s: %s", path,
		    j->sig == NULL ? "signature too large" : strerror(errno));
		delta_job_unref(j);
		return;
	}
	http_hold(&j->held, req);
	if (size >= DELTA_STREAM_MIN) {
		j->tick = evtimer_new(sv->base, delta_tick_cb, j);
		evtimer_add(j->tick, &delta_tick);
	}
	worker_submit(sv->workers, delta_job_work, delta_job_done, j);
}

/* GET file: the whole file, or from the byte a Range asks (a transfer cut
 * short, resumed); a Range of another form is not ours, and gets the
 * whole file. */
static void
serve_file(struct serve *sv, struct evhttp_request *req, int fd, off_t size)
{
	const char *range =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Range");
	int64_t from = proto_range_parse(range);
	char cr[96];

	sv->files_sent++;
	if (from <= 0 || from >= size) {
		send_body(sv, req, PROTO_OK, fd, 0, size);
		return;
	}
	sv->ranges_sent++;
	snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)from,
	    (long long)size - 1, (long long)size);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Range", cr);
	send_body(sv, req, PROTO_PARTIAL, fd, (off_t)from, size - (off_t)from);
}

/* The file P of the version, opened beneath its root, checked against the
 * manifest's size: an fd, or -1 after answering.  Of a version being
 * pulled, only a file already staged. */
static int
open_file(struct evhttp_request *req, const struct serve_version *v,
    const struct proto_req *pr, const struct ment **ep, struct stat *st)
{
	const struct ment *e;
	int fd, rootfd;

	if (pr->path == NULL || path_check(pr->path) != NULL ||
	    (e = manifest_find(v->m, pr->path)) == NULL ||
	    e->type != MENT_FILE) {
		http_reply_error(req, PROTO_UNKNOWN,
		    "version %s of %s has no file %s", pr->version, pr->source,
		    pr->path ? pr->path : "(none)");
		return -1;
	}
	if (v->staged != NULL) {
		if ((size_t)(e - v->m->e) >= atomic_load(v->staged)) {
			http_reply_error(req, PROTO_UNAVAILABLE,
			    "file %s of version %s is not here yet "
			    "(the version is being pulled): ask its progress "
			    "first",
			    pr->path, pr->version);
			return -1;
		}
		fd = fs_open_beneath(v->rootfd, pr->path, O_RDONLY, 0);
	} else if ((rootfd = open(v->root,
			O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		fd = -1;
	else {
		fd = fs_open_beneath(rootfd, pr->path, O_RDONLY, 0);
		close(rootfd);
	}
	if (fd < 0 || fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
	    st->st_size != e->size) {
		if (fd >= 0)
			close(fd);
		http_reply_error(req, PROTO_GONE,
		    "file %s of version %s is gone or changed on this host",
		    pr->path, pr->version);
		return -1;
	}
	*ep = e;
	return fd;
}

/* A progress request held until its version moves on (serve_wake()). */
struct serve_wait {
	struct serve_wait *next;
	struct http_held held;
	char source[PROTO_NAME_MAX];
	char version[PROTO_NAME_MAX];
	int64_t want;     /* entries, or PROTO_WAIT_ALL */
	int64_t until_ms; /* answered as it stands then */
};

/* Whether a progress request for want entries of v is answered now. */
static int
progress_ready(const struct serve_version *v, int64_t want)
{
	if (v->staged == NULL)
		return 1;
	return want != PROTO_WAIT_ALL &&
	    (uint64_t)want <= atomic_load(v->staged);
}

static void
progress_reply(struct evhttp_request *req, const struct serve_version *v)
{
	struct json j;

	http_json_begin(&j);
	json_i64(&j, PROGRESS_STAGED,
	    (int64_t)(v->staged != NULL ? atomic_load(v->staged) : v->m->n));
	json_i64(&j, PROGRESS_ENTRIES, (int64_t)v->m->n);
	json_bool(&j, PROGRESS_COMMITTED, v->staged == NULL);
	http_reply_json(req, PROTO_OK, &j);
}

static void
wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	serve_wake(arg);
}

static void
serve_progress(struct serve *sv, struct evhttp_request *req,
    const struct proto_req *pr, const struct serve_version *v)
{
	struct timeval tv = { 1, 0 };
	struct serve_wait *w;

	if (pr->wait < 0) {
		http_reply_error(req, PROTO_BAD,
		    "a progress request needs %s=N or %s=%s", PROTO_Q_WAIT,
		    PROTO_Q_WAIT, PROTO_WAIT_COMMITTED);
		return;
	}
	if (progress_ready(v, pr->wait) || sv->base == NULL) {
		progress_reply(req, v);
		return;
	}
	w = xcalloc(1, sizeof *w);
	snprintf(w->source, sizeof w->source, "%s", pr->source);
	snprintf(w->version, sizeof w->version, "%s", pr->version);
	w->want = pr->wait;
	w->until_ms = time_mono_ms() + PROTO_PROGRESS_HOLD_SECS * 1000;
	http_hold(&w->held, req);
	w->next = sv->waits;
	sv->waits = w;
	atomic_fetch_add(&sv->nwaits, 1);
	if (sv->wait_timer == NULL) {
		sv->wait_timer = event_new(sv->base, -1, EV_PERSIST,
		    wait_timer_cb, sv);
		event_add(sv->wait_timer, &tv);
	}
}

void
serve_wake(struct serve *sv)
{
	struct serve_wait **pw = &sv->waits, *w;
	struct evhttp_request *req;
	struct serve_version v;
	int64_t now = time_mono_ms();
	char why[512];
	int code;

	while ((w = *pw) != NULL) {
		memset(&v, 0, sizeof v);
		/* 0: the client went away */
		code = w->held.req == NULL ?
		    0 :
		    sv->lookup(sv->arg, w->source, w->version, &v, why,
			sizeof why);
		if (code == PROTO_OK && !progress_ready(&v, w->want) &&
		    now < w->until_ms) {
			pw = &w->next;
			continue;
		}
		if ((req = http_unhold(&w->held)) != NULL) {
			if (code != PROTO_OK)
				http_reply_error(req, code, "%s", why);
			else
				progress_reply(req, &v);
		}
		*pw = w->next;
		free(w);
		atomic_fetch_sub(&sv->nwaits, 1);
	}
	if (sv->waits == NULL && sv->wait_timer != NULL) {
		event_free(sv->wait_timer);
		sv->wait_timer = NULL;
	}
}

int
serve_waiting(const struct serve *sv)
{
	return atomic_load(&sv->nwaits) > 0;
}

void
serve_free(struct serve *sv)
{
	struct serve_wait *w;
	struct evhttp_request *req;

	while ((w = sv->waits) != NULL) {
		sv->waits = w->next;
		if ((req = http_unhold(&w->held)) != NULL)
			http_reply_error(req, PROTO_UNAVAILABLE,
			    "the daemon is shutting down");
		free(w);
	}
	atomic_store(&sv->nwaits, 0);
	if (sv->wait_timer != NULL)
		event_free(sv->wait_timer);
	sv->wait_timer = NULL;
}

void
serve_request(struct serve *sv, struct evhttp_request *req,
    const struct proto_req *pr)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct serve_version v;
	const struct ment *e;
	struct stat st;
	char why[512];
	int code, fd;

	memset(&v, 0, sizeof v);
	code = sv->lookup(sv->arg, pr->source, pr->version, &v, why,
	    sizeof why);
	if (code != PROTO_OK) {
		http_reply_error(req, code, "%s", why);
		return;
	}
	switch (pr->what) {
	case PROTO_MANIFEST:
		if (cmd != EVHTTP_REQ_GET)
			break;
		if ((fd = open(v.manifest_path, O_RDONLY | O_CLOEXEC)) < 0 ||
		    fstat(fd, &st) != 0) {
			if (fd >= 0)
				close(fd);
			http_reply_error(req, PROTO_FAILED,
			    "manifest of %s: %s", pr->version, strerror(errno));
			return;
		}
		reply_file(req, PROTO_CT_MANIFEST, fd, st.st_size);
		return;
	case PROTO_FILE:
		if (cmd != EVHTTP_REQ_GET)
			break;
		if ((fd = open_file(req, &v, pr, &e, &st)) < 0)
			return;
		serve_file(sv, req, fd, st.st_size);
		return;
	case PROTO_DELTA:
		if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_POST)
			break;
		if ((fd = open_file(req, &v, pr, &e, &st)) < 0)
			return;
		if (cmd == EVHTTP_REQ_GET) {
			close(fd);
			serve_stored(sv, req, &v, e, pr->from);
		} else
			serve_delta(sv, req, &v, pr->path, fd, st.st_size);
		return;
	case PROTO_PROGRESS:
		if (cmd != EVHTTP_REQ_GET)
			break;
		serve_progress(sv, req, pr, &v);
		return;
	}
	http_reply_error(req,
	    cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_POST ? PROTO_UNKNOWN :
							      PROTO_METHOD,
	    "no such route");
}
