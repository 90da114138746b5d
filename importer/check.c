/* A standby's copy re-read against its manifest (check.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "check.h"
#include "config.h"
#include "doc.h"
#include "fsutil.h"
#include "isrc.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "runner.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

#define CHECK_STATE "check.json"
#define CHECK_STATE_MAX 4096

struct diff {
	struct check_result *res;
	FILE *report;
};

/* What differs between the copy (scanned) and its manifest: content,
 * type, symlink targets; a mode or an mtime is not damage. */
static void
note_bad(void *arg, const struct ment *want, const struct ment *got)
{
	struct diff *d = arg;
	const char *path = want != NULL ? want->path : got->path;
	const char *what;

	if (got == NULL)
		what = "missing";
	else if (want == NULL)
		what = "not in the manifest";
	else if (got->type != want->type)
		what = "wrong type";
	else if (want->type == MENT_FILE &&
	    (got->size != want->size || strcmp(got->sha, want->sha) != 0))
		what = "content differs from its SHA-256";
	else if (want->type == MENT_LINK &&
	    strcmp(got->target, want->target) != 0)
		what = "symlink target differs";
	else
		return;
	if (d->report != NULL)
		fprintf(d->report, "BAD %s: %s\n", path, what);
	if (d->res->bad++ == 0)
		d->res->first = xasprintf("%s (%s)", path, what);
}

int
check_copy(const struct isrc *s, FILE *report, struct check_result *res)
{
	struct manifest *scan = NULL;
	struct diff d = { res, report };
	char *data;
	int rc;

	memset(res, 0, sizeof *res);
	res->at = time(NULL);
	if (s->cur_m == NULL)
		return 0;
	res->version = xstrdup(s->cur_m->version);
	data = xasprintf("%s/data", s->current);
	rc = manifest_scan(data, s->cur_m->source, s->cur_m->version, &scan,
	    res->error, sizeof res->error);
	free(data);
	if (rc != 0)
		return -1;
	manifest_diff(s->cur_m, scan, note_bad, &d);
	manifest_free(scan);
	return 0;
}

void
check_result_clear(struct check_result *res)
{
	free(res->version);
	free(res->first);
	memset(res, 0, sizeof *res);
}

static char *
state_path(const struct isrc *s)
{
	return xasprintf("%s/%s", s->dir, CHECK_STATE);
}

void
check_load(struct isrc *s)
{
	struct doc *d = NULL;
	char *p = state_path(s), *buf, err[128];
	const char *v;
	size_t len;
	int64_t x;

	if (fs_read_file(p, CHECK_STATE_MAX, &buf, &len) == 0) {
		if (doc_parse(buf, len, &d, err, sizeof err) == 0 &&
		    (v = doc_get_str(d, "version")) != NULL &&
		    isrc_version(s) != NULL &&
		    strcmp(v, isrc_version(s)) == 0 &&
		    doc_get_i64(d, "bad", &x) == 0 && x > 0) {
			s->damage.bad = x;
			s->damage.version = xstrdup(v);
			if (doc_get_str(d, "first") != NULL)
				s->damage.first = xstrdup(
				    doc_get_str(d, "first"));
			if (doc_get_i64(d, "at", &x) == 0)
				s->damage.at = (time_t)x;
		}
		doc_free(d);
		free(buf);
	}
	free(p);
}

/* What a check found, kept for health and status (and its file, across
 * a restart); a copy found sound again drops it. */
static void
note(struct isrc *s, struct check_result *res)
{
	struct evbuffer *b;
	struct json j;
	char *p = state_path(s);

	check_result_clear(&s->damage);
	s->checked_at = res->at;
	if (res->bad > 0) {
		s->damage = *res;
		memset(res, 0, sizeof *res);
		log_warnx("source \"%s\": the copy of version %s here is "
			  "damaged: %lld entr%s differ from its manifest "
			  "(first: %s); the next import mends it",
		    s->run.sc->name, s->damage.version,
		    (long long)s->damage.bad, s->damage.bad == 1 ? "y" : "ies",
		    s->damage.first);
		b = evbuffer_new();
		json_init(&j, b);
		json_obj_open(&j, NULL);
		json_str(&j, "version", s->damage.version);
		json_i64(&j, "bad", s->damage.bad);
		json_str(&j, "first", s->damage.first);
		json_i64(&j, "at", (int64_t)s->damage.at);
		json_obj_close(&j);
		durable_write(s->node, p, evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
		evbuffer_free(b);
	} else
		durable_remove(s->node, p);
	free(p);
}

void
check_replaced(struct isrc *s)
{
	char *p;

	if (s->damage.bad == 0)
		return;
	log_info("source \"%s\": the damaged copy of version %s is replaced "
		 "by a verified one",
	    s->run.sc->name, s->damage.version);
	check_result_clear(&s->damage);
	p = state_path(s);
	durable_remove(s->node, p);
	free(p);
}

int
check_damaged(const struct isrc *s, char *why, size_t len)
{
	char when[32];

	if (s->damage.bad == 0)
		return 0;
	time_format_iso(s->damage.at, when, sizeof when);
	snprintf(why, len,
	    "the copy of version %s is damaged: %lld entr%s differ from its "
	    "manifest (first: %s; found at %s); the next import mends it",
	    s->damage.version, (long long)s->damage.bad,
	    s->damage.bad == 1 ? "y" : "ies", s->damage.first, when);
	return 1;
}

void
check_status(const struct isrc *s, struct json *j)
{
	char when[32];

	if (s->checked_at != 0) {
		time_format_iso(s->checked_at, when, sizeof when);
		json_str(j, "checked_at", when);
	} else
		json_null(j, "checked_at");
	if (s->damage.bad == 0) {
		json_null(j, "damage");
		return;
	}
	time_format_iso(s->damage.at, when, sizeof when);
	json_obj_open(j, "damage");
	json_str(j, "version", s->damage.version);
	json_i64(j, "bad", s->damage.bad);
	json_str(j, "first", s->damage.first);
	json_str(j, "found_at", when);
	json_obj_close(j);
}

/* The daemon's check, on a worker, imports held meanwhile. */
struct check_job {
	struct isrc *s;
	struct check_result res;
	int rc;
	void (*done)(struct isrc *, const struct check_result *, int rc,
	    void *arg);
	void *arg;
};

static void
job_work(void *arg)
{
	struct check_job *j = arg;

	j->rc = check_copy(j->s, NULL, &j->res);
}

static void
job_done(void *arg)
{
	struct check_job *j = arg;
	struct isrc *s = j->s;

	s->checking = 0;
	if (j->rc != 0)
		log_warnx("source \"%s\": checking the copy: %s",
		    s->run.sc->name, j->res.error);
	else
		note(s, &j->res);
	/* Still held: what done() starts (a promotion) comes before any
	 * import. */
	if (j->done != NULL)
		j->done(s, &s->damage, j->rc, j->arg);
	check_result_clear(&j->res);
	free(j);
	runner_release(&s->run);
	check_schedule(s);
}

int
check_start(struct isrc *s,
    void (*done)(struct isrc *, const struct check_result *, int rc, void *),
    void *arg)
{
	struct check_job *j;

	if (s->checking || s->run.busy || s->cur_m == NULL)
		return -1;
	s->checking = 1;
	runner_hold(&s->run);
	j = xcalloc(1, sizeof *j);
	j->s = s;
	j->done = done;
	j->arg = arg;
	worker_submit(s->node->runs, job_work, job_done, j);
	return 0;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct isrc *s = arg;

	if (s->node->stopping)
		return;
	/* Busy importing, or checking: the import verified what it
	 * reused; try again later. */
	if (check_start(s, NULL, NULL) != 0)
		check_schedule(s);
}

void
check_schedule(struct isrc *s)
{
	struct timeval tv;

	if (s->node == NULL || s->run.sc->verify_every <= 0)
		return;
	if (s->check_ev == NULL)
		s->check_ev = evtimer_new(s->node->base, timer_cb, s);
	tv.tv_sec = s->run.sc->verify_every;
	tv.tv_usec = 0;
	evtimer_add(s->check_ev, &tv);
}
