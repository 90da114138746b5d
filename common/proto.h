/* The understudy protocol: the whole contract between the three roles, and
 * between a daemon and its command-line verbs.  Every route is built and
 * parsed here, by both sides; every header, query key, content type, event
 * member and status code a peer could notice is named here.  Bump
 * PROTO_VERSION on any change a peer could notice; never reuse a retired
 * event name, member, route or meaning.  docs/protocol.md describes each. */
#ifndef UNDERSTUDY_PROTO_H
#define UNDERSTUDY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1

/* Every request and reply carries the version in this header, and every
 * JSON body in its "proto" member. */
#define PROTO_HEADER "X-Understudy-Protocol"
/* "Authorization: Bearer <secret of the link>" on every request. */
#define PROTO_AUTH_HEADER "Authorization"
#define PROTO_AUTH_SCHEME "Bearer "

/* zstd on the wire (common/wirez.h): a GET of a file or a delta, or a
 * POST of a delta, may carry "Accept-Encoding: zstd"; the reply's body is
 * then compressed, saying "Content-Encoding: zstd" (chunked, no
 * Content-Length).  Negotiated, so not a change of PROTO_VERSION: a peer
 * that does not know it neither asks nor answers compressed. */
#define PROTO_ACCEPT_ENCODING "Accept-Encoding"
#define PROTO_CONTENT_ENCODING "Content-Encoding"
#define PROTO_ENCODING_ZSTD "zstd"

/* Content types. */
#define PROTO_CT_JSON "application/json"
#define PROTO_CT_MANIFEST "text/plain; charset=utf-8"
#define PROTO_CT_BYTES "application/octet-stream" /* files, deltas */
#define PROTO_CT_SIGNATURE "application/x-librsync-signature"
#define PROTO_CT_TEXT "text/plain; charset=utf-8" /* /health */
#define PROTO_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define PROTO_CT_ATOM "application/atom+xml; charset=utf-8"
#define PROTO_CT_HTML "text/html; charset=utf-8"

/* Status codes, and what each means on this protocol:
 *   200  done; an event: durably queued (or acknowledged, nothing to do)
 *   204  GET delta: no delta kept for that base; post a signature instead
 *   400  malformed, or another protocol version
 *   401  no or wrong secret; nothing changed
 *   403  the takeover form's secret was wrong
 *   404  no such route, source or file
 *   405  the route takes another method
 *   409  an event: refused for good, do not retry (a promoted importer);
 *        now, promote: refused at this time, the reason says
 *   410  the version is not, or no longer, served here: retrying is
 *        pointless
 *   413  too large
 *   500  the daemon failed (a hook, a disk)
 *   503  shutting down, or the event could not be written; /health: not
 *        fresh */
#define PROTO_OK 200
#define PROTO_NO_STORED 204
/* GET file with "Range: bytes=N-": the file from byte N, with
 * "Content-Range: bytes N-LAST/SIZE" (resuming a file cut short) */
#define PROTO_PARTIAL 206
#define PROTO_BAD 400
#define PROTO_UNAUTHORIZED 401
#define PROTO_FORBIDDEN 403
#define PROTO_UNKNOWN 404
#define PROTO_METHOD 405
#define PROTO_REFUSED 409
#define PROTO_GONE 410
#define PROTO_TOO_LARGE 413
#define PROTO_FAILED 500
#define PROTO_UNAVAILABLE 503

/* Events, POSTed to ROUTE_EVENTS.  Members every event has: */
#define EVF_PROTO "proto"
#define EVF_TYPE "type"
#define EVF_SOURCE "source"
#define EVF_VERSION "version"
/* and those of each type: peer is the receiver's URL as the sender knows
 * it, what its report is "from"; from, in a report, is the peer it was
 * told. */
#define EVF_PEER "peer"
#define EVF_FROM "from"
#define EVF_OK "ok"
#define EVF_ERROR "error"
/* backup.archived: the archive's newest version (after this one's pull) */
#define EVF_NEWEST "newest"
#define EVF_FILES "files"
#define EVF_BYTES "bytes"
#define EVF_STARTED "started"
#define EVF_IMPORTERS_OK "importers_ok"
#define EVF_IMPORTERS_TOTAL "importers_total"
/* import.ready: true when the version is still being pulled (pipelined):
 * the importer fetches what is staged as it comes, PROTO_PROGRESS. */
#define EVF_STAGED "staged"

/* The types, from -> to: members. */
/* exporter -> pull-backup: peer files bytes started */
#define EV_BACKUP_READY "backup.ready"
/* pull-backup -> exporter: from ok [error] */
#define EV_BACKUP_ARCHIVED "backup.archived"
/* pull-backup -> importer: peer [staged] */
#define EV_IMPORT_READY "import.ready"
/* importer -> pull-backup: from ok [error] */
#define EV_IMPORT_DONE "import.done"
/* pull-backup -> exporter: from ok importers_ok importers_total [error] */
#define EV_BACKUP_IMPORTED "backup.imported"
/* importer -> pull-backup, when a source is promoted there (and at every
 * start while it is): generation promoted (generation.h), for the
 * pull-backup to refuse older generations from then on */
#define EV_SOURCE_PROMOTED "source.promoted"

/* The answer to an event, and every error: JSON objects with "proto". */
#define REPLY_QUEUED "queued" /* bool */
#define REPLY_NOTE "note"     /* why nothing was queued */
#define REPLY_ERROR "error"   /* one line: what and where */

/* Routes. */
#define ROUTE_EVENTS "/v1/events"     /* POST an event */
#define ROUTE_STATUS "/v1/status"     /* GET */
#define ROUTE_NOW "/v1/now"           /* exporter: POST, a cycle */
#define ROUTE_RUNS "/v1/runs/"        /* exporter: GET .../<id> */
#define ROUTE_PROMOTE "/v1/promote"   /* importer: POST */
#define ROUTE_VERIFY "/v1/verify"     /* importer: POST, {source} */
#define ROUTE_SOURCES "/v1/sources/"  /* a served version, below */
#define ROUTE_HEALTH "/health"        /* GET, public */
#define ROUTE_METRICS "/metrics"      /* GET, the secret only */
#define ROUTE_FEED "/feed"            /* a page: GET */
#define ROUTE_PAGE "/"                /* a page: GET */
#define ROUTE_PAGE_PROMOTE "/promote" /* importer's form: POST */

/* A served version: /v1/sources/<source>/versions/<version>/<what>. */
enum proto_what {
	/* GET: the manifest, PROTO_CT_MANIFEST */
	PROTO_MANIFEST,
	/* GET ?path=P: the file's bytes */
	PROTO_FILE,
	/* POST ?path=P with a signature: a delta to P; GET ?path=P&from=SHA:
	 * a kept delta from content SHA to P, or PROTO_NO_STORED */
	PROTO_DELTA,
	/* GET ?wait=N: how far a version still being pulled is staged, JSON
	 * (PROGRESS_*), once N of its manifest's entries are, or it is
	 * committed, or PROTO_PROGRESS_HOLD_SECS passed; ?wait=committed:
	 * once it is committed.  A version served whole answers at once. */
	PROTO_PROGRESS,
};
#define PROTO_Q_PATH "path"
#define PROTO_Q_WAIT "wait"
#define PROTO_WAIT_COMMITTED "committed"
#define PROTO_PROGRESS_HOLD_SECS 30
/* Members of a progress reply. */
#define PROGRESS_STAGED "staged"       /* entries staged, in manifest order */
#define PROGRESS_ENTRIES "entries"     /* of the manifest */
#define PROGRESS_COMMITTED "committed" /* bool: whole and archived */
#define PROTO_Q_FROM "from"
#define PROTO_Q_MAX_AGE "max_age" /* /health: seconds */
#define PROTO_Q_MAX_LAG "max_lag" /* /health: seconds */

/* Members of the control bodies. */
#define PROMOTE_SOURCE "source" /* POST /v1/promote */
/* POST /v1/promote: the secret of the importer's promote_token_file */
#define PROTO_PROMOTE_HEADER "X-Understudy-Promote-Secret"
#define PROMOTE_FORCE "force"
#define NOW_VERSION "version" /* the answer to POST /v1/now */
#define RUNS_RUN "run"        /* the answer to GET /v1/runs/<id> */

/* Limits on what a peer may send. */
#define PROTO_MAX_EVENT (64 * 1024)
#define PROTO_MAX_BODY (64u << 20) /* signatures */
#define PROTO_MAX_HEADERS (16 * 1024)
#define PROTO_MAX_FORM 4096 /* the standby's promotion form */
/* Timeouts mean "no progress": a connection fails when nothing moved on it
 * for PROTO_TIMEOUT_SECS (proto_timeout(): the tests may shorten it), and
 * a transfer when fewer than PROTO_MIN_PROGRESS bytes moved in that long:
 * a peer that trickles cannot hold a worker for ever, a slow but moving
 * link (down to about 4 kbit/s) gets there however long it takes. */
#define PROTO_TIMEOUT_SECS 120
#define PROTO_MIN_PROGRESS (64 * 1024)
int proto_timeout(void);
/* A delta is computed whole before its reply starts: the client gives the
 * server the timeout and its file's size at this rate for the first
 * byte (a 10 GiB file: about 21 minutes).  A server gone meanwhile is
 * found by TCP keepalive sooner. */
#define PROTO_DELTA_MIN_RATE (8 << 20)
int proto_delta_wait(int64_t size);
#define PROTO_EVENT_TIMEOUT_SECS 30 /* an event's delivery */
/* How far ahead of the local clock a version id may be: one further is
 * refused (a clock that jumped far, or a peer that lies).  Within it, a
 * version is taken, and ordered after the ones before it: a live host
 * whose clock is ahead, or went back after a version, does not stop the
 * chain (its versions' age is then measured from when they arrived). */
#define PROTO_MAX_AHEAD_SECS (24 * 3600)
/* Data more than this far in the future (by its version and by when it
 * arrived) is not fresh: a clock that went back. */
#define PROTO_MAX_SKEW_SECS 300

/* The one retry rule: the n-th retry (n >= 1) waits first × 2^(n-1)
 * seconds, at most max.  Events are delivered again from
 * PROTO_RETRY_EVENT_SECS on, at most every PROTO_RETRY_MAX_SECS, for ever;
 * a source's job (a pull, an import) from PROTO_RETRY_JOB_SECS on, at most
 * every PROTO_RETRY_JOB_MAX_SECS, for as long as its version is the
 * newest; after PROTO_JOB_ATTEMPTS failures it is reported as failed. */
#define PROTO_RETRY_EVENT_SECS 1
#define PROTO_RETRY_MAX_SECS 60
#define PROTO_RETRY_JOB_SECS 5
#define PROTO_RETRY_JOB_MAX_SECS 300
#define PROTO_JOB_ATTEMPTS 3
int proto_retry_delay(int retry, int first_secs, int max_secs);

/* Builders, for clients.  The results are the caller's to free. */
char *proto_version_route(const char *source, const char *version,
    enum proto_what, const char *path, const char *from);
char *proto_run_route(const char *version);
/* How many seconds version's id is ahead of the local clock (negative:
 * behind); more than PROTO_MAX_SKEW_SECS is the future. */
long proto_version_ahead(const char *version);
/* max_lag 0: none asked. */
char *proto_health_route(int64_t max_age, int64_t max_lag);

/* "bytes=N-" (a Range header's value): N, or -1 when it is not that
 * form; the only range the protocol asks for. */
int64_t proto_range_parse(const char *value);
/* "bytes N-LAST/SIZE" (a Content-Range header's value): 0 when it is
 * exactly that, from N to the end of a file of size bytes. */
int proto_content_range_check(const char *value, int64_t from, int64_t size);

/* What a request asks for, parsed once from its URI by the server. */
enum proto_route {
	PROTO_R_NONE, /* no route of ours */
	PROTO_R_HEALTH,
	PROTO_R_METRICS,
	PROTO_R_EVENTS,
	PROTO_R_STATUS,
	PROTO_R_NOW,
	PROTO_R_RUN, /* run holds the id */
	PROTO_R_PROMOTE,
	PROTO_R_VERIFY,
	PROTO_R_VERSION, /* source, version, what, path, from */
	PROTO_R_PAGE,    /* anything not under /v1/: page holds it */
};

#define PROTO_NAME_MAX 128

struct proto_req {
	enum proto_route route;
	const char *page;            /* PROTO_R_PAGE: the path */
	char run[PROTO_NAME_MAX];    /* PROTO_R_RUN */
	char source[PROTO_NAME_MAX]; /* PROTO_R_VERSION */
	char version[PROTO_NAME_MAX];
	enum proto_what what;
	char *path;      /* PROTO_Q_PATH, decoded, or NULL */
	char from[65];   /* PROTO_Q_FROM, or "" */
	int64_t max_age; /* PROTO_Q_MAX_AGE, or 0 */
	int64_t max_lag; /* PROTO_Q_MAX_LAG, or 0 */
	/* PROTO_Q_WAIT: entries, PROTO_WAIT_ALL for "committed", or -1 */
	int64_t wait;
};
#define PROTO_WAIT_ALL INT64_MAX

struct evhttp_uri;

/* Parse a request's URI.  0, or an HTTP status (PROTO_BAD,
 * PROTO_UNKNOWN) with a reason; clear with proto_req_clear(). */
int proto_parse(const struct evhttp_uri *, struct proto_req *, char *why,
    size_t whylen);
void proto_req_clear(struct proto_req *);

#endif
