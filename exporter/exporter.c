/* understudy-exporter: the live host's daemon.  It runs the operator's
 * export hook into a fresh directory, scans what the hook made into a
 * manifest, tells each pull-backup in "notify" that the version is ready,
 * and serves that version read only until every pull-backup has archived
 * it or a newer one supersedes it.  It owns state_dir: exports/<version>/
 * (data/, manifest, backup.signature) and the event queues. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fsutil.h"
#include "hook.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

#define RUNS_KEPT 32

enum pb_state { PB_PENDING, PB_OK, PB_FAILED };

struct pb_report {
	char *url;
	enum pb_state archived;
	char *archive_error;
	enum pb_state imported;
	int64_t importers_ok, importers_total;
	char *import_error;
};

enum run_state { RUN_RUNNING, RUN_EXPORTED, RUN_FAILED };

struct run {
	TAILQ_ENTRY(run) link;
	char id[VERSION_ID_SIZE];
	char *dir, *tmp, *data, *mpath;
	enum run_state state;
	const char *trigger;
	time_t started, finished;
	char *error;
	char *hook_output;
	struct manifest *m;		/* while served */
	int served;
	int64_t files, bytes;
	int64_t hashed;		/* files hashed, the others from the cache */
	struct pb_report *pb;
	size_t npb;
	/* Worker results. */
	struct hook_result hr;
	char werr[1024];
	int wrc;
	struct exporter *ex;
	struct config *cf;		/* as it was when the run started */
};

TAILQ_HEAD(runlist, run);

struct exporter {
	struct node node;
	struct config *cf;
	char *exports_dir;
	char *tmp_dir;
	struct runlist runs;
	size_t nruns;
	struct run *running;
	struct run *served;
	int64_t last_ms;
	struct event *sched_ev;
	time_t next_scheduled;
	unsigned long long failures;
	time_t last_lag_at;		/* when the last import report came */
	long last_lag;			/* export start to import done, s */
};

static const char *
pb_state_name(enum pb_state s)
{
	return s == PB_OK ? "ok" : s == PB_FAILED ? "failed" : "pending";
}

static const char *
run_state_name(enum run_state s)
{
	return s == RUN_RUNNING ? "running" : s == RUN_EXPORTED ? "exported" :
	    "failed";
}

static void
run_free(struct run *r)
{
	size_t i;

	for (i = 0; i < r->npb; i++) {
		free(r->pb[i].url);
		free(r->pb[i].archive_error);
		free(r->pb[i].import_error);
	}
	free(r->pb);
	free(r->dir);
	free(r->mpath);
	free(r->tmp);
	free(r->data);
	free(r->error);
	free(r->hook_output);
	manifest_free(r->m);
	hook_result_clear(&r->hr);
	free(r);
}

static struct run *
run_find(struct exporter *ex, const char *id)
{
	struct run *r;

	TAILQ_FOREACH(r, &ex->runs, link)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

/* Stop serving a version: its data goes, its manifest stays for status. */
static void
run_unserve(struct exporter *ex, struct run *r, const char *why)
{
	if (!r->served)
		return;
	r->served = 0;
	if (ex->served == r)
		ex->served = NULL;
	if (fs_rm_rf(r->data) != 0)
		log_warn("removing %s", r->data);
	log_info("version %s is no longer served: %s", r->id, why);
}

/* The export job, on a worker. */
static void
export_work(void *arg)
{
	struct run *r = arg;
	struct exporter *ex = r->ex;
	struct config *cf = r->cf;
	struct evbuffer *b;
	char *env[4], *path;
	int fd, rc;

	r->wrc = -1;
	if (fs_rm_rf(r->tmp) != 0 || fs_mkdir_p(r->tmp, 0700) != 0 ||
	    mkdir(r->data = xasprintf("%s/data", r->tmp), 0755) != 0) {
		snprintf(r->werr, sizeof r->werr, "cannot create %s: %s",
		    r->tmp, strerror(errno));
		return;
	}
	env[0] = xasprintf("UNDERSTUDY_SOURCE=%s", cf->source);
	env[1] = xasprintf("UNDERSTUDY_VERSION=%s", r->id);
	env[2] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", r->data);
	env[3] = NULL;
	if (hook_run(cf->export_command, env, (int)cf->hook_timeout,
	    "export hook", &r->hr) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s", r->hr.error);
		goto out;
	}
	path = xasprintf("%s/hash-cache", cf->state_dir);
	rc = manifest_scan_cached(r->data, cf->source, r->id, path, &r->m,
	    &r->hashed, r->werr, sizeof r->werr);
	free(path);
	if (rc != 0)
		goto out;
	path = xasprintf("%s/manifest", r->tmp);
	if (manifest_save(r->m, path) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s: %s", path,
		    strerror(errno));
		free(path);
		goto out;
	}
	free(path);
	b = evbuffer_new();
	manifest_signature(r->m, b, 0);
	path = xasprintf("%s/backup.signature", r->tmp);
	if (fs_write_atomic(path, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b)) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s: %s", path,
		    strerror(errno));
		free(path);
		evbuffer_free(b);
		goto out;
	}
	free(path);
	evbuffer_free(b);
	/* What the hook wrote must be on disk before peers are told. */
	if ((fd = open(r->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		syncfs(fd);
		close(fd);
	}
	if (rename(r->tmp, r->dir) != 0 || fs_fsync_dir(ex->exports_dir)) {
		snprintf(r->werr, sizeof r->werr, "cannot commit %s: %s",
		    r->dir, strerror(errno));
		goto out;
	}
	free(r->data);
	r->data = xasprintf("%s/data", r->dir);
	r->wrc = 0;
out:
	free(env[0]);
	free(env[1]);
	free(env[2]);
	if (r->wrc != 0)
		fs_rm_rf(r->tmp);
}

static void
export_done(void *arg)
{
	struct run *r = arg;
	struct exporter *ex = r->ex;
	struct evbuffer *b;
	struct json j;
	struct run *o;
	char iso[32], summary[256];
	size_t i;

	ex->running = NULL;
	r->finished = time(NULL);
	r->hook_output = r->hr.output ? xstrdup(r->hr.output) : NULL;
	if (r->wrc != 0) {
		r->state = RUN_FAILED;
		r->error = xstrdup(r->werr);
		manifest_free(r->m);
		r->m = NULL;
		ex->failures++;
		log_warnx("export of version %s failed: %s; nobody notified, "
		    "the next cycle tries again", r->id, r->error);
		node_record(&ex->node, "export", ex->cf->source, r->id, 0,
		    r->started, r->error, r->hook_output);
		return;
	}
	r->state = RUN_EXPORTED;
	r->files = r->m->files;
	r->bytes = r->m->bytes;
	r->served = 1;
	TAILQ_FOREACH(o, &ex->runs, link)
		if (o != r && o->served)
			run_unserve(ex, o, "superseded by a newer version");
	ex->served = r;
	snprintf(summary, sizeof summary, "exported version %s: %lld files, "
	    "%lld bytes (%lld hashed, the others unchanged) in %llds", r->id,
	    (long long)r->files, (long long)r->bytes, (long long)r->hashed,
	    (long long)(r->finished - r->started));
	log_info("%s", summary);
	node_record(&ex->node, "export", ex->cf->source, r->id, 1, r->started,
	    summary, r->hook_output);
	time_format_iso(r->started, iso, sizeof iso);
	for (i = 0; i < r->npb; i++) {
		b = evbuffer_new();
		event_begin(&j, b, EV_BACKUP_READY, ex->cf->source, r->id);
		json_str(&j, "peer", r->pb[i].url);
		json_i64(&j, "files", r->files);
		json_i64(&j, "bytes", r->bytes);
		json_str(&j, "started", iso);
		json_obj_close(&j);
		node_send(&ex->node, r->pb[i].url, EV_BACKUP_READY, b);
		evbuffer_free(b);
	}
}

static struct run *
export_start(struct exporter *ex, const char *trigger, char *why,
    size_t whylen)
{
	struct timespec ts;
	struct run *r, *old;
	int64_t ms;
	size_t i;

	if (ex->running != NULL) {
		snprintf(why, whylen, "an export is already running (version "
		    "%s, started %lds ago); try again when it is done",
		    ex->running->id, (long)(time(NULL) -
		    ex->running->started));
		return NULL;
	}
	if (ex->node.stopping) {
		snprintf(why, whylen, "the exporter is shutting down");
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (ms <= ex->last_ms)
		ms = ex->last_ms + 1;
	ex->last_ms = ms;
	r = xcalloc(1, sizeof *r);
	r->ex = ex;
	r->cf = ex->cf;
	version_id_make(ms, r->id);
	r->dir = xasprintf("%s/%s", ex->exports_dir, r->id);
	r->mpath = xasprintf("%s/manifest", r->dir);
	r->tmp = xasprintf("%s/%s.tmp", ex->exports_dir, r->id);
	r->trigger = trigger;
	r->started = time(NULL);
	r->state = RUN_RUNNING;
	r->npb = ex->cf->nnotify;
	r->pb = xcalloc(r->npb, sizeof *r->pb);
	for (i = 0; i < r->npb; i++)
		r->pb[i].url = xstrdup(ex->cf->notify[i]);
	TAILQ_INSERT_TAIL(&ex->runs, r, link);
	if (++ex->nruns > RUNS_KEPT) {
		TAILQ_FOREACH(old, &ex->runs, link) {
			if (old != r && !old->served) {
				TAILQ_REMOVE(&ex->runs, old, link);
				ex->nruns--;
				run_free(old);
				break;
			}
		}
	}
	ex->running = r;
	log_info("export of version %s started (%s)", r->id, trigger);
	worker_submit(ex->node.runs, export_work, export_done, r);
	return r;
}

static void
schedule_arm(struct exporter *ex)
{
	struct timeval tv;
	time_t now = time(NULL), next;
	char iso[32];

	next = schedule_next(&ex->cf->schedule, now);
	ex->next_scheduled = next;
	if (next < 0)
		return;
	tv.tv_sec = next - now;
	tv.tv_usec = 0;
	evtimer_add(ex->sched_ev, &tv);
	time_format_iso(next, iso, sizeof iso);
	log_debug("next scheduled export at %s", iso);
}

static void
schedule_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;
	char why[256];

	if (export_start(ex, "schedule", why, sizeof why) == NULL)
		log_warnx("scheduled export skipped: %s", why);
	schedule_arm(ex);
}

/* Events from the pull-backups. */

static struct pb_report *
pb_find(struct run *r, const char *url)
{
	size_t i;

	for (i = 0; url != NULL && i < r->npb; i++)
		if (strcmp(r->pb[i].url, url) == 0)
			return &r->pb[i];
	return NULL;
}

static int
ex_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct exporter *ex = n->role;
	const char *type = doc_get_str(ev, "type");
	const char *source = doc_get_str(ev, "source");
	const char *from = doc_get_str(ev, "from");

	if (strcmp(type, EV_BACKUP_ARCHIVED) != 0 &&
	    strcmp(type, EV_BACKUP_IMPORTED) != 0) {
		snprintf(why, whylen, "the exporter takes no \"%s\" events",
		    type);
		return 400;
	}
	if (strcmp(source, ex->cf->source) != 0) {
		snprintf(why, whylen, "this exporter exports \"%s\", not "
		    "\"%s\"", ex->cf->source, source);
		return 404;
	}
	if (from == NULL) {
		snprintf(why, whylen, "event needs \"from\"");
		return 400;
	}
	snprintf(key, keylen, "%s %s %s", type, source, from);
	return NODE_QUEUE;
}

static void
ex_handle(struct exporter *ex, const struct doc *ev)
{
	const char *type = doc_get_str(ev, "type");
	const char *version = doc_get_str(ev, "version");
	const char *err = doc_get_str(ev, "error");
	struct run *r = run_find(ex, version);
	struct pb_report *pb;
	size_t i;
	int ok = 0, all;

	doc_get_bool(ev, "ok", &ok);
	if (r == NULL || (pb = pb_find(r, doc_get_str(ev, "from"))) == NULL) {
		log_debug("%s for version %s: not a run of ours now", type,
		    version);
		return;
	}
	if (strcmp(type, EV_BACKUP_ARCHIVED) == 0) {
		pb->archived = ok ? PB_OK : PB_FAILED;
		free(pb->archive_error);
		pb->archive_error = err ? xstrdup(err) : NULL;
		log_info("version %s %s on %s%s%s", version, ok ? "archived" :
		    "NOT archived", pb->url, err ? ": " : "", err ? err : "");
		for (all = 1, i = 0; i < r->npb; i++)
			if (r->pb[i].archived != PB_OK)
				all = 0;
		if (all)
			run_unserve(ex, r, "archived by every pull-backup");
	} else {
		pb->imported = ok ? PB_OK : PB_FAILED;
		if (ok) {
			ex->last_lag_at = time(NULL);
			ex->last_lag = (long)(ex->last_lag_at - r->started);
		}
		doc_get_i64(ev, "importers_ok", &pb->importers_ok);
		doc_get_i64(ev, "importers_total", &pb->importers_total);
		free(pb->import_error);
		pb->import_error = err ? xstrdup(err) : NULL;
		log_info("version %s imported on %lld of %lld importers via "
		    "%s%s%s", version, (long long)pb->importers_ok,
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
		node_inbox_done(n, e);
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

static int
ex_route(struct node *n, struct evhttp_request *req, const char *path)
{
	struct exporter *ex = n->role;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *b;
	struct json j;
	struct run *r;
	char why[512];

	if (strcmp(path, ROUTE_NOW) == 0 && cmd == EVHTTP_REQ_POST) {
		if ((r = export_start(ex, "now", why, sizeof why)) == NULL) {
			http_reply_error(req, 409, "%s", why);
			return 0;
		}
		b = evbuffer_new();
		json_init(&j, b);
		json_obj_open(&j, NULL);
		json_i64(&j, "proto", PROTO_VERSION);
		json_str(&j, "version", r->id);
		json_obj_close(&j);
		http_reply(req, 200, "application/json", b);
		evbuffer_free(b);
		return 0;
	}
	if (strncmp(path, ROUTE_RUNS, strlen(ROUTE_RUNS)) == 0 &&
	    cmd == EVHTTP_REQ_GET) {
		if ((r = run_find(ex, path + strlen(ROUTE_RUNS))) == NULL) {
			http_reply_error(req, 404, "no run %s (runs are kept "
			    "in memory, the last %d)", path +
			    strlen(ROUTE_RUNS), RUNS_KEPT);
			return 0;
		}
		b = evbuffer_new();
		json_init(&j, b);
		json_obj_open(&j, NULL);
		json_i64(&j, "proto", PROTO_VERSION);
		run_json(&j, "run", r);
		json_obj_close(&j);
		http_reply(req, 200, "application/json", b);
		evbuffer_free(b);
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
		return 404;
	}
	r = run_find(ex, version);
	if (r == NULL || !r->served) {
		snprintf(why, len, "version %s of %s is not served here (%s)",
		    version, source, r == NULL ? "unknown" :
		    ex->served ? "superseded or archived" : "no longer");
		return 410;
	}
	v->root = r->data;
	v->m = r->m;
	v->manifest_path = r->mpath;
	v->tmp_dir = ex->tmp_dir;
	return 200;
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

static int
ex_health(struct node *n, int64_t max_age, int *warn, char *why,
    size_t len)
{
	struct exporter *ex = n->role;
	const struct run *ok, *last;
	long age;

	ok = last_exported(ex, &last);
	if (ok == NULL) {
		snprintf(why, len, "source \"%s\": no export yet",
		    ex->cf->source);
		return -1;
	}
	age = (long)(time(NULL) - ok->started);
	if (age > max_age) {
		snprintf(why, len, "source \"%s\": the last export is %lds old "
		    "(max_age %llds)", ex->cf->source, age, (long long)max_age);
		return -1;
	}
	*warn = last != ok;
	snprintf(why, len, "source \"%s\": exported %lds ago%s%s",
	    ex->cf->source, age, *warn ? "; the last run failed: " : "",
	    *warn && last->error ? last->error : "");
	return 0;
}

static void
ex_metrics(struct node *n, struct evbuffer *b)
{
	struct exporter *ex = n->role;
	const struct run *ok, *last;
	const char *s = ex->cf->source;

	ok = last_exported(ex, &last);
	evbuffer_add_printf(b, "# TYPE understudy_failures_total counter\n"
	    "understudy_failures_total{source=\"%s\"} %llu\n", s,
	    ex->failures);
	if (ok != NULL)
		evbuffer_add_printf(b,
		    "# TYPE understudy_last_success_timestamp_seconds gauge\n"
		    "understudy_last_success_timestamp_seconds{source=\"%s\"} "
		    "%lld\n"
		    "# TYPE understudy_export_duration_seconds gauge\n"
		    "understudy_export_duration_seconds{source=\"%s\"} %lld\n"
		    "# TYPE understudy_export_bytes gauge\n"
		    "understudy_export_bytes{source=\"%s\"} %lld\n"
		    "# TYPE understudy_export_files gauge\n"
		    "understudy_export_files{source=\"%s\"} %lld\n", s,
		    (long long)ok->finished, s,
		    (long long)(ok->finished - ok->started), s,
		    (long long)ok->bytes, s, (long long)ok->files);
	if (ex->last_lag_at != 0)
		evbuffer_add_printf(b,
		    "# HELP understudy_replication_lag_seconds From the start of "
		    "the export to the import on the standby.\n"
		    "# TYPE understudy_replication_lag_seconds gauge\n"
		    "understudy_replication_lag_seconds{source=\"%s\"} %ld\n",
		    s, ex->last_lag);
	evbuffer_add_printf(b, "# TYPE understudy_export_running gauge\n"
	    "understudy_export_running{source=\"%s\"} %d\n", s,
	    ex->running != NULL);
}

/* SIGHUP: a new schedule takes effect now; a run under way keeps the
 * settings it started with. */
static void
ex_reload(struct node *n, struct config *cf)
{
	struct exporter *ex = n->role;

	ex->cf = cf;
	event_del(ex->sched_ev);
	schedule_arm(ex);
}

static const struct node_ops ex_ops = {
	.reload = ex_reload,
	.health = ex_health,
	.metrics = ex_metrics,
	.accept = ex_accept,
	.kick = ex_kick,
	.route = ex_route,
	.status = ex_status,
	.lookup = ex_lookup,
};

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
			log_info("removing unfinished export %s", p);
			fs_rm_rf(p);
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
	r->trigger = "before restart";
	r->state = RUN_EXPORTED;
	r->started = r->finished = (time_t)(version_id_ms(newest) / 1000);
	ex->last_ms = version_id_ms(newest);
	p = xasprintf("%s/manifest", r->dir);
	if (fs_exists(r->data) && manifest_load(p, &r->m, merr,
	    sizeof merr) == 0) {
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
	char err[1024];
	struct run *r;
	int rc;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&ex, 0, sizeof ex);
	ex.cf = cf;
	TAILQ_INIT(&ex.runs);
	ex.exports_dir = xasprintf("%s/exports", cf->state_dir);
	ex.tmp_dir = xasprintf("%s/tmp", cf->state_dir);
	if (fs_mkdir_p(ex.exports_dir, 0700) != 0 ||
	    fs_mkdir_p(ex.tmp_dir, 0700) != 0) {
		log_warn("state_dir %s", cf->state_dir);
		return EXIT_FAILED;
	}
	if (ex_recover(&ex, err, sizeof err) != 0 ||
	    node_init(&ex.node, cf, &ex_ops, &ex, cf->state_dir, err,
	    sizeof err) != 0) {
		log_warnx("%s", err);
		return EXIT_FAILED;
	}
	ex.sched_ev = evtimer_new(ex.node.base, schedule_cb, &ex);
	schedule_arm(&ex);
	rc = node_run(&ex.node);
	event_free(ex.sched_ev);
	while ((r = TAILQ_FIRST(&ex.runs)) != NULL) {
		TAILQ_REMOVE(&ex.runs, r, link);
		if (r == ex.running)
			continue;	/* its worker may not have finished */
		run_free(r);
	}
	free(ex.exports_dir);
	free(ex.tmp_dir);
	node_free(&ex.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
}

/* "now": ask the running daemon for a cycle and follow it. */

static const char *
wait_reached(const struct doc *run, const char *wait, int *failed,
    char *why, size_t whylen)
{
	const struct doc *pbs = doc_get(run, "pullbackups");
	const char *state = doc_get_str(run, "state");
	size_t i, archived = 0, imported = 0;
	int64_t iok, itot;

	*failed = 0;
	if (state != NULL && strcmp(state, "failed") == 0) {
		*failed = 1;
		snprintf(why, whylen, "export failed: %s",
		    doc_get_str(run, "error") ? doc_get_str(run, "error") :
		    "?");
		return NULL;
	}
	if (state == NULL || strcmp(state, "running") == 0 || pbs == NULL)
		return NULL;
	for (i = 0; i < pbs->n; i++) {
		const struct doc *pb = pbs->kids[i];
		const char *a = doc_get_str(pb, "archived");
		const char *im = doc_get_str(pb, "imported");
		if (a && strcmp(a, "failed") == 0) {
			*failed = 1;
			snprintf(why, whylen, "archiving on %s failed: %s",
			    doc_get_str(pb, "url"),
			    doc_get_str(pb, "archive_error") ?
			    doc_get_str(pb, "archive_error") : "?");
			return NULL;
		}
		if (im && strcmp(im, "failed") == 0 &&
		    strcmp(wait, "imported") == 0) {
			iok = itot = 0;
			doc_get_i64(pb, "importers_ok", &iok);
			doc_get_i64(pb, "importers_total", &itot);
			*failed = 1;
			snprintf(why, whylen, "imported on %lld of %lld "
			    "importers via %s: %s", (long long)iok,
			    (long long)itot, doc_get_str(pb, "url"),
			    doc_get_str(pb, "import_error") ?
			    doc_get_str(pb, "import_error") : "?");
			return NULL;
		}
		archived += a && strcmp(a, "ok") == 0;
		imported += im && strcmp(im, "ok") == 0;
	}
	if (strcmp(wait, "archived") == 0 && archived == pbs->n)
		return "archived";
	if (strcmp(wait, "imported") == 0 && imported == pbs->n)
		return "imported";
	return NULL;
}

/* Print what changed since the last poll. */
static void
now_progress(const struct doc *run, char **seen, size_t nseen)
{
	const struct doc *pbs = doc_get(run, "pullbackups");
	const char *state = doc_get_str(run, "state");
	char line[1024];
	size_t i;
	int64_t files = 0, bytes = 0, iok = 0, itot = 0;

#define SAY(k) do { if (seen[k] == NULL || strcmp(seen[k], line) != 0) { \
	printf("%s\n", line); fflush(stdout); free(seen[k]); \
	seen[k] = xstrdup(line); } } while (0)
	doc_get_i64(run, "files", &files);
	doc_get_i64(run, "bytes", &bytes);
	if (state && strcmp(state, "exported") == 0) {
		snprintf(line, sizeof line, "exported %lld files, %lld bytes",
		    (long long)files, (long long)bytes);
		SAY(0);
	}
	for (i = 0; pbs && i < pbs->n && 2 * i + 2 < nseen; i++) {
		const struct doc *pb = pbs->kids[i];
		const char *a = doc_get_str(pb, "archived");
		const char *im = doc_get_str(pb, "imported");
		if (a && strcmp(a, "ok") == 0) {
			snprintf(line, sizeof line, "archived on %s",
			    doc_get_str(pb, "url"));
			SAY(2 * i + 1);
		}
		if (im && strcmp(im, "pending") != 0) {
			doc_get_i64(pb, "importers_ok", &iok);
			doc_get_i64(pb, "importers_total", &itot);
			snprintf(line, sizeof line, "imported on %lld of %lld "
			    "importers (via %s)", (long long)iok,
			    (long long)itot, doc_get_str(pb, "url"));
			SAY(2 * i + 2);
		}
	}
#undef SAY
}

static int
ex_now(struct config *cf, int argc, char **argv)
{
	const char *wait = "archived", *json = NULL, *timeout_s = "1h";
	struct verb_opt opts[] = { { "wait", 1, &wait }, { "json", 0, &json },
	    { "timeout", 1, &timeout_s }, { NULL, 0, NULL } };
	struct http_call c;
	struct doc *d = NULL, *run;
	char *path = NULL, version[64], perr[256], why[1024], *seen[64];
	const char *reached = NULL;
	int64_t timeout;
	time_t deadline;
	int i, failed = 0, rc = EXIT_FAILED;

	if (verb_opts(argc, argv, opts, NULL, 0) < 0)
		return EXIT_USAGE;
	if (strcmp(wait, "archived") != 0 && strcmp(wait, "imported") != 0)
		return usage_error("now: --wait takes archived or imported");
	if (age_parse(timeout_s, &timeout) != 0)
		return usage_error("now: --timeout takes an age like 10m");
	memset(seen, 0, sizeof seen);
	if (cli_request(cf, &c, "POST", ROUTE_NOW, "{}") != 0) {
		http_call_clear(&c);
		return EXIT_FAILED;
	}
	if (doc_parse((const char *)evbuffer_pullup(c.reply, -1),
	    evbuffer_get_length(c.reply), &d, perr, sizeof perr) != 0 ||
	    doc_get_str(d, "version") == NULL) {
		fprintf(stderr, "exporter: bad reply to now\n");
		http_call_clear(&c);
		doc_free(d);
		return EXIT_FAILED;
	}
	snprintf(version, sizeof version, "%s", doc_get_str(d, "version"));
	doc_free(d);
	http_call_clear(&c);
	if (json == NULL) {
		printf("export of %s started: version %s\n", cf->source,
		    version);
		fflush(stdout);
	}
	path = xasprintf("%s%s", ROUTE_RUNS, version);
	deadline = time(NULL) + timeout;
	for (;;) {
		d = NULL;
		if (cli_request(cf, &c, "GET", path, NULL) != 0) {
			http_call_clear(&c);
			break;
		}
		if (doc_parse((const char *)evbuffer_pullup(c.reply, -1),
		    evbuffer_get_length(c.reply), &d, perr,
		    sizeof perr) != 0 || (run = doc_get(d, "run")) == NULL) {
			fprintf(stderr, "exporter: bad run reply\n");
			http_call_clear(&c);
			break;
		}
		if (json == NULL)
			now_progress(run, seen, 64);
		reached = wait_reached(run, wait, &failed, why, sizeof why);
		if (reached != NULL || failed || time(NULL) > deadline) {
			if (json != NULL)
				fwrite(evbuffer_pullup(c.reply, -1), 1,
				    evbuffer_get_length(c.reply), stdout);
			if (reached != NULL) {
				if (json == NULL)
					printf("OK: version %s %s\n", version,
					    reached);
				rc = EXIT_OK;
			} else if (failed)
				fprintf(stderr, "exporter: FAILED: version %s: "
				    "%s\n", version, why);
			else
				fprintf(stderr, "exporter: FAILED: version %s "
				    "not %s after %s (see status on each "
				    "host)\n", version, wait, timeout_s);
			http_call_clear(&c);
			doc_free(d);
			break;
		}
		http_call_clear(&c);
		doc_free(d);
		usleep(200000);
	}
	for (i = 0; i < 64; i++)
		free(seen[i]);
	free(path);
	return rc;
}

static const struct verb ex_verbs[] = {
	{ "check-config", "", "parse and validate the configuration",
	    verb_check_config },
	{ "serve", "", "run the daemon in the foreground", ex_serve },
	{ "status", "[--json]", "what the running daemon knows", verb_status },
	{ "check", "[--max-age AGE]",
	    "one line and a Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, "
	    "3 UNKNOWN", verb_check },
	{ "now", "[--wait archived|imported] [--timeout AGE] [--json]",
	    "run one export cycle now and follow it to the stage", ex_now },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog ex_prog = {
	.role = ROLE_EXPORTER,
	.name = "understudy-exporter",
	.summary = "The live host's daemon: runs the export hook, hashes the "
	    "result into a manifest,\ntells the pull-backups, and serves the "
	    "version to them read only.",
	.verbs = ex_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&ex_prog, argc, argv);
}
