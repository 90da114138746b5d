/* HTTP through libevent's evhttp: the server side's checks and replies
 * (protocol version, the link's secret, JSON errors), and one client used
 * three ways: asynchronously on the daemon's loop (events), synchronously
 * on a worker's private loop (sync runs), and by the command-line verbs. */
#ifndef UNDERSTUDY_HTTP_H
#define UNDERSTUDY_HTTP_H

#include <stddef.h>

struct bufferevent;
struct config;
struct evbuffer;
struct evdns_base;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;
struct json;

/* Server side. */
/* The address and port of the peer of a request, for a log line (a
 * buffer of the thread's). */
const char *http_peer(struct evhttp_request *);
/* Listening where cf says, every connection's bufferevent made by
 * bevcb(base, arg) (the gate's). */
struct evhttp *http_server_new(struct event_base *, const struct config *,
    struct bufferevent *(*bevcb)(struct event_base *, void *), void *arg,
    char *err, size_t errlen);
/* 0 when the request carries our protocol version and the right secret;
 * otherwise the reply (400 or 401) is sent and -1 returned. */
int http_check(struct evhttp_request *, const struct config *, int allow_read);
/* What an Authorization header's value (len bytes) holds. */
enum http_secret {
	HTTP_SECRET_NONE,  /* no header */
	HTTP_SECRET_WRONG, /* another scheme, or a wrong secret */
	HTTP_SECRET_FULL,  /* the secret of token_file */
	HTTP_SECRET_READ,  /* the read-only one of read_token_file */
};
enum http_secret http_secret_of(const char *auth, size_t len,
    const struct config *);
/* What the read-only credential may do, for a refusal. */
#define HTTP_READ_ONLY_MAY \
	"the read-only credential (read_token_file) may read /metrics, " \
	"/v1/status and the pages, nothing else"
/* Only the secret (for /metrics, which scrapers fetch without our
 * protocol header). */
/* allow_read: the read-only credential (read_token_file) will do too. */
int http_check_secret(struct evhttp_request *, const struct config *,
    int allow_read);
/* The HTML pages and /feed, as the config's pages key says. */
/* Whether a page may show its details (host name, peers, files, hook
 * output): with pages: secret, or a credential given.  And the 401 that
 * asks a browser for one. */
int http_page_full(struct evhttp_request *, const struct config *);
void http_page_login(struct evhttp_request *);
int http_check_page(struct evhttp_request *, const struct config *);
void http_reply(struct evhttp_request *, int code, const char *ctype,
    struct evbuffer *body);
/* A JSON answer: http_json_begin() opens its object with "proto";
 * http_reply_json() closes it and sends it. */
void http_json_begin(struct json *);
void http_reply_json(struct evhttp_request *, int code, struct json *);
void http_reply_error(struct evhttp_request *, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A request answered later, once a worker's job is done: its client may
 * leave meanwhile, and libevent then frees the request.  http_unhold()
 * gives it back to be answered, or NULL when the client left; either way
 * it is no longer held. */
struct http_held {
	struct evhttp_request *req;
	struct evhttp_connection *conn;
};
void http_hold(struct http_held *, struct evhttp_request *);
struct evhttp_request *http_unhold(struct http_held *);
/* The request body, NUL-terminated, if at most max bytes. */
char *http_body(struct evhttp_request *, size_t max, size_t *len);
const char *http_reason(int code);

/* Timeouts that mean "no progress" on a connection (both sides): libevent
 * keeps a connection's read timeout armed while it writes (to see the
 * peer close), so a reply or a body that took longer than the timeout to
 * send was cut however well it moved.  Watched, the connection's
 * timeouts start again whenever bytes leave, and the bytes that move are
 * counted. */
struct http_watch {
	struct bufferevent *bev;
	struct evbuffer_cb_entry *in, *out;
	int timeout;          /* seconds */
	long long moved;      /* bytes read and written */
	long long rearmed_at; /* monotonic seconds */
};
void http_watch_start(struct http_watch *, struct bufferevent *, int timeout);
void http_watch_stop(struct http_watch *);
/* Socket options of every connection: no Nagle, TCP keepalive and a user
 * timeout, so that a half-open connection is found. */
void http_sock_tune(int fd);

/* Client side. */
struct http_call;
typedef int (*http_data_cb)(void *arg, struct evbuffer *chunk);
typedef void (*http_done_cb)(struct http_call *, void *arg);

struct http_call {
	const char *method; /* "GET" or "POST" */
	const char *url;    /* http://host:port */
	const char *path;   /* /v1/..., already escaped */
	const char *token;
	size_t token_len;
	struct evbuffer *body; /* POST body, consumed; may be NULL */
	const char *content_type;
	const char *header, *header_value; /* one more header, or NULL */
	int accept_zstd; /* ask for the body compressed (wirez.h) */
	int timeout;     /* idle seconds */
	/* A transfer (http_client_call): the call fails when fewer than
	 * PROTO_MIN_PROGRESS bytes moved in any timeout seconds, so a peer
	 * that trickles cannot hold the caller, and one that moves is given
	 * all the time it needs. */
	int progress;
	/* When more than timeout: the seconds the reply's head may take
	 * (a server computing before it answers). */
	int head_timeout;
	http_data_cb on_data; /* stream a 200 reply's body here */
	void *data_arg;
	size_t max_reply; /* when the body is collected */
	/* Result. */
	int status; /* HTTP status, 0 if none came */
	/* the status of a reply whose body is coming (on_data may look) */
	int reply_status;
	struct evbuffer *reply; /* collected body (non-200 always) */
	char error[512];        /* transport error, or the peer's */
	int sink_failed;
	/* Checked while the call runs; when it says so, the call is
	 * cancelled (a daemon shutting down). */
	int (*cancel)(void);
	/* Internal. */
	struct evhttp_request *req;
	struct http_watch *watch; /* its connection's, to set at the head */
	int got_head;
	int done;
	http_done_cb done_cb;
	void *done_arg;
	struct evhttp_connection *conn;
	int own_conn;
	struct evhttp_connection *via; /* the call's connection */
};

struct http_client;

void http_call_init(struct http_call *, const char *method, const char *url,
    const char *path, const char *token, size_t token_len);
void http_call_clear(struct http_call *);
/* On the loop of base; a peer's host name is resolved with dns (an
 * evdns_base on that loop), never blocking it. */
void http_call_async(struct event_base *, struct evdns_base *dns,
    struct http_call *, http_done_cb, void *arg);

/* A blocking client with its own event loop, reusing one connection. */
struct http_client *http_client_new(const char *url);
void http_client_free(struct http_client *);
/* Limit the client's connection to bytes_per_sec each way (a token bucket
 * refilled every HTTP_RATE_TICK_MS), or lift the limit with 0. */
#define HTTP_RATE_TICK_MS 100
void http_client_set_rate(struct http_client *, int64_t bytes_per_sec);
/* Returns 0 when an HTTP reply came (look at call->status), -1 when none
 * did (call->error says why). */
int http_client_call(struct http_client *, struct http_call *);
/* "the peer said: ..." from a JSON error reply, or a generic text. */
void http_call_describe(const struct http_call *, char *buf, size_t len);

#endif
