/* understudy-pullbackup: the backup host's daemon.  On "backup.ready" it
 * pulls the version from the exporter with the sync client (deltas against
 * its newest copy), commits it to the source's archive, applies retention,
 * tells the exporter, and pushes "import.ready" to the importers, whose
 * "import.done" reports it gathers and forwards.  It serves its newest
 * version to the importers with the same version server the exporter uses.
 * It owns archive_dir: one archive per source (archive.c) and the queues. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "archive.h"
#include "verbs.h"
#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
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
#include "pullbackup.h"
#include "worker.h"
#include "xmalloc.h"

#define PULL_ATTEMPTS 3

static struct src *
src_find(struct pullbackup *pb, const char *name)
{
	size_t i;

	for (i = 0; i < pb->nsrcs; i++)
		if (strcmp(pb->srcs[i].sc->name, name) == 0)
			return &pb->srcs[i];
	return NULL;
}

static void
src_load_head(struct src *s)
{
	char err[512];
	size_t i;

	manifest_free(s->head_m);
	s->head_m = NULL;
	xstrset(&s->head, archive_head(s->ar));
	for (i = 0; i < s->nversions; i++)
		free(s->vids[i]);
	free(s->vids);
	s->nversions = s->ar->n;
	s->vids = xcalloc(s->nversions + 1, sizeof *s->vids);
	for (i = 0; i < s->nversions; i++)
		s->vids[i] = xstrdup(s->ar->ids[i]);
	free(s->head_mpath);
	s->head_mpath = NULL;
	if (s->head == NULL)
		return;
	s->head_mpath = xasprintf("%s/versions/%s/manifest", s->ar->dir,
	    s->head);
	if (manifest_load(s->head_mpath, &s->head_m, err, sizeof err) != 0)
		log_warnx("source \"%s\": %s", s->sc->name, err);
}

static void
send_archived(struct src *s, const char *version, const char *peer, int ok,
    const char *error)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	event_begin(&j, b, EV_BACKUP_ARCHIVED, s->sc->name, version);
	json_str(&j, "from", peer);
	json_bool(&j, "ok", ok);
	if (error != NULL)
		json_str(&j, "error", error);
	json_obj_close(&j);
	node_send(&s->pb->node, s->sc->exporter, EV_BACKUP_ARCHIVED, b);
	evbuffer_free(b);
}

static void
send_imported(struct src *s)
{
	struct evbuffer *b;
	struct json j;
	const char *error = NULL;
	int64_t ok = 0;
	size_t i;

	for (i = 0; i < s->sc->nimporters; i++) {
		if (s->imps[i].state == IMP_PENDING)
			return;
		if (s->imps[i].state == IMP_OK)
			ok++;
		else if (error == NULL)
			error = s->imps[i].error != NULL ? s->imps[i].error :
			    "promoted";
	}
	if (s->push_reported || s->push_version == NULL)
		return;
	s->push_reported = 1;
	b = evbuffer_new();
	event_begin(&j, b, EV_BACKUP_IMPORTED, s->sc->name, s->push_version);
	json_str(&j, "from", s->push_peer);
	json_bool(&j, "ok", ok == (int64_t)s->sc->nimporters);
	json_i64(&j, "importers_ok", ok);
	json_i64(&j, "importers_total", (int64_t)s->sc->nimporters);
	if (error != NULL)
		json_str(&j, "error", error);
	json_obj_close(&j);
	node_send(&s->pb->node, s->sc->exporter, EV_BACKUP_IMPORTED, b);
	evbuffer_free(b);
}

/* State files in the archive, written by the commit thread in order with
 * the events (node_write_file): */
static void
src_write(struct src *s, const char *name, struct evbuffer *b)
{
	char *p = archive_path(s->ar, name);

	node_write_file(&s->pb->node, p, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	free(p);
}

/* What was pushed, and to which of the exporter's names for us the
 * reports go, survives a restart: push.json. */
static void
push_save(struct src *s)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", s->push_version);
	json_str(&j, "peer", s->push_peer);
	json_obj_close(&j);
	src_write(s, "push.json", b);
	evbuffer_free(b);
}

/* The state of a pull under way or failed, for the list verb:
 * attempt.json. */
static void
attempt_write(struct src *s, const char *state, const char *error)
{
	struct evbuffer *b = evbuffer_new();
	char iso[32];
	struct json j;

	time_format_iso(time(NULL), iso, sizeof iso);
	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", s->version);
	json_str(&j, "state", state);
	json_str(&j, "time", iso);
	if (error != NULL)
		json_str(&j, "error", error);
	json_obj_close(&j);
	src_write(s, "attempt.json", b);
	evbuffer_free(b);
}

static void
attempt_clear(struct src *s)
{
	char *p = archive_path(s->ar, "attempt.json");

	node_remove_file(&s->pb->node, p);
	free(p);
}

static void push_to_importers(struct src *, const char *);

/* At start-up: push the newest version again, so that reports lost with
 * the previous run come again (importers answer at once for a version they
 * have). */
static void
push_resume(struct src *s)
{
	char *p = archive_path(s->ar, "push.json"), *buf, err[128];
	struct doc *d = NULL;
	size_t len;

	if (fs_read_file(p, 1 << 16, &buf, &len) == 0) {
		if (doc_parse(buf, len, &d, err, sizeof err) == 0 &&
		    s->head != NULL && doc_get_str(d, "version") != NULL &&
		    strcmp(doc_get_str(d, "version"), s->head) == 0) {
			log_info("source \"%s\": pushing version %s to the "
			    "importers again after the restart", s->sc->name,
			    s->head);
			push_to_importers(s, doc_get_str(d, "peer"));
		}
		doc_free(d);
		free(buf);
	}
	free(p);
}

static void
push_to_importers(struct src *s, const char *peer)
{
	struct evbuffer *b;
	struct json j;
	size_t i;

	xstrset(&s->push_version, s->head);
	xstrset(&s->push_peer, peer);
	s->push_reported = 0;
	push_save(s);
	for (i = 0; i < s->sc->nimporters; i++) {
		/* A promoted standby takes no more imports: it is not asked. */
		if (s->imps[i].state == IMP_PROMOTED)
			continue;
		xstrset(&s->imps[i].version, s->head);
		s->imps[i].state = IMP_PENDING;
		xstrset(&s->imps[i].error, NULL);
		b = evbuffer_new();
		event_begin(&j, b, EV_IMPORT_READY, s->sc->name, s->head);
		json_str(&j, "peer", s->imps[i].url);
		json_obj_close(&j);
		node_send(&s->pb->node, s->imps[i].url, EV_IMPORT_READY, b);
		evbuffer_free(b);
	}
	send_imported(s);
}

static void
pull_work(void *arg)
{
	struct src *s = arg;
	const struct config *cf = s->job_cf;
	struct sync_opts o;
	char *staging, *current, *hints, perr[512];
	size_t i;

	memset(&o, 0, sizeof o);
	staging = archive_path(s->ar, "staging");
	current = archive_path(s->ar, "current");
	hints = archive_path(s->ar, "delta-hints");
	o.url = s->sc->exporter;
	o.token = cf->token;
	o.token_len = cf->token_len;
	o.source = s->sc->name;
	o.version = s->version;
	o.base_dir = s->head_m != NULL ? current : NULL;
	o.base_m = s->head_m;
	o.staging = staging;
	o.hints = hints;
	o.link_unchanged = 1;
	o.deltas_dir = s->deltas;
	o.sigs_dir = s->sigs;
	o.presign = &s->presign;
	s->rc = sync_run(&o, &s->new_m, &s->st, &s->gone, s->err,
	    sizeof s->err);
	if (s->rc != 0) {
		/* Kept for the next attempt, unless the version is gone. */
		if (s->gone) {
			char *marker = xasprintf("%s.version", staging);
			fs_rm_rf(staging);
			unlink(marker);
			free(marker);
		}
		goto out;
	}
	fault_point("pull-synced");
	/* Readers (restore, verify, export) see the archive before or after
	 * the commit, never during it. */
	if ((s->rc = archive_lock(s->ar, 1, s->err, sizeof s->err)) != 0)
		goto out;
	s->rc = archive_commit(s->ar, s->new_m, &s->replaced, s->err,
	    sizeof s->err);
	if (s->rc == 0 && (s->sc->keep_last > 0 || s->sc->older_than > 0) &&
	    archive_prune(s->ar, s->sc->keep_last, s->sc->older_than, 0,
	    &s->pruned, &s->npruned, perr, sizeof perr) != 0)
		log_warnx("source \"%s\": retention: %s", s->sc->name, perr);
	archive_unlock(s->ar);
	if (s->rc == 0)
		fault_point("pull-committed");
out:
	if (s->rc != 0) {
		sync_presign_free(s->presign);	/* of nothing committed */
		s->presign = NULL;
	}
	for (i = 0; i < s->npruned; i++)
		log_info("source \"%s\": retention removed version %s",
		    s->sc->name, s->pruned[i]);
	free(staging);
	free(current);
	free(hints);
}

/* A pull given up for good leaves nothing to resume. */
static void
drop_staging(struct src *s)
{
	char *staging = archive_path(s->ar, "staging");
	char *marker = xasprintf("%s.version", staging);

	fs_rm_rf(staging);
	unlink(marker);
	free(staging);
	free(marker);
}

/* Take a reload's settings (the pull's worker reads sc while it runs). */
static void
src_reconf(struct src *s)
{
	if (s->sc_next == NULL)
		return;
	s->sc = s->sc_next;
	s->sc_next = NULL;
}

static void
presign_work(void *arg)
{
	sync_presign_run(arg);
}

static void
pull_done(void *arg)
{
	struct src *s = arg;
	struct node *n = &s->pb->node;
	char summary[512];
	size_t i;

	for (i = 0; i < s->npruned; i++)
		free(s->pruned[i]);
	free(s->pruned);
	s->pruned = NULL;
	s->npruned = 0;
	manifest_free(s->new_m);
	s->new_m = NULL;
	xstrset(&s->last_version, s->version);
	s->last_at = time(NULL);
	s->last_secs = (long)(s->last_at - s->started);
	s->last_st = s->st;
	s->last_ok = s->rc == 0;
	xstrset(&s->last_error, s->rc == 0 ? NULL : s->err);
	if (n->stopping) {
		free(s->replaced);	/* start-up removes it */
		s->replaced = NULL;
		sync_presign_free(s->presign);
		s->presign = NULL;
		return;
	}
	src_reconf(s);
	switch (runner_done(&s->run, s->rc == 0, s->gone)) {
	case RUNNER_OK:
		s->last_ok_at = time(NULL);
		s->received_total += (unsigned long long)s->st.received;
		attempt_clear(s);
		src_load_head(s);
		snprintf(summary, sizeof summary, "archived version %s: %lld "
		    "files, %lld bytes (%lld unchanged, %lld by delta, %lld "
		    "whole, %lld resumed; %lld bytes received, %lld signatures "
		    "made ahead) in %lds",
		    s->version, (long long)s->st.files, (long long)s->st.bytes,
		    (long long)s->st.unchanged, (long long)s->st.deltas,
		    (long long)s->st.whole, (long long)s->st.resumed,
		    (long long)s->st.received, (long long)s->st.ahead,
		    s->last_secs);
		log_info("source \"%s\": %s", s->sc->name, summary);
		node_record(n, "pull", s->sc->name, s->version, 1, s->started,
		    summary, NULL);
		send_archived(s, s->version, s->peer, 1, NULL);
		push_to_importers(s, s->peer);
		break;
	case RUNNER_GAVE_UP:
		s->failures++;
		log_warnx("source \"%s\": pulling version %s failed, giving "
		    "up: %s", s->sc->name, s->version, s->err);
		node_record(n, "pull", s->sc->name, s->version, 0, s->started,
		    s->err, NULL);
		send_archived(s, s->version, s->peer, 0, s->err);
		drop_staging(s);	/* first: the disk may be full */
		attempt_write(s, "failed", s->err);
		break;
	case RUNNER_RETRY:
		attempt_write(s, "in progress", s->err);
		log_warnx("source \"%s\": pulling version %s failed (attempt "
		    "%d of %d, next in %llds): %s", s->sc->name, s->version,
		    s->run.attempts, s->run.max_attempts,
		    (long long)(s->run.next_try - time(NULL)), s->err);
		break;
	}
	/* The mirror the commit replaced goes after the events above are
	 * sent: its removal is not on the chain's way. */
	node_discard_tree(n, s->replaced);
	s->replaced = NULL;
	if (s->presign != NULL)
		worker_submit(s->pb->ahead, presign_work, NULL, s->presign);
	s->presign = NULL;
	runner_kick(&s->run);
}

static void
handle_import_done(struct src *s, const struct doc *ev)
{
	const char *from = doc_get_str(ev, "from");
	const char *version = doc_get_str(ev, "version");
	const char *error = doc_get_str(ev, "error");
	int ok = 0;
	size_t i;

	doc_get_bool(ev, "ok", &ok);
	for (i = 0; i < s->sc->nimporters; i++) {
		if (from == NULL || strcmp(s->imps[i].url, from) != 0)
			continue;
		log_info("source \"%s\": importer %s %s version %s%s%s",
		    s->sc->name, from, ok ? "imported" : "FAILED to import",
		    version, error ? ": " : "", error ? error : "");
		if (s->imps[i].state == IMP_PROMOTED)
			return;		/* it said so already */
		if (s->imps[i].version != NULL &&
		    strcmp(s->imps[i].version, version) > 0)
			return;		/* a report on an older push */
		xstrset(&s->imps[i].version, version);
		s->imps[i].state = ok ? IMP_OK : IMP_FAILED;
		xstrset(&s->imps[i].error, error);
		s->imps[i].at = time(NULL);
		if (s->push_version != NULL &&
		    strcmp(s->push_version, version) == 0)
			send_imported(s);
		return;
	}
	log_warnx("source \"%s\": import.done from %s, which is not among "
	    "its importers", s->sc->name, from ? from : "(unknown)");
}

/* The next event of this source: reports are handled at once, a version
 * the archive has is answered again, a newer one is pulled. */
static enum runner_verdict
src_handle(struct runner *r, const struct doc *ev)
{
	struct src *s = r->arg;
	const char *type = doc_get_str(ev, "type");
	const char *version = doc_get_str(ev, "version");
	const char *peer = doc_get_str(ev, "peer");
	char why[256];
	int same;

	if (strcmp(type, EV_IMPORT_DONE) == 0) {
		handle_import_done(s, ev);
		return RUNNER_HANDLED;
	}
	if (s->head != NULL && strcmp(version, s->head) <= 0) {
		same = strcmp(version, s->head) == 0;
		snprintf(why, sizeof why, "superseded: the archive already "
		    "holds the newer version %s", s->head);
		send_archived(s, version, peer, same, same ? NULL : why);
		if (same && s->push_version == NULL)
			push_to_importers(s, peer);
		return RUNNER_HANDLED;
	}
	return RUNNER_JOB;
}

static void
src_start(struct runner *r, const struct doc *ev)
{
	struct src *s = r->arg;

	xstrset(&s->version, doc_get_str(ev, "version"));
	xstrset(&s->peer, doc_get_str(ev, "peer"));
	s->started = time(NULL);
	s->err[0] = '\0';
	log_info("source \"%s\": pulling version %s from %s", s->sc->name,
	    s->version, s->sc->exporter);
	attempt_write(s, "in progress", NULL);
	s->job_cf = s->pb->cf;
	worker_submit(s->pb->node.runs, pull_work, pull_done, s);
}

static const struct runner_ops src_runner_ops = {
	.handle = src_handle,
	.start = src_start,
};

static void
pb_kick(struct node *n)
{
	struct pullbackup *pb = n->role;
	size_t i;

	for (i = 0; i < pb->nsrcs; i++)
		runner_kick(&pb->srcs[i].run);
}

static int
pb_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct pullbackup *pb = n->role;
	const char *type = doc_get_str(ev, "type");
	const char *source = doc_get_str(ev, "source");
	const char *version = doc_get_str(ev, "version");
	const char *from = doc_get_str(ev, "from");
	struct src *s = src_find(pb, source);

	if (s == NULL) {
		snprintf(why, whylen, "this pull-backup has no source \"%s\" "
		    "(see \"sources\" in its config)", source);
		return 404;
	}
	if (strcmp(type, EV_BACKUP_READY) == 0) {
		snprintf(key, keylen, "%s %s", type, source);
		if (node_inbox_has_newer(n, key, version)) {
			snprintf(why, whylen, "a newer version is already "
			    "queued");
			return NODE_ACK_ONLY;
		}
		return NODE_QUEUE;
	}
	if (strcmp(type, EV_IMPORT_DONE) == 0) {
		if (from == NULL) {
			snprintf(why, whylen, "import.done needs \"from\"");
			return 400;
		}
		snprintf(key, keylen, "%s %s %s", type, source, from);
		return NODE_QUEUE;
	}
	snprintf(why, whylen, "the pull-backup takes no \"%s\" events", type);
	return 400;
}

const char *
imp_state_name(enum imp_state st)
{
	switch (st) {
	case IMP_NONE:
		return "none";
	case IMP_PENDING:
		return "pending";
	case IMP_OK:
		return "ok";
	case IMP_FAILED:
		return "failed";
	case IMP_PROMOTED:
		return "promoted";
	}
	return "?";
}

static void
pb_status(struct node *n, struct json *j)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	char iso[32];
	size_t i, k;

	json_str(j, "archive_dir", pb->cf->archive_dir);
	json_arr_open(j, "sources");
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		json_obj_open(j, NULL);
		json_str(j, "source", s->sc->name);
		json_str(j, "exporter", s->sc->exporter);
		json_str(j, "newest_version", s->head);
		json_i64(j, "versions", (int64_t)s->nversions);
		json_bool(j, "pulling", s->run.busy);
		if (s->run.busy)
			json_str(j, "pulling_version", s->version);
		if (s->last_version != NULL) {
			json_obj_open(j, "last_pull");
			json_str(j, "version", s->last_version);
			json_str(j, "result", s->last_ok ? "ok" : "failed");
			if (s->last_error)
				json_str(j, "error", s->last_error);
			time_format_iso(s->last_at, iso, sizeof iso);
			json_str(j, "finished", iso);
			json_i64(j, "seconds", s->last_secs);
			json_i64(j, "files", s->last_st.files);
			json_i64(j, "bytes", s->last_st.bytes);
			json_i64(j, "unchanged", s->last_st.unchanged);
			json_i64(j, "deltas", s->last_st.deltas);
			json_i64(j, "whole", s->last_st.whole);
			json_i64(j, "resumed", s->last_st.resumed);
			json_i64(j, "bytes_received", s->last_st.received);
			json_i64(j, "signatures_ahead", s->last_st.ahead);
			json_obj_close(j);
		}
		json_arr_open(j, "importers");
		for (k = 0; k < s->sc->nimporters; k++) {
			json_obj_open(j, NULL);
			json_str(j, "url", s->imps[k].url);
			json_str(j, "version", s->imps[k].version);
			json_str(j, "state", imp_state_name(s->imps[k].state));
			if (s->imps[k].error)
				json_str(j, "error", s->imps[k].error);
			json_obj_close(j);
		}
		json_arr_close(j);
		json_obj_close(j);
	}
	json_arr_close(j);
}

static int
pb_lookup(void *arg, const char *source, const char *version,
    struct serve_version *v, char *why, size_t len)
{
	struct node *n = arg;
	struct pullbackup *pb = n->role;
	struct src *s = src_find(pb, source);

	if (s == NULL) {
		snprintf(why, len, "this pull-backup has no source \"%s\"",
		    source);
		return 404;
	}
	if (s->head == NULL || s->head_m == NULL ||
	    strcmp(s->head, version) != 0) {
		snprintf(why, len, "version %s of %s is not the newest here "
		    "(the newest is %s)", version, source,
		    s->head ? s->head : "none");
		return 410;
	}
	v->root = s->current;
	v->manifest_path = s->head_mpath;
	v->m = s->head_m;
	v->tmp_dir = pb->tmp_dir;
	v->deltas_dir = s->deltas;
	return 200;
}

static int
pb_health(struct node *n, int64_t max_age, int *warn, char *why,
    size_t len)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	size_t i, off = 0;
	long age;

	why[0] = '\0';
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		if (s->head == NULL) {
			snprintf(why, len, "source \"%s\": no version yet",
			    s->sc->name);
			return -1;
		}
		age = (long)(time(NULL) - version_id_ms(s->head) / 1000);
		if (age > max_age) {
			snprintf(why, len, "source \"%s\": the newest version "
			    "is %lds old (max_age %llds)", s->sc->name, age,
			    (long long)max_age);
			return -1;
		}
		if (s->last_version != NULL && !s->last_ok)
			*warn = 1;
		if (off < len)
			off += (size_t)snprintf(why + off, len - off,
			    "%s\"%s\": newest version %lds old%s", i ? "; " : "",
			    s->sc->name, age, s->last_version != NULL &&
			    !s->last_ok ? ", the last pull failed" : "");
	}
	return 0;
}

static void
pb_metrics(struct node *n, struct evbuffer *b)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	size_t i, k;

	evbuffer_add_printf(b, "# TYPE understudy_versions gauge\n"
	    "# TYPE understudy_failures_total counter\n"
	    "# TYPE understudy_received_bytes_total counter\n"
	    "# TYPE understudy_last_success_timestamp_seconds gauge\n"
	    "# TYPE understudy_newest_version_timestamp_seconds gauge\n"
	    "# TYPE understudy_pull_duration_seconds gauge\n"
	    "# TYPE understudy_importer_ok gauge\n");
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		evbuffer_add_printf(b,
		    "understudy_versions{source=\"%s\"} %zu\n"
		    "understudy_failures_total{source=\"%s\"} %llu\n"
		    "understudy_received_bytes_total{source=\"%s\"} %llu\n",
		    s->sc->name, s->nversions, s->sc->name, s->failures,
		    s->sc->name, s->received_total);
		if (s->head != NULL)
			evbuffer_add_printf(b, "understudy_newest_version_"
			    "timestamp_seconds{source=\"%s\"} %lld\n",
			    s->sc->name,
			    (long long)(version_id_ms(s->head) / 1000));
		if (s->last_ok_at != 0)
			evbuffer_add_printf(b, "understudy_last_success_"
			    "timestamp_seconds{source=\"%s\"} %lld\n"
			    "understudy_pull_duration_seconds{source=\"%s\"} "
			    "%ld\n", s->sc->name, (long long)s->last_ok_at,
			    s->sc->name, s->last_secs);
		for (k = 0; k < s->sc->nimporters; k++)
			evbuffer_add_printf(b, "understudy_importer_ok{source="
			    "\"%s\",importer=\"%s\"} %d\n", s->sc->name,
			    s->imps[k].url, s->imps[k].state == IMP_OK);
	}
}

/* An importer refused an import for good: it was promoted. */
static void
pb_refused(struct node *n, const struct qentry *e, const char *why)
{
	struct pullbackup *pb = n->role;
	struct doc *d = event_parse(e);
	const char *source = d ? doc_get_str(d, "source") : NULL;
	struct src *s = source ? src_find(pb, source) : NULL;
	size_t i;

	for (i = 0; s != NULL && i < s->sc->nimporters; i++) {
		if (strcmp(s->imps[i].url, e->dest) != 0)
			continue;
		log_warnx("source \"%s\": importer %s is promoted; no more "
		    "pushes there (take it out of \"importers\" once the "
		    "failover is done)", s->sc->name, e->dest);
		s->imps[i].state = IMP_PROMOTED;
		xstrset(&s->imps[i].error, why);
		send_imported(s);
	}
	doc_free(d);
}

static void
pb_reload(struct node *n, struct config *cf)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	size_t i;

	pb->cf = cf;
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		s->sc_next = config_source(cf, s->sc->name);
		if (!s->run.busy)
			src_reconf(s);
	}
}

static const struct node_ops pb_ops = {
	.health = pb_health,
	.metrics = pb_metrics,
	.refused = pb_refused,
	.accept = pb_accept,
	.kick = pb_kick,
	.route = NULL,
	.page = pb_page,
	.reload = pb_reload,
	.status = pb_status,
	.lookup = pb_lookup,
};

static int
pb_serve(struct config *cf, int argc, char **argv)
{
	struct pullbackup pb;
	char err[1024];
	size_t i, k;
	struct src *s;
	int rc;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&pb, 0, sizeof pb);
	pb.cf = cf;
	pb.tmp_dir = xasprintf("%s/.tmp", cf->archive_dir);
	if (fs_mkdir_p(pb.tmp_dir, 0700) != 0) {
		log_warn("archive_dir %s", cf->archive_dir);
		return EXIT_FAILED;
	}
	pb.nsrcs = cf->nsources;
	pb.srcs = xcalloc(pb.nsrcs, sizeof *pb.srcs);
	for (i = 0; i < pb.nsrcs; i++) {
		s = &pb.srcs[i];
		s->pb = &pb;
		s->sc = &cf->sources[i];
		if (archive_open(cf->archive_dir, s->sc->name, ARCHIVE_DAEMON, &s->ar, err,
		    sizeof err) != 0) {
			log_warnx("source \"%s\": %s", s->sc->name, err);
			return EXIT_FAILED;
		}
		if (s->ar->recovered != NULL)
			log_info("source \"%s\": recovery: %s", s->sc->name,
			    s->ar->recovered);
		src_load_head(s);
		s->current = archive_path(s->ar, "current");
		s->deltas = archive_path(s->ar, "deltas");
		s->sigs = archive_path(s->ar, "signatures");
		s->imps = xcalloc(s->sc->nimporters + 1, sizeof *s->imps);
		for (k = 0; k < s->sc->nimporters; k++)
			s->imps[k].url = xstrdup(s->sc->importers[k]);
	}
	{
		char *qdir = xasprintf("%s/.queue", cf->archive_dir);
		rc = node_init(&pb.node, cf, &pb_ops, &pb, qdir, err,
		    sizeof err);
		free(qdir);
	}
	if (rc != 0) {
		log_warnx("%s", err);
		return EXIT_FAILED;
	}
	pb.ahead = worker_pool_new(pb.node.base, 1);
	for (i = 0; i < pb.nsrcs; i++) {
		runner_init(&pb.srcs[i].run, &pb.node, pb.srcs[i].sc->name,
		    &src_runner_ops, &pb.srcs[i], PULL_ATTEMPTS);
		push_resume(&pb.srcs[i]);
	}
	rc = node_run(&pb.node);
	worker_pool_free(pb.ahead);	/* a signature under way stops */
	for (i = 0; i < pb.nsrcs; i++) {
		s = &pb.srcs[i];
		runner_free(&s->run);
		archive_close(s->ar);
		manifest_free(s->head_m);
		free(s->head);
		free(s->head_mpath);
		for (k = 0; k < s->nversions; k++)
			free(s->vids[k]);
		free(s->vids);
		free(s->current);
		free(s->deltas);
		free(s->sigs);
		free(s->version);
		free(s->peer);
		free(s->last_version);
		free(s->last_error);
		free(s->push_version);
		free(s->push_peer);
		for (k = 0; k < s->sc->nimporters; k++) {
			free(s->imps[k].url);
			free(s->imps[k].version);
			free(s->imps[k].error);
		}
		free(s->imps);
	}
	free(pb.srcs);
	free(pb.tmp_dir);
	node_free(&pb.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
}

static const struct verb pb_verbs[] = {
	{ "check-config", "", "parse and validate the configuration",
	    verb_check_config },
	{ "serve", "", "run the daemon in the foreground", pb_serve },
	{ "status", "[--json]", "what the running daemon knows", verb_status },
	{ "check", "[--max-age AGE]",
	    "one line and a Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, "
	    "3 UNKNOWN", verb_check },
	{ "list", "SOURCE [--json]", "the versions, newest first", pb_list },
	{ "changed", "SOURCE --since TIME [--json]",
	    "files added, changed and removed since TIME", pb_changed },
	{ "restore", "SOURCE[/PATH] --at TIME DIR",
	    "write the version at TIME (or its PATH) into DIR, verified",
	    pb_restore },
	{ "verify", "SOURCE [--at TIME | --all]",
	    "rebuild and check every file's SHA-256; name each bad file",
	    pb_verify },
	{ "prune", "SOURCE [--older-than AGE] [--keep-last N] [--dry-run]",
	    "remove old versions, never the newest; print what goes", pb_prune },
	{ "export", "SOURCE --at TIME [--format tar|tar.gz] [-o FILE]",
	    "the version as one archive file (stdout by default)", pb_export },
	{ "vc-export", "SOURCE -o DIR [--since TIME] [--latest N]",
	    "every version as plain files, DIR/<version-id>/...",
	    pb_vc_export },
	{ "catalog", "SOURCE", "the versions and their manifests, as YAML",
	    pb_catalog },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog pb_prog = {
	.role = ROLE_PULLBACKUP,
	.name = "understudy-pullbackup",
	.summary = "The backup host's daemon: pulls versions from the "
	    "exporter with librsync deltas,\nkeeps them in an archive "
	    "(newest as plain files, older as reverse deltas),\nand pushes "
	    "the newest to the importers.",
	.verbs = pb_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&pb_prog, argc, argv);
}
