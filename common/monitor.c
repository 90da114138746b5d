/* What a daemon tells about itself: GET /v1/status (the common part, then
 * the role's), GET /health (public, one line, 200 or 503), GET /metrics
 * (Prometheus text), GET /feed (an Atom feed of its runs), and the loop's
 * own lag, measured by a timer that should run every MONITOR_TICK_MS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "html.h"
#include "http.h"
#include "json.h"
#include "generation.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "runner.h"
#include "timespec.h"
#include "tls.h"
#include "understudy-config.h"
#include "xmalloc.h"

#define MONITOR_TICK_MS 100
/* check and /health warn this long before the certificate expires */
#define TLS_WARN_SECS (21 * 86400)
#define MONITOR_STALL 0.1 /* seconds late: a stall */

void
monitor_status(struct node *n, struct evhttp_request *req)
{
	struct qentry *e;
	struct json j;
	char iso[32], fp[TLS_FP_SIZE];
	time_t not_after;

	http_json_begin(&j);
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
	if (n->cf->tls != NULL && tls_own(fp, &not_after) == 0) {
		json_obj_open(&j, "tls");
		json_str(&j, "certificate", n->cf->tls->certificate);
		json_str(&j, "fingerprint", fp);
		time_format_iso(not_after, iso, sizeof iso);
		json_str(&j, "expires", iso);
		json_obj_close(&j);
	}
	n->ops->status(n, &j);
	http_reply_json(req, PROTO_OK, &j);
}

/* This host's certificate: critical once expired, a warning three weeks
 * ahead; said first. */
static void
tls_health(struct node *n, int *rc, int *warn, char *why, size_t len)
{
	char fp[TLS_FP_SIZE], iso[32], *rest;
	time_t not_after, now = time(NULL);

	if (n->cf->tls == NULL || tls_own(fp, &not_after) != 0 ||
	    not_after - now > TLS_WARN_SECS)
		return;
	time_format_iso(not_after, iso, sizeof iso);
	rest = xstrdup(why);
	if (not_after <= now) {
		*rc = 1;
		snprintf(why, len, "the TLS certificate %s expired at %s%s%s",
		    n->cf->tls->certificate, iso, *rest ? "; " : "", rest);
	} else {
		*warn = 1;
		snprintf(why, len,
		    "the TLS certificate %s expires at %s, in %lld days: "
		    "renew it (then reload)%s%s",
		    n->cf->tls->certificate, iso,
		    (long long)((not_after - now) / 86400), *rest ? "; " : "",
		    rest);
	}
	free(rest);
}

/* For load balancers and DNS failover checks; ?max_age=SECONDS overrides
 * the config's max_age. */
void
monitor_health(struct node *n, struct evhttp_request *req,
    const struct proto_req *pr)
{
	struct evbuffer *b = evbuffer_new();
	int64_t max_age = pr->max_age > 0 ? pr->max_age : n->cf->max_age;
	char why[1024];
	int warn = 0, rc;

	why[0] = '\0';
	if (n->ops->health != NULL)
		rc = n->ops->health(n, max_age, pr->max_lag, &warn, why,
		    sizeof why);
	else
		rc = runner_health_all(n->runners, n->nrunners, max_age,
		    pr->max_lag, &warn, why, sizeof why);
	tls_health(n, &rc, &warn, why, sizeof why);
	evbuffer_add_printf(b, "%s: %s\n",
	    rc != 0  ? "CRITICAL" :
		warn ? "WARNING" :
		       "OK",
	    why);
	http_reply(req, rc == 0 ? PROTO_OK : PROTO_UNAVAILABLE, PROTO_CT_TEXT,
	    b);
	evbuffer_free(b);
}

void
monitor_metrics(struct node *n, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	const struct serve *sv = &n->serve;
	size_t i;

	metrics_family(b, "understudy_info", "gauge",
	    "The daemon's role and version.");
	metrics_int(b, "understudy_info", 1, "role", role_name(n->cf->role),
	    "version", UNDERSTUDY_VERSION, NULL);
	metrics_family(b, "understudy_start_time_seconds", "gauge", NULL);
	metrics_int(b, "understudy_start_time_seconds", n->started, NULL);
	metrics_family(b, "understudy_queue_depth", "gauge",
	    "Events waiting in a queue.");
	metrics_int(b, "understudy_queue_depth", (int64_t)n->inbox->count,
	    "queue", "inbox", NULL);
	metrics_int(b, "understudy_queue_depth", (int64_t)n->outbox->count,
	    "queue", "outbox", NULL);
	metrics_family(b, "understudy_events_received_total", "counter", NULL);
	metrics_int(b, "understudy_events_received_total",
	    (int64_t)n->events_in, NULL);
	metrics_family(b, "understudy_events_delivered_total", "counter", NULL);
	metrics_int(b, "understudy_events_delivered_total",
	    (int64_t)n->events_out, NULL);
	metrics_family(b, "understudy_served_files_total", "counter", NULL);
	metrics_int(b, "understudy_served_files_total", (int64_t)sv->files_sent,
	    NULL);
	metrics_family(b, "understudy_served_deltas_total", "counter", NULL);
	metrics_int(b, "understudy_served_deltas_total",
	    (int64_t)sv->deltas_sent, NULL);
	metrics_family(b, "understudy_served_bytes_total", "counter", NULL);
	metrics_int(b, "understudy_served_bytes_total", (int64_t)sv->bytes_sent,
	    NULL);
	metrics_family(b, "understudy_served_signature_bytes_total", "counter",
	    "librsync signatures clients sent for deltas.");
	metrics_int(b, "understudy_served_signature_bytes_total",
	    (int64_t)sv->sig_bytes, NULL);
	metrics_family(b, "understudy_served_stored_deltas_total", "counter",
	    "deltas kept from a pull and relayed, without a signature.");
	metrics_int(b, "understudy_served_stored_deltas_total",
	    (int64_t)sv->stored_sent, NULL);
	metrics_family(b, "understudy_generation", "gauge",
	    "The source's generation here: 1, then one more at each "
	    "promotion.");
	for (i = 0; i < n->ngens; i++)
		metrics_int(b, "understudy_generation", n->gens[i]->cur.n,
		    "source", n->gens[i]->source, NULL);
	metrics_family(b, "understudy_fenced", "gauge",
	    "1 when a promotion elsewhere fenced this exporter off.");
	for (i = 0; i < n->ngens; i++)
		metrics_int(b, "understudy_fenced", n->gens[i]->fence.n > 0,
		    "source", n->gens[i]->source, NULL);
	metrics_family(b, "understudy_loop_lag_max_seconds", "gauge",
	    "The longest the event loop was late for a timer (a request waits "
	    "as long).");
	metrics_secs(b, "understudy_loop_lag_max_seconds", n->lag_max, NULL);
	metrics_family(b, "understudy_loop_stalls_total", "counter",
	    "Times the event loop was more than 100 ms late.");
	metrics_int(b, "understudy_loop_stalls_total", (int64_t)n->lag_stalls,
	    NULL);
	runner_metrics(b, n->runners, n->nrunners);
	n->ops->metrics(n, b);
	http_reply(req, PROTO_OK, PROTO_CT_METRICS, b);
	evbuffer_free(b);
}

static void
atom_time(struct evbuffer *b, const char *tag, time_t t)
{
	char iso[32];

	time_format_iso(t, iso, sizeof iso);
	evbuffer_add_printf(b, "<%s>%s</%s>\n", tag, iso, tag);
}

/* The runs, newest first. */
void
monitor_feed(struct node *n, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	const struct run_rec *r;
	const char *role = role_name(n->cf->role);
	char base[300];
	size_t i;
	int full = http_page_full(req, n->cf);

	snprintf(base, sizeof base, "tag:understudy,2026:%s/%s:%d", role,
	    n->cf->listen_host, n->cf->listen_port);
	evbuffer_add_printf(b,
	    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed "
	    "xmlns=\"http://www.w3.org/2005/Atom\">\n<title>understudy-%s on "
	    "%s:%d</title>\n<id>%s</id>\n<link rel=\"self\" "
	    "href=\"%s\"/>\n<author><name>understudy-%s</name></author>\n",
	    role, n->cf->listen_host, n->cf->listen_port, base, ROUTE_FEED,
	    role);
	atom_time(b, "updated",
	    n->runs_log.n > 0 ? runlog_get(&n->runs_log, 0)->finished :
				n->started);
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
		/* A summary may name files, an error peers. */
		html_text(b,
		    full      ? r->summary :
			r->ok ? "done (the summary shows with the "
				"details: /feed with a credential)" :
				"failed (the error shows with the "
				"details: /feed with a credential)");
		if (full && r->output != NULL) {
			evbuffer_add_printf(b, "\n\nhook output:\n");
			html_text(b, r->output);
		}
		evbuffer_add_printf(b, "</content>\n</entry>\n");
	}
	evbuffer_add_printf(b, "</feed>\n");
	http_reply(req, PROTO_OK, PROTO_CT_ATOM, b);
	evbuffer_free(b);
}

static void
lag_arm(struct node *n)
{
	struct timeval tv = { 0, MONITOR_TICK_MS * 1000 };

	n->lag_due_ms = time_mono_ms() + MONITOR_TICK_MS;
	evtimer_add(n->lag_ev, &tv);
}

static void
lag_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	double late = (double)(time_mono_ms() - n->lag_due_ms) / 1000;

	if (late > n->lag_max)
		n->lag_max = late;
	if (late > MONITOR_STALL)
		n->lag_stalls++;
	lag_arm(n);
}

void
monitor_lag_start(struct node *n)
{
	n->lag_ev = evtimer_new(n->base, lag_cb, n);
	lag_arm(n);
}
