/* A pull: on "backup.ready" the source's runner starts pull_work() on a
 * worker, which syncs the version from the exporter into the store's
 * staging tree (deltas against the newest version), commits it, and
 * applies retention; pull_done(), on the loop, takes the verified
 * manifest as the new head, reports "backup.archived" to the exporter and
 * pushes the version to the importers.  attempt.json tells the list verb
 * about a pull under way or failed. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "json.h"
#include "generation.h"
#include "log.h"
#include "manifest.h"
#include "presign.h"
#include "proto.h"
#include "pullbackup.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

const struct runner_words pull_words = {
	.doing = "pulling version",
	.last = "last_pull",
	.busy = "pulling",
	.busy_version = "pulling_version",
	.none = "no version yet",
	.stale = "the newest version",
	.fresh = "newest version",
	.failed = "the last pull failed",
	.duration = "understudy_pull_duration_seconds",
	.page_job = "Pull",
	.page_busy = "PULLING",
	.page_last = "Last pull",
};

void
pull_set_head(struct src *s, struct manifest *m)
{
	char err[512];
	size_t i;

	manifest_free(s->head_m);
	s->head_m = NULL;
	for (i = 0; i < s->nversions; i++)
		free(s->vids[i]);
	free(s->vids);
	s->nversions = s->st->n;
	s->vids = xcalloc(s->nversions + 1, sizeof *s->vids);
	for (i = 0; i < s->nversions; i++)
		s->vids[i] = xstrdup(s->st->ids[i]);
	xstrset(&s->head, store_head(s->st));
	free(s->head_mpath);
	s->head_mpath = NULL;
	if (s->head == NULL) {
		manifest_free(m);
		return;
	}
	s->head_mpath = store_manifest_path(s->st, s->st->n - 1);
	if (m != NULL && strcmp(m->version, s->head) == 0)
		s->head_m = m;
	else {
		manifest_free(m);
		if (store_manifest(s->st, s->st->n - 1, &s->head_m, err,
			sizeof err) != 0)
			log_warnx("source \"%s\": %s", s->run.sc->name, err);
	}
}

/* The report carries where the archive stands (its newest version): an
 * exporter that lost its state, or whose clock went back, numbers its next
 * version after it instead of being refused as superseded for ever. */
void
pull_send_archived(struct src *s, const char *version, const char *peer, int ok,
    const char *error)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	event_begin(&s->pb->node, &j, b, EV_BACKUP_ARCHIVED, s->run.sc->name,
	    version);
	json_str(&j, EVF_FROM, peer);
	json_bool(&j, EVF_OK, ok);
	if (error != NULL)
		json_str(&j, EVF_ERROR, error);
	if (s->head != NULL)
		json_str(&j, EVF_NEWEST, s->head);
	json_obj_close(&j);
	outbox_send(&s->pb->node, s->run.sc->exporter, EV_BACKUP_ARCHIVED, b);
	evbuffer_free(b);
}

/* The state of a pull under way or failed, for the list verb. */
static void
attempt_write(struct src *s, const char *state, const char *error)
{
	struct evbuffer *b = evbuffer_new();
	char iso[32];
	struct json j;

	time_format_iso(time(NULL), iso, sizeof iso);
	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", s->run.version);
	json_str(&j, "state", state);
	json_str(&j, "time", iso);
	if (error != NULL)
		json_str(&j, "error", error);
	json_obj_close(&j);
	src_write(s, STORE_ATTEMPT, b);
	evbuffer_free(b);
}

/* Serving a version as it is pulled (pipelined).  The pull's thread,
 * once the manifest is taken and staging ready, writes the manifest where
 * the server reads it and hands the staging directory over with a copy of
 * the manifest it parsed itself (the loop parses nothing); the loop then
 * serves the version's staged entries (pb_lookup()), pushes it to the
 * importers marked staged, and wakes the progress requests that wait
 * whenever more is staged.  The importers take it only once it is
 * committed; the pull's end takes it off (stg_clear()). */
static char *
stg_manifest_path(const struct src *s)
{
	return xasprintf("%s/staged.%s.manifest", s->pb->tmp_dir,
	    s->run.sc->name);
}

/* Drop a handover not taken yet; with stg_lock held. */
static void
stg_drop_handoff(struct src *s)
{
	if (s->stg_handoff >= 0)
		close(s->stg_handoff);
	s->stg_handoff = -1;
	manifest_free(s->stg_hand_m);
	s->stg_hand_m = NULL;
}

static void
stg_on_staging(void *arg, const struct manifest *m, int stagefd)
{
	struct src *s = arg;
	struct evbuffer *b = evbuffer_new();
	struct manifest *copy = NULL;
	char *p = stg_manifest_path(s), err[512];
	const char *text;
	size_t len;
	int fd = -1;

	atomic_store(&s->staged, 0);
	manifest_write(m, b);
	len = evbuffer_get_length(b);
	text = (const char *)evbuffer_pullup(b, -1);
	/* Served only while this process lives: no fsync. */
	if (fs_write_scratch(p, text, len) != 0)
		log_warn("%s (served once pulled)", p);
	else if (manifest_parse(text, len, &copy, err, sizeof err) != 0)
		log_warnx("source \"%s\": staged manifest: %s", s->run.sc->name,
		    err);
	else if ((fd = dup(stagefd)) < 0)
		log_warn("staging directory");
	else {
		pthread_mutex_lock(&s->stg_lock);
		stg_drop_handoff(s);
		s->stg_handoff = fd;
		s->stg_hand_m = copy;
		copy = NULL;
		pthread_mutex_unlock(&s->stg_lock);
		event_active(s->stg_ev, EV_READ, 0);
	}
	manifest_free(copy);
	evbuffer_free(b);
	free(p);
}

static void
stg_on_progress(void *arg)
{
	struct src *s = arg;

	if (serve_waiting(&s->pb->node.serve))
		event_active(s->stg_ev, EV_READ, 0);
}

/* What was served of the pull goes: its progress requests are answered
 * (the version committed, or gone), and a handover not taken yet is
 * dropped. */
static void
stg_clear(struct src *s)
{
	pthread_mutex_lock(&s->stg_lock);
	stg_drop_handoff(s);
	pthread_mutex_unlock(&s->stg_lock);
	if (s->stg_fd >= 0)
		close(s->stg_fd);
	s->stg_fd = -1;
	manifest_free(s->stg_m);
	s->stg_m = NULL;
	xstrset(&s->stg_version, NULL);
	if (s->stg_mpath != NULL)
		unlink(s->stg_mpath);
	free(s->stg_mpath);
	s->stg_mpath = NULL;
	serve_wake(&s->pb->node.serve);
}

static void
stg_cb(evutil_socket_t fd, short what, void *arg)
{
	struct src *s = arg;
	struct manifest *hm;
	int hfd;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&s->stg_lock);
	hfd = s->stg_handoff;
	hm = s->stg_hand_m;
	s->stg_handoff = -1;
	s->stg_hand_m = NULL;
	pthread_mutex_unlock(&s->stg_lock);
	if (hfd >= 0 && s->run.busy && s->run.version != NULL) {
		if (s->stg_fd >= 0)
			close(s->stg_fd);
		s->stg_fd = hfd;
		manifest_free(s->stg_m);
		s->stg_m = hm;
		free(s->stg_mpath);
		s->stg_mpath = stg_manifest_path(s);
		xstrset(&s->stg_version, s->run.version);
		if (!s->stg_pushed && s->run.sc->nimporters > 0) {
			push_staged(s, s->stg_version, s->stg_m->generation);
			s->stg_pushed = 1;
		}
	} else if (hfd >= 0) {
		close(hfd);
		manifest_free(hm);
	}
	serve_wake(&s->pb->node.serve);
}

void
pull_stg_init(struct src *s)
{
	pthread_mutex_init(&s->stg_lock, NULL);
	s->stg_ev = event_new(s->pb->node.base, -1, 0, stg_cb, s);
	s->stg_handoff = s->stg_fd = -1;
}

void
pull_stg_free(struct src *s)
{
	if (s->stg_ev == NULL)
		return;
	stg_clear(s);
	event_free(s->stg_ev);
	s->stg_ev = NULL;
	pthread_mutex_destroy(&s->stg_lock);
}

int
pull_stg_lookup(struct src *s, const char *version, struct serve_version *v)
{
	if (s->stg_version == NULL || s->stg_m == NULL ||
	    strcmp(s->stg_version, version) != 0)
		return -1;
	v->root = s->current; /* unused: rootfd */
	v->rootfd = s->stg_fd;
	v->staged = &s->staged;
	v->manifest_path = s->stg_mpath;
	v->m = s->stg_m;
	v->tmp_dir = s->pb->tmp_dir;
	v->deltas_dir = s->deltas;
	return 0;
}

/* The manifest taken, staging ready: the reverse increments of the
 * newest version are built as the files they need are staged, each
 * once its new content is verified, beside the rest of the pull; and
 * what is staged is served to the importers. */
static void
pull_on_staging(void *arg, const struct manifest *m, int stagefd)
{
	struct src *s = arg;

	store_prebuild(&s->txn, s->head_m, m, 0);
	if (s->run.sc->nimporters > 0)
		stg_on_staging(s, m, stagefd);
}

static void
pull_on_progress(void *arg)
{
	struct src *s = arg;

	store_prebuild_staged(&s->txn, atomic_load(&s->staged));
	if (s->run.sc->nimporters > 0)
		stg_on_progress(s);
}

/* The sync failed after pull_on_staging(): its manifest goes. */
static void
pull_on_abandon(void *arg)
{
	struct src *s = arg;

	store_prebuild_stop(&s->txn);
}

static void
pull_work(void *arg)
{
	struct src *s = arg;
	const struct source_conf *sc = s->run.sc;
	const struct config *cf = s->run.job_cf;
	struct sync_opts o;
	struct hints hints;
	char perr[512];
	int64_t t0;
	int rc;

	memset(&o, 0, sizeof o);
	memset(&hints, 0, sizeof hints);
	store_begin(s->st, &s->txn);
	o.url = sc->exporter;
	o.token = cf->token;
	o.token_len = cf->token_len;
	o.source = sc->name;
	o.version = s->run.version;
	o.generation = s->pull_gen;
	o.base_dir = s->head_m != NULL ? s->current : NULL;
	o.base_m = s->head_m;
	o.staging = s->txn.staging;
	o.deltas_dir = s->txn.deltas;
	o.hints = s->hints;
	o.hints_out = &hints;
	o.link_unchanged = 1;
	/* Nothing of the mirror is reused unread: a byte that rotted in
	 * current/ is found, and fetched again from the exporter, instead
	 * of being linked into every later version. */
	o.verify_base = 1;
	o.sigs = &s->sigs;
	o.progress = &s->run.progress;
	o.rate_limit = sc->bandwidth_limit;
	o.zstd = wirez_wanted(sc->compress, sc->exporter);
	/* Increments built, and files served to the importers, as they are
	 * staged. */
	o.on_staging = pull_on_staging;
	o.on_progress = pull_on_progress;
	o.on_abandon = pull_on_abandon;
	o.staged = &s->staged;
	o.staged_arg = s;
	s->st->zstd_increments = sc->zstd_increments;
	rc = sync_run(&o, &s->new_m, &s->res.st, &s->gone, perr, sizeof perr);
	if (rc != 0) {
		xstrset(&s->res.error, perr);
		goto fail;
	}
	fault_point("pull-synced");
	s->presign = presign_build(s->sigs_dir, s->new_m, s->head_m, &hints,
	    s->txn.staging);
	hints_free(&hints);
	t0 = time_mono_ms();
	rc = store_commit(&s->txn, s->new_m, &s->replaced, perr, sizeof perr);
	log_debug("source \"%s\": commit of %s: %.2fs", sc->name,
	    s->new_m->version, (double)(time_mono_ms() - t0) / 1000);
	if (rc != 0) {
		xstrset(&s->res.error, perr);
		presign_free(s->presign); /* of nothing committed */
		s->presign = NULL;
		goto fail;
	}
	s->res.ok = 1;
	fault_point("pull-retention");
	if ((sc->keep_last > 0 || sc->older_than >= 0) &&
	    store_prune(s->st, sc->keep_last, sc->older_than, 0, &s->pruned,
		&s->npruned, perr, sizeof perr) != 0)
		log_warnx("source \"%s\": retention: %s", sc->name, perr);
	fault_point("pull-committed");
	return;
fail:
	/* Kept for the next attempt to resume, unless there is none (the
	 * version is gone), or the disk is full: the space is better given
	 * back (to queue the next events, to the commits of others). */
	store_abort(&s->txn, s->gone || s->res.st.nospace);
}

static void
presign_work(void *arg)
{
	presign_run(arg);
}

static void
pull_finished(struct src *s)
{
	struct node *n = &s->pb->node;
	const struct runner_result *last = &s->run.last;
	char summary[512];

	snprintf(summary, sizeof summary,
	    "archived version %s: %lld files, %lld bytes (%lld unchanged, %lld "
	    "of them moved, %lld by delta, %lld whole, %lld resumed; %lld "
	    "bytes received, %lld signatures made ahead) in %lds",
	    last->version, (long long)last->st.files, (long long)last->st.bytes,
	    (long long)last->st.unchanged, (long long)last->st.moved,
	    (long long)last->st.deltas, (long long)last->st.whole,
	    (long long)last->st.resumed, (long long)last->st.received,
	    (long long)last->st.ahead, last->secs);
	log_info("source \"%s\": %s", s->run.sc->name, summary);
	if (last->st.mended > 0)
		log_warnx("source \"%s\": %lld damaged file(s) of the mirror "
			  "mended from the exporter (named above); the older "
			  "versions: understudy-pullbackup verify %s --all",
		    s->run.sc->name, (long long)last->st.mended,
		    s->run.sc->name);
	s->received_total += (unsigned long long)last->st.received;
	src_remove(s, STORE_ATTEMPT);
	pull_set_head(s, s->new_m);
	s->new_m = NULL;
	node_record(n, "pull", s->run.sc->name, last->version, 1,
	    s->run.started, summary, NULL);
	pull_send_archived(s, last->version, s->run.peer, 1, NULL);
	/* The importers have it already, as it was pulled: they are waiting
	 * for this commit. */
	if (s->stg_pushed)
		push_committed(s, s->run.peer);
	else
		push_to_importers(s, s->run.peer);
}

static void
pull_done(void *arg)
{
	struct src *s = arg;
	struct node *n = &s->pb->node;
	const struct runner_result *last = &s->run.last;
	enum runner_outcome out;
	size_t i;

	for (i = 0; i < s->npruned; i++) {
		log_info("source \"%s\": retention removed version %s",
		    s->run.sc->name, s->pruned[i]);
		free(s->pruned[i]);
	}
	free(s->pruned);
	s->pruned = NULL;
	s->npruned = 0;
	if (n->stopping) {
		free(s->replaced); /* start-up removes it */
		s->replaced = NULL;
		presign_free(s->presign);
		s->presign = NULL;
		manifest_free(s->new_m);
		s->new_m = NULL;
		runner_result_clear(&s->res);
		return;
	}
	xstrset(&s->res.version, s->run.version);
	s->res.at = time(NULL);
	/* From the first attempt of a version retried: how long it took
	 * to get there. */
	s->res.secs = (long)(s->res.at -
	    (s->run.failing_since > 0 ? s->run.failing_since : s->run.started));
	switch ((out = runner_done(&s->run, &s->res,
		     s->gone ? RUNNER_FINAL : RUNNER_TRANSIENT))) {
	case RUNNER_OK:
		pull_finished(s);
		break;
	case RUNNER_GAVE_UP:
	case RUNNER_FAILED:
		if (out == RUNNER_GAVE_UP)
			log_warnx("source \"%s\": pulling version %s failed, "
				  "giving up: %s",
			    s->run.sc->name, last->version, last->error);
		node_record(n, "pull", s->run.sc->name, last->version, 0,
		    s->run.started, last->error, NULL);
		pull_send_archived(s, last->version, s->run.peer, 0,
		    last->error);
		attempt_write(s, out == RUNNER_GAVE_UP ? "failed" : "retrying",
		    last->error);
		break;
	case RUNNER_RETRY:
		attempt_write(s, "in progress", s->run.retry_error);
		break;
	case RUNNER_DROPPED:
	case RUNNER_SUPERSEDED:
		break;
	}
	stg_clear(s);
	s->stg_pushed = 0;
	manifest_free(s->new_m);
	s->new_m = NULL;
	/* The mirror the commit replaced goes after the events above are
	 * sent: its removal is not on the chain's way. */
	node_discard_tree(n, s->replaced);
	s->replaced = NULL;
	if (s->presign != NULL)
		worker_submit(s->pb->ahead, presign_work, NULL, s->presign);
	s->presign = NULL;
	runner_kick(&s->run);
}

/* The next event of this source: reports are handled at once, a version
 * the archive has is answered again, a newer one is pulled. */
static enum runner_verdict
pull_handle(struct runner *r, const struct doc *ev)
{
	struct src *s = r->arg;
	const char *type = doc_get_str(ev, EVF_TYPE);
	const char *version = doc_get_str(ev, EVF_VERSION);
	const char *peer = doc_get_str(ev, EVF_PEER);
	char why[1024], what[512];
	int same;

	if (strcmp(type, EV_IMPORT_DONE) == 0) {
		push_import_done(s, ev);
		return RUNNER_HANDLED;
	}
	if (strcmp(type, EV_SOURCE_PROMOTED) == 0) {
		gen_describe(&s->gen->cur, what, sizeof what);
		log_info("source \"%s\": promoted on an importer: %s",
		    r->sc->name, what);
		return RUNNER_HANDLED;
	}
	/* Queued before a promotion was known. */
	if (gen_stale(s->gen, ev, why, sizeof why)) {
		log_warnx("%s", why);
		pull_send_archived(s, version, peer, 0, why);
		return RUNNER_HANDLED;
	}
	if (s->head != NULL && strcmp(version, s->head) <= 0) {
		same = strcmp(version, s->head) == 0;
		snprintf(why, sizeof why,
		    "superseded: the archive already holds the newer version "
		    "%s",
		    s->head);
		pull_send_archived(s, version, peer, same, same ? NULL : why);
		if (same && s->push_version == NULL)
			push_to_importers(s, peer);
		return RUNNER_HANDLED;
	}
	return RUNNER_JOB;
}

static void
pull_start(struct runner *r, const struct doc *ev)
{
	struct src *s = r->arg;

	log_info("source \"%s\": pulling version %s from %s", r->sc->name,
	    r->version, r->sc->exporter);
	memset(&s->res, 0, sizeof s->res);
	s->gone = 0;
	s->pull_gen = gen_parse(ev, NULL, NULL, 0);
	attempt_write(s, "in progress", NULL);
	worker_submit(s->pb->node.runs, pull_work, pull_done, s);
}

static void
pull_result_json(const struct runner *r, const struct runner_result *res,
    struct json *j)
{
	runner_stats_json(j, &res->st);
	json_i64(j, "signatures_ahead", res->st.ahead);
}

static const char *
pull_newest(const struct runner *r)
{
	return ((const struct src *)r->arg)->head;
}

const struct runner_ops pull_ops = {
	.handle = pull_handle,
	.start = pull_start,
	.result_json = pull_result_json,
	.newest = pull_newest,
};
