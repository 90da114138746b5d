/* The wire contract's two sides (common/proto.c): every route a client
 * builds parses back, on the server, to what was asked; what is not a
 * route of ours is refused; the one retry rule. */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

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

	/* The one retry rule: doubling from the first delay, capped. */
	CHECK(proto_retry_delay(1, PROTO_RETRY_EVENT_SECS) == 1);
	CHECK(proto_retry_delay(2, PROTO_RETRY_EVENT_SECS) == 2);
	CHECK(proto_retry_delay(6, PROTO_RETRY_EVENT_SECS) == 32);
	CHECK(proto_retry_delay(7, PROTO_RETRY_EVENT_SECS) == 60);
	CHECK(proto_retry_delay(1000, PROTO_RETRY_EVENT_SECS) == 60);
	CHECK(proto_retry_delay(1, PROTO_RETRY_JOB_SECS) == 5);
	CHECK(proto_retry_delay(2, PROTO_RETRY_JOB_SECS) == 10);
	evhttp_uri_free(u);
	return unit_done();
}
