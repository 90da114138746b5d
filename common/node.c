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

int
node_inbox_has_newer(struct node *n, const char *key, const char *version)
{
	struct qentry *e;
	struct doc *d;
	const char *v;
	int newer = 0;

	TAILQ_FOREACH(e, &n->inbox->entries, link) {
		if (strcmp(e->key, key) != 0 || e->superseded)
			continue;
		if ((d = event_parse(e)) == NULL)
			continue;
		v = doc_get_str(d, "version");
		if (v != NULL && strcmp(v, version) > 0)
			newer = 1;
		doc_free(d);
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

void
node_send(struct node *n, const char *dest, const char *key,
    struct evbuffer *body)
{
	char err[512], *k = xasprintf("%s %s", dest, key);

	if (queue_push(n->outbox, k, dest, (const char *)evbuffer_pullup(body,
	    -1), evbuffer_get_length(body), err, sizeof err) == NULL)
		log_warnx("cannot queue an event for %s: %s", dest, err);
	free(k);
	outbox_pump(n);
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

/* Receiving events.  An event is acknowledged once it is durably queued.
 * The writing (a file and its fsync, and the directory's) is done by the
 * commit thread, off the event loop, which keeps answering (status,
 * pages) meanwhile; the events that arrive while a batch is written go
 * together in the next one, which shares one directory fsync.  One batch
 * at a time: the events enter the inbox in the order they came. */
struct pending_event {
	struct pending_event *next;
	struct node *n;
	struct evhttp_request *req;	/* NULL once the client went away */
	struct evhttp_connection *conn;
	struct qentry *e;
	int rc;
	int err;
};

static void commit_next(struct node *);

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
pending_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct pending_event *p = arg;

	(void)conn;
	p->req = NULL;
}

static void
pending_free(struct pending_event *p)
{
	if (p->req != NULL)
		evhttp_connection_set_closecb(p->conn, NULL, NULL);
	if (p->e != NULL)
		queue_discard(p->e);
	free(p);
}

static void
commit_work(void *arg)
{
	struct node *n = arg;
	struct pending_event *p;
	int dir_rc;

	for (p = n->writing; p != NULL; p = p->next) {
		p->rc = queue_store(p->e);
		p->err = errno;
	}
	dir_rc = queue_sync(n->inbox);
	for (p = n->writing; p != NULL; p = p->next)
		if (p->rc == 0 && dir_rc != 0) {
			p->rc = -1;
			p->err = errno;
		}
}

static void
commit_done(void *arg)
{
	struct node *n = arg;
	struct pending_event *p, *next;
	int queued = 0;

	for (p = n->writing; p != NULL; p = next) {
		next = p->next;
		if (p->rc == 0) {
			queue_insert(n->inbox, p->e);
			p->e = NULL;
			n->events_in++;
			queued = 1;
		} else
			log_warnx("%s: cannot queue the event durably: %s",
			    n->inbox->dir, strerror(p->err));
		if (p->req != NULL) {
			evhttp_connection_set_closecb(p->conn, NULL, NULL);
			if (p->rc == 0)
				reply_queued(p->req, 1, NULL);
			else
				http_reply_error(p->req, 503, "%s: cannot queue "
				    "the event durably: %s", n->inbox->dir,
				    strerror(p->err));
			p->req = NULL;
		}
		pending_free(p);
	}
	n->writing = NULL;
	if (queued)
		node_kick(n);
	commit_next(n);
}

static void
commit_next(struct node *n)
{
	if (n->writing != NULL || n->waiting == NULL || n->stopping)
		return;
	n->writing = n->waiting;
	n->waiting = NULL;
	n->waiting_tail = &n->waiting;
	worker_submit(n->commit, commit_work, commit_done, n);
}

/* At exit: what was not written is not acknowledged, and the senders
 * send it again. */
static void
commit_drop(struct node *n)
{
	struct pending_event *p;

	while ((p = n->writing) != NULL) {
		n->writing = p->next;
		pending_free(p);
	}
	while ((p = n->waiting) != NULL) {
		n->waiting = p->next;
		pending_free(p);
	}
	n->waiting_tail = &n->waiting;
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
		struct pending_event *p;
		if (e == NULL) {
			log_warnx("%s", why);
			http_reply_error(req, 503, "%s", why);
			goto out;
		}
		p = xcalloc(1, sizeof *p);
		p->n = n;
		p->req = req;
		p->conn = evhttp_request_get_connection(req);
		p->e = e;
		evhttp_connection_set_closecb(p->conn, pending_close_cb, p);
		*n->waiting_tail = p;
		n->waiting_tail = &p->next;
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
	    "understudy_served_stored_deltas_total %llu\n",
	    role_name(n->cf->role), UNDERSTUDY_VERSION, (long long)n->started,
	    n->inbox->count, n->outbox->count, n->events_in, n->events_out,
	    n->serve.files_sent, n->serve.deltas_sent, n->serve.bytes_sent,
	    n->serve.sig_bytes, n->serve.stored_sent);
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

int
node_run(struct node *n)
{
	daemon_signals(n->base, node_stop, n);
	n->hup_ev = evsignal_new(n->base, SIGHUP, hup_cb, n);
	event_add(n->hup_ev, NULL);
	outbox_pump(n);
	node_kick(n);
	log_info("listening on %s:%d", n->cf->listen_host, n->cf->listen_port);
	daemon_notify("READY=1");
	event_base_dispatch(n->base);
	/* Running jobs see worker_stopping() and end at a safe point. */
	worker_pool_free(n->runs);
	worker_pool_free(n->cpu);
	worker_pool_free(n->commit);
	n->runs = n->cpu = n->commit = NULL;
	commit_drop(n);
	log_info("stopped");
	return 0;
}

void
node_free(struct node *n)
{
	worker_pool_free(n->commit);
	n->commit = NULL;
	commit_drop(n);
	if (n->http != NULL)
		evhttp_free(n->http);
	queue_close(n->inbox);
	queue_close(n->outbox);
	runlog_close(&n->runs_log);
	if (n->hup_ev != NULL)
		event_free(n->hup_ev);
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
