/* The wire contract's two sides (common/proto.c): every route a client
 * builds parses back, on the server, to what was asked; what is not a
 * route of ours is refused; the one retry rule. */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "gate.h"
#include "journal.h"
#include "log.h"
#include "proto.h"
#include "unit.h"

/* The URI parsed last: what r.page points into lives as long. */
static struct evhttp_uri *u;

static int
parse(const char *uri, struct proto_req *r)
{
	char why[256];

	if (u != NULL)
		evhttp_uri_free(u);
	if ((u = evhttp_uri_parse(uri)) == NULL)
		return -1;
	return proto_parse(u, r, why, sizeof why);
}

static void
round_trip(enum proto_what what, const char *path, const char *from)
{
	struct proto_req r;
	char *uri = proto_version_route("db", "20261121T194108.123Z", what,
	    path, from);

	CHECK(parse(uri, &r) == 0);
	CHECK(r.route == PROTO_R_VERSION && r.what == what);
	CHECK_STR(r.source, "db");
	CHECK_STR(r.version, "20261121T194108.123Z");
	if (path != NULL)
		CHECK_STR(r.path, path);
	else
		CHECK(r.path == NULL);
	CHECK_STR(r.from, from != NULL ? from : "");
	proto_req_clear(&r);
	free(uri);
}

/* The gate's reading of a head (common/gate.c) and the journal line. */
static int
head(const char *s, struct gate_head *h)
{
	return gate_head_parse(s, strlen(s), h);
}

static void
heads(void)
{
	struct gate_head h;
	struct journal j;
	static char big[GATE_MAX_HEAD + 10];

	CHECK(head("POST /v1/events HTTP/1.1\r\nContent-Length: 12\r\n"
		   "authorization:  Bearer x \r\n\r\nbody",
		  &h) == 1);
	CHECK(h.len == 75 && h.length == 12 && strcmp(h.method, "POST") == 0);
	CHECK(h.target_len == 10 && memcmp(h.target, "/v1/events", 10) == 0);
	CHECK(h.auth_len == 8 && memcmp(h.auth, "Bearer x", 8) == 0);
	CHECK(head("GET / HTTP/1.0\nHost: a\n\n", &h) == 1 && h.len == 24 &&
	    h.length == 0);
	CHECK(head("GET / HTTP/1.1\r\nHost: a\r\n", &h) == 0);
	CHECK(head("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
		  &h) == -1 &&
	    h.status == 411);
	CHECK(head("POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: "
		   "1\r\n\r\n",
		  &h) == -1 &&
	    h.status == 400);
	CHECK(head("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", &h) == -1 &&
	    h.status == 400);
	CHECK(head("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", &h) == -1);
	CHECK(head("HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", &h) == -1);
	CHECK(head("DELETE / HTTP/1.1\r\n\r\n", &h) == -1 && h.status == 405);
	CHECK(head("GET / HTTP/2.0\r\n\r\n", &h) == -1 && h.status == 505);
	memset(big, 'a', sizeof big - 1);
	CHECK(head(big, &h) == -1 && h.status == 431);

	CHECK(journal_parse("commit - 20261121T194108.123Z\n", 30, &j) == 0 &&
	    j.kind == JOURNAL_COMMIT && j.a[0] == '\0' &&
	    strcmp(j.b, "20261121T194108.123Z") == 0);
	CHECK(journal_parse("forget 20261121T194108.123Z -\n", 30, &j) == 0 &&
	    j.kind == JOURNAL_FORGET && j.b[0] == '\0');
	CHECK(
	    journal_parse("commit ../x 20261121T194108.123Z\n", 34, &j) == -1);
	CHECK(journal_parse("commit - 20261121T194108.123Z", 29, &j) == -1);
	CHECK(journal_parse("forget - 20261121T194108.123Z\n", 30, &j) == -1);
}

int
main(void)
{
	static const char sha[] =
	    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
	struct proto_req r;
	char *uri;

	log_init("test", LOG_LEVEL_WARN);
	round_trip(PROTO_MANIFEST, NULL, NULL);
	round_trip(PROTO_FILE, "d/a file", NULL);
	round_trip(PROTO_FILE, "dir/\xc3\xa9t\xc3\xa9 & 100%?#=.txt", NULL);
	round_trip(PROTO_DELTA, "dump.sql", NULL);
	round_trip(PROTO_DELTA, "dump.sql", sha);

	/* The other routes. */
	uri = proto_run_route("20261121T194108.123Z");
	CHECK(parse(uri, &r) == 0 && r.route == PROTO_R_RUN);
	CHECK_STR(r.run, "20261121T194108.123Z");
	free(uri);
	uri = proto_health_route(90, 0);
	CHECK(parse(uri, &r) == 0 && r.route == PROTO_R_HEALTH &&
	    r.max_age == 90 && r.max_lag == 0);
	free(uri);
	uri = proto_health_route(90, 600);
	CHECK(parse(uri, &r) == 0 && r.route == PROTO_R_HEALTH &&
	    r.max_age == 90 && r.max_lag == 600);
	free(uri);
	/* A max_lag that is no number of seconds is none. */
	CHECK(parse("/health?max_lag=10x", &r) == 0 && r.max_lag == 0);
	CHECK(parse("/health?max_lag=-5", &r) == 0 && r.max_lag == 0);
	CHECK(parse("/metrics", &r) == 0 && r.route == PROTO_R_METRICS);
	CHECK(parse("/v1/events", &r) == 0 && r.route == PROTO_R_EVENTS);
	CHECK(parse("/v1/status", &r) == 0 && r.route == PROTO_R_STATUS);
	CHECK(parse("/v1/now", &r) == 0 && r.route == PROTO_R_NOW);
	CHECK(parse("/v1/promote", &r) == 0 && r.route == PROTO_R_PROMOTE);
	CHECK(parse("/", &r) == 0 && r.route == PROTO_R_PAGE);
	CHECK_STR(r.page, "/");
	CHECK(parse("/feed?x", &r) == 0 && r.route == PROTO_R_PAGE);

	/* Not routes of ours: refused, whatever the query. */
	CHECK(parse("/v1/nothing", &r) == PROTO_UNKNOWN);
	CHECK(parse("/v1/runs/", &r) == PROTO_UNKNOWN);
	CHECK(parse("/v1/runs/a/b", &r) == PROTO_UNKNOWN);
	CHECK(parse("/v1/sources/db/versions/x/nothing", &r) == PROTO_UNKNOWN);
	CHECK(
	    parse("/v1/sources/db/versions/x/file/more", &r) == PROTO_UNKNOWN);
	CHECK(parse("/v1/sources/db/version/x/file", &r) == PROTO_UNKNOWN);
	CHECK(parse("/v1/sources//versions/x/file", &r) == PROTO_UNKNOWN);
	/* A from that is not a SHA-256 is no from. */
	CHECK(
	    parse("/v1/sources/db/versions/x/delta?path=a&from=../x", &r) == 0);
	CHECK(r.from[0] == '\0');
	CHECK_STR(r.path, "a");
	proto_req_clear(&r);
	CHECK(parse("/health?max_age=-5", &r) == 0 && r.max_age == 0);
	/* A progress request's wait: entries, or "committed"; anything else
	 * is none (the server answers 400). */
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=12", &r) == 0 &&
	    r.route == PROTO_R_VERSION && r.what == PROTO_PROGRESS &&
	    r.wait == 12);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=0", &r) == 0 &&
	    r.wait == 0);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=committed", &r) ==
		0 &&
	    r.wait == PROTO_WAIT_ALL);
	CHECK(parse("/v1/sources/db/versions/x/progress", &r) == 0 &&
	    r.wait == -1);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=-3", &r) == 0 &&
	    r.wait == -1);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=+3", &r) == 0 &&
	    r.wait == -1);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait=3x", &r) == 0 &&
	    r.wait == -1);
	CHECK(parse("/v1/sources/db/versions/x/progress?wait="
		    "99999999999999999999",
		  &r) == 0 &&
	    r.wait == -1);

	/* The one retry rule: doubling from the first delay, capped. */
	CHECK(proto_retry_delay(1, PROTO_RETRY_EVENT_SECS,
		  PROTO_RETRY_MAX_SECS) == 1);
	CHECK(proto_retry_delay(2, PROTO_RETRY_EVENT_SECS,
		  PROTO_RETRY_MAX_SECS) == 2);
	CHECK(proto_retry_delay(6, PROTO_RETRY_EVENT_SECS,
		  PROTO_RETRY_MAX_SECS) == 32);
	CHECK(proto_retry_delay(7, PROTO_RETRY_EVENT_SECS,
		  PROTO_RETRY_MAX_SECS) == 60);
	CHECK(proto_retry_delay(1000, PROTO_RETRY_EVENT_SECS,
		  PROTO_RETRY_MAX_SECS) == 60);
	CHECK(proto_retry_delay(1, PROTO_RETRY_JOB_SECS,
		  PROTO_RETRY_JOB_MAX_SECS) == 5);
	CHECK(proto_retry_delay(2, PROTO_RETRY_JOB_SECS,
		  PROTO_RETRY_JOB_MAX_SECS) == 10);
	CHECK(proto_retry_delay(7, PROTO_RETRY_JOB_SECS,
		  PROTO_RETRY_JOB_MAX_SECS) == 300);
	CHECK(proto_retry_delay(99, PROTO_RETRY_JOB_SECS,
		  PROTO_RETRY_JOB_MAX_SECS) == 300);
	evhttp_uri_free(u);
	heads();
	return unit_done();
}
