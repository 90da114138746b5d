/* understudy-exporter: the live host's daemon.  It runs the operator's
 * export hook into a fresh directory, scans what the hook made into a
 * manifest, tells each pull-backup in "notify" that the version is ready,
 * and serves that version read only until every pull-backup has archived
 * it or a newer one supersedes it.  It owns state_dir: exports/<version>/
 * (data/, manifest, backup.signature) and the event queues.  See
 * exporter.h for its parts. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "exporter.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "proto.h"
#include "queue.h"
#include "timespec.h"
#include "xmalloc.h"

/* The data of a version no longer served is renamed so, then removed on a
 * worker; start-up removes what a stop left.  So is the directory of an
 * export nothing needs. */
#define UNSERVED_SUFFIX ".unserved"
#define GONE_SUFFIX ".gone"

static const char *
pb_state_name(enum pb_state s)
{
	return s == PB_OK ? "ok" : s == PB_FAILED ? "failed" : "pending";
}

static const char *
run_state_name(enum run_state s)
{
	return s == RUN_RUNNING ? "running" :
	    s == RUN_EXPORTED   ? "exported" :
				  "failed";
}

void
run_free(struct run *r)
{
	size_t i;

	for (i = 0; i < r->npb; i++) {
		free(r->pb[i].url);
		free(r->pb[i].archive_error);
		free(r->pb[i].import_error);
		free(r->pb[i].delivery_error);
	}
	free(r->pb);
	free(r->dir);
	free(r->mpath);
	free(r->tmp);
	free(r->prev_data);
	free(r->prev_id);
	free(r->data);
	free(r->error);
	free(r->hook_output);
	manifest_free(r->m);
	hook_result_clear(&r->hr);
	free(r);
}

struct run *
run_find(struct exporter *ex, const char *id)
{
	struct run *r;

	TAILQ_FOREACH(r, &ex->runs, link)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

void
run_unserve(struct exporter *ex, struct run *r, const char *why)
{
	char *gone;

	if (!r->served)
		return;
	r->served = 0;
	if (ex->served == r)
		ex->served = NULL;
	gone = xasprintf("%s%s", r->data, UNSERVED_SUFFIX);
	if (rename(r->data, gone) != 0) {
		log_warn("%s", r->data);
		free(gone);
	} else
		node_discard_tree(&ex->node, gone);
	log_info("version %s is no longer served: %s", r->id, why);
	runs_tidy(ex);
}

/* The newest export that succeeded, whether served or not. */
static const struct run *
newest_exported(const struct exporter *ex)
{
	const struct run *r, *newest = NULL;

	TAILQ_FOREACH(r, &ex->runs, link)
		if (r->state == RUN_EXPORTED)
			newest = r;
	return newest;
}

void
runs_tidy(struct exporter *ex)
{
	const struct run *newest = newest_exported(ex);
	struct run *r;
	char *gone;

	TAILQ_FOREACH(r, &ex->runs, link) {
		if (r->state != RUN_EXPORTED || r->served || r == newest ||
		    r->dir_gone)
			continue;
		r->dir_gone = 1;
		gone = xasprintf("%s%s", r->dir, GONE_SUFFIX);
		if (rename(r->dir, gone) != 0) {
			log_warn("%s", r->dir);
			free(gone);
		} else
			node_discard_tree(&ex->node, gone);
	}
}

/* Events from the pull-backups. */

/* A version imported on a standby: the newest such is kept, to measure
 * the replication lag, across restarts too. */
static void
imported_note(struct exporter *ex, const char *version)
{
	char buf[128];
	int len;

	if (strcmp(version, ex->imported) <= 0)
		return;
	snprintf(ex->imported, sizeof ex->imported, "%s", version);
	ex->imported_at = time(NULL);
	len = snprintf(buf, sizeof buf, "{\"version\":\"%s\",\"at\":%lld}\n",
	    ex->imported, (long long)ex->imported_at);
	durable_write(&ex->node, ex->imported_file, buf, (size_t)len);
}

static void
imported_load(struct exporter *ex)
{
	struct doc *d = NULL;
	char *buf, err[128];
	size_t len;
	const char *v;
	int64_t at;

	if (fs_read_file(ex->imported_file, 4096, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) != 0 ||
	    (v = doc_get_str(d, "version")) == NULL || !version_id_valid(v) ||
	    doc_get_i64(d, "at", &at) != 0)
		log_warnx("%s is damaged; the last import is forgotten until "
			  "the next",
		    ex->imported_file);
	else {
		snprintf(ex->imported, sizeof ex->imported, "%s", v);
		ex->imported_at = (time_t)at;
	}
	doc_free(d);
	free(buf);
}

/* A report said where an archive stands: kept when it is the newest
 * known, and a new export follows at once when it shows that this host's
 * newest version was superseded by one it did not make (its state was
 * lost, or its clock went back). */
static void
archived_note(struct exporter *ex, const char *newest, const struct run *r,
    const char *from)
{
	const struct run *last = TAILQ_LAST(&ex->runs, runlist);
	char buf[128], why[256];
	long ahead;
	int len;

	if (newest == NULL || !version_id_valid(newest) ||
	    strcmp(newest, ex->archived) <= 0)
		return;
	ahead = proto_version_ahead(newest);
	if (ahead > EXPORTER_MAX_FLOOR_AHEAD) {
		log_warnx("%s says its archive holds version %s, %lds ahead of "
			  "this host's clock: not numbering the next versions "
			  "after it (is this host's clock or its wrong?)",
		    from, newest, ahead);
		return;
	}
	snprintf(ex->archived, sizeof ex->archived, "%s", newest);
	len = snprintf(buf, sizeof buf, "{\"version\":\"%s\"}\n", newest);
	durable_write(&ex->node, ex->archived_file, buf, (size_t)len);
	if (strcmp(newest, r->id) <= 0 || r != last || ex->running != NULL)
		return;
	log_warnx("version %s was superseded by version %s, which this "
		  "exporter did not make (its state was lost, or its clock "
		  "went back): exporting again, numbered after it",
	    r->id, newest);
	if (export_start(ex, "renumbered", why, sizeof why) == NULL)
		log_warnx("exporting again: %s", why);
}

static void
archived_load(struct exporter *ex)
{
	struct doc *d = NULL;
	char *buf, err[128];
	const char *v;
	size_t len;

	if (fs_read_file(ex->archived_file, 4096, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) != 0 ||
	    (v = doc_get_str(d, "version")) == NULL || !version_id_valid(v))
		log_warnx("%s is damaged; the archive's newest version is "
			  "learnt again from the next report",
		    ex->archived_file);
	else
		snprintf(ex->archived, sizeof ex->archived, "%s", v);
	doc_free(d);
	free(buf);
}

static struct pb_report *
pb_find(struct run *r, const char *url)
{
	size_t i;

	for (i = 0; url != NULL && i < r->npb; i++)
		if (strcmp(r->pb[i].url, url) == 0)
			return &r->pb[i];
	return NULL;
}

int
exporter_fenced(const struct exporter *ex, char *why, size_t whylen)
{
	char what[512];

	if (ex->gen == NULL || ex->gen->fence.n == 0)
		return 0;
	gen_describe(&ex->gen->fence, what, sizeof what);
	snprintf(why, whylen,
	    "fenced: source \"%s\" is in %s; this exporter, of generation "
	    "%lld, exports no more (docs/operations.md, \"Failback\")",
	    ex->cf->source, what, (long long)ex->gen->cur.n);
	return 1;
}

/* A pull-backup or a report named a newer generation: the source was
 * promoted elsewhere, and this exporter is fenced off, durably, until the
 * operator acts. */
static void
ex_newer_generation(struct node *n, struct gen *g, const struct gen_start *s)
{
	struct exporter *ex = n->role;
	char why[1024];

	if (s->n <= g->fence.n)
		return;
	gen_set(&g->fence, s);
	gen_save(n, g);
	exporter_fenced(ex, why, sizeof why);
	log_warnx("%s", why);
	export_schedule(ex);
}

/* The report of the run and pull-backup an outbox event of ours was
 * about, or NULL. */
static struct pb_report *
pb_of_event(struct exporter *ex, struct qentry *e)
{
	const struct doc *ev = event_doc(e);
	const char *version;
	struct run *r;

	if (ev == NULL || (version = doc_get_str(ev, EVF_VERSION)) == NULL ||
	    (r = run_find(ex, version)) == NULL)
		return NULL;
	return pb_find(r, e->dest);
}

/* A pull-backup refused a version for good (409: a newer generation): it
 * will not archive it. */
static void
ex_refused(struct node *n, const struct qentry *e, const char *why)
{
	struct pb_report *pb = pb_of_event(n->role, (struct qentry *)e);

	if (pb == NULL || pb->archived != PB_PENDING)
		return;
	pb->archived = PB_FAILED;
	pb->refused = 1;
	xstrset(&pb->archive_error, why);
}

/* How telling a pull-backup of a version went: kept for status and now. */
static void
ex_delivery(struct node *n, struct qentry *e, int status, const char *why)
{
	struct pb_report *pb = pb_of_event(n->role, e);

	if (pb == NULL)
		return;
	pb->delivery_status = why != NULL ? status : 0;
	xstrset(&pb->delivery_error, why);
}

static int
ex_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct exporter *ex = n->role;
	const char *type = doc_get_str(ev, EVF_TYPE);
	const char *source = doc_get_str(ev, EVF_SOURCE);
	const char *from = doc_get_str(ev, EVF_FROM);

	if (strcmp(type, EV_BACKUP_ARCHIVED) != 0 &&
	    strcmp(type, EV_BACKUP_IMPORTED) != 0) {
		snprintf(why, whylen, "the exporter takes no \"%s\" events",
		    type);
		return PROTO_BAD;
	}
	if (strcmp(source, ex->cf->source) != 0) {
		snprintf(why, whylen,
		    "this exporter exports \"%s\", not \"%s\"", ex->cf->source,
		    source);
		return PROTO_UNKNOWN;
	}
	if (from == NULL) {
		snprintf(why, whylen, "event needs \"from\"");
		return PROTO_BAD;
	}
	snprintf(key, keylen, "%s %s %s", type, source, from);
	return NODE_QUEUE;
}

static void
ex_handle(struct exporter *ex, const struct doc *ev)
{
	const char *type = doc_get_str(ev, EVF_TYPE);
	const char *version = doc_get_str(ev, EVF_VERSION);
	const char *err = doc_get_str(ev, EVF_ERROR), *newest;
	struct run *r = run_find(ex, version);
	struct pb_report *pb;
	size_t i;
	int ok = 0, all;

	doc_get_bool(ev, EVF_OK, &ok);
	if (r == NULL || (pb = pb_find(r, doc_get_str(ev, EVF_FROM))) == NULL) {
		log_debug("%s for version %s: not a run of ours now", type,
		    version);
		return;
	}
	if (strcmp(type, EV_BACKUP_ARCHIVED) == 0) {
		pb->archived = ok ? PB_OK : PB_FAILED;
		newest = doc_get_str(ev, EVF_NEWEST);
		/* Superseded: the archive holds a newer one. */
		pb->refused = !ok && newest != NULL &&
		    strcmp(newest, version) > 0;
		free(pb->archive_error);
		pb->archive_error = err ? xstrdup(err) : NULL;
		log_info("version %s %s on %s%s%s", version,
		    ok ? "archived" : "NOT archived", pb->url, err ? ": " : "",
		    err ? err : "");
		archived_note(ex, newest, r, pb->url);
		for (all = 1, i = 0; i < r->npb; i++)
			if (r->pb[i].archived != PB_OK)
				all = 0;
		/* Kept served until superseded, with keep_last_export:
		 * the next export's hook may link to it. */
		if (all && !ex->cf->keep_last_export)
			run_unserve(ex, r, "archived by every pull-backup");
	} else {
		pb->imported = ok ? PB_OK : PB_FAILED;
		if (ok)
			imported_note(ex, version);
		doc_get_i64(ev, EVF_IMPORTERS_OK, &pb->importers_ok);
		doc_get_i64(ev, EVF_IMPORTERS_TOTAL, &pb->importers_total);
		free(pb->import_error);
		pb->import_error = err ? xstrdup(err) : NULL;
		log_info(
		    "version %s imported on %lld of %lld importers via %s%s%s",
		    version, (long long)pb->importers_ok,
		    (long long)pb->importers_total, pb->url, err ? ": " : "",
		    err ? err : "");
	}
}

static void
ex_kick(struct node *n)
{
	struct exporter *ex = n->role;
	struct qentry *e;
	const struct doc *d;

	while ((e = TAILQ_FIRST(&n->inbox->entries)) != NULL) {
		if ((d = event_doc(e)) != NULL)
			ex_handle(ex, d);
		inbox_done(n, e);
	}
}

static void
run_json(struct json *j, const char *key, const struct run *r)
{
	char iso[32];
	size_t i;

	json_obj_open(j, key);
	json_str(j, "version", r->id);
	json_str(j, "state", run_state_name(r->state));
	json_str(j, "trigger", r->trigger);
	time_format_iso(r->started, iso, sizeof iso);
	json_str(j, "started", iso);
	if (r->finished) {
		time_format_iso(r->finished, iso, sizeof iso);
		json_str(j, "finished", iso);
	}
	json_i64(j, "files", r->files);
	json_i64(j, "bytes", r->bytes);
	json_bool(j, "served", r->served);
	if (r->superseded_by[0] != '\0')
		json_str(j, "superseded_by", r->superseded_by);
	if (r->error)
		json_str(j, "error", r->error);
	if (r->hook_output)
		json_str(j, "hook_output", r->hook_output);
	json_arr_open(j, "pullbackups");
	for (i = 0; i < r->npb; i++) {
		json_obj_open(j, NULL);
		json_str(j, "url", r->pb[i].url);
		json_str(j, "archived", pb_state_name(r->pb[i].archived));
		if (r->pb[i].archive_error)
			json_str(j, "archive_error", r->pb[i].archive_error);
		json_str(j, "imported", pb_state_name(r->pb[i].imported));
		json_i64(j, "importers_ok", r->pb[i].importers_ok);
		json_i64(j, "importers_total", r->pb[i].importers_total);
		if (r->pb[i].import_error)
			json_str(j, "import_error", r->pb[i].import_error);
		if (r->pb[i].delivery_error != NULL) {
			json_str(j, "delivery_error", r->pb[i].delivery_error);
			json_i64(j, "delivery_status",
			    r->pb[i].delivery_status);
		}
		json_obj_close(j);
	}
	json_arr_close(j);
	json_obj_close(j);
}

static void
ex_status(struct node *n, struct json *j)
{
	struct exporter *ex = n->role;
	struct run *r, *last_ok = NULL, *last = NULL;
	char iso[32];

	json_str(j, "source", ex->cf->source);
	gen_status(j, ex->gen);
	json_str(j, "schedule", ex->cf->schedule_text);
	if (ex->next_scheduled > 0) {
		time_format_iso(ex->next_scheduled, iso, sizeof iso);
		json_str(j, "next_export", iso);
	}
	json_str(j, "served_version", ex->served ? ex->served->id : NULL);
	TAILQ_FOREACH(r, &ex->runs, link) {
		last = r;
		if (r->state == RUN_EXPORTED)
			last_ok = r;
	}
	if (ex->running)
		run_json(j, "running", ex->running);
	if (last)
		run_json(j, "last_run", last);
	if (last_ok && last_ok != last)
		run_json(j, "last_success", last_ok);
}

/* POST /v1/now, GET /v1/runs/<id> */
static int
ex_route(struct node *n, struct evhttp_request *req, const struct proto_req *pr)
{
	struct exporter *ex = n->role;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct json j;
	struct run *r;
	char why[512];

	if (pr->route == PROTO_R_NOW && cmd == EVHTTP_REQ_POST) {
		if ((r = export_start(ex, "now", why, sizeof why)) == NULL) {
			http_reply_error(req, PROTO_REFUSED, "%s", why);
			return 0;
		}
		http_json_begin(&j);
		json_str(&j, NOW_VERSION, r->id);
		http_reply_json(req, PROTO_OK, &j);
		return 0;
	}
	if (pr->route == PROTO_R_RUN && cmd == EVHTTP_REQ_GET) {
		if ((r = run_find(ex, pr->run)) == NULL) {
			http_reply_error(req, PROTO_UNKNOWN,
			    "no run %s (runs are kept in memory, the last %d)",
			    pr->run, RUNS_KEPT);
			return 0;
		}
		http_json_begin(&j);
		run_json(&j, RUNS_RUN, r);
		http_reply_json(req, PROTO_OK, &j);
		return 0;
	}
	return -1;
}

static int
ex_lookup(void *arg, const char *source, const char *version,
    struct serve_version *v, char *why, size_t len)
{
	struct node *n = arg;
	struct exporter *ex = n->role;
	struct run *r;

	if (strcmp(source, ex->cf->source) != 0) {
		snprintf(why, len, "this exporter exports \"%s\", not \"%s\"",
		    ex->cf->source, source);
		return PROTO_UNKNOWN;
	}
	r = run_find(ex, version);
	if (r == NULL || !r->served) {
		snprintf(why, len, "version %s of %s is not served here (%s)",
		    version, source,
		    r == NULL      ? "unknown" :
			ex->served ? "superseded or archived" :
				     "no longer");
		return PROTO_GONE;
	}
	v->root = r->data;
	v->m = r->m;
	v->manifest_path = r->mpath;
	v->tmp_dir = ex->tmp_dir;
	return PROTO_OK;
}

static const struct run *
last_exported(const struct exporter *ex, const struct run **last)
{
	const struct run *r, *ok = NULL;

	*last = NULL;
	TAILQ_FOREACH(r, &ex->runs, link) {
		if (r->state == RUN_RUNNING)
			continue;
		*last = r;
		if (r->state == RUN_EXPORTED)
			ok = r;
	}
	return ok;
}

/* The replication lag: from the newest export's start to its import on
 * a standby, or to now while it waits; -1 before any import is known. */
static long
ex_lag(const struct exporter *ex, const struct run *newest, time_t now)
{
	if (ex->imported[0] == '\0' || newest == NULL)
		return -1;
	if (strcmp(ex->imported, newest->id) >= 0)
		return (
		    long)(ex->imported_at - version_id_ms(ex->imported) / 1000);
	return (long)(now - newest->started);
}

static int
ex_health(struct node *n, int64_t max_age, int64_t max_lag, int *warn,
    char *why, size_t len)
{
	struct exporter *ex = n->role;
	const struct run *ok, *last;
	const struct pb_report *pb;
	time_t now = time(NULL);
	long age, lag;
	char lagw[32];
	size_t i;

	if (exporter_fenced(ex, why, len))
		return -1;
	ok = last_exported(ex, &last);
	if (ok == NULL) {
		snprintf(why, len, "source \"%s\": no export yet",
		    ex->cf->source);
		return -1;
	}
	age = (long)(now - ok->started);
	if (age < -PROTO_MAX_SKEW_SECS) {
		snprintf(why, len,
		    "source \"%s\": the last export is %lds in the future: "
		    "the clock went back",
		    ex->cf->source, -age);
		return -1;
	}
	if (age > max_age) {
		snprintf(why, len,
		    "source \"%s\": the last export is %lds old (max_age "
		    "%llds)",
		    ex->cf->source, age, (long long)max_age);
		return -1;
	}
	/* A pull-backup that will not take the newest version: never OK. */
	for (i = 0; i < ok->npb; i++) {
		pb = &ok->pb[i];
		if (pb->refused ||
		    (pb->archived == PB_PENDING && pb->delivery_status >= 400 &&
			pb->delivery_status < 500)) {
			snprintf(why, len,
			    "source \"%s\": %s refused version %s: %s",
			    ex->cf->source, pb->url, ok->id,
			    pb->refused && pb->archive_error != NULL ?
				pb->archive_error :
				pb->delivery_error != NULL ?
				pb->delivery_error :
				"refused");
			return -1;
		}
	}
	lag = ex_lag(ex, ok, now);
	if (max_lag > 0 &&
	    (lag > max_lag || (lag < 0 && now - ex->node.started > max_lag))) {
		if (lag < 0)
			snprintf(why, len,
			    "source \"%s\": no import reported in %llds "
			    "(max_lag %llds)",
			    ex->cf->source, (long long)(now - ex->node.started),
			    (long long)max_lag);
		else
			snprintf(why, len,
			    "source \"%s\": version %s %s %lds after its "
			    "export (max_lag %llds)",
			    ex->cf->source, ok->id,
			    strcmp(ex->imported, ok->id) >= 0 ?
				"was imported" :
				"is not imported",
			    lag, (long long)max_lag);
		return -1;
	}
	*warn = last != ok;
	lagw[0] = '\0';
	if (lag >= 0)
		snprintf(lagw, sizeof lagw, ", lag %lds", lag);
	snprintf(why, len, "source \"%s\": exported %lds ago%s%s%s",
	    ex->cf->source, age, lagw, *warn ? "; the last run failed: " : "",
	    *warn && last->error ? last->error : "");
	return 0;
}

static void
ex_metrics(struct node *n, struct evbuffer *b)
{
	struct exporter *ex = n->role;
	const struct run *ok, *last;
	const char *s = ex->cf->source;
	long lag;

	ok = last_exported(ex, &last);
	metrics_family(b, "understudy_failures_total", "counter", NULL);
	metrics_int(b, "understudy_failures_total", (int64_t)ex->failures,
	    "source", s, NULL);
	if (ok != NULL) {
		metrics_family(b, "understudy_last_success_timestamp_seconds",
		    "gauge", NULL);
		metrics_int(b, "understudy_last_success_timestamp_seconds",
		    ok->finished, "source", s, NULL);
		metrics_family(b, "understudy_export_duration_seconds", "gauge",
		    NULL);
		metrics_int(b, "understudy_export_duration_seconds",
		    ok->finished - ok->started, "source", s, NULL);
		metrics_family(b, "understudy_export_bytes", "gauge", NULL);
		metrics_int(b, "understudy_export_bytes", ok->bytes, "source",
		    s, NULL);
		metrics_family(b, "understudy_export_files", "gauge", NULL);
		metrics_int(b, "understudy_export_files", ok->files, "source",
		    s, NULL);
	}
	if ((lag = ex_lag(ex, ok, time(NULL))) >= 0) {
		metrics_family(b, "understudy_replication_lag_seconds", "gauge",
		    "From the start of the newest export to its import on a "
		    "standby, or to now while it waits.");
		metrics_int(b, "understudy_replication_lag_seconds", lag,
		    "source", s, NULL);
	}
	metrics_family(b, "understudy_export_running", "gauge", NULL);
	metrics_int(b, "understudy_export_running", ex->running != NULL,
	    "source", s, NULL);
}

/* SIGHUP: a new schedule takes effect now; a run under way keeps the
 * settings it started with. */
static void
ex_reload(struct node *n, struct config *cf)
{
	struct exporter *ex = n->role;

	ex->cf = cf;
	export_schedule(ex);
}

static const struct node_ops ex_ops = {
	.reload = ex_reload,
	.health = ex_health,
	.metrics = ex_metrics,
	.accept = ex_accept,
	.delivery = ex_delivery,
	.refused = ex_refused,
	.newer_generation = ex_newer_generation,
	.kick = ex_kick,
	.route = ex_route,
	.status = ex_status,
	.lookup = ex_lookup,
};

/* exports/<id>.tmp: an export under way when the daemon stopped. */
static int
cut_short(const char *name)
{
	char id[VERSION_ID_SIZE];
	size_t n = strlen(name);

	if (n < 5 || n - 4 >= sizeof id || strcmp(name + n - 4, ".tmp") != 0)
		return 0;
	memcpy(id, name, n - 4);
	id[n - 4] = '\0';
	return version_id_valid(id);
}

/* At start-up: keep the newest complete export to serve, drop the rest
 * (and any half-made one). */
static int
ex_recover(struct exporter *ex, char *err, size_t errlen)
{
	DIR *d;
	struct dirent *de;
	char *newest = NULL, *p, merr[512];
	struct run *r;

	if ((d = opendir(ex->exports_dir)) == NULL) {
		snprintf(err, errlen, "%s: %s", ex->exports_dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", ex->exports_dir, de->d_name);
		if (!version_id_valid(de->d_name)) {
			log_info("removing %s: an export cut short, or one "
				 "nothing needed any more",
			    p);
			fs_rm_rf(p);
			if (cut_short(de->d_name))
				ex->cut_short = 1;
		} else if (newest == NULL || strcmp(de->d_name, newest) > 0) {
			free(newest);
			newest = xstrdup(de->d_name);
		}
		free(p);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !version_id_valid(de->d_name) ||
		    strcmp(de->d_name, newest) == 0)
			continue;
		p = xasprintf("%s/%s", ex->exports_dir, de->d_name);
		fs_rm_rf(p);
		free(p);
	}
	closedir(d);
	if (newest == NULL)
		return 0;
	r = xcalloc(1, sizeof *r);
	r->ex = ex;
	snprintf(r->id, sizeof r->id, "%s", newest);
	r->dir = xasprintf("%s/%s", ex->exports_dir, newest);
	r->data = xasprintf("%s/data", r->dir);
	r->mpath = xasprintf("%s/manifest", r->dir);
	p = xasprintf("%s%s", r->data, UNSERVED_SUFFIX);
	if (fs_exists(p)) {
		log_info("removing %s, data no longer served", p);
		fs_rm_rf(p);
	}
	free(p);
	r->trigger = "before restart";
	r->state = RUN_EXPORTED;
	r->started = r->finished = (time_t)(version_id_ms(newest) / 1000);
	ex->last_ms = version_id_ms(newest);
	p = xasprintf("%s/manifest", r->dir);
	if (fs_exists(r->data) &&
	    manifest_load(p, &r->m, merr, sizeof merr) == 0) {
		r->served = 1;
		r->files = r->m->files;
		r->bytes = r->m->bytes;
		ex->served = r;
		log_info("serving version %s again", newest);
	}
	free(p);
	TAILQ_INSERT_TAIL(&ex->runs, r, link);
	ex->nruns++;
	free(newest);
	return 0;
}

static int
ex_serve(struct config *cf, int argc, char **argv)
{
	struct exporter ex;
	char err[1024], *gpath;
	struct run *r;
	int rc;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&ex, 0, sizeof ex);
	ex.cf = cf;
	TAILQ_INIT(&ex.runs);
	ex.exports_dir = xasprintf("%s/exports", cf->state_dir);
	ex.tmp_dir = xasprintf("%s/tmp", cf->state_dir);
	ex.imported_file = xasprintf("%s/last-imported.json", cf->state_dir);
	ex.archived_file = xasprintf("%s/archive-newest.json", cf->state_dir);
	if (fs_mkdir_p(ex.exports_dir, 0700) != 0 ||
	    fs_mkdir_p(ex.tmp_dir, 0700) != 0) {
		log_warn("state_dir %s", cf->state_dir);
		return EXIT_FAILED;
	}
	imported_load(&ex);
	archived_load(&ex);
	/* A hook a killed daemon left running ends before its export's
	 * directory goes. */
	gpath = xasprintf("%s/hooks", cf->state_dir);
	if (hook_init(gpath) != 0)
		log_warn("%s: hooks under way cannot be recorded", gpath);
	free(gpath);
	gpath = xasprintf("%s/%s", cf->state_dir, EXPORTER_GENERATION);
	if (ex_recover(&ex, err, sizeof err) != 0 ||
	    node_init(&ex.node, cf, &ex_ops, &ex, cf->state_dir, err,
		sizeof err) != 0 ||
	    gen_add(&ex.node, cf->source, gpath, err, sizeof err) != 0) {
		log_warnx("%s", err);
		free(gpath);
		return EXIT_FAILED;
	}
	free(gpath);
	ex.gen = gen_find(&ex.node, cf->source);
	if (exporter_fenced(&ex, err, sizeof err))
		log_warnx("%s", err);
	export_schedule(&ex);
	/* An export the daemon was killed in the middle of is not dropped:
	 * it runs again now. */
	if (ex.cut_short) {
		log_warnx("the last export was cut short (the exporter "
			  "stopped during it): exporting again");
		if (export_start(&ex, "again: the last one was cut short", err,
			sizeof err) == NULL)
			log_warnx("exporting again: %s", err);
	}
	rc = node_run(&ex.node);
	event_free(ex.sched_ev);
	while ((r = TAILQ_FIRST(&ex.runs)) != NULL) {
		TAILQ_REMOVE(&ex.runs, r, link);
		if (r == ex.running)
			continue; /* its worker may not have finished */
		run_free(r);
	}
	free(ex.exports_dir);
	free(ex.tmp_dir);
	free(ex.imported_file);
	free(ex.archived_file);
	node_free(&ex.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
}

static const struct verb ex_verbs[] = {
	{ "now", "[--wait archived|imported] [--timeout AGE] [--json]",
	    "run one export cycle now and follow it to the stage", verb_now },
	{ "generation", "[N]",
	    "the source's generation here, or (daemon stopped) take "
	    "generation N after a promotion",
	    verb_generation },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog ex_prog = {
	.role = ROLE_EXPORTER,
	.name = "understudy-exporter",
	.summary = "The live host's daemon: runs the export hook, hashes the "
		   "result into a manifest,\ntells the pull-backups, and "
		   "serves the version to them read only.",
	.serve = ex_serve,
	.verbs = ex_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&ex_prog, argc, argv);
}
