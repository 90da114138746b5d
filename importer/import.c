/* An import: on "import.ready" the source's runner starts import_work()
 * on a worker, which syncs the version from the pull-backup into next/
 * (deltas against the last good copy, verified), runs the operator's
 * import hook on the verified copy, and only when the hook succeeded swaps
 * the copy in as current/.  import_done(), on the loop, takes the verified
 * manifest as the current one and reports "import.done".  Whatever fails,
 * the last good copy stays as it was. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "hook.h"
#include "check.h"
#include "import.h"
#include "isrc.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "promote.h"
#include "proto.h"
#include "queue.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

const struct runner_words import_words = {
	.doing = "import of version",
	.last = "last_import",
	.busy = "importing",
	.busy_version = "importing_version",
	.none = "no copy imported yet",
	.stale = "the copy on this host",
	.fresh = "copy",
	.failed = "the last import failed",
	.duration = "understudy_import_duration_seconds",
	.page_job = "Import",
	.page_busy = "IMPORTING",
	.page_last = "Last import",
};

int
import_open(struct isrc *s, struct node *n, const struct config *cf,
    const struct source_conf *sc)
{
	char *last;
	int rc;

	rc = isrc_open(s, n, cf, sc);
	last = isrc_last_file(s);
	runner_init(&s->run, n, sc, &import_ops, &import_words, s, last);
	free(last);
	if (rc == 0) {
		promote_load(s);
		if (n != NULL)
			check_load(s);
	}
	return rc;
}

void
import_send_done(struct isrc *s, const char *version, const char *peer, int ok,
    const char *error)
{
	event_report(s->node, s->run.sc->pullbackup, EV_IMPORT_DONE,
	    s->run.sc->name, version, peer, ok, error);
}

/* The lists an import hook gets besides the verified copy, against the
 * last good import: UNDERSTUDY_CHANGED, the files and symlinks that are
 * new or differ; UNDERSTUDY_REMOVED, the paths that went or changed
 * type.  Both NUL-terminated paths relative to the copy. */
struct changes {
	FILE *changed, *removed;
};

static void
note_change(void *arg, const struct ment *o, const struct ment *n)
{
	struct changes *c = arg;

	if (o != NULL && (n == NULL || n->type != o->type))
		fwrite(o->path, 1, strlen(o->path) + 1, c->removed);
	if (n != NULL && n->type != MENT_DIR)
		fwrite(n->path, 1, strlen(n->path) + 1, c->changed);
}

static int
write_changes(const struct manifest *old, const struct manifest *m,
    const char *changed, const char *removed, char *err, size_t errlen)
{
	struct changes c = { NULL, NULL };
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

/* The verified copy in next/ with its manifest: 0, or -1 (*keep when
 * what was verified may serve the next attempt). */
static int
import_sync(struct isrc *s, const char *data, int *keep, char *err,
    size_t errlen)
{
	const struct config *cf = s->run.job_cf;
	char *cur_data, *mpath;
	struct sync_opts o;
	int rc = -1;

	/* next/ may hold a copy an import cut short was making: the sync
	 * resumes it if it is of this version. */
	if (mkdir(s->next, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", s->next, strerror(errno));
		return -1;
	}
	cur_data = xasprintf("%s/data", s->current);
	memset(&o, 0, sizeof o);
	o.url = s->run.sc->pullbackup;
	o.token = cf->token;
	o.token_len = cf->token_len;
	o.source = s->run.sc->name;
	o.version = s->run.version;
	o.generation = s->import_gen;
	o.base_dir = s->cur_m != NULL ? cur_data : NULL;
	o.base_m = s->cur_m;
	o.hints = s->hints;
	o.staging = data;
	o.link_unchanged = 1;
	o.verify_base = 1;
	o.owners = 1;
	o.special_bits = s->run.sc->special_bits;
	o.ask_stored = 1;
	o.progress = &s->run.progress;
	o.rate_limit = s->run.sc->bandwidth_limit;
	o.zstd = wirez_wanted(s->run.sc->compress, s->run.sc->pullbackup);
	o.pipelined = s->pipelined;
	if (sync_run(&o, &s->new_m, &s->res.st, &s->gone, err, errlen) != 0) {
		/* for the next attempt, unless the version is gone or the
		 * disk is full */
		*keep = !s->gone && !s->res.st.nospace;
		goto out;
	}
	fault_point("import-synced");
	mpath = xasprintf("%s/manifest", s->next);
	if (manifest_save(s->new_m, mpath) != 0)
		snprintf(err, errlen, "%s: %s", mpath, strerror(errno));
	else
		rc = 0;
	free(mpath);
out:
	free(cur_data);
	return rc;
}

/* The import hook, on the verified copy at data. */
static int
import_hook(struct isrc *s, const char *data, struct hook_result *hr, char *err,
    size_t errlen)
{
	char *env[7], *changed, *removed;
	int nenv = 0, rc = -1;

	changed = xasprintf("%s/changed", s->next);
	removed = xasprintf("%s/removed", s->next);
	env[nenv++] = xasprintf("UNDERSTUDY_SOURCE=%s", s->run.sc->name);
	env[nenv++] = xasprintf("UNDERSTUDY_VERSION=%s", s->run.version);
	env[nenv++] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", data);
	/* What changed since the last good import, so that a hook can
	 * restore only that (files-import does). */
	if (s->cur_m != NULL) {
		if (write_changes(s->cur_m, s->new_m, changed, removed, err,
			errlen) != 0)
			goto out;
		env[nenv++] = xasprintf("UNDERSTUDY_PREVIOUS_VERSION=%s",
		    s->cur_m->version);
		env[nenv++] = xasprintf("UNDERSTUDY_CHANGED=%s", changed);
		env[nenv++] = xasprintf("UNDERSTUDY_REMOVED=%s", removed);
	}
	env[nenv] = NULL;
	s->hook_ran = 1;
	rc = hook_run(s->run.sc->import_command, env,
	    (int)s->run.sc->hook_timeout, "import hook", hr);
	if (rc != 0)
		snprintf(err, errlen, "%s", hr->error);
out:
	while (nenv > 0)
		free(env[--nenv]);
	free(changed);
	free(removed);
	return rc;
}

/* next/ becomes current/; the previous copy, if any, replaced.<version>:
 * it is removed once the import is reported (import_done), not on the
 * chain's way. */
static int
import_swap(struct isrc *s, char *err, size_t errlen)
{
	if (fs_exists(s->current)) {
		if (renameat2(AT_FDCWD, s->next, AT_FDCWD, s->current,
			RENAME_EXCHANGE) != 0) {
			snprintf(err, errlen, "swapping %s in: %s", s->next,
			    strerror(errno));
			return -1;
		}
	} else if (rename(s->next, s->current) != 0) {
		snprintf(err, errlen, "moving %s in: %s", s->next,
		    strerror(errno));
		return -1;
	}
	fs_fsync_dir(s->dir);
	fault_point("import-swapped");
	if (fs_exists(s->next)) {
		s->replaced = xasprintf("%s/%s%s", s->dir, ISRC_REPLACED_PREFIX,
		    s->run.version);
		if (rename(s->next, s->replaced) != 0) {
			log_warn("%s", s->replaced);
			free(s->replaced);
			s->replaced = NULL;
		}
		fault_point("import-replaced");
	}
	return 0;
}

static void
import_work(void *arg)
{
	struct isrc *s = arg;
	struct hook_result hr;
	char *data = xasprintf("%s/data", s->next), err[1024];
	int keep = 0;

	memset(&hr, 0, sizeof hr);
	err[0] = '\0';
	if (import_sync(s, data, &keep, err, sizeof err) != 0)
		goto out;
	/* The hook restores from the verified copy; only if it succeeds
	 * does the copy become the last good one. */
	if (import_hook(s, data, &hr, err, sizeof err) != 0) {
		/* The verified copy serves the next attempt (each file is
		 * checked again before it does). */
		keep = 1;
		goto out;
	}
	fault_point("import-hooked");
	if (import_swap(s, err, sizeof err) == 0)
		s->res.ok = 1;
out:
	if (!s->res.ok) {
		xstrset(&s->res.error, err);
		manifest_free(s->new_m);
		s->new_m = NULL;
	}
	s->res.output = hr.output;
	hr.output = NULL;
	hook_result_clear(&hr);
	if (!keep)
		fs_rm_rf(s->next);
	free(data);
}

static void
import_done(void *arg)
{
	struct isrc *s = arg;
	struct node *n = s->node;
	const struct runner_result *last = &s->run.last;
	char summary[512];

	if (n->stopping) {
		free(s->replaced); /* start-up removes it */
		s->replaced = NULL;
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
	/* A hook that ran and failed is reported at once, and retried
	 * like any failure: a standby's disk or database may be back.
	 * Nothing is reported of a version the pull-backup stopped pulling
	 * (its pull failed, or a newer one came: it is pushed again once
	 * archived, if ever), nor of a failure while the version was still
	 * being pulled (a link of the pull-backup's in trouble fails its
	 * pull too): retried.  (Nor, as for any role, of a failure a newer
	 * push superseded: that one reports.) */
	switch (runner_done(&s->run, &s->res,
	    s->gone && s->pipelined     ? RUNNER_DROP :
		s->gone                 ? RUNNER_FINAL :
		s->hook_ran             ? RUNNER_REPORT :
		s->res.st.before_commit ? RUNNER_QUIET :
					  RUNNER_TRANSIENT)) {
	case RUNNER_OK:
		manifest_free(s->cur_m);
		s->cur_m = s->new_m;
		s->new_m = NULL;
		check_replaced(s);
		snprintf(summary, sizeof summary,
		    "imported version %s: %lld files, %lld bytes (%lld "
		    "unchanged, %lld of them moved, %lld by delta, %lld whole, "
		    "%lld resumed; %lld deltas relayed as stored) in %lds",
		    last->version, (long long)last->st.files,
		    (long long)last->st.bytes, (long long)last->st.unchanged,
		    (long long)last->st.moved, (long long)last->st.deltas,
		    (long long)last->st.whole, (long long)last->st.resumed,
		    (long long)last->st.stored, last->secs);
		log_info("source \"%s\": %s", s->run.sc->name, summary);
		node_record(n, "import", s->run.sc->name, last->version, 1,
		    s->run.started, summary, last->output);
		import_send_done(s, last->version, s->run.peer, 1, NULL);
		break;
	case RUNNER_GAVE_UP:
	case RUNNER_FAILED:
		log_warnx("source \"%s\": import of version %s failed; the "
			  "last good copy (%s) stays: %s",
		    s->run.sc->name, last->version,
		    isrc_version(s) ? isrc_version(s) : "none", last->error);
		node_record(n, "import", s->run.sc->name, last->version, 0,
		    s->run.started, last->error, last->output);
		import_send_done(s, last->version, s->run.peer, 0, last->error);
		break;
	case RUNNER_RETRY:
		break;
	case RUNNER_DROPPED:
		log_info(
		    "source \"%s\": version %s is no longer being pulled "
		    "by %s (its pull stopped, or a newer version came); it "
		    "is pushed again if it is archived",
		    s->run.sc->name, s->run.version, s->run.sc->pullbackup);
		break;
	case RUNNER_SUPERSEDED:
		break;
	}
	node_discard_tree(n, s->replaced);
	s->replaced = NULL;
	runner_kick(&s->run);
}

/* A version already imported is reported again (the report may have been
 * lost); an older one is answered as superseded (versions stay ordered
 * whatever the clocks: the exporter numbers after the newest); a newer one
 * is imported. */
static enum runner_verdict
import_handle(struct runner *r, const struct doc *ev)
{
	struct isrc *s = r->arg;
	const char *version = doc_get_str(ev, EVF_VERSION);
	const char *peer = doc_get_str(ev, EVF_PEER);
	const char *cur = isrc_version(s);
	char why[1024];
	int same;

	if (promote_refuses(s, why, sizeof why)) {
		import_send_done(s, version, peer, 0, why);
		return RUNNER_HANDLED;
	}
	/* Queued before a newer generation was known. */
	if (gen_stale(s->gen, ev, why, sizeof why)) {
		import_send_done(s, version, peer, 0, why);
		return RUNNER_HANDLED;
	}
	if (cur == NULL || strcmp(version, cur) > 0)
		return RUNNER_JOB;
	same = strcmp(version, cur) == 0;
	snprintf(why, sizeof why,
	    "superseded: version %s is already imported here", cur);
	import_send_done(s, version, peer, same, same ? NULL : why);
	return RUNNER_HANDLED;
}

static void
import_start(struct runner *r, const struct doc *ev)
{
	struct isrc *s = r->arg;

	log_info("source \"%s\": importing version %s from %s%s", r->sc->name,
	    r->version, r->sc->pullbackup,
	    doc_get(ev, EVF_STAGED) != NULL ? " as it is pulled" : "");
	memset(&s->res, 0, sizeof s->res);
	s->gone = s->hook_ran = 0;
	s->import_gen = gen_parse(ev, NULL, NULL, 0);
	s->pipelined = 0;
	doc_get_bool(ev, EVF_STAGED, &s->pipelined);
	worker_submit(s->node->runs, import_work, import_done, s);
}

static void
import_result_json(const struct runner *r, const struct runner_result *res,
    struct json *j)
{
	if (res->output != NULL)
		json_str(j, "hook_output", res->output);
	runner_stats_json(j, &res->st);
}

static const char *
import_newest(const struct runner *r)
{
	return isrc_version(r->arg);
}

static int
import_damaged(const struct runner *r, char *why, size_t len)
{
	return check_damaged(r->arg, why, len);
}

/* Promoted: this host is the primary now. */
static const char *
import_aside(const struct runner *r)
{
	return ((const struct isrc *)r->arg)->promo != PROMO_NONE ? "promoted" :
								    NULL;
}

const struct runner_ops import_ops = {
	.damaged = import_damaged,
	.handle = import_handle,
	.start = import_start,
	.result_json = import_result_json,
	.newest = import_newest,
	.aside = import_aside,
};
