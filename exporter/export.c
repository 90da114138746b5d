/* An export: the operator's export hook fills exports/<id>.tmp/data/ on a
 * worker; what it made is scanned into a manifest (files the hash cache
 * says are unchanged are not read again) and backup.signature, made
 * durable, and renamed exports/<id>/: the version.  On the loop, the
 * newer version supersedes the one served, and each pull-backup gets
 * "backup.ready".  The schedule starts exports too. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "exporter.h"
#include "fsutil.h"
#include "hook.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

/* The manifest and backup.signature beside data/. */
static int
write_manifest(struct run *r)
{
	struct evbuffer *b;
	char *path;
	int rc = 0;

	path = xasprintf("%s/manifest", r->tmp);
	if (manifest_save(r->m, path) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s: %s", path,
		    strerror(errno));
		rc = -1;
	}
	free(path);
	if (rc != 0)
		return -1;
	b = evbuffer_new();
	manifest_signature(r->m, b, 0);
	path = xasprintf("%s/backup.signature", r->tmp);
	if (fs_write_atomic(path, evbuffer_pullup(b, -1),
		evbuffer_get_length(b)) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s: %s", path,
		    strerror(errno));
		rc = -1;
	}
	free(path);
	evbuffer_free(b);
	return rc;
}

/* The export job, on a worker. */
static void
export_work(void *arg)
{
	struct run *r = arg;
	struct config *cf = r->cf;
	struct fs_syncfs bg;
	char *env[6], *path;
	int k = 0;
	int rc;

	r->wrc = -1;
	if (fs_rm_rf(r->tmp) != 0 || fs_mkdir_p(r->tmp, 0700) != 0 ||
	    mkdir(r->data = xasprintf("%s/data", r->tmp), 0755) != 0) {
		snprintf(r->werr, sizeof r->werr, "cannot create %s: %s",
		    r->tmp, strerror(errno));
		return;
	}
	env[k++] = xasprintf("UNDERSTUDY_SOURCE=%s", cf->source);
	env[k++] = xasprintf("UNDERSTUDY_VERSION=%s", r->id);
	env[k++] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", r->data);
	/* The version served, read only: a hook may link what did not
	 * change to it (files-export does). */
	if (r->prev_data != NULL) {
		env[k++] = xasprintf("UNDERSTUDY_PREVIOUS_BACKUP_DIR=%s",
		    r->prev_data);
		env[k++] = xasprintf("UNDERSTUDY_PREVIOUS_VERSION=%s",
		    r->prev_id);
	}
	env[k] = NULL;
	if (hook_run(cf->export_command, env, (int)cf->hook_timeout,
		"export hook", &r->hr) != 0) {
		snprintf(r->werr, sizeof r->werr, "%s", r->hr.error);
		goto out;
	}
	/* What the hook wrote must be on disk before peers are told: the
	 * disk writes it while it is hashed (from the page cache). */
	fs_syncfs_start(&bg, r->tmp);
	path = xasprintf("%s/hash-cache", cf->state_dir);
	rc = manifest_scan_cached(r->data, cf->source, r->id, path, &r->m,
	    &r->hashed, r->werr, sizeof r->werr);
	free(path);
	if (rc == 0)
		r->m->generation = r->generation;
	if (rc == 0)
		rc = write_manifest(r);
	if (fs_syncfs_wait(&bg) != 0 && rc == 0) {
		snprintf(r->werr, sizeof r->werr,
		    "%s: syncfs (what the hook wrote, to disk): %s", r->tmp,
		    strerror(errno));
		rc = -1;
	}
	if (rc != 0)
		goto out;
	if (rename(r->tmp, r->dir) != 0 || fs_fsync_dir(r->ex->exports_dir)) {
		snprintf(r->werr, sizeof r->werr, "cannot commit %s: %s",
		    r->dir, strerror(errno));
		goto out;
	}
	free(r->data);
	r->data = xasprintf("%s/data", r->dir);
	r->wrc = 0;
out:
	while (k > 0)
		free(env[--k]);
	if (r->wrc != 0)
		fs_rm_rf(r->tmp);
}

static void
notify(struct exporter *ex, struct run *r)
{
	struct evbuffer *b;
	struct json j;
	char iso[32];
	size_t i;

	time_format_iso(r->started, iso, sizeof iso);
	for (i = 0; i < r->npb; i++) {
		b = evbuffer_new();
		event_begin(&ex->node, &j, b, EV_BACKUP_READY, ex->cf->source,
		    r->id);
		json_str(&j, EVF_PEER, r->pb[i].url);
		json_i64(&j, EVF_FILES, r->files);
		json_i64(&j, EVF_BYTES, r->bytes);
		json_str(&j, EVF_STARTED, iso);
		json_obj_close(&j);
		outbox_send(&ex->node, r->pb[i].url, EV_BACKUP_READY, b);
		evbuffer_free(b);
	}
}

static void
export_done(void *arg)
{
	struct run *r = arg;
	struct exporter *ex = r->ex;
	struct run *o;
	char summary[256];

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
			  "the next cycle tries again",
		    r->id, r->error);
		node_record(&ex->node, "export", ex->cf->source, r->id, 0,
		    r->started, r->error, r->hook_output);
		return;
	}
	r->state = RUN_EXPORTED;
	r->files = r->m->files;
	r->bytes = r->m->bytes;
	r->served = 1;
	TAILQ_FOREACH(o, &ex->runs, link) {
		if (o == r)
			continue;
		if (o->state == RUN_EXPORTED)
			snprintf(o->superseded_by, sizeof o->superseded_by,
			    "%s", r->id);
		if (o->served)
			run_unserve(ex, o, "superseded by a newer version");
	}
	ex->served = r;
	runs_tidy(ex);
	snprintf(summary, sizeof summary,
	    "exported version %s: %lld files, %lld bytes (%lld hashed, the "
	    "others unchanged) in %llds",
	    r->id, (long long)r->files, (long long)r->bytes,
	    (long long)r->hashed, (long long)(r->finished - r->started));
	log_info("%s", summary);
	node_record(&ex->node, "export", ex->cf->source, r->id, 1, r->started,
	    summary, r->hook_output);
	notify(ex, r);
}

/* The runs kept for status are the last RUNS_KEPT. */
static void
forget_oldest(struct exporter *ex, struct run *r)
{
	struct run *old;

	if (++ex->nruns <= RUNS_KEPT)
		return;
	TAILQ_FOREACH(old, &ex->runs, link) {
		if (old != r && !old->served) {
			TAILQ_REMOVE(&ex->runs, old, link);
			ex->nruns--;
			run_free(old);
			return;
		}
	}
}

struct run *
export_start(struct exporter *ex, const char *trigger, char *why, size_t whylen)
{
	struct timespec ts;
	struct run *r;
	int64_t ms;
	size_t i;

	if (ex->running != NULL) {
		snprintf(why, whylen,
		    "an export is already running (version %s, started %lds "
		    "ago); try again when it is done",
		    ex->running->id, (long)(time(NULL) - ex->running->started));
		return NULL;
	}
	if (ex->node.stopping) {
		snprintf(why, whylen, "the exporter is shutting down");
		return NULL;
	}
	if (exporter_fenced(ex, why, whylen))
		return NULL;
	/* Ids only grow, whatever the clock does. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (ex->last_ms > ms + PROTO_MAX_AHEAD_SECS * 1000LL) {
		/* The last id came from a clock that has since gone back
		 * far: following it would put every later version so far
		 * in the future that the pull-backups refuse it. */
		log_warnx("the last export's version is %llds ahead of the "
			  "clock; the ids start again from the clock",
		    (long long)((ex->last_ms - ms) / 1000));
	} else if (ms <= ex->last_ms) {
		if (ex->last_ms - ms > PROTO_MAX_SKEW_SECS * 1000LL)
			log_warnx("the clock is %llds behind the last export's "
				  "version: numbering this one after it",
			    (long long)((ex->last_ms - ms) / 1000));
		ms = ex->last_ms + 1;
	}
	/* After the newest an archive holds, which a pull-backup told. */
	if (ex->archived[0] != '\0' && ms <= version_id_ms(ex->archived))
		ms = version_id_ms(ex->archived) + 1;
	ex->last_ms = ms;
	r = xcalloc(1, sizeof *r);
	r->ex = ex;
	r->cf = ex->cf;
	r->generation = ex->gen->cur.n;
	version_id_make(ms, r->id);
	r->dir = xasprintf("%s/%s", ex->exports_dir, r->id);
	r->mpath = xasprintf("%s/manifest", r->dir);
	r->tmp = xasprintf("%s/%s.tmp", ex->exports_dir, r->id);
	if (ex->served != NULL) {
		r->prev_data = xasprintf("%s/data", ex->served->dir);
		r->prev_id = xstrdup(ex->served->id);
	}
	r->trigger = trigger;
	r->started = time(NULL);
	r->state = RUN_RUNNING;
	r->npb = ex->cf->nnotify;
	r->pb = xcalloc(r->npb, sizeof *r->pb);
	for (i = 0; i < r->npb; i++)
		r->pb[i].url = xstrdup(ex->cf->notify[i]);
	TAILQ_INSERT_TAIL(&ex->runs, r, link);
	forget_oldest(ex, r);
	ex->running = r;
	log_info("export of version %s started (%s)", r->id, trigger);
	worker_submit(ex->node.runs, export_work, export_done, r);
	return r;
}

static void
schedule_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exporter *ex = arg;
	char why[256];

	if (export_start(ex, "schedule", why, sizeof why) == NULL)
		log_warnx("scheduled export skipped: %s", why);
	export_schedule(ex);
}

/* Arm the timer for the next scheduled export, if any. */
void
export_schedule(struct exporter *ex)
{
	struct timeval tv;
	time_t now = time(NULL), next;
	char iso[32];

	if (ex->sched_ev == NULL)
		ex->sched_ev = evtimer_new(ex->node.base, schedule_cb, ex);
	event_del(ex->sched_ev);
	/* Fenced: nothing more is exported until the operator acts. */
	next = ex->gen->fence.n > 0 ? -1 :
				      schedule_next(&ex->cf->schedule, now);
	ex->next_scheduled = next;
	if (next < 0)
		return;
	tv.tv_sec = next - now;
	tv.tv_usec = 0;
	evtimer_add(ex->sched_ev, &tv);
	time_format_iso(next, iso, sizeof iso);
	log_debug("next scheduled export at %s", iso);
}
