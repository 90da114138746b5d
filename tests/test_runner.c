/* The per-source job engine (common/runner.c) on a real node: events of a
 * source taken in order, a job on a worker, the one retry rule, giving up,
 * the last result (only jobs that ended; persisted by the commit thread and
 * loaded again), status, health, metrics, reload and holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "doc.h"
#include "fixture.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "runner.h"
#include "timespec.h"
#include "unit.h"
#include "worker.h"
#include "xmalloc.h"

static const struct runner_words words = {
	.doing = "testing version",
	.last = "last_test",
	.busy = "testing",
	.busy_version = "testing_version",
	.none = "nothing yet",
	.stale = "the newest",
	.fresh = "newest",
	.failed = "the last test failed",
	.duration = "understudy_test_duration_seconds",
	.page_job = "Test",
	.page_busy = "TESTING",
	.page_last = "Last test",
};

/* What the next jobs do: 1 succeed, 0 fail, -1 fail for good. */
static int plan[32], nplan, jobs_started, jobs_done;
static enum runner_outcome last_outcome, outcomes[64];
static char newest[VERSION_ID_SIZE];
/* plan -4: while the job runs, this newer version is queued */
static char newer_meanwhile[VERSION_ID_SIZE];

static void push_event(struct node *, const char *);

static void
job_work(void *arg)
{
}

static void
job_done(void *arg)
{
	struct runner *r = arg;
	struct runner_result res;
	int what = plan[jobs_done++];
	char err[64];

	memset(&res, 0, sizeof res);
	res.version = xstrdup(r->version);
	res.ok = what == 1;
	res.at = time(NULL);
	res.secs = 1;
	res.st.files = 3;
	res.st.received = 1234;
	res.output = xstrdup("hook says hi\n");
	if (!res.ok) {
		snprintf(err, sizeof err, "boom %d", jobs_done);
		res.error = xstrdup(err);
	}
	if (what == -4)
		push_event(r->node, newer_meanwhile);
	last_outcome = runner_done(r, &res,
	    what == -1 || what == -4 ? RUNNER_FINAL :
		what == -2           ? RUNNER_DROP :
		what == -3           ? RUNNER_QUIET :
				       RUNNER_TRANSIENT);
	outcomes[jobs_done - 1] = last_outcome;
	if (last_outcome == RUNNER_OK)
		snprintf(newest, sizeof newest, "%s", r->last.version);
	runner_kick(r);
}

static enum runner_verdict
handle(struct runner *r, const struct doc *ev)
{
	return RUNNER_JOB;
}

static void
start(struct runner *r, const struct doc *ev)
{
	jobs_started++;
	worker_submit(r->node->runs, job_work, job_done, r);
}

static const char *
get_newest(const struct runner *r)
{
	return newest[0] ? newest : NULL;
}

static const struct runner_ops ops = {
	.handle = handle,
	.start = start,
	.newest = get_newest,
};

static int
accept_none(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	return PROTO_BAD;
}

static void
no_status(struct node *n, struct json *j)
{
}

static void
no_metrics(struct node *n, struct evbuffer *b)
{
}

static const struct node_ops node_ops = {
	.accept = accept_none,
	.status = no_status,
	.metrics = no_metrics,
};

struct ctx {
	struct node *n;
	struct runner *r;
	int want_done;
	const char *file;
};

static int
jobs_reached(void *arg)
{
	struct ctx *c = arg;

	return jobs_done >= c->want_done && !c->r->busy &&
	    c->n->writing == NULL && c->n->waiting == NULL;
}

static void
push_event(struct node *n, const char *version)
{
	char body[256], err[256];

	snprintf(body, sizeof body,
	    "{\"proto\":1,\"type\":\"test.ready\",\"source\":\"db\","
	    "\"version\":\"%s\",\"peer\":\"p\"}",
	    version);
	CHECK(queue_push(n->inbox, "test.ready db", "", body, strlen(body), err,
		  sizeof err) != NULL);
}

/* The status block as a document. */
static struct doc *
status_of(const struct runner *r)
{
	struct evbuffer *b = evbuffer_new();
	struct doc *d = NULL;
	struct json j;
	char err[256];

	json_init(&j, b);
	json_obj_open(&j, NULL);
	runner_status(r, &j);
	json_obj_close(&j);
	CHECK(doc_parse((const char *)evbuffer_pullup(b, -1),
		  evbuffer_get_length(b), &d, err, sizeof err) == 0);
	evbuffer_free(b);
	return d;
}

static void
version_at(int64_t secs_ago, char out[VERSION_ID_SIZE])
{
	version_id_make(((int64_t)time(NULL) - secs_ago) * 1000, out);
}

int
main(void)
{
	struct config *cf;
	struct node n;
	struct runner r, r2;
	struct ctx c;
	struct doc *d;
	struct evbuffer *b;
	char *dir, yaml[8192], state[4300], qdir[4300], err[1024], why[512];
	char v1[VERSION_ID_SIZE], v2[VERSION_ID_SIZE], v3[VERSION_ID_SIZE];
	char v4[VERSION_ID_SIZE], v5[VERSION_ID_SIZE], v6[VERSION_ID_SIZE];
	char key[128];
	int warn;
	long delay;
	int i;

	log_init("test", LOG_LEVEL_WARN);
	dir = unit_tmpdir();
	snprintf(yaml, sizeof yaml,
	    "listen: 127.0.0.1:%d\narchive_dir: %s/a\nsources:\n  db:\n    "
	    "exporter: http://127.0.0.1:9\n    importers: []\n  other:\n    "
	    "exporter: http://127.0.0.1:9\n    importers: []\n",
	    fixture_port(), dir);
	cf = fixture_config(dir, ROLE_PULLBACKUP, yaml);
	snprintf(qdir, sizeof qdir, "%s/queue", dir);
	snprintf(state, sizeof state, "%s/last.json", dir);
	CHECK(node_init(&n, cf, &node_ops, NULL, qdir, err, sizeof err) == 0);
	runner_init(&r, &n, config_source(cf, "db"), &ops, &words, NULL, state);
	CHECK(n.nrunners == 1 && n.runners[0] == &r);
	c.n = &n;
	c.r = &r;

	/* Nothing yet: critical, no last result. */
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 0, &warn, why,
		  sizeof why) != 0);
	CHECK_CONTAINS(why, "source \"db\": nothing yet");

	/* A job that succeeds: the result, persisted; the event gone. */
	version_at(10, v1);
	push_event(&n, v1);
	plan[nplan++] = 1;
	node_kick(&n);
	c.want_done = 1;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_OK);
	CHECK_STR(r.last.version, v1);
	CHECK(r.last.ok && r.failures == 0 && r.ok_at != 0);
	CHECK(n.inbox->count == 0);
	CHECK(fs_exists(state));
	warn = 0;
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 0, &warn, why,
		  sizeof why) == 0 &&
	    warn == 0);
	CHECK_CONTAINS(why, "\"db\": newest 1");
	/* Nothing under way: no lag, however small max_lag. */
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 1, &warn, why,
		  sizeof why) == 0);
	CHECK(runner_health_all(n.runners, n.nrunners, 5, 0, &warn, why,
		  sizeof why) != 0);
	CHECK_CONTAINS(why, "the newest is 1");
	CHECK_CONTAINS(why, "(max_age 5s)");

	/* A job that fails is retried by the one rule (5 s, then 10 s),
	 * and a failed attempt is not the last result: that stays the last
	 * job that ended. */
	version_at(5, v2);
	push_event(&n, v2);
	plan[nplan++] = 0;
	plan[nplan++] = 0;
	plan[nplan++] = 0;
	node_kick(&n);
	c.want_done = 2;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_RETRY);
	CHECK(r.attempts == 1 && n.inbox->count == 1);
	delay = (long)(r.next_try - time(NULL));
	CHECK(delay >= 4 && delay <= 5);
	CHECK_STR(r.retry_error, "boom 2");
	CHECK_STR(r.last.version, v1);
	CHECK(r.last.ok);
	warn = 0;
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 0, &warn, why,
		  sizeof why) == 0 &&
	    warn == 0);
	/* The version to retry was exported 5 s ago: a lag past max_lag. */
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 3600, &warn, why,
		  sizeof why) == 0);
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 2, &warn, why,
		  sizeof why) != 0);
	CHECK_CONTAINS(why, "is not done (max_lag 2s)");
	d = status_of(&r);
	CHECK_STR(doc_get_str(doc_get(d, "retrying"), "error"), "boom 2");
	CHECK_STR(doc_get_str(doc_get(d, "retrying"), "version"), v2);
	CHECK_STR(doc_get_str(doc_get(d, "last_test"), "version"), v1);
	CHECK_STR(doc_get_str(doc_get(d, "last_test"), "result"), "ok");
	doc_free(d);
	/* Not before its time. */
	node_kick(&n);
	event_base_loop(n.base, EVLOOP_NONBLOCK);
	CHECK(jobs_started == 2);
	r.next_try = 0;
	node_kick(&n);
	c.want_done = 3;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_RETRY && r.attempts == 2);
	delay = (long)(r.next_try - time(NULL));
	CHECK(delay >= 9 && delay <= 10);
	/* The third attempt fails: a failure to report (the last result,
	 * and health warns), and the event stays, to be retried for as long
	 * as it is the newest version. */
	r.next_try = 0;
	node_kick(&n);
	c.want_done = 4;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_FAILED);
	CHECK(r.attempts == 3 && n.inbox->count == 1);
	CHECK_STR(r.retry_error, "boom 4");
	CHECK_STR(r.last.version, v2);
	CHECK(!r.last.ok && r.failures == 1);
	CHECK_STR(r.last.error, "boom 4");
	delay = (long)(r.next_try - time(NULL));
	CHECK(delay >= 19 && delay <= 20);
	warn = 0;
	CHECK(runner_health_all(n.runners, n.nrunners, 3600, 0, &warn, why,
		  sizeof why) == 0 &&
	    warn == 1);
	CHECK_CONTAINS(why, "the last test failed");
	d = status_of(&r);
	CHECK(doc_get(d, "retrying") != NULL);
	CHECK(doc_get(doc_get(d, "retrying"), "failing_since") != NULL);
	CHECK_STR(doc_get_str(doc_get(d, "last_test"), "result"), "failed");
	CHECK_STR(doc_get_str(doc_get(d, "last_test"), "error"), "boom 4");
	doc_free(d);
	/* Later attempts: a pause that grows to its cap, and no new report
	 * until one ends otherwise. */
	for (i = 0; i < 5; i++) {
		plan[nplan++] = 0;
		r.next_try = 0;
		node_kick(&n);
		c.want_done++;
		CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
		CHECK(last_outcome == RUNNER_RETRY);
	}
	CHECK(r.attempts == 8 && r.failures == 1 && n.inbox->count == 1);
	delay = (long)(r.next_try - time(NULL));
	CHECK(delay >= PROTO_RETRY_JOB_MAX_SECS - 1 &&
	    delay <= PROTO_RETRY_JOB_MAX_SECS);
	/* Then it gets through: the event goes, the success is the last
	 * result. */
	plan[nplan++] = 1;
	r.next_try = 0;
	node_kick(&n);
	c.want_done++;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_OK);
	CHECK(r.attempts == 0 && r.retry_error == NULL && r.failing_since == 0);
	CHECK(n.inbox->count == 0);
	CHECK_STR(r.last.version, v2);
	CHECK(r.last.ok && r.failures == 1);

	/* A failure the role calls final is not retried. */
	version_at(1, v3);
	push_event(&n, v3);
	plan[nplan++] = -1;
	node_kick(&n);
	c.want_done++;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_GAVE_UP && r.failures == 2);
	CHECK(n.inbox->count == 0);

	/* A newer version queued: an older one is acknowledged only. */
	push_event(&n, v3);
	CHECK(runner_accept(&r, "test.ready", v2, key, sizeof key, why,
		  sizeof why) == NODE_ACK_ONLY);
	CHECK_CONTAINS(why, "newer version is already queued");
	CHECK_STR(key, "test.ready db");
	/* A version far in the future is refused (a clock that jumped, or
	 * a peer that lies); one a minute ahead is taken. */
	CHECK(runner_accept(&r, "test.ready", "29991231T000000.000Z", key,
		  sizeof key, why, sizeof why) == PROTO_BAD);
	CHECK_CONTAINS(why, "ahead of this host's clock");
	version_at(-60, v4);
	CHECK(runner_accept(&r, "test.ready", v4, key, sizeof key, why,
		  sizeof why) == NODE_QUEUE);
	plan[nplan++] = 1;
	node_kick(&n);
	c.want_done++;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_OK);

	/* Failures the role calls quiet (a pipelined import before the
	 * pull-backup's commit) are retried, never reported; a drop ends
	 * the event and keeps the last result as it was. */
	version_at(-120, v5);
	CHECK(runner_accept(&r, "test.ready", v5, key, sizeof key, why,
		  sizeof why) == NODE_QUEUE);
	push_event(&n, v5);
	for (i = 0; i < 4; i++) {
		plan[nplan++] = -3;
		r.next_try = 0;
		node_kick(&n);
		c.want_done++;
		CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
		CHECK(last_outcome == RUNNER_RETRY);
	}
	CHECK(r.attempts == 4 && !r.reported && r.failures == 2);
	CHECK_STR(r.last.version, v3);
	plan[nplan++] = -2;
	r.next_try = 0;
	node_kick(&n);
	c.want_done++;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(last_outcome == RUNNER_DROPPED);
	CHECK(n.inbox->count == 0 && r.attempts == 0 && r.failures == 2);
	CHECK_STR(r.last.version, v3);
	CHECK(r.last.ok);

	/* A job that fails while a newer event of its source comes: its
	 * event goes, and nothing is reported (the newer one is), even of a
	 * failure the role calls final; the newer one runs next. */
	version_at(-150, v6);
	version_at(-180, newer_meanwhile);
	push_event(&n, v6);
	plan[nplan++] = -4;
	plan[nplan++] = 1;
	node_kick(&n);
	c.want_done += 2;
	CHECK(fixture_loop(n.base, jobs_reached, &c, 10));
	CHECK(outcomes[jobs_done - 2] == RUNNER_SUPERSEDED);
	CHECK(outcomes[jobs_done - 1] == RUNNER_OK);
	CHECK(r.failures == 2 && r.attempts == 0 && !r.reported);
	CHECK_STR(r.last.version, newer_meanwhile);
	CHECK(r.last.ok);
	CHECK(n.inbox->count == 0);

	/* Metrics: the common families. */
	b = evbuffer_new();
	runner_metrics(b, n.runners, n.nrunners);
	evbuffer_add(b, "", 1);
	CHECK_CONTAINS((char *)evbuffer_pullup(b, -1),
	    "understudy_failures_total{source=\"db\"} 2\n");
	CHECK_CONTAINS((char *)evbuffer_pullup(b, -1),
	    "understudy_test_duration_seconds{source=\"db\"} 1\n");
	evbuffer_free(b);

	/* The last result survives: a new runner on the same file. */
	runner_init(&r2, NULL, config_source(cf, "db"), &ops, &words, NULL,
	    state);
	CHECK_STR(r2.last.version, newer_meanwhile);
	CHECK(
	    r2.last.ok && r2.last.st.files == 3 && r2.last.st.received == 1234);
	CHECK_STR(r2.last.output, "hook says hi\n");
	CHECK(r2.ok_at == r.ok_at);
	runner_free(&r2);
	/* A damaged one is forgotten, with a warning. */
	unit_write(state, "{\"version\": \"not a version\"");
	runner_init(&r2, NULL, config_source(cf, "db"), &ops, &words, NULL,
	    state);
	CHECK(r2.last.version == NULL);
	runner_free(&r2);

	/* Reload: taken at once when free; while held, when released. */
	runner_hold(&r);
	runner_reload(&r, config_source(cf, "other"));
	CHECK_STR(r.sc->name, "db");
	runner_release(&r);
	CHECK_STR(r.sc->name, "other");

	runner_free(&r);
	node_free(&n);
	config_free(cf);
	fs_rm_rf(dir);
	return unit_done();
}
