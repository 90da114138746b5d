/* Routes built and parsed: the two sides of proto.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "fault.h"
#include "hash.h"
#include "proto.h"
#include "timespec.h"
#include "xmalloc.h"

static const char *const what_names[] = {
	[PROTO_MANIFEST] = "manifest",
	[PROTO_FILE] = "file",
	[PROTO_DELTA] = "delta",
	[PROTO_PROGRESS] = "progress",
};

int
proto_timeout(void)
{
	return fault_timeout(PROTO_TIMEOUT_SECS);
}

int
proto_delta_wait(int64_t size)
{
	int64_t secs = proto_timeout() +
	    (size > 0 ? size : 0) / PROTO_DELTA_MIN_RATE;

	return secs > INT32_MAX ? INT32_MAX : (int)secs;
}

int
proto_retry_delay(int retry, int first_secs, int max_secs)
{
	int64_t d = first_secs;

	while (--retry > 0 && d < max_secs)
		d *= 2;
	return d > max_secs ? max_secs : (int)d;
}

char *
proto_version_route(const char *source, const char *version,
    enum proto_what what, const char *path, const char *from)
{
	char *enc, *r;

	if (path == NULL)
		return xasprintf("%s%s/versions/%s/%s", ROUTE_SOURCES, source,
		    version, what_names[what]);
	enc = evhttp_uriencode(path, -1, 0);
	r = xasprintf("%s%s/versions/%s/%s?%s=%s%s%s%s", ROUTE_SOURCES, source,
	    version, what_names[what], PROTO_Q_PATH, enc,
	    from != NULL ? "&" : "", from != NULL ? PROTO_Q_FROM "=" : "",
	    from != NULL ? from : "");
	free(enc);
	return r;
}

char *
proto_run_route(const char *version)
{
	return xasprintf("%s%s", ROUTE_RUNS, version);
}

long
proto_version_ahead(const char *version)
{
	return (long)(version_id_ms(version) / 1000 - time(NULL));
}

char *
proto_health_route(int64_t max_age, int64_t max_lag)
{
	if (max_lag > 0)
		return xasprintf("%s?%s=%lld&%s=%lld", ROUTE_HEALTH,
		    PROTO_Q_MAX_AGE, (long long)max_age, PROTO_Q_MAX_LAG,
		    (long long)max_lag);
	return xasprintf("%s?%s=%lld", ROUTE_HEALTH, PROTO_Q_MAX_AGE,
	    (long long)max_age);
}

/* The next component of *p up to '/' or the end, into buf: 0, or -1 when
 * empty or too long. */
static int
component(const char **p, char *buf, size_t len)
{
	size_t n = strcspn(*p, "/");

	if (n == 0 || n >= len)
		return -1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p += n;
	return 0;
}

static int
parse_version_route(const char *rest, struct proto_req *r)
{
	char what[16];
	size_t i;

	if (component(&rest, r->source, sizeof r->source) != 0 ||
	    strncmp(rest, "/versions/", 10) != 0)
		return -1;
	rest += 10;
	if (component(&rest, r->version, sizeof r->version) != 0 ||
	    *rest++ != '/' || component(&rest, what, sizeof what) != 0 ||
	    *rest != '\0')
		return -1;
	for (i = 0; i < sizeof what_names / sizeof what_names[0]; i++)
		if (strcmp(what, what_names[i]) == 0) {
			r->what = (enum proto_what)i;
			return 0;
		}
	return -1;
}

/* The query keys a route takes; others are ignored, as HTTP allows, and
 * so is a query that does not parse (a route that needs a key answers its
 * absence). */
static void
parse_query(const char *qs, struct proto_req *r)
{
	struct evkeyvalq q;
	const char *v;
	char *end;
	long long x;

	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(qs, &q) != 0) {
		evhttp_clear_headers(&q);
		return;
	}
	if ((v = evhttp_find_header(&q, PROTO_Q_PATH)) != NULL)
		r->path = xstrdup(v);
	if ((v = evhttp_find_header(&q, PROTO_Q_FROM)) != NULL &&
	    strlen(v) == HASH_HEX_LEN && hash_hex_valid(v))
		memcpy(r->from, v, HASH_HEX_SIZE);
	if ((v = evhttp_find_header(&q, PROTO_Q_MAX_AGE)) != NULL) {
		x = strtoll(v, &end, 10);
		if (*end == '\0' && x > 0)
			r->max_age = x;
	}
	if ((v = evhttp_find_header(&q, PROTO_Q_WAIT)) != NULL) {
		x = strtoll(v, &end, 10);
		if (strcmp(v, PROTO_WAIT_COMMITTED) == 0)
			r->wait = PROTO_WAIT_ALL;
		else if (*v >= '0' && *v <= '9' && *end == '\0' && x >= 0 &&
		    x < PROTO_WAIT_ALL)
			r->wait = x;
	}
	if ((v = evhttp_find_header(&q, PROTO_Q_MAX_LAG)) != NULL) {
		x = strtoll(v, &end, 10);
		if (*end == '\0' && x > 0)
			r->max_lag = x;
	}
	evhttp_clear_headers(&q);
}

int
proto_parse(const struct evhttp_uri *u, struct proto_req *r, char *why,
    size_t whylen)
{
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;
	const char *qs = u != NULL ? evhttp_uri_get_query(u) : NULL;
	size_t n;

	memset(r, 0, sizeof *r);
	r->wait = -1;
	if (path == NULL || *path != '/') {
		snprintf(why, whylen, "bad request URI");
		return PROTO_BAD;
	}
	if (qs != NULL)
		parse_query(qs, r);
	if (strcmp(path, ROUTE_HEALTH) == 0)
		r->route = PROTO_R_HEALTH;
	else if (strcmp(path, ROUTE_METRICS) == 0)
		r->route = PROTO_R_METRICS;
	else if (strncmp(path, "/v1/", 4) != 0) {
		r->route = PROTO_R_PAGE;
		r->page = path;
	} else if (strcmp(path, ROUTE_EVENTS) == 0)
		r->route = PROTO_R_EVENTS;
	else if (strcmp(path, ROUTE_STATUS) == 0)
		r->route = PROTO_R_STATUS;
	else if (strcmp(path, ROUTE_NOW) == 0)
		r->route = PROTO_R_NOW;
	else if (strcmp(path, ROUTE_PROMOTE) == 0)
		r->route = PROTO_R_PROMOTE;
	else if (strcmp(path, ROUTE_VERIFY) == 0)
		r->route = PROTO_R_VERIFY;
	else if (strncmp(path, ROUTE_RUNS, n = strlen(ROUTE_RUNS)) == 0) {
		path += n;
		if (component(&path, r->run, sizeof r->run) == 0 &&
		    *path == '\0')
			r->route = PROTO_R_RUN;
	} else if (strncmp(path, ROUTE_SOURCES, strlen(ROUTE_SOURCES)) == 0) {
		if (parse_version_route(path + strlen(ROUTE_SOURCES), r) == 0)
			r->route = PROTO_R_VERSION;
	}
	if (r->route == PROTO_R_NONE) {
		snprintf(why, whylen, "no route %s", path);
		return PROTO_UNKNOWN;
	}
	return 0;
}

void
proto_req_clear(struct proto_req *r)
{
	free(r->path);
	r->path = NULL;
}

/* Digits only, no sign or space, at most 18 of them: 0 and the value at
 * *out, the rest at *end. */
static int
digits(const char *p, int64_t *out, const char **end)
{
	int64_t v = 0;
	int n = 0;

	while (*p >= '0' && *p <= '9' && n < 18) {
		v = v * 10 + (*p++ - '0');
		n++;
	}
	if (n == 0 || (*p >= '0' && *p <= '9'))
		return -1;
	*out = v;
	*end = p;
	return 0;
}

int64_t
proto_range_parse(const char *value)
{
	const char *p;
	int64_t n;

	if (value == NULL || strncmp(value, "bytes=", 6) != 0 ||
	    digits(value + 6, &n, &p) != 0 || strcmp(p, "-") != 0)
		return -1;
	return n;
}

int
proto_content_range_check(const char *value, int64_t from, int64_t size)
{
	const char *p;
	int64_t a, b, n;

	if (value == NULL || strncmp(value, "bytes ", 6) != 0 ||
	    digits(value + 6, &a, &p) != 0 || *p++ != '-' ||
	    digits(p, &b, &p) != 0 || *p++ != '/' || digits(p, &n, &p) != 0 ||
	    *p != '\0')
		return -1;
	return a == from && b == size - 1 && n == size ? 0 : -1;
}
