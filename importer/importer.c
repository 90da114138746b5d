/* understudy-importer: a standby host's daemon.  On "import.ready" it syncs
 * the version from the pull-backup (same sync client, deltas against its
 * own copy), verifies every file, runs the operator's import hook on the
 * verified copy, and only when the hook succeeded swaps the copy in as
 * current; then it reports "import.done".  Whatever fails, the last good
 * copy stays as it was.  It owns state_dir: sources/<source>/current/
 * (data/ and its manifest), next/ while an import runs, replaced.<version>/
 * (the copy that import replaced) until it is removed after the report,
 * and the queues. */
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
#include "fault.h"
#include "fsutil.h"
#include "hook.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "runner.h"
#include "sync.h"
#include "timespec.h"
#include "worker.h"
#include "importer.h"
#include "xmalloc.h"

/* state_dir/sources/<source>/replaced.<version>: the copy the import of
 * <version> replaced, until it is removed. */
#define REPLACED_PREFIX "replaced."

#define IMPORT_ATTEMPTS 3

struct isrc *
isrc_find(struct importer *im, const char *name)
{
	size_t i;

	for (i = 0; i < im->nsrcs; i++)
		if (strcmp(im->srcs[i].sc->name, name) == 0)
			return &im->srcs[i];
	return NULL;
}

const char *
cur_version(const struct isrc *s)
{
	return s->cur_m != NULL ? s->cur_m->version : NULL;
}

void
isrc_load(struct isrc *s)
{
	char *p = xasprintf("%s/manifest", s->current), err[512];

	manifest_free(s->cur_m);
	s->cur_m = NULL;
	if (fs_exists(p) && manifest_load(p, &s->cur_m, err, sizeof err) != 0)
		log_warnx("source \"%s\": %s", s->sc->name, err);
	free(p);
}

void
isrc_reconf(struct isrc *s)
{
	if (s->sc_next == NULL || s->run.busy || s->promo_busy)
		return;
	s->sc = s->sc_next;
	s->sc_next = NULL;
}

static void
im_reload(struct node *n, struct config *cf)
{
	struct importer *im = n->role;
	size_t i;

	im->cf = cf;
	for (i = 0; i < im->nsrcs; i++) {
		im->srcs[i].sc_next = config_source(cf, im->srcs[i].sc->name);
		isrc_reconf(&im->srcs[i]);
	}
}

/* The last import's result, kept across restarts for status. */
static void
isrc_save_state(struct isrc *s)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", s->last_version);
	json_bool(&j, "ok", s->last_ok);
	json_str(&j, "error", s->last_error);
	json_str(&j, "hook_output", s->last_output);
	json_i64(&j, "at", (int64_t)s->last_at);
	json_i64(&j, "seconds", s->last_secs);
	json_obj_close(&j);
	if (fs_write_atomic(s->state_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b)) != 0)
		log_warn("saving %s", s->state_file);
	evbuffer_free(b);
}

void
isrc_load_state(struct isrc *s)
{
	struct doc *d = NULL;
	char *buf, err[128];
	size_t len;
	int64_t v;

	if (fs_read_file(s->state_file, 1 << 20, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) == 0) {
		const char *ver = doc_get_str(d, "version");
		if (ver != NULL && strcmp(ver, "null") != 0)
			xstrset(&s->last_version, ver);
		doc_get_bool(d, "ok", &s->last_ok);
		if (doc_get(d, "error") && doc_get(d, "error")->plain == 0)
			xstrset(&s->last_error, doc_get_str(d, "error"));
		if (doc_get(d, "hook_output") &&
		    doc_get(d, "hook_output")->plain == 0)
			xstrset(&s->last_output, doc_get_str(d,
			    "hook_output"));
		if (doc_get_i64(d, "at", &v) == 0)
			s->last_at = (time_t)v;
		if (doc_get_i64(d, "seconds", &v) == 0)
			s->last_secs = (long)v;
	}
	doc_free(d);
	free(buf);
}

static void
send_done(struct isrc *s, const char *version, const char *peer, int ok,
    const char *error)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	event_begin(&j, b, EV_IMPORT_DONE, s->sc->name, version);
	json_str(&j, "from", peer);
	json_bool(&j, "ok", ok);
	if (error != NULL)
		json_str(&j, "error", error);
	json_obj_close(&j);
	node_send(&s->im->node, s->sc->pullbackup, EV_IMPORT_DONE, b);
	evbuffer_free(b);
}

/* The lists an import hook gets besides the verified copy, against the
 * last good import: UNDERSTUDY_CHANGED, the files and symlinks that are
 * new or differ; UNDERSTUDY_REMOVED, the paths that went or changed
 * type.  Both NUL-terminated paths relative to the copy. */
struct changes {
	FILE *changed, *removed;
	int64_t n;
};

static void
note_change(void *arg, const struct ment *o, const struct ment *n)
{
	struct changes *c = arg;

	if (o != NULL && (n == NULL || n->type != o->type))
		fwrite(o->path, 1, strlen(o->path) + 1, c->removed);
	if (n != NULL && n->type != MENT_DIR)
		fwrite(n->path, 1, strlen(n->path) + 1, c->changed);
	c->n++;
}

static int
write_changes(const struct manifest *old, const struct manifest *m,
    const char *changed, const char *removed, char *err, size_t errlen)
{
	struct changes c = { NULL, NULL, 0 };
	int rc = 0;

	c.changed = fopen(changed, "we");
	c.removed = fopen(removed, "we");
	if (c.changed != NULL && c.removed != NULL)
		manifest_diff(old, m, note_change, &c);
	if (c.changed == NULL || ferror(c.changed) || fclose(c.changed)) {
		snprintf(err, errlen, "%s: %s", changed, strerror(errno));
		rc = -1;
	}
	if (c.removed == NULL || ferror(c.removed) || fclose(c.removed)) {
		snprintf(err, errlen, "%s: %s", removed, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* Copies imports replaced, left by a stop before they were removed. */
static void
remove_replaced(struct isrc *s)
{
	struct dirent *de;
	char *p;
	DIR *d;

	if ((d = opendir(s->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, REPLACED_PREFIX,
		    strlen(REPLACED_PREFIX)) != 0)
			continue;
		p = xasprintf("%s/%s", s->dir, de->d_name);
		log_info("source \"%s\": removing %s, a copy an import "
		    "replaced", s->sc->name, p);
		fs_rm_rf(p);
		free(p);
	}
	closedir(d);
}

static void
import_work(void *arg)
{
	struct isrc *s = arg;
	const struct config *cf = s->job_cf;
	struct manifest *m = NULL;
	struct sync_opts o;
	char *data, *cur_data, *mpath, *hints = NULL, *env[7], *changed,
	    *removed;
	int rc, keep = 0, nenv = 0;

	s->hook_ran = 0;
	s->rc = -1;
	data = xasprintf("%s/data", s->next);
	cur_data = xasprintf("%s/data", s->current);
	mpath = xasprintf("%s/manifest", s->next);
	changed = xasprintf("%s/changed", s->next);
	removed = xasprintf("%s/removed", s->next);
	/* next/ may hold a copy an import cut short was making: the sync
	 * resumes it if it is of this version. */
	if (mkdir(s->next, 0700) != 0 && errno != EEXIST) {
		snprintf(s->err, sizeof s->err, "%s: %s", s->next,
		    strerror(errno));
		goto out;
	}
	memset(&o, 0, sizeof o);
	o.url = s->sc->pullbackup;
	o.token = cf->token;
	o.token_len = cf->token_len;
	o.source = s->sc->name;
	o.version = s->version;
	o.base_dir = s->cur_m != NULL ? cur_data : NULL;
	o.base_m = s->cur_m;
	hints = xasprintf("%s/delta-hints", s->dir);
	o.hints = hints;
	o.staging = data;
	o.link_unchanged = 1;
	o.verify_base = 1;
	o.ask_stored = 1;
	if (sync_run(&o, &m, &s->st, &s->gone, s->err, sizeof s->err) != 0) {
		keep = !s->gone;	/* for the next attempt */
		goto out;
	}
	fault_point("import-synced");
	if (manifest_save(m, mpath) != 0) {
		snprintf(s->err, sizeof s->err, "%s: %s", mpath,
		    strerror(errno));
		goto out;
	}
	/* The hook restores from the verified copy; only if it succeeds
	 * does the copy become the last good one. */
	env[nenv++] = xasprintf("UNDERSTUDY_SOURCE=%s", s->sc->name);
	env[nenv++] = xasprintf("UNDERSTUDY_VERSION=%s", s->version);
	env[nenv++] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", data);
	/* What changed since the last good import, so that a hook can
	 * restore only that (files-import does). */
	if (s->cur_m != NULL) {
		if (write_changes(s->cur_m, m, changed, removed, s->err,
		    sizeof s->err) != 0) {
			while (nenv > 0)
				free(env[--nenv]);
			goto out;
		}
		env[nenv++] = xasprintf("UNDERSTUDY_PREVIOUS_VERSION=%s",
		    s->cur_m->version);
		env[nenv++] = xasprintf("UNDERSTUDY_CHANGED=%s", changed);
		env[nenv++] = xasprintf("UNDERSTUDY_REMOVED=%s", removed);
	}
	env[nenv] = NULL;
	s->hook_ran = 1;
	rc = hook_run(s->sc->import_command, env, (int)s->sc->hook_timeout,
	    "import hook", &s->hr);
	while (nenv > 0)
		free(env[--nenv]);
	if (rc != 0) {
		snprintf(s->err, sizeof s->err, "%s", s->hr.error);
		/* Stopped by a shutdown: the verified copy is resumed. */
		keep = worker_stopping();
		goto out;
	}
	fault_point("import-hooked");
	if (fs_exists(s->current)) {
		if (renameat2(AT_FDCWD, s->next, AT_FDCWD, s->current,
		    RENAME_EXCHANGE) != 0) {
			snprintf(s->err, sizeof s->err, "swapping %s in: %s",
			    s->next, strerror(errno));
			goto out;
		}
	} else if (rename(s->next, s->current) != 0) {
		snprintf(s->err, sizeof s->err, "moving %s in: %s", s->next,
		    strerror(errno));
		goto out;
	}
	fs_fsync_dir(s->dir);
	fault_point("import-swapped");
	/* After a swap next/ holds the previous copy: it is removed once
	 * the import is reported (import_done), not on the chain's way. */
	if (fs_exists(s->next)) {
		s->replaced = xasprintf("%s/%s%s", s->dir, REPLACED_PREFIX,
		    s->version);
		if (rename(s->next, s->replaced) != 0) {
			log_warn("%s", s->replaced);
			free(s->replaced);
			s->replaced = NULL;
		}
		fault_point("import-replaced");
	}
	s->rc = 0;
out:
	if (!keep)
		fs_rm_rf(s->next);
	manifest_free(m);
	free(data);
	free(cur_data);
	free(hints);
	free(mpath);
	free(changed);
	free(removed);
}


static void
import_done(void *arg)
{
	struct isrc *s = arg;
	struct node *n = &s->im->node;
	enum runner_outcome out;
	char summary[512];

	if (n->stopping) {
		hook_result_clear(&s->hr);
		free(s->replaced);	/* start-up removes it */
		s->replaced = NULL;
		return;
	}
	/* A hook that ran and failed is not retried: the next cycle is. */
	out = runner_done(&s->run, s->rc == 0, s->hook_ran || s->gone);
	isrc_reconf(s);
	if (out != RUNNER_RETRY) {
		xstrset(&s->last_version, s->version);
		s->last_ok = s->rc == 0;
		xstrset(&s->last_error, s->rc == 0 ? NULL : s->err);
		xstrset(&s->last_output, s->hr.output);
		s->last_at = time(NULL);
		s->last_secs = (long)(s->last_at - s->started);
		isrc_save_state(s);
	}
	switch (out) {
	case RUNNER_OK:
		isrc_load(s);
		s->lag = (long)(time(NULL) - version_id_ms(s->version) / 1000);
		s->ok_at = time(NULL);
		s->ok_secs = (long)(s->ok_at - s->started);
		snprintf(summary, sizeof summary, "imported version %s: %lld "
		    "files, %lld bytes (%lld unchanged, %lld by delta, %lld "
		    "whole, %lld resumed; %lld deltas relayed as stored) in "
		    "%lds", s->version,
		    (long long)s->st.files, (long long)s->st.bytes,
		    (long long)s->st.unchanged, (long long)s->st.deltas,
		    (long long)s->st.whole, (long long)s->st.resumed,
		    (long long)s->st.stored, s->ok_secs);
		log_info("source \"%s\": %s", s->sc->name, summary);
		node_record(n, "import", s->sc->name, s->version, 1,
		    s->started, summary, s->hr.output);
		send_done(s, s->version, s->peer, 1, NULL);
		break;
	case RUNNER_GAVE_UP:
		s->failures++;
		log_warnx("source \"%s\": import of version %s failed; the last "
		    "good copy (%s) stays: %s", s->sc->name, s->version,
		    cur_version(s) ? cur_version(s) : "none", s->err);
		node_record(n, "import", s->sc->name, s->version, 0,
		    s->started, s->err, s->hr.output);
		send_done(s, s->version, s->peer, 0, s->err);
		fs_rm_rf(s->next);	/* nothing left to resume */
		break;
	case RUNNER_RETRY:
		log_warnx("source \"%s\": import of version %s failed (attempt "
		    "%d of %d, next in %llds): %s", s->sc->name, s->version,
		    s->run.attempts, s->run.max_attempts,
		    (long long)(s->run.next_try - time(NULL)), s->err);
		break;
	}
	node_discard_tree(n, s->replaced);
	s->replaced = NULL;
	hook_result_clear(&s->hr);
	runner_kick(&s->run);
}

/* A version already imported is reported again (the report may have been
 * lost); an older one is answered as superseded; a newer one is imported. */
static enum runner_verdict
isrc_handle(struct runner *r, const struct doc *ev)
{
	struct isrc *s = r->arg;
	const char *version = doc_get_str(ev, "version");
	const char *cur = cur_version(s);
	char why[512];
	int same;

	if (promo_refuses(s, why, sizeof why)) {
		send_done(s, version, doc_get_str(ev, "peer"), 0, why);
		return RUNNER_HANDLED;
	}
	if (cur == NULL || strcmp(version, cur) > 0)
		return RUNNER_JOB;
	same = strcmp(version, cur) == 0;
	snprintf(why, sizeof why, "superseded: version %s is already imported "
	    "here", cur);
	send_done(s, version, doc_get_str(ev, "peer"), same, same ? NULL : why);
	return RUNNER_HANDLED;
}

static void
isrc_start(struct runner *r, const struct doc *ev)
{
	struct isrc *s = r->arg;

	xstrset(&s->version, doc_get_str(ev, "version"));
	xstrset(&s->peer, doc_get_str(ev, "peer"));
	s->started = time(NULL);
	s->err[0] = '\0';
	log_info("source \"%s\": importing version %s from %s", s->sc->name,
	    s->version, s->sc->pullbackup);
	s->job_cf = s->im->cf;
	worker_submit(s->im->node.runs, import_work, import_done, s);
}

static const struct runner_ops isrc_runner_ops = {
	.handle = isrc_handle,
	.start = isrc_start,
};

static void
im_kick(struct node *n)
{
	struct importer *im = n->role;
	size_t i;

	for (i = 0; i < im->nsrcs; i++)
		runner_kick(&im->srcs[i].run);
}

static int
im_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct importer *im = n->role;
	const char *type = doc_get_str(ev, "type");
	const char *source = doc_get_str(ev, "source");
	const char *version = doc_get_str(ev, "version");
	struct isrc *s;

	if (strcmp(type, EV_IMPORT_READY) != 0) {
		snprintf(why, whylen, "the importer takes no \"%s\" events",
		    type);
		return 400;
	}
	if ((s = isrc_find(im, source)) == NULL) {
		snprintf(why, whylen, "this importer has no source \"%s\" (see "
		    "\"sources\" in its config)", source);
		return 404;
	}
	/* 409 tells the pull-backup to stop pushing here. */
	if (promo_refuses(s, why, whylen))
		return 409;
	snprintf(key, keylen, "%s %s", type, source);
	if (node_inbox_has_newer(n, key, version)) {
		snprintf(why, whylen, "a newer version is already queued");
		return NODE_ACK_ONLY;
	}
	return NODE_QUEUE;
}

static void
im_status(struct node *n, struct json *j)
{
	struct importer *im = n->role;
	struct isrc *s;
	char iso[32];
	size_t i;

	json_str(j, "state_dir", im->cf->state_dir);
	json_arr_open(j, "sources");
	for (i = 0; i < im->nsrcs; i++) {
		s = &im->srcs[i];
		json_obj_open(j, NULL);
		json_str(j, "source", s->sc->name);
		json_str(j, "pullbackup", s->sc->pullbackup);
		json_str(j, "current_version", cur_version(s));
		if (s->cur_m != NULL) {
			json_i64(j, "files", s->cur_m->files);
			json_i64(j, "bytes", s->cur_m->bytes);
		}
		promo_status(s, j);
		json_bool(j, "importing", s->run.busy);
		if (s->run.busy)
			json_str(j, "importing_version", s->version);
		if (s->last_version != NULL) {
			json_obj_open(j, "last_import");
			json_str(j, "version", s->last_version);
			json_str(j, "result", s->last_ok ? "ok" : "failed");
			if (s->last_error)
				json_str(j, "error", s->last_error);
			if (s->last_output)
				json_str(j, "hook_output", s->last_output);
			time_format_iso(s->last_at, iso, sizeof iso);
			json_str(j, "finished", iso);
			json_i64(j, "seconds", s->last_secs);
			json_obj_close(j);
		}
		json_obj_close(j);
	}
	json_arr_close(j);
}

static int
im_health(struct node *n, int64_t max_age, int *warn, char *why,
    size_t len)
{
	struct importer *im = n->role;
	struct isrc *s;
	size_t i, off = 0;
	long age;

	why[0] = '\0';
	for (i = 0; i < im->nsrcs; i++) {
		s = &im->srcs[i];
		if (s->promo != PROMO_NONE) {
			/* Promoted: this host is the primary now. */
			if (off < len)
				off += (size_t)snprintf(why + off, len - off,
				    "%s\"%s\": promoted", i ? "; " : "",
				    s->sc->name);
			continue;
		}
		if (cur_version(s) == NULL) {
			snprintf(why, len, "source \"%s\": no copy imported "
			    "yet", s->sc->name);
			return -1;
		}
		age = (long)(time(NULL) - version_id_ms(cur_version(s)) / 1000);
		if (age > max_age) {
			snprintf(why, len, "source \"%s\": the copy on this host "
			    "is %lds old (max_age %llds)", s->sc->name, age,
			    (long long)max_age);
			return -1;
		}
		if (s->last_version != NULL && !s->last_ok)
			*warn = 1;
		if (off < len)
			off += (size_t)snprintf(why + off, len - off,
			    "%s\"%s\": copy %lds old%s", i ? "; " : "",
			    s->sc->name, age, s->last_version != NULL &&
			    !s->last_ok ? ", the last import failed" : "");
	}
	return 0;
}

static void
im_metrics(struct node *n, struct evbuffer *b)
{
	struct importer *im = n->role;
	struct isrc *s;
	size_t i;

	evbuffer_add_printf(b, "# TYPE understudy_failures_total counter\n"
	    "# TYPE understudy_promoted gauge\n"
	    "# TYPE understudy_current_version_timestamp_seconds gauge\n"
	    "# TYPE understudy_last_success_timestamp_seconds gauge\n"
	    "# TYPE understudy_import_duration_seconds gauge\n"
	    "# HELP understudy_replication_lag_seconds From the version's "
	    "export to its import here.\n"
	    "# TYPE understudy_replication_lag_seconds gauge\n");
	for (i = 0; i < im->nsrcs; i++) {
		s = &im->srcs[i];
		evbuffer_add_printf(b,
		    "understudy_failures_total{source=\"%s\"} %llu\n"
		    "understudy_promoted{source=\"%s\"} %d\n", s->sc->name,
		    s->failures, s->sc->name, s->promo != PROMO_NONE);
		if (cur_version(s) != NULL)
			evbuffer_add_printf(b, "understudy_current_version_"
			    "timestamp_seconds{source=\"%s\"} %lld\n",
			    s->sc->name, (long long)(version_id_ms(
			    cur_version(s)) / 1000));
		if (s->ok_at != 0)
			evbuffer_add_printf(b, "understudy_last_success_"
			    "timestamp_seconds{source=\"%s\"} %lld\n"
			    "understudy_import_duration_seconds{source=\"%s\"} "
			    "%ld\n", s->sc->name, (long long)s->ok_at,
			    s->sc->name, s->ok_secs);
		if (s->ok_at != 0)
			evbuffer_add_printf(b, "understudy_replication_lag_"
			    "seconds{source=\"%s\"} %ld\n", s->sc->name,
			    s->lag);
	}
}

static const struct node_ops im_ops = {
	.health = im_health,
	.metrics = im_metrics,
	.accept = im_accept,
	.kick = im_kick,
	.route = promo_route,
	.page = im_page,
	.reload = im_reload,
	.status = im_status,
	.lookup = NULL,
};

void
isrc_init(struct importer *im, struct isrc *s, const struct source_conf *sc)
{
	s->im = im;
	s->sc = sc;
	s->dir = xasprintf("%s/sources/%s", im->cf->state_dir, sc->name);
	s->current = xasprintf("%s/current", s->dir);
	s->next = xasprintf("%s/next", s->dir);
	s->state_file = xasprintf("%s/last-import.json", s->dir);
	s->promo_file = xasprintf("%s/promoted.json", s->dir);
}

void
isrc_free(struct isrc *s)
{
	free(s->dir);
	free(s->current);
	free(s->next);
	free(s->state_file);
	free(s->promo_file);
	free(s->promo_at);
	free(s->promo_version);
	free(s->promo_output);
	manifest_free(s->cur_m);
	free(s->version);
	free(s->peer);
	free(s->last_version);
	free(s->last_error);
	free(s->last_output);
	runner_free(&s->run);
}

static int
im_serve(struct config *cf, int argc, char **argv)
{
	struct importer im;
	char err[1024], *qdir;
	struct isrc *s;
	size_t i;
	int rc;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&im, 0, sizeof im);
	im.cf = cf;
	im.nsrcs = cf->nsources;
	im.srcs = xcalloc(im.nsrcs, sizeof *im.srcs);
	for (i = 0; i < im.nsrcs; i++) {
		s = &im.srcs[i];
		isrc_init(&im, s, &cf->sources[i]);
		if (fs_mkdir_p(s->dir, 0700) != 0) {
			log_warn("state_dir: %s", s->dir);
			return EXIT_FAILED;
		}
		/* An import cut short left next/: its queued event brings it
		 * back, and the sync resumes what it verified.  current/ is
		 * always a whole, verified copy. */
		if (fs_exists(s->next))
			log_info("source \"%s\": an import was cut short; it "
			    "resumes from its queued event", s->sc->name);
		remove_replaced(s);
		isrc_load(s);
		isrc_load_state(s);
		promo_load(s);
		if (s->promo != PROMO_NONE)
			log_info("source \"%s\": promoted on this host; no "
			    "imports", s->sc->name);
	}
	qdir = xasprintf("%s/queue", cf->state_dir);
	rc = node_init(&im.node, cf, &im_ops, &im, qdir, err, sizeof err);
	free(qdir);
	if (rc != 0) {
		log_warnx("%s", err);
		return EXIT_FAILED;
	}
	for (i = 0; i < im.nsrcs; i++)
		runner_init(&im.srcs[i].run, &im.node, im.srcs[i].sc->name,
		    &isrc_runner_ops, &im.srcs[i], IMPORT_ATTEMPTS);
	rc = node_run(&im.node);
	for (i = 0; i < im.nsrcs; i++)
		isrc_free(&im.srcs[i]);
	free(im.srcs);
	node_free(&im.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
}

/* verify SOURCE: re-read the local copy and compare with its manifest. */
static int
im_verify(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	struct importer im;
	struct isrc s;
	struct manifest *scan = NULL;
	const struct ment *e, *f;
	char *pos[1], *data, err[1024];
	size_t i, bad = 0;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("verify SOURCE");
	if (config_source(cf, pos[0]) == NULL) {
		fprintf(stderr, "importer: no source \"%s\" in %s\n", pos[0],
		    cf->path);
		return EXIT_USAGE;
	}
	memset(&im, 0, sizeof im);
	memset(&s, 0, sizeof s);
	im.cf = cf;
	isrc_init(&im, &s, config_source(cf, pos[0]));
	isrc_load(&s);
	if (s.cur_m == NULL) {
		fprintf(stderr, "importer: source \"%s\" has no imported copy "
		    "yet\n", pos[0]);
		isrc_free(&s);
		return EXIT_FAILED;
	}
	data = xasprintf("%s/data", s.current);
	if (manifest_scan(data, s.cur_m->source, s.cur_m->version, &scan, err,
	    sizeof err) != 0) {
		fprintf(stderr, "importer: %s\n", err);
		free(data);
		isrc_free(&s);
		return EXIT_FAILED;
	}
	for (i = 0; i < s.cur_m->n; i++) {
		e = &s.cur_m->e[i];
		f = manifest_find(scan, e->path);
		if (f == NULL)
			printf("BAD %s: missing\n", e->path), bad++;
		else if (f->type != e->type)
			printf("BAD %s: wrong type\n", e->path), bad++;
		else if (e->type == MENT_FILE && (f->size != e->size ||
		    strcmp(f->sha, e->sha) != 0))
			printf("BAD %s: content differs from SHA-256 %s\n",
			    e->path, e->sha), bad++;
		else if (e->type == MENT_LINK && strcmp(f->target,
		    e->target) != 0)
			printf("BAD %s: symlink target differs\n", e->path),
			    bad++;
	}
	for (i = 0; i < scan->n; i++)
		if (manifest_find(s.cur_m, scan->e[i].path) == NULL)
			printf("BAD %s: not in the manifest\n",
			    scan->e[i].path), bad++;
	if (bad == 0)
		printf("version %s of \"%s\": %lld files, %lld bytes, all "
		    "verified\n", s.cur_m->version, pos[0],
		    (long long)s.cur_m->files, (long long)s.cur_m->bytes);
	else
		printf("version %s of \"%s\": %zu bad entries\n",
		    s.cur_m->version, pos[0], bad);
	manifest_free(scan);
	free(data);
	isrc_free(&s);
	return bad == 0 ? EXIT_OK : EXIT_FAILED;
}

static const struct verb im_verbs[] = {
	{ "check-config", "", "parse and validate the configuration",
	    verb_check_config },
	{ "serve", "", "run the daemon in the foreground", im_serve },
	{ "status", "[--json]", "what the running daemon knows", verb_status },
	{ "check", "[--max-age AGE]",
	    "one line and a Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, "
	    "3 UNKNOWN", verb_check },
	{ "verify", "SOURCE", "re-check the local copy against its manifest",
	    im_verify },
	{ "promote", "SOURCE [--force]",
	    "make this host the primary for SOURCE: no more imports, then the "
	    "promote hook", im_promote },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog im_prog = {
	.role = ROLE_IMPORTER,
	.name = "understudy-importer",
	.summary = "A standby host's daemon: takes each new version from the "
	    "pull-backup,\nverifies every file, runs the import hook, keeps "
	    "the last good copy.",
	.verbs = im_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&im_prog, argc, argv);
}
