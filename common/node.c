#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "html.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "timespec.h"
#include "understudy-config.h"
#include "worker.h"
#include "xmalloc.h"

void
event_begin(struct json *j, struct evbuffer *b, const char *type,
    const char *source, const char *version)
{
	json_init(j, b);
	json_obj_open(j, NULL);
	json_i64(j, "proto", PROTO_VERSION);
	json_str(j, "type", type);
	json_str(j, "source", source);
	json_str(j, "version", version);
}

struct doc *
event_parse(const struct qentry *e)
{
	struct doc *d = NULL;
	char err[128];

	if (doc_parse(e->body, e->len, &d, err, sizeof err) != 0)
		return NULL;
	return d;
}

const struct doc *
event_doc(struct qentry *e)
{
	if (!e->parsed) {
		e->doc = event_parse(e);
		e->parsed = 1;
	}
	return e->doc;
}

int
node_inbox_has_newer(struct node *n, const char *key, const char *version)
{
	struct qentry *e;
	const struct doc *d;
	const char *v;
	int newer = 0;

	TAILQ_FOREACH(e, &n->inbox->entries, link) {
		if (strcmp(e->key, key) != 0 || e->superseded)
			continue;
		if ((d = event_doc(e)) == NULL)
			continue;
		v = doc_get_str(d, "version");
		if (v != NULL && strcmp(v, version) > 0)
			newer = 1;
	}
	return newer;
}

/* Outbox delivery. */

struct send_ctx {
	struct node *n;
	struct qentry *e;
	struct http_call call;
};

static void outbox_pump(struct node *);

static void
send_done(struct http_call *c, void *arg)
{
	struct send_ctx *s = arg;
	struct qentry *e = s->e;
	struct node *n = s->n;
	char why[1024];
	int delay;

	/* The entry stays busy until it is removed or rescheduled: what the
	 * role does below may pump the outbox again. */
	if (c->status == 200) {
		log_debugf("delivered %s to %s", e->key, e->dest);
		n->events_out++;
		queue_remove(n->outbox, e);
	} else if (c->status == 409) {
		/* Refused for good: retrying would not change the answer. */
		http_call_describe(c, why, sizeof why);
		log_warnx("event %s refused by %s: %s", e->key, e->dest, why);
		if (n->ops->refused != NULL)
			n->ops->refused(n, e, why);
		queue_remove(n->outbox, e);
	} else {
		e->busy = 0;
		http_call_describe(c, why, sizeof why);
		e->attempts++;
		delay = PROTO_RETRY_MIN_SECS << (e->attempts < 7 ?
		    e->attempts - 1 : 6);
		if (delay > PROTO_RETRY_MAX_SECS)
			delay = PROTO_RETRY_MAX_SECS;
		e->next_try = time(NULL) + delay;
		if (e->last_error == NULL || strcmp(e->last_error, why) != 0 ||
		    e->attempts % 10 == 0)
			log_warnx("event %s to %s not delivered (attempt %d, "
			    "next in %ds): %s", e->key, e->dest, e->attempts,
			    delay, why);
		queue_set_error(e, why);
		if (e->superseded)
			queue_remove(n->outbox, e);
	}
	http_call_clear(c);
	free(s);
	if (!n->stopping)
		outbox_pump(n);
}

static void
outbox_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	outbox_pump(arg);
}

static void
outbox_pump(struct node *n)
{
	struct qentry *e;
	struct send_ctx *s;
	time_t now = time(NULL), next = 0;
	struct timeval tv;

	TAILQ_FOREACH(e, &n->outbox->entries, link) {
		if (e->busy)
			continue;
		if (e->next_try > now) {
			if (next == 0 || e->next_try < next)
				next = e->next_try;
			continue;
		}
		s = xcalloc(1, sizeof *s);
		s->n = n;
		s->e = e;
		e->busy = 1;
		http_call_init(&s->call, "POST", e->dest, ROUTE_EVENTS,
		    n->cf->token, n->cf->token_len);
		s->call.body = evbuffer_new();
		evbuffer_add(s->call.body, e->body, e->len);
		s->call.content_type = "application/json";
		s->call.timeout = 30;
		http_call_async(n->base, &s->call, send_done, s);
	}
	if (next != 0) {
		tv.tv_sec = next - now;
		tv.tv_usec = 0;
		evtimer_add(n->outbox_timer, &tv);
	}
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	if (!n->stopping)
		n->ops->kick(n);
}

void
node_kick(struct node *n)
{
	event_active(n->kick_ev, EV_READ, 0);
}

/* Durable writes, off the event loop.  An event received is acknowledged
 * once it is durably queued; an event sent is delivered once it is durably
 * queued; a state file is replaced atomically; a handled inbox entry's
 * file goes only once what the role queued before it is durable (so that
 * a crash in between handles the event again: at least once).  All of it
 * is done by the commit thread, in the order asked, a batch at a time:
 * the loop keeps answering (status, pages) meanwhile.  A batch holds what
 * was asked in one turn of the loop (a handled event's file goes with the
 * events its handling sent) and whatever came while the previous batch
 * was written; it shares one fsync per directory. */
enum commit_kind {
	CI_RECEIVED,	/* an event from a peer, for the inbox */
	CI_SEND,	/* an event of ours, for the outbox */
	CI_WRITE,	/* a file replaced atomically */
	CI_REMOVE,	/* a file removed, in order with the writes */
	CI_HANDLED	/* an inbox entry's file, after the batch is durable */
};

struct commit_item {
	struct commit_item *next;
	enum commit_kind kind;
	struct node *n;
	struct evhttp_request *req;	/* CI_RECEIVED; NULL once gone */
	struct evhttp_connection *conn;
	struct qentry *e;		/* CI_RECEIVED, CI_SEND */
	char *path;			/* CI_WRITE, CI_REMOVE, CI_HANDLED */
	char *data;			/* CI_HANDLED: its fault point */
	size_t len;
	int rc;
	int err;
};

static void commit_next(struct node *);
static void commit_start(evutil_socket_t, short, void *);

static void
reply_queued(struct evhttp_request *req, int queued, const char *note)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_i64(&j, "proto", PROTO_VERSION);
	json_bool(&j, "queued", queued);
	if (!queued)
		json_str(&j, "note", note);
	json_obj_close(&j);
	evbuffer_add(b, "\n", 1);
	http_reply(req, 200, "application/json", b);
	evbuffer_free(b);
}

static void
item_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct commit_item *c = arg;

	(void)conn;
	c->req = NULL;
}

static void
item_free(struct commit_item *c)
{
	if (c->req != NULL)
		evhttp_connection_set_closecb(c->conn, NULL, NULL);
	if (c->e != NULL)
		queue_discard(c->e);
	free(c->path);
	free(c->data);
	free(c);
}

static struct commit_item *
item_add(struct node *n, enum commit_kind kind)
{
	struct commit_item *c = xcalloc(1, sizeof *c);

	c->kind = kind;
	c->n = n;
	*n->waiting_tail = c;
	n->waiting_tail = &c->next;
	return c;
}

/* The directory of each file written, once a batch. */
static int
sync_dirs(const struct commit_item *batch)
{
	const struct commit_item *c, *d;
	char *dir, *slash;
	int rc = 0;

	for (c = batch; c != NULL; c = c->next) {
		if (c->kind != CI_WRITE || c->rc != 0)
			continue;
		for (d = batch; d != c; d = d->next)
			if (d->kind == CI_WRITE && d->rc == 0 &&
			    fs_same_dir(d->path, c->path))
				break;
		if (d != c)
			continue;
		dir = xstrdup(c->path);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		if (fs_fsync_dir(slash == NULL ? "." : slash == dir ? "/" :
		    dir) != 0)
			rc = -1;
		free(dir);
	}
	return rc;
}

static void
commit_work(void *arg)
{
	struct node *n = arg;
	struct commit_item *c;
	int in = 0, out = 0, failed = 0, rc;

	for (c = n->writing; c != NULL; c = c->next) {
		switch (c->kind) {
		case CI_RECEIVED:
		case CI_SEND:
			c->rc = queue_store(c->e);
			*(c->kind == CI_RECEIVED ? &in : &out) = 1;
			break;
		case CI_WRITE:
			c->rc = fs_write_renamed(c->path, c->data, c->len);
			break;
		case CI_REMOVE:
			c->rc = unlink(c->path) != 0 && errno != ENOENT ?
			    -1 : 0;
			break;
		case CI_HANDLED:
			break;
		}
		c->err = errno;
	}
	/* Then durable: one fsync a directory. */
	if (in && queue_sync(n->inbox) != 0)
		in = -errno;
	if (out && queue_sync(n->outbox) != 0)
		out = -errno;
	rc = sync_dirs(n->writing);
	for (c = n->writing; c != NULL; c = c->next) {
		if (c->rc == 0 && c->kind == CI_RECEIVED && in < 0) {
			c->rc = -1;
			c->err = -in;
		} else if (c->rc == 0 && c->kind == CI_SEND && out < 0) {
			c->rc = -1;
			c->err = -out;
		} else if (c->rc == 0 && c->kind == CI_WRITE && rc != 0) {
			c->rc = -1;
			c->err = EIO;
		}
		if (c->rc != 0 && c->kind != CI_RECEIVED &&
		    c->kind != CI_REMOVE)
			failed = 1;
	}
	/* Only now may handled events go: what their handling queued is
	 * durable.  If it is not, they stay, and are handled again at the
	 * next start. */
	for (c = n->writing; c != NULL; c = c->next) {
		if (c->kind != CI_HANDLED || failed)
			continue;
		if (unlink(c->path) != 0 && errno != ENOENT)
			log_warn("queue: removing %s", c->path);
		fault_point(c->data);
	}
	n->written = 1;
}

static void
commit_done(void *arg)
{
	struct node *n = arg;
	struct commit_item *c, *next;
	int received = 0, sent = 0;

	for (c = n->writing; c != NULL; c = next) {
		next = c->next;
		switch (c->kind) {
		case CI_RECEIVED:
			if (c->rc == 0) {
				queue_insert(n->inbox, c->e);
				c->e = NULL;
				n->events_in++;
				received = 1;
			} else
				log_warnx("%s: cannot queue the event durably: "
				    "%s", n->inbox->dir, strerror(c->err));
			if (c->req == NULL)
				break;
			evhttp_connection_set_closecb(c->conn, NULL, NULL);
			if (c->rc == 0)
				reply_queued(c->req, 1, NULL);
			else
				http_reply_error(c->req, 503, "%s: cannot queue "
				    "the event durably: %s", n->inbox->dir,
				    strerror(c->err));
			c->req = NULL;
			break;
		case CI_SEND:
			if (c->rc == 0) {
				queue_insert(n->outbox, c->e);
				c->e = NULL;
				sent = 1;
			} else
				log_warnx("%s: cannot queue an event for %s: %s",
				    n->outbox->dir, c->e->dest,
				    strerror(c->err));
			break;
		case CI_WRITE:
		case CI_REMOVE:
			if (c->rc != 0)
				log_warnx("%s: %s", c->path, strerror(c->err));
			break;
		case CI_HANDLED:
			break;
		}
		item_free(c);
	}
	n->writing = NULL;
	if (sent && !n->stopping)
		outbox_pump(n);
	if (received)
		node_kick(n);
	commit_start(-1, 0, n);
}

/* Start the next batch at the end of this turn of the loop. */
static void
commit_next(struct node *n)
{
	if (n->writing == NULL && n->waiting != NULL && !n->stopping)
		event_active(n->commit_ev, EV_READ, 0);
}

static void
commit_start(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	if (n->writing != NULL || n->waiting == NULL || n->stopping)
		return;
	n->writing = n->waiting;
	n->waiting = NULL;
	n->waiting_tail = &n->waiting;
	n->written = 0;
	worker_submit(n->commit, commit_work, commit_done, n);
}

/* At exit, once the commit thread has stopped: what the role asked is
 * written now; events received and not yet written are not acknowledged,
 * and their senders send them again. */
static void
commit_flush(struct node *n)
{
	struct commit_item *c, **pc;

	if ((c = n->writing) != NULL && n->written) {
		/* Written by the thread; the replies are not sent. */
		while ((c = n->writing) != NULL) {
			n->writing = c->next;
			item_free(c);
		}
	} else if (c != NULL) {
		/* Dropped before the thread began it: in front. */
		for (pc = &n->writing; *pc != NULL; pc = &(*pc)->next)
			;
		*pc = n->waiting;
		n->waiting = n->writing;
		n->writing = NULL;
	}
	for (pc = &n->waiting; (c = *pc) != NULL; ) {
		if (c->kind == CI_RECEIVED) {
			*pc = c->next;
			item_free(c);
		} else
			pc = &c->next;
	}
	if (n->waiting != NULL) {
		n->writing = n->waiting;
		commit_work(n);
		while ((c = n->writing) != NULL) {
			n->writing = c->next;
			if (c->rc != 0)
				log_warnx("%s: %s", c->path != NULL ? c->path :
				    n->outbox->dir, strerror(c->err));
			item_free(c);
		}
	}
	n->waiting = NULL;
	n->waiting_tail = &n->waiting;
}

void
node_send(struct node *n, const char *dest, const char *key,
    struct evbuffer *body)
{
	char err[512], *k = xasprintf("%s %s", dest, key);
	struct qentry *e;

	e = queue_prepare(n->outbox, k, dest, (const char *)evbuffer_pullup(
	    body, -1), evbuffer_get_length(body), err, sizeof err);
	free(k);
	if (e == NULL) {
		log_warnx("cannot queue an event for %s: %s", dest, err);
		return;
	}
	item_add(n, CI_SEND)->e = e;
	commit_next(n);
}

void
node_write_file(struct node *n, const char *path, const void *data,
    size_t len)
{
	struct commit_item *c = item_add(n, CI_WRITE);

	c->path = xstrdup(path);
	c->data = xmalloc(len + 1);
	memcpy(c->data, data, len);
	c->len = len;
	commit_next(n);
}

void
node_remove_file(struct node *n, const char *path)
{
	item_add(n, CI_REMOVE)->path = xstrdup(path);
	commit_next(n);
}

static void
discard_work(void *arg)
{
	char *path = arg;

	if (fs_rm_rf(path) != 0)
		log_warn("removing %s", path);
	free(path);
}

void
node_discard_tree(struct node *n, char *path)
{
	if (path == NULL)
		return;
	if (n->stopping) {
		free(path);
		return;
	}
	worker_submit(n->runs, discard_work, NULL, path);
}

void
node_inbox_done(struct node *n, struct qentry *e)
{
	struct commit_item *c = item_add(n, CI_HANDLED);

	c->path = xstrdup(e->file);
	c->data = xasprintf("handled-%.*s", (int)strcspn(e->key, " "),
	    e->key);
	queue_forget(n->inbox, e);
	commit_next(n);
}

static void
node_event(struct node *n, struct evhttp_request *req)
{
	struct doc *d = NULL;
	char *body, perr[256], key[512], why[1024];
	const char *type, *source, *version;
	int64_t proto;
	size_t len;
	int code;

	if ((body = http_body(req, PROTO_MAX_EVENT, &len)) == NULL) {
		http_reply_error(req, 413, "event larger than %d bytes",
		    PROTO_MAX_EVENT);
		return;
	}
	if (doc_parse(body, len, &d, perr, sizeof perr) != 0 ||
	    d->type != DOC_MAP) {
		http_reply_error(req, 400, "event body is not a JSON object%s%s",
		    d == NULL ? ": " : "", d == NULL ? perr : "");
		goto out;
	}
	if (doc_get_i64(d, "proto", &proto) != 0 || proto != PROTO_VERSION) {
		http_reply_error(req, 400, "event of protocol version %s: this "
		    "%s speaks version %d", doc_get_str(d, "proto") ?
		    doc_get_str(d, "proto") : "(none)", log_role(),
		    PROTO_VERSION);
		goto out;
	}
	type = doc_get_str(d, "type");
	source = doc_get_str(d, "source");
	version = doc_get_str(d, "version");
	if (type == NULL || source == NULL || !source_name_valid(source) ||
	    version == NULL || !version_id_valid(version)) {
		http_reply_error(req, 400, "event needs \"type\", a valid "
		    "\"source\" and \"version\"");
		goto out;
	}
	if (n->stopping) {
		http_reply_error(req, 503, "%s is shutting down", log_role());
		goto out;
	}
	key[0] = '\0';
	why[0] = '\0';
	code = n->ops->accept(n, d, key, sizeof key, why, sizeof why);
	if (code == NODE_QUEUE) {
		struct qentry *e = queue_prepare(n->inbox, key, "", body, len,
		    why, sizeof why);
		struct commit_item *c;
		if (e == NULL) {
			log_warnx("%s", why);
			http_reply_error(req, 503, "%s", why);
			goto out;
		}
		c = item_add(n, CI_RECEIVED);
		c->req = req;
		c->conn = evhttp_request_get_connection(req);
		c->e = e;
		evhttp_connection_set_closecb(c->conn, item_close_cb, c);
		log_debugf("%s %s %s: queued", type, source, version);
		commit_next(n);
		goto out;
	} else if (code != NODE_ACK_ONLY) {
		http_reply_error(req, code, "%s", why);
		goto out;
	}
	log_debugf("%s %s %s: %s", type, source, version, why);
	reply_queued(req, 0, why);
out:
	doc_free(d);
	free(body);
}

static void
node_status(struct node *n, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	struct qentry *e;
	struct json j;
	char iso[32];

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_i64(&j, "proto", PROTO_VERSION);
	json_str(&j, "role", role_name(n->cf->role));
	json_str(&j, "version", UNDERSTUDY_VERSION);
	time_format_iso(n->started, iso, sizeof iso);
	json_str(&j, "started", iso);
	json_i64(&j, "events_received", (int64_t)n->events_in);
	json_i64(&j, "events_delivered", (int64_t)n->events_out);
	json_arr_open(&j, "outbox");
	TAILQ_FOREACH(e, &n->outbox->entries, link) {
		json_obj_open(&j, NULL);
		json_str(&j, "event", e->key);
		json_i64(&j, "attempts", e->attempts);
		json_str(&j, "last_error", e->last_error);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_i64(&j, "inbox", (int64_t)n->inbox->count);
	n->ops->status(n, &j);
	json_obj_close(&j);
	evbuffer_add(b, "\n", 1);
	http_reply(req, 200, "application/json", b);
	evbuffer_free(b);
}

/* GET /health: public, one line, 200 or 503, for load balancers and DNS
 * failover checks.  ?max_age=SECONDS overrides the config's max_age. */
static void
node_health(struct node *n, struct evhttp_request *req)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *qs = evhttp_uri_get_query(u), *v;
	struct evkeyvalq q;
	struct evbuffer *b = evbuffer_new();
	int64_t max_age = n->cf->max_age;
	char why[1024], *end;
	int warn = 0, rc;
	long long x;

	TAILQ_INIT(&q);
	if (qs != NULL && evhttp_parse_query_str(qs, &q) == 0 &&
	    (v = evhttp_find_header(&q, "max_age")) != NULL) {
		x = strtoll(v, &end, 10);
		if (*end == '\0' && x > 0)
			max_age = x;
	}
	evhttp_clear_headers(&q);
	why[0] = '\0';
	rc = n->ops->health(n, max_age, &warn, why, sizeof why);
	evbuffer_add_printf(b, "%s: %s\n", rc != 0 ? "CRITICAL" : warn ?
	    "WARNING" : "OK", why);
	http_reply(req, rc == 0 ? 200 : 503, "text/plain; charset=utf-8", b);
	evbuffer_free(b);
}

static void
node_metrics(struct node *n, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b,
	    "# HELP understudy_info The daemon's role and version.\n"
	    "# TYPE understudy_info gauge\n"
	    "understudy_info{role=\"%s\",version=\"%s\"} 1\n"
	    "# TYPE understudy_start_time_seconds gauge\n"
	    "understudy_start_time_seconds %lld\n"
	    "# HELP understudy_queue_depth Events waiting in a queue.\n"
	    "# TYPE understudy_queue_depth gauge\n"
	    "understudy_queue_depth{queue=\"inbox\"} %zu\n"
	    "understudy_queue_depth{queue=\"outbox\"} %zu\n"
	    "# TYPE understudy_events_received_total counter\n"
	    "understudy_events_received_total %llu\n"
	    "# TYPE understudy_events_delivered_total counter\n"
	    "understudy_events_delivered_total %llu\n"
	    "# TYPE understudy_served_files_total counter\n"
	    "understudy_served_files_total %llu\n"
	    "# TYPE understudy_served_deltas_total counter\n"
	    "understudy_served_deltas_total %llu\n"
	    "# TYPE understudy_served_bytes_total counter\n"
	    "understudy_served_bytes_total %llu\n"
	    "# HELP understudy_served_signature_bytes_total librsync "
	    "signatures clients sent for deltas.\n"
	    "# TYPE understudy_served_signature_bytes_total counter\n"
	    "understudy_served_signature_bytes_total %llu\n"
	    "# HELP understudy_served_stored_deltas_total deltas kept from a "
	    "pull and relayed, without a signature.\n"
	    "# TYPE understudy_served_stored_deltas_total counter\n"
	    "understudy_served_stored_deltas_total %llu\n"
	    "# HELP understudy_loop_lag_max_seconds The longest the event "
	    "loop was late for a timer (a request waits as long).\n"
	    "# TYPE understudy_loop_lag_max_seconds gauge\n"
	    "understudy_loop_lag_max_seconds %.3f\n"
	    "# HELP understudy_loop_stalls_total Times the event loop was "
	    "more than 100 ms late.\n"
	    "# TYPE understudy_loop_stalls_total counter\n"
	    "understudy_loop_stalls_total %llu\n",
	    role_name(n->cf->role), UNDERSTUDY_VERSION, (long long)n->started,
	    n->inbox->count, n->outbox->count, n->events_in, n->events_out,
	    n->serve.files_sent, n->serve.deltas_sent, n->serve.bytes_sent,
	    n->serve.sig_bytes, n->serve.stored_sent, n->lag_max,
	    n->lag_stalls);
	n->ops->metrics(n, b);
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b);
	evbuffer_free(b);
}

void
node_record(struct node *n, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output)
{
	runlog_add(&n->runs_log, what, source, version, ok, started, summary,
	    output);
}

static void
atom_time(struct evbuffer *b, const char *tag, time_t t)
{
	char iso[32];

	time_format_iso(t, iso, sizeof iso);
	evbuffer_add_printf(b, "<%s>%s</%s>\n", tag, iso, tag);
}

/* GET /feed: an Atom feed of the runs, newest first. */
static void
node_feed(struct node *n, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	const struct run_rec *r;
	char base[300];
	size_t i;

	snprintf(base, sizeof base, "tag:understudy,2026:%s/%s:%d",
	    role_name(n->cf->role), n->cf->listen_host, n->cf->listen_port);
	evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	    "<feed xmlns=\"http://www.w3.org/2005/Atom\">\n"
	    "<title>understudy-%s on %s:%d</title>\n<id>%s</id>\n"
	    "<link rel=\"self\" href=\"/feed\"/>\n"
	    "<author><name>understudy-%s</name></author>\n",
	    role_name(n->cf->role), n->cf->listen_host, n->cf->listen_port,
	    base, role_name(n->cf->role));
	atom_time(b, "updated", n->runs_log.n > 0 ?
	    runlog_get(&n->runs_log, 0)->finished : n->started);
	for (i = 0; i < n->runs_log.n; i++) {
		r = runlog_get(&n->runs_log, i);
		evbuffer_add_printf(b, "<entry>\n<id>%s/%s/", base, r->what);
		html_text(b, r->source);
		evbuffer_add_printf(b, "/");
		html_text(b, r->version);
		evbuffer_add_printf(b, "/%lld</id>\n<title>%s: %s of ",
		    (long long)r->started, r->ok ? "OK" : "FAILURE", r->what);
		html_text(b, r->source);
		evbuffer_add_printf(b, " version ");
		html_text(b, r->version);
		evbuffer_add_printf(b, "</title>\n");
		atom_time(b, "updated", r->finished);
		atom_time(b, "published", r->started);
		evbuffer_add_printf(b, "<content type=\"text\">");
		html_text(b, r->summary);
		if (r->output != NULL) {
			evbuffer_add_printf(b, "\n\nhook output:\n");
			html_text(b, r->output);
		}
		evbuffer_add_printf(b, "</content>\n</entry>\n");
	}
	evbuffer_add_printf(b, "</feed>\n");
	http_reply(req, 200, "application/atom+xml; charset=utf-8", b);
	evbuffer_free(b);
}

/* The pages and /feed, for browsers and feed readers: everything that is
 * not under /v1/ (the protocol) or /health and /metrics. */
static void
node_page(struct node *n, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (http_check_page(req, n->cf) != 0)
		return;
	if (strcmp(path, "/feed") == 0 && cmd == EVHTTP_REQ_GET) {
		node_feed(n, req);
		return;
	}
	if (n->ops->page != NULL && n->ops->page(n, req, path) == 0)
		return;
	html_message(req, 404, "Not found", "There is no page here.");
}

static void
node_http_cb(struct evhttp_request *req, void *arg)
{
	struct node *n = arg;
	const char *uri = evhttp_request_get_uri(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (path == NULL) {
		http_reply_error(req, 400, "bad request URI");
		return;
	}
	if (strcmp(path, "/health") == 0 && cmd == EVHTTP_REQ_GET) {
		node_health(n, req);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && cmd == EVHTTP_REQ_GET) {
		if (http_check_secret(req, n->cf) == 0)
			node_metrics(n, req);
		return;
	}
	if (strncmp(path, "/v1/", 4) != 0) {
		node_page(n, req, path);
		return;
	}
	if (http_check(req, n->cf) != 0)
		return;
	if (strcmp(path, ROUTE_EVENTS) == 0) {
		if (cmd != EVHTTP_REQ_POST)
			http_reply_error(req, 405, "POST events here");
		else
			node_event(n, req);
		return;
	}
	if (strcmp(path, ROUTE_STATUS) == 0 && cmd == EVHTTP_REQ_GET) {
		node_status(n, req);
		return;
	}
	if (strncmp(path, ROUTE_SOURCES, strlen(ROUTE_SOURCES)) == 0 &&
	    n->ops->lookup != NULL) {
		serve_request(&n->serve, req, uri + (strstr(uri,
		    ROUTE_SOURCES) - uri) + strlen(ROUTE_SOURCES));
		return;
	}
	if (n->ops->route != NULL && n->ops->route(n, req, path) == 0)
		return;
	http_reply_error(req, 404, "no route %s on the %s", path, log_role());
}

int
node_init(struct node *n, struct config *cf, const struct node_ops *ops,
    void *role, const char *queue_dir, char *err, size_t errlen)
{
	char *in, *out, *runs;

	memset(n, 0, sizeof *n);
	n->cf = cf;
	n->ops = ops;
	n->role = role;
	n->started = time(NULL);
	n->base = daemon_base_new();
	in = xasprintf("%s/inbox", queue_dir);
	out = xasprintf("%s/outbox", queue_dir);
	n->inbox = queue_open(in, err, errlen);
	n->outbox = n->inbox ? queue_open(out, err, errlen) : NULL;
	free(in);
	free(out);
	if (n->outbox == NULL)
		return -1;
	runs = xasprintf("%s/runs.jsonl", queue_dir);
	runlog_open(&n->runs_log, runs);
	free(runs);
	if ((n->http = http_server_new(n->base, cf, err, errlen)) == NULL)
		return -1;
	evhttp_set_gencb(n->http, node_http_cb, n);
	n->cpu = worker_pool_new(n->base, 2);
	n->runs = worker_pool_new(n->base, 4);
	n->commit = worker_pool_new(n->base, 1);
	n->waiting_tail = &n->waiting;
	n->serve.lookup = ops->lookup;
	n->serve.arg = n;
	n->serve.workers = n->cpu;
	n->outbox_timer = evtimer_new(n->base, outbox_timer_cb, n);
	n->kick_ev = event_new(n->base, -1, 0, kick_cb, n);
	n->commit_ev = event_new(n->base, -1, 0, commit_start, n);
	if (n->inbox->count > 0 || n->outbox->count > 0)
		log_info("resuming: %zu event(s) to handle, %zu to deliver",
		    n->inbox->count, n->outbox->count);
	return 0;
}

/* SIGHUP: re-read the configuration file.  A bad file, or a change that
 * needs a restart, leaves the running configuration as it was. */
static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct node *n = arg;
	struct config *ncf;
	char err[1024], key[128];

	log_info("received SIGHUP: reloading %s", n->cf->path);
	if (config_load(n->cf->path, n->cf->role, &ncf, err,
	    sizeof err) != 0) {
		log_warnx("reload refused, the running configuration stays: "
		    "%s", err);
		return;
	}
	if (config_needs_restart(n->cf, ncf, key, sizeof key)) {
		log_warnx("reload refused, the running configuration stays: "
		    "%s changed, which needs a restart", key);
		config_free(ncf);
		return;
	}
	n->retired = xreallocarray(n->retired, n->nretired + 1,
	    sizeof *n->retired);
	n->retired[n->nretired++] = n->cf;
	n->cf = ncf;
	if (n->ops->reload != NULL)
		n->ops->reload(n, ncf);
	log_info("reloaded %s", ncf->path);
}

static void
node_stop(void *arg)
{
	struct node *n = arg;

	n->stopping = 1;
	worker_request_stop();
	daemon_notify("STOPPING=1");
	event_base_loopexit(n->base, NULL);
}

/* The loop's own latency, for /metrics: a timer every 100 ms, and how
 * late it runs. */
#define LAG_TICK_MS 100

static void
lag_arm(struct node *n)
{
	struct timeval tv = { 0, LAG_TICK_MS * 1000 };

	clock_gettime(CLOCK_MONOTONIC, &n->lag_due);
	n->lag_due.tv_nsec += LAG_TICK_MS * 1000000L;
	if (n->lag_due.tv_nsec >= 1000000000L) {
		n->lag_due.tv_sec++;
		n->lag_due.tv_nsec -= 1000000000L;
	}
	evtimer_add(n->lag_ev, &tv);
}

static void
lag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	struct timespec now;
	double late;

	clock_gettime(CLOCK_MONOTONIC, &now);
	late = (double)(now.tv_sec - n->lag_due.tv_sec) +
	    (double)(now.tv_nsec - n->lag_due.tv_nsec) / 1e9;
	if (late > n->lag_max)
		n->lag_max = late;
	if (late > 0.1)
		n->lag_stalls++;
	lag_arm(n);
}

int
node_run(struct node *n)
{
	daemon_signals(n->base, node_stop, n);
	n->hup_ev = evsignal_new(n->base, SIGHUP, hup_cb, n);
	event_add(n->hup_ev, NULL);
	outbox_pump(n);
	node_kick(n);
	n->lag_ev = evtimer_new(n->base, lag_cb, n);
	lag_arm(n);
	log_info("listening on %s:%d", n->cf->listen_host, n->cf->listen_port);
	daemon_notify("READY=1");
	event_base_dispatch(n->base);
	/* Running jobs see worker_stopping() and end at a safe point. */
	worker_pool_free(n->runs);
	worker_pool_free(n->cpu);
	worker_pool_free(n->commit);
	n->runs = n->cpu = n->commit = NULL;
	commit_flush(n);
	log_info("stopped");
	return 0;
}

void
node_free(struct node *n)
{
	worker_pool_free(n->commit);
	n->commit = NULL;
	commit_flush(n);
	if (n->http != NULL)
		evhttp_free(n->http);
	queue_close(n->inbox);
	queue_close(n->outbox);
	runlog_close(&n->runs_log);
	if (n->hup_ev != NULL)
		event_free(n->hup_ev);
	if (n->lag_ev != NULL)
		event_free(n->lag_ev);
	/* The first configuration belongs to prog_main(). */
	if (n->nretired > 0) {
		config_free(n->cf);
		n->cf = n->retired[0];
	}
	while (n->nretired > 1)
		config_free(n->retired[--n->nretired]);
	free(n->retired);
	worker_pool_free(n->runs);
	worker_pool_free(n->cpu);
}
