/* The per-source job engine (runner.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "doc.h"
#include "fsutil.h"
#include "html.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "runner.h"
#include "timespec.h"
#include "xmalloc.h"

#define RUNNER_STATE_MAX (1 << 20)
/* The last result's file is padded to this: room for a hook's output
 * (HOOK_OUTPUT_MAX) escaped; one longer only makes the file longer. */
#define RUNNER_STATE_PAD (24 * 1024)

static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
	{ "files", offsetof(struct sync_stats, files) },
	{ "bytes", offsetof(struct sync_stats, bytes) },
	{ "unchanged", offsetof(struct sync_stats, unchanged) },
	{ "moved", offsetof(struct sync_stats, moved) },
	{ "deltas", offsetof(struct sync_stats, deltas) },
	{ "whole", offsetof(struct sync_stats, whole) },
	{ "resumed", offsetof(struct sync_stats, resumed) },
	{ "mended", offsetof(struct sync_stats, mended) },
	{ "stored", offsetof(struct sync_stats, stored) },
	{ "ahead", offsetof(struct sync_stats, ahead) },
	{ "received", offsetof(struct sync_stats, received) },
	{ "sent", offsetof(struct sync_stats, sent) },
};

void
runner_result_clear(struct runner_result *res)
{
	free(res->version);
	free(res->error);
	free(res->output);
	memset(res, 0, sizeof *res);
}

/* A string member written by a JSON writer: NULL was written as null. */
static const char *
doc_string(const struct doc *d, const char *key)
{
	const struct doc *v = doc_get(d, key);

	return v != NULL && v->type == DOC_SCALAR && !v->plain ? v->str : NULL;
}

static void
load_last(struct runner *r)
{
	struct runner_result *res = &r->last;
	struct doc *d = NULL;
	char *buf, err[128];
	size_t len, i;
	int64_t v;

	if (fs_read_file(r->state_file, RUNNER_STATE_MAX, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) != 0 ||
	    doc_string(d, "version") == NULL ||
	    !version_id_valid(doc_string(d, "version"))) {
		log_warnx("%s is damaged; the last result of source \"%s\" is "
			  "forgotten",
		    r->state_file, r->sc->name);
		goto out;
	}
	res->version = xstrdup(doc_string(d, "version"));
	doc_get_bool(d, "ok", &res->ok);
	if (doc_string(d, "error") != NULL)
		res->error = xstrdup(doc_string(d, "error"));
	if (doc_string(d, "hook_output") != NULL)
		res->output = xstrdup(doc_string(d, "hook_output"));
	if (doc_get_i64(d, "at", &v) == 0)
		res->at = (time_t)v;
	if (doc_get_i64(d, "seconds", &v) == 0)
		res->secs = (long)v;
	for (i = 0; i < sizeof stat_fields / sizeof stat_fields[0]; i++)
		if (doc_get_i64(d, stat_fields[i].name, &v) == 0)
			*(int64_t *)((char *)&res->st + stat_fields[i].off) = v;
	if (res->ok) {
		r->ok_at = res->at;
		r->ok_secs = res->secs;
	}
out:
	doc_free(d);
	free(buf);
}

static void
save_last(struct runner *r)
{
	const struct runner_result *res = &r->last;
	struct evbuffer *b = evbuffer_new();
	struct json j;
	size_t i;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", res->version);
	json_bool(&j, "ok", res->ok);
	json_str(&j, "error", res->error);
	json_str(&j, "hook_output", res->output);
	json_i64(&j, "at", (int64_t)res->at);
	json_i64(&j, "seconds", res->secs);
	for (i = 0; i < sizeof stat_fields / sizeof stat_fields[0]; i++)
		json_i64(&j, stat_fields[i].name,
		    *(const int64_t *)((const char *)&res->st +
			stat_fields[i].off));
	json_obj_close(&j);
	/* Always as long, so that on a full disk the next one can be
	 * written over it. */
	while (evbuffer_get_length(b) < RUNNER_STATE_PAD)
		evbuffer_add(b, " ", 1);
	evbuffer_add(b, "\n", 1);
	durable_write_in_place(r->node, r->state_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	runner_kick(arg);
}

void
runner_init(struct runner *r, struct node *n, const struct source_conf *sc,
    const struct runner_ops *ops, const struct runner_words *words, void *arg,
    const char *state_file)
{
	memset(r, 0, sizeof *r);
	r->node = n;
	r->sc = sc;
	r->ops = ops;
	r->words = words;
	r->arg = arg;
	r->state_file = xstrdup(state_file);
	if (n != NULL) {
		r->retry_ev = evtimer_new(n->base, retry_cb, r);
		node_add_runner(n, r);
	}
	load_last(r);
}

void
runner_free(struct runner *r)
{
	if (r->retry_ev != NULL)
		event_free(r->retry_ev);
	r->retry_ev = NULL;
	runner_result_clear(&r->last);
	free(r->state_file);
	free(r->version);
	free(r->peer);
	free(r->retry_error);
}

static void
runner_reconf(struct runner *r)
{
	if (r->sc_next == NULL || r->busy || r->holds > 0)
		return;
	r->sc = r->sc_next;
	r->sc_next = NULL;
}

void
runner_reload(struct runner *r, const struct source_conf *sc_next)
{
	r->sc_next = sc_next;
	runner_reconf(r);
}

void
runner_hold(struct runner *r)
{
	r->holds++;
}

void
runner_release(struct runner *r)
{
	r->holds--;
	runner_reconf(r);
	if (r->holds == 0 && r->node != NULL)
		runner_kick(r);
}

int
runner_accept(struct runner *r, const char *type, const char *version,
    char *key, size_t keylen, char *why, size_t whylen)
{
	long ahead;

	snprintf(key, keylen, "%s %s", type, r->sc->name);
	ahead = proto_version_ahead(version);
	if (ahead > PROTO_MAX_AHEAD_SECS) {
		snprintf(why, whylen,
		    "version %s is %lds ahead of this host's clock (more than "
		    "%ds): the sender's clock or this host's is wrong",
		    version, ahead, PROTO_MAX_AHEAD_SECS);
		return PROTO_BAD;
	}
	if (inbox_has_newer(r->node, key, version)) {
		snprintf(why, whylen, "a newer version is already queued");
		return NODE_ACK_ONLY;
	}
	return NODE_QUEUE;
}

static void
start(struct runner *r, struct qentry *e, const struct doc *d)
{
	r->busy = 1;
	r->entry = e;
	e->busy = 1;
	xstrset(&r->version, doc_get_str(d, EVF_VERSION));
	xstrset(&r->peer, doc_get_str(d, EVF_PEER));
	r->started = time(NULL);
	r->started_ms = time_mono_ms();
	r->progress.total = r->progress.done = r->progress.received = 0;
	r->job_cf = r->node->cf;
	r->ops->start(r, d);
}

/* Whether d is of the version the runner last worked on. */
static int
same_version(const struct runner *r, const struct doc *d)
{
	const char *v = doc_get_str(d, EVF_VERSION);

	return r->version != NULL && v != NULL && strcmp(r->version, v) == 0;
}

void
runner_kick(struct runner *r)
{
	struct node *n = r->node;
	struct qentry *e, *next;
	const struct doc *d;
	const char *source;
	time_t now = time(NULL);
	struct timeval tv;

	/* Held: other work reads the source's state (a promotion, a
	 * check of the copy); runner_release() kicks again. */
	if (r->busy || r->holds > 0 || n->stopping)
		return;
	for (e = TAILQ_FIRST(&n->inbox->entries); e != NULL; e = next) {
		next = TAILQ_NEXT(e, link);
		if ((d = event_doc(e)) == NULL) {
			inbox_done(n, e);
			continue;
		}
		source = doc_get_str(d, EVF_SOURCE);
		if (source == NULL || strcmp(source, r->sc->name) != 0)
			continue;
		if (r->ops->handle(r, d) == RUNNER_HANDLED) {
			inbox_done(n, e);
			continue;
		}
		/* A version other than the one that failed is new work: it
		 * starts now, with attempts of its own. */
		if (r->attempts > 0 && !same_version(r, d)) {
			r->attempts = 0;
			r->next_try = 0;
			r->failing_since = 0;
			r->reported = 0;
			xstrset(&r->retry_error, NULL);
		}
		if (r->next_try > now) {
			tv.tv_sec = r->next_try - now;
			tv.tv_usec = 0;
			evtimer_add(r->retry_ev, &tv);
			return;
		}
		start(r, e, d);
		return;
	}
}

/* The job's result becomes the last one. */
static void
take_result(struct runner *r, struct runner_result *res)
{
	runner_result_clear(&r->last);
	r->last = *res;
	memset(res, 0, sizeof *res);
	if (r->last.ok) {
		r->ok_at = r->last.at;
		r->ok_secs = r->last.secs;
	} else
		r->failures++;
	save_last(r);
}

/* The event is done with: it goes, and the retries with it. */
static void
settle(struct runner *r, struct qentry *e)
{
	inbox_done(r->node, e);
	r->attempts = 0;
	r->next_try = 0;
	r->failing_since = 0;
	r->reported = 0;
	xstrset(&r->retry_error, NULL);
}

enum runner_outcome
runner_done(struct runner *r, struct runner_result *res, enum runner_fail how)
{
	struct qentry *e = r->entry;
	enum runner_outcome out;
	int delay, superseded;

	r->busy = 0;
	r->entry = NULL;
	e->busy = 0;
	superseded = !res->ok && e->superseded;
	if (!res->ok && (how == RUNNER_DROP || superseded)) {
		if (superseded)
			log_info("source \"%s\": %s %s failed, and a newer "
				 "event supersedes it (that one is reported): "
				 "%s",
			    r->sc->name, r->words->doing, r->version,
			    res->error != NULL ? res->error : "");
		settle(r, e);
		runner_result_clear(res);
		runner_reconf(r);
		return superseded ? RUNNER_SUPERSEDED : RUNNER_DROPPED;
	}
	if (res->ok || how == RUNNER_FINAL) {
		settle(r, e);
		out = res->ok ? RUNNER_OK : RUNNER_GAVE_UP;
		take_result(r, res);
		runner_reconf(r);
		return out;
	}
	/* Failed, and still the newest version: tried again, for as long
	 * as it is, with a growing pause. */
	r->attempts++;
	if (r->failing_since == 0)
		r->failing_since = r->started;
	delay = proto_retry_delay(r->attempts, PROTO_RETRY_JOB_SECS,
	    PROTO_RETRY_JOB_MAX_SECS);
	r->next_try = time(NULL) + delay;
	xstrset(&r->retry_error, res->error);
	if (!r->reported && how != RUNNER_QUIET &&
	    (how == RUNNER_REPORT || r->attempts >= PROTO_JOB_ATTEMPTS)) {
		/* A failure to report (the last result, a warning) while it
		 * goes on being retried: failed this often, or at once when
		 * the role says so. */
		log_warnx("source \"%s\": %s %s failed (%d attempt%s); "
			  "trying again in %ds, and at most every %ds while "
			  "it is the newest version: %s",
		    r->sc->name, r->words->doing, r->version, r->attempts,
		    r->attempts > 1 ? "s" : "", delay, PROTO_RETRY_JOB_MAX_SECS,
		    res->error);
		r->reported = 1;
		out = RUNNER_FAILED;
		take_result(r, res);
	} else {
		log_warnx("source \"%s\": %s %s failed (attempt %d, next in "
			  "%ds): %s",
		    r->sc->name, r->words->doing, r->version, r->attempts,
		    delay, res->error);
		runner_result_clear(res);
		out = RUNNER_RETRY;
	}
	runner_reconf(r);
	return out;
}

/* How far the job under way is: bytes of the version in place, of the
 * wire, the rate, and when it should end at that rate. */
static void
progress_json(const struct runner *r, struct json *j)
{
	long long total = r->progress.total, done = r->progress.done;
	long long received = r->progress.received;
	time_t now = time(NULL);
	/* From a monotonic clock in milliseconds: whole seconds of the
	 * wall clock made a rate up to a quarter off a few seconds in. */
	int64_t ms = time_mono_ms() - r->started_ms;
	long secs = (long)(ms / 1000);
	char iso[32];

	json_obj_open(j, "progress");
	json_i64(j, "bytes_total", total);
	json_i64(j, "bytes_done", done);
	json_i64(j, "bytes_received", received);
	json_i64(j, "seconds", secs);
	if (ms >= 1000)
		json_i64(j, "received_per_second",
		    (int64_t)((double)received * 1000 / (double)ms));
	if (ms >= 1000 && done > 0 && total >= done) {
		time_format_iso(now +
			(time_t)((double)ms / 1000 * (double)(total - done) /
			    (double)done),
		    iso, sizeof iso);
		json_str(j, "expected_end", iso);
	}
	json_obj_close(j);
}

void
runner_stats_json(struct json *j, const struct sync_stats *st)
{
	json_i64(j, "files", st->files);
	json_i64(j, "bytes", st->bytes);
	json_i64(j, "unchanged", st->unchanged);
	json_i64(j, "moved", st->moved);
	json_i64(j, "deltas", st->deltas);
	json_i64(j, "whole", st->whole);
	json_i64(j, "resumed", st->resumed);
	json_i64(j, "mended", st->mended);
	json_i64(j, "bytes_received", st->received);
}

void
runner_link_status(struct json *j, const struct source_conf *sc,
    const char *url)
{
	if (sc->bandwidth_limit > 0)
		json_i64(j, "bandwidth_limit", sc->bandwidth_limit);
	else
		json_null(j, "bandwidth_limit");
	json_str(j, "compress",
	    wirez_wanted(sc->compress, url) ? "zstd" : "off");
}

void
runner_status(const struct runner *r, struct json *j)
{
	const struct runner_result *res = &r->last;
	char iso[32];

	json_bool(j, r->words->busy, r->busy);
	if (r->busy) {
		json_str(j, r->words->busy_version, r->version);
		progress_json(r, j);
	}
	if (r->attempts > 0) {
		json_obj_open(j, "retrying");
		json_str(j, "version", r->version);
		json_i64(j, "attempts", r->attempts);
		time_format_iso(r->next_try, iso, sizeof iso);
		json_str(j, "next_attempt", iso);
		time_format_iso(r->failing_since, iso, sizeof iso);
		json_str(j, "failing_since", iso);
		json_str(j, "error", r->retry_error);
		json_obj_close(j);
	}
	if (res->version == NULL)
		return;
	json_obj_open(j, r->words->last);
	json_str(j, "version", res->version);
	json_str(j, "result", res->ok ? "ok" : "failed");
	if (res->error != NULL)
		json_str(j, "error", res->error);
	if (r->ops->result_json != NULL)
		r->ops->result_json(r, res, j);
	time_format_iso(res->at, iso, sizeof iso);
	json_str(j, "finished", iso);
	json_i64(j, "seconds", res->secs);
	json_obj_close(j);
}

/* One source's part of the health line, at why + *off; -1 with why (at
 * its start) when the source is not fresh. */
static int
runner_health(const struct runner *r, int64_t max_age, int64_t max_lag,
    int *warn, char *why, size_t len, size_t *off)
{
	const char *name = r->sc->name, *newest, *aside;
	int failed = r->last.version != NULL && !r->last.ok;
	char what[1024];
	time_t made;
	long age;

	if (r->ops->aside != NULL && (aside = r->ops->aside(r)) != NULL) {
		if (*off < len)
			*off += (size_t)snprintf(why + *off, len - *off,
			    "%s\"%s\": %s", *off > 0 ? "; " : "", name, aside);
		return 0;
	}
	if (r->ops->damaged != NULL && r->ops->damaged(r, what, sizeof what)) {
		snprintf(why, len, "source \"%s\": %s", name, what);
		return -1;
	}
	if ((newest = r->ops->newest(r)) == NULL) {
		snprintf(why, len, "source \"%s\": %s", name, r->words->none);
		return -1;
	}
	/* Its age from when it was made, or from when it got here if that
	 * is earlier: a version from a clock ahead is not fresher than
	 * that. */
	made = (time_t)(version_id_ms(newest) / 1000);
	if (r->ok_at > 0 && r->ok_at < made && r->last.version != NULL &&
	    strcmp(r->last.version, newest) == 0)
		made = r->ok_at;
	age = (long)(time(NULL) - made);
	if (age < -PROTO_MAX_SKEW_SECS) {
		snprintf(why, len,
		    "source \"%s\": %s is %lds in the future: this host's "
		    "clock or the exporter's is wrong",
		    name, r->words->stale, -age);
		return -1;
	}
	if (age > max_age) {
		snprintf(why, len,
		    "source \"%s\": %s is %lds old (max_age %llds)", name,
		    r->words->stale, age, (long long)max_age);
		return -1;
	}
	if (max_lag > 0 && (r->busy || r->attempts > 0) &&
	    (age = (long)(time(NULL) - version_id_ms(r->version) / 1000)) >
		max_lag) {
		snprintf(why, len,
		    "source \"%s\": %s %s, exported %lds ago, is not done "
		    "(max_lag %llds)",
		    name, r->words->doing, r->version, age, (long long)max_lag);
		return -1;
	}
	if (failed)
		*warn = 1;
	if (*off < len)
		*off += (size_t)snprintf(why + *off, len - *off,
		    "%s\"%s\": %s %lds old%s%s", *off > 0 ? "; " : "", name,
		    r->words->fresh, age, failed ? ", " : "",
		    failed ? r->words->failed : "");
	return 0;
}

int
runner_health_all(struct runner *const *rs, size_t n, int64_t max_age,
    int64_t max_lag, int *warn, char *why, size_t len)
{
	size_t i, off = 0;

	why[0] = '\0';
	for (i = 0; i < n; i++)
		if (runner_health(rs[i], max_age, max_lag, warn, why, len,
			&off) != 0)
			return -1;
	return 0;
}

void
runner_html(struct evbuffer *b, const struct runner *r, time_t now, int full)
{
	const struct runner_result *last = &r->last;
	char when[96], *text;

	if (r->busy) {
		html_when(when, sizeof when, r->started, now);
		text = xasprintf("%s version %s, started %s; %lld of %lld "
				 "bytes in place, %lld received",
		    r->words->page_busy, r->version, when,
		    (long long)r->progress.done, (long long)r->progress.total,
		    (long long)r->progress.received);
		html_row(b, r->words->page_job, "busy", text);
		free(text);
	} else
		html_row(b, r->words->page_job, NULL, "none in progress");
	if (last->version != NULL) {
		html_when(when, sizeof when, last->at, now);
		text = xasprintf("%s: version %s, finished %s, took %lds; %lld "
				 "files (%lld unchanged, %lld by delta, %lld "
				 "whole), %lld bytes received",
		    last->ok ? "OK" : "FAILED", last->version, when, last->secs,
		    (long long)last->st.files, (long long)last->st.unchanged,
		    (long long)last->st.deltas, (long long)last->st.whole,
		    (long long)last->st.received);
		html_row(b, r->words->page_last, last->ok ? "ok" : "bad", text);
		free(text);
		if (!last->ok && last->error != NULL)
			html_row(b, "Error", "bad",
			    full ? last->error : "(shown with the details)");
	}
	if (r->attempts > 0) {
		html_when(when, sizeof when, r->next_try, now);
		text = xasprintf(
		    "version %s failed %d time(s); next attempt %s: %s",
		    r->version, r->attempts, when,
		    !full              ? "(the error shows with the details)" :
			r->retry_error ? r->retry_error :
					 "?");
		html_row(b, "Retrying", "busy", text);
		free(text);
	}
}

void
runner_metrics(struct evbuffer *b, struct runner *const *rs, size_t n)
{
	size_t i;

	if (n == 0)
		return;
	metrics_family(b, "understudy_failures_total", "counter", NULL);
	for (i = 0; i < n; i++)
		metrics_int(b, "understudy_failures_total",
		    (int64_t)rs[i]->failures, "source", rs[i]->sc->name, NULL);
	metrics_family(b, "understudy_last_success_timestamp_seconds", "gauge",
	    NULL);
	for (i = 0; i < n; i++)
		if (rs[i]->ok_at != 0)
			metrics_int(b,
			    "understudy_last_success_timestamp_seconds",
			    rs[i]->ok_at, "source", rs[i]->sc->name, NULL);
	metrics_family(b, rs[0]->words->duration, "gauge", NULL);
	for (i = 0; i < n; i++)
		if (rs[i]->ok_at != 0)
			metrics_int(b, rs[i]->words->duration, rs[i]->ok_secs,
			    "source", rs[i]->sc->name, NULL);
}
