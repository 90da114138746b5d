#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <openssl/evp.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "doc.h"
#include "hash.h"
#include "http.h"
#include "json.h"
#include "tls.h"
#include "log.h"
#include "proto.h"
#include "timespec.h"
#include "xmalloc.h"

const char *
http_reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 206:
		return "Partial Content";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 413:
		return "Payload Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	}
	return "Status";
}

void
http_reply(struct evhttp_request *req, int code, const char *ctype,
    struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char v[16];

	snprintf(v, sizeof v, "%d", PROTO_VERSION);
	evhttp_add_header(h, PROTO_HEADER, v);
	if (ctype != NULL)
		evhttp_add_header(h, "Content-Type", ctype);
	evhttp_send_reply(req, code, http_reason(code), body);
}

void
http_json_begin(struct json *j)
{
	json_init(j, evbuffer_new());
	json_obj_open(j, NULL);
	json_i64(j, EVF_PROTO, PROTO_VERSION);
}

void
http_reply_json(struct evhttp_request *req, int code, struct json *j)
{
	json_obj_close(j);
	evbuffer_add(j->buf, "\n", 1);
	http_reply(req, code, PROTO_CT_JSON, j->buf);
	evbuffer_free(j->buf);
	j->buf = NULL;
}

void
http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	struct json j;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	http_json_begin(&j);
	json_str(&j, REPLY_ERROR, msg);
	http_reply_json(req, code, &j);
}

const char *
http_peer(struct evhttp_request *req)
{
	static __thread char buf[INET6_ADDRSTRLEN + 16];
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c == NULL)
		return "a peer";
	evhttp_connection_get_peer(c, &addr, &port);
	snprintf(buf, sizeof buf, "%s:%u", addr != NULL ? addr : "?",
	    (unsigned int)port);
	return buf;
}

/* The read-only credential on a request that needs the secret: 403. */
static void
refuse_read_only(struct evhttp_request *req)
{
	const char *m = evhttp_request_get_command(req) == EVHTTP_REQ_POST ?
	    "POST" :
	    "GET";

	log_warnx("refused %s %s from %s: the read-only credential may not", m,
	    evhttp_request_get_uri(req), http_peer(req));
	http_reply_error(req, PROTO_FORBIDDEN, "%s refused %s %s: %s",
	    log_role(), m,
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)),
	    HTTP_READ_ONLY_MAY);
}

enum http_secret
http_secret_of(const char *auth, size_t len, const struct config *cf)
{
	size_t n = strlen(PROTO_AUTH_SCHEME);

	if (auth == NULL)
		return HTTP_SECRET_NONE;
	/* The scheme's name is case-insensitive (RFC 9110). */
	if (len < n || strncasecmp(auth, PROTO_AUTH_SCHEME, n) != 0)
		return HTTP_SECRET_WRONG;
	if (hash_secret_equal(auth + n, len - n, cf->token, cf->token_len))
		return HTTP_SECRET_FULL;
	if (cf->read_token != NULL &&
	    hash_secret_equal(auth + n, len - n, cf->read_token,
		cf->read_token_len))
		return HTTP_SECRET_READ;
	return HTTP_SECRET_WRONG;
}

int
http_check_secret(struct evhttp_request *req, const struct config *cf,
    int allow_read)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(h, PROTO_AUTH_HEADER);
	enum http_secret s = http_secret_of(auth,
	    auth != NULL ? strlen(auth) : 0, cf);

	if (s == HTTP_SECRET_READ) {
		if (allow_read)
			return 0;
		refuse_read_only(req);
		return -1;
	}
	if (s != HTTP_SECRET_FULL) {
		log_warnx("refused %s from %s: %s", evhttp_request_get_uri(req),
		    http_peer(req),
		    auth == NULL ? "no secret" : "wrong secret");
		http_reply_error(req, PROTO_UNAUTHORIZED,
		    "%s refused the request: %s; both ends of a link must hold "
		    "the same secret in token_file",
		    log_role(),
		    auth == NULL ? "no secret given" : "wrong secret");
		return -1;
	}
	return 0;
}

/* The credential of a page request (HTTP Basic, any user name, the
 * password a secret): 1 the secret of token_file, 2 the read-only one, 0
 * none or a wrong one. */
static int
basic_credential(struct evhttp_request *req, const struct config *cf)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(h, "Authorization");
	unsigned char dec[768];
	const char *colon;
	size_t len;
	int n;

	if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0 &&
	    (len = strlen(auth + 6)) > 0 && len % 4 == 0 &&
	    len / 4 * 3 < sizeof dec &&
	    (n = EVP_DecodeBlock(dec, (const unsigned char *)auth + 6,
		 (int)len)) > 0) {
		/* EVP_DecodeBlock counts the padding as zero bytes. */
		n -= (auth[5 + len] == '=') + (auth[4 + len] == '=');
		dec[n] = '\0';
		if ((colon = memchr(dec, ':', (size_t)n)) != NULL &&
		    hash_secret_equal(colon + 1,
			(size_t)n - (size_t)(colon + 1 - (const char *)dec),
			cf->token, cf->token_len))
			return 1;
		if (colon != NULL && cf->read_token != NULL &&
		    hash_secret_equal(colon + 1,
			(size_t)n - (size_t)(colon + 1 - (const char *)dec),
			cf->read_token, cf->read_token_len))
			return 2;
	}
	return 0;
}

int
http_page_full(struct evhttp_request *req, const struct config *cf)
{
	return cf->pages == PAGES_SECRET || basic_credential(req, cf) != 0;
}

void
http_page_login(struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "WWW-Authenticate",
	    "Basic realm=\"understudy\", charset=\"UTF-8\"");
	http_reply_error(req, PROTO_UNAUTHORIZED,
	    "this page needs the secret of token_file, or the read-only "
	    "credential, as the password (any user name)");
}

/* The pages: public (the details with a credential), behind HTTP Basic
 * authentication with a secret as the password (what a browser or a feed
 * reader can send), or off. */
int
http_check_page(struct evhttp_request *req, const struct config *cf)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(h, "Authorization");
	int cred;

	if (cf->pages == PAGES_PUBLIC)
		return 0;
	if (cf->pages == PAGES_OFF) {
		http_reply_error(req, 404,
		    "the pages of this %s are off (pages: off in %s)",
		    log_role(), cf->path);
		return -1;
	}
	if ((cred = basic_credential(req, cf)) == 1)
		return 0;
	/* The read-only credential reads the pages, and does not promote. */
	if (cred == 2) {
		if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
			return 0;
		refuse_read_only(req);
		return -1;
	}
	if (auth != NULL)
		log_warnx("refused %s: wrong password for the pages",
		    evhttp_request_get_uri(req));
	http_page_login(req);
	return -1;
}

int
http_check(struct evhttp_request *req, const struct config *cf, int allow_read)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *v = evhttp_find_header(h, PROTO_HEADER);

	if (http_check_secret(req, cf, allow_read) != 0)
		return -1;
	if (v == NULL || strtol(v, NULL, 10) != PROTO_VERSION ||
	    strspn(v, "0123456789") != strlen(v)) {
		http_reply_error(req, PROTO_BAD,
		    "protocol version %s is not supported: this %s speaks "
		    "version %d; upgrade both ends to the same understudy "
		    "release",
		    v ? v : "(none)", log_role(), PROTO_VERSION);
		return -1;
	}
	return 0;
}

static void
held_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct http_held *h = arg;

	(void)conn;
	h->req = NULL;
}

void
http_hold(struct http_held *h, struct evhttp_request *req)
{
	h->req = req;
	h->conn = evhttp_request_get_connection(req);
	evhttp_connection_set_closecb(h->conn, held_close_cb, h);
}

struct evhttp_request *
http_unhold(struct http_held *h)
{
	struct evhttp_request *req = h->req;

	if (req != NULL)
		evhttp_connection_set_closecb(h->conn, NULL, NULL);
	h->req = NULL;
	return req;
}

char *
http_body(struct evhttp_request *req, size_t max, size_t *len)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(b);
	char *s;

	if (n > max)
		return NULL;
	s = xmalloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	*len = n;
	return s;
}

/* Requests and replies are small and go one at a time on a connection:
 * without TCP_NODELAY, Nagle's algorithm and the peer's delayed ACK cost
 * 40 ms a round trip, which was most of the time a sync of many small
 * files took.  A peer that vanished (a host powered off, a link cut for
 * good) leaves a connection half open: keepalive probes find it when it is
 * idle, the user timeout when data sent is not acknowledged. */
void
http_sock_tune(int fd)
{
	int one = 1, idle = 30, intvl = 10, cnt = 4;
	/* Not shortened by the tests' timeout: a few retransmissions on a
	 * lossy link must not end a connection. */
	unsigned int user = PROTO_TIMEOUT_SECS * 1000u;

	if (fd < 0)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user);
}

static long long
mono_now(void)
{
	return (long long)(time_mono_ms() / 1000);
}

static void
watch_in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_watch *w = arg;

	(void)b;
	w->moved += (long long)info->n_added;
}

static void
watch_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct http_watch *w = arg;
	struct timeval tv = { w->timeout, 0 };
	long long now;

	(void)b;
	if (info->n_deleted == 0)
		return;
	w->moved += (long long)info->n_deleted;
	/* At most once a second: each costs a timer's removal and
	 * insertion. */
	if ((now = mono_now()) == w->rearmed_at)
		return;
	w->rearmed_at = now;
	bufferevent_set_timeouts(w->bev, &tv, &tv);
}

void
http_watch_start(struct http_watch *w, struct bufferevent *bev, int timeout)
{
	memset(w, 0, sizeof *w);
	w->bev = bev;
	w->timeout = timeout;
	w->in = evbuffer_add_cb(bufferevent_get_input(bev), watch_in_cb, w);
	w->out = evbuffer_add_cb(bufferevent_get_output(bev), watch_out_cb, w);
}

void
http_watch_stop(struct http_watch *w)
{
	if (w->bev == NULL)
		return;
	evbuffer_remove_cb_entry(bufferevent_get_input(w->bev), w->in);
	evbuffer_remove_cb_entry(bufferevent_get_output(w->bev), w->out);
	w->bev = NULL;
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): the listening socket stays
 * readable, and libevent would try again at once, for ever, logging each
 * time.  Stop accepting for a second instead, and say so at most once a
 * minute: the connections already open go on being served. */
static void
accept_error(struct evconnlistener *lev, void *arg)
{
	static time_t last;
	static long paused;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();
	time_t now = time(NULL);

	(void)arg;
	paused++;
	if (now - last >= 60) {
		log_warnx("accepting connections: %s; not accepting for 1 s "
			  "(%ld times since the last message; too many open "
			  "connections or files? see LimitNOFILE)",
		    evutil_socket_error_to_string(e), paused);
		last = now;
		paused = 0;
	}
	evconnlistener_disable(lev);
	if (event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT,
		accept_resume, lev, &tv) != 0)
		evconnlistener_enable(lev);
}

struct evhttp *
http_server_new(struct event_base *base, const struct config *cf,
    struct bufferevent *(*bevcb)(struct event_base *, void *), void *arg,
    char *err, size_t errlen)
{
	struct evhttp *http = evhttp_new(base);
	struct evhttp_bound_socket *bound;

	evhttp_set_max_body_size(http, PROTO_MAX_BODY);
	evhttp_set_max_headers_size(http, PROTO_MAX_HEADERS);
	evhttp_set_timeout(http, proto_timeout());
	evhttp_set_allowed_methods(http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	/* With tls: every connection is TLS, none plain (bevcb makes
	 * them). */
	if (cf->tls != NULL && !tls_on()) {
		snprintf(err, errlen, "tls: not set up");
		evhttp_free(http);
		return NULL;
	}
	evhttp_set_bevcb(http, bevcb, arg);
	if ((bound = evhttp_bind_socket_with_handle(http, cf->listen_host,
		 (ev_uint16_t)cf->listen_port)) == NULL) {
		snprintf(err, errlen,
		    "cannot listen on %s:%d: %s (is another daemon using it? "
		    "see \"listen\" in %s)",
		    cf->listen_host, cf->listen_port, strerror(errno),
		    cf->path);
		evhttp_free(http);
		return NULL;
	}
	/* Accepted sockets inherit it (Linux). */
	http_sock_tune(evhttp_bound_socket_get_fd(bound));
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound),
	    accept_error);
	return http;
}

void
http_call_init(struct http_call *c, const char *method, const char *url,
    const char *path, const char *token, size_t token_len)
{
	memset(c, 0, sizeof *c);
	c->method = method;
	c->url = url;
	c->path = path;
	c->token = token;
	c->token_len = token_len;
	c->timeout = proto_timeout();
	c->max_reply = 1 << 20;
	c->reply = evbuffer_new();
}

void
http_call_clear(struct http_call *c)
{
	if (c->reply != NULL)
		evbuffer_free(c->reply);
	if (c->body != NULL)
		evbuffer_free(c->body);
	c->reply = NULL;
	c->body = NULL;
}

static void
call_chunk_cb(struct evhttp_request *req, void *arg)
{
	struct http_call *c = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	int code = evhttp_request_get_response_code(req);

	/* Known from the first chunk on: a reader may look. */
	c->reply_status = code;
	if ((code == 200 || code == 206) && c->on_data != NULL) {
		if (!c->sink_failed && c->on_data(c->data_arg, in) != 0)
			c->sink_failed = 1;
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (evbuffer_get_length(c->reply) + evbuffer_get_length(in) >
	    c->max_reply) {
		c->sink_failed = 1;
		snprintf(c->error, sizeof c->error,
		    "reply larger than %zu bytes", c->max_reply);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	evbuffer_add_buffer(c->reply, in);
}

static const char *
call_err_text(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "connection refused or closed";
	case EVREQ_HTTP_INVALID_HEADER:
		return "invalid reply";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "connection error";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "reply too long";
	}
	return "failed";
}

/* c failed without a reply: what says why, unless TLS says more. */
static void
call_no_reply(struct http_call *c, const char *what)
{
	char why[400], fp[TLS_FP_SIZE];
	time_t na;

	/* Cut in the middle of a reply: no handshake or certificate to
	 * blame. */
	if (c->reply_status > 0)
		snprintf(c->error, sizeof c->error,
		    "%s %s%s: the connection was lost in the middle of the "
		    "reply (%s)",
		    c->method, c->url, c->path, what);
	/* A certificate refused or a handshake that failed says so. */
	else if (url_is_tls(c->url) && c->via != NULL &&
	    tls_describe(evhttp_connection_get_bufferevent(c->via), why,
		sizeof why))
		snprintf(c->error, sizeof c->error, "%s %s%s: %s", c->method,
		    c->url, c->path, why);
	else if (url_is_tls(c->url) && tls_own(fp, &na) == 0)
		/* TLS 1.3: a peer refuses this host's certificate after the
		 * handshake, and may close before its alert is read. */
		snprintf(c->error, sizeof c->error,
		    "%s %s%s: %s (if its log says it refused a TLS "
		    "certificate, it is this host's, %s: pin it there)",
		    c->method, c->url, c->path, what, fp);
	else
		snprintf(c->error, sizeof c->error, "%s %s%s: %s", c->method,
		    c->url, c->path, what);
}

static void
call_error_cb(enum evhttp_request_error e, void *arg)
{
	call_no_reply(arg, call_err_text(e));
}

/* A connection to url: TLS for https. */
static struct evhttp_connection *
conn_new(struct event_base *base, struct evdns_base *dns, const char *url,
    const char *host, int port, char *err, size_t errlen)
{
	struct bufferevent *bev;

	if (!url_is_tls(url))
		return evhttp_connection_base_new(base, dns, host,
		    (ev_uint16_t)port);
	if ((bev = tls_client_bev(base, host)) == NULL) {
		snprintf(err, errlen,
		    "%s is https, and this host has no TLS set up (tls: in "
		    "the configuration)",
		    url);
		return NULL;
	}
	return evhttp_connection_base_bufferevent_new(base, dns, bev, host,
	    (ev_uint16_t)port);
}

/* A connection of an asynchronous call, freed on the loop once its
 * request is done.  libevent's own free_on_completion leaves a connection
 * that never connected (a peer down) allocated: one a retry. */
static void
conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

static void
call_done_cb(struct evhttp_request *req, void *arg)
{
	struct http_call *c = arg;
	struct evhttp_connection *conn = c->own_conn ? c->conn : NULL;

	if (req != NULL && evhttp_request_get_response_code(req) > 0) {
		c->status = evhttp_request_get_response_code(req);
		/* Whatever was not streamed in chunks is still here. */
		call_chunk_cb(req, c);
		if (c->sink_failed && c->error[0] == '\0')
			snprintf(c->error, sizeof c->error,
			    "writing the reply of %s%s failed", c->url,
			    c->path);
	} else if (c->error[0] == '\0')
		call_no_reply(c, "no reply (connection refused or closed)");
	c->done = 1;
	c->req = NULL; /* libevent frees it after this callback */
	if (conn != NULL) {
		c->conn = NULL;
		c->own_conn = 0;
		event_base_once(evhttp_connection_get_base(conn), -1,
		    EV_TIMEOUT, conn_free_cb, conn, NULL);
	}
	if (c->done_cb != NULL)
		c->done_cb(c, c->done_arg);
}

/* The head came: from now on, the call's own timeout. */
static int
call_head_cb(struct evhttp_request *req, void *arg)
{
	struct http_call *c = arg;

	(void)req;
	c->got_head = 1;
	if (c->head_timeout > c->timeout && c->via != NULL) {
		evhttp_connection_set_timeout(c->via, c->timeout);
		if (c->watch != NULL)
			c->watch->timeout = c->timeout;
	}
	return 0;
}

static int
call_start(struct evhttp_connection *conn, struct http_call *c)
{
	struct evhttp_request *req;
	struct evkeyvalq *h;
	const char *host;
	char v[16], *auth;

	c->via = conn;
	req = evhttp_request_new(call_done_cb, c);
	evhttp_request_set_chunked_cb(req, call_chunk_cb);
	evhttp_request_set_header_cb(req, call_head_cb);
	evhttp_request_set_error_cb(req, call_error_cb);
	c->got_head = 0;
	h = evhttp_request_get_output_headers(req);
	/* The URL's authority: host:port, an IPv6 literal in brackets. */
	host = strstr(c->url, "://");
	evhttp_add_header(h, "Host", host != NULL ? host + 3 : c->url);
	snprintf(v, sizeof v, "%d", PROTO_VERSION);
	evhttp_add_header(h, PROTO_HEADER, v);
	auth = xasprintf("%s%.*s", PROTO_AUTH_SCHEME, (int)c->token_len,
	    c->token);
	evhttp_add_header(h, PROTO_AUTH_HEADER, auth);
	free(auth);
	if (c->content_type != NULL)
		evhttp_add_header(h, "Content-Type", c->content_type);
	if (c->header != NULL)
		evhttp_add_header(h, c->header, c->header_value);
	if (c->accept_zstd)
		evhttp_add_header(h, PROTO_ACCEPT_ENCODING,
		    PROTO_ENCODING_ZSTD);
	if (c->body != NULL)
		evbuffer_add_buffer(evhttp_request_get_output_buffer(req),
		    c->body);
	if (evhttp_make_request(conn, req,
		strcmp(c->method, "POST") == 0 ? EVHTTP_REQ_POST :
						 EVHTTP_REQ_GET,
		c->path) != 0) {
		snprintf(c->error, sizeof c->error,
		    "%s: cannot send the request", c->url);
		return -1;
	}
	/* The connection's socket exists once the request is under way; it
	 * may be a new one after a reconnect. */
	http_sock_tune(
	    bufferevent_getfd(evhttp_connection_get_bufferevent(conn)));
	c->req = req;
	return 0;
}

void
http_call_async(struct event_base *base, struct evdns_base *dns,
    struct http_call *c, http_done_cb done, void *arg)
{
	char *host = NULL;
	int port = 0;

	c->done_cb = done;
	c->done_arg = arg;
	if (url_split(c->url, &host, &port) != 0) {
		snprintf(c->error, sizeof c->error, "bad URL %s", c->url);
		c->done = 1;
		done(c, arg);
		return;
	}
	c->conn = conn_new(base, dns, c->url, host, port, c->error,
	    sizeof c->error);
	free(host);
	if (c->conn == NULL) {
		c->done = 1;
		done(c, arg);
		return;
	}
	evhttp_connection_set_timeout(c->conn, c->timeout);
	if (call_start(c->conn, c) != 0) {
		evhttp_connection_free(c->conn);
		c->conn = NULL;
		c->done = 1;
		done(c, arg);
		return;
	}
	c->own_conn = 1;
}

struct http_client {
	struct event_base *base;
	struct evhttp_connection *conn;
	struct http_watch watch; /* conn's */
	struct event *tick;
	char *url;
	char *host;
	int port;
	/* A TLS connection that closed is made anew: libevent would
	 * reconnect it with the TLS state of the last one. */
	int stale;
	struct ev_token_bucket_cfg *rate; /* or NULL */
};

static void
client_closed_cb(struct evhttp_connection *conn, void *arg)
{
	struct http_client *hc = arg;

	(void)conn;
	hc->stale = 1;
}

static int
client_connect(struct http_client *hc, char *err, size_t errlen)
{
	hc->conn = conn_new(hc->base, NULL, hc->url, hc->host, hc->port, err,
	    errlen);
	if (hc->conn == NULL)
		return -1;
	http_watch_start(&hc->watch,
	    evhttp_connection_get_bufferevent(hc->conn), proto_timeout());
	if (hc->rate != NULL)
		bufferevent_set_rate_limit(evhttp_connection_get_bufferevent(
					       hc->conn),
		    hc->rate);
	if (url_is_tls(hc->url))
		evhttp_connection_set_closecb(hc->conn, client_closed_cb, hc);
	hc->stale = 0;
	return 0;
}

/* Wakes the private loop now and then so a cancel is seen even while the
 * peer is silent. */
static void
client_tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

struct http_client *
http_client_new(const char *url)
{
	struct http_client *hc;
	char *host = NULL, err[512];
	int port = 0;

	if (url_split(url, &host, &port) != 0)
		return NULL;
	hc = xcalloc(1, sizeof *hc);
	hc->url = xstrdup(url);
	hc->host = host;
	hc->port = port;
	if ((hc->base = event_base_new()) == NULL)
		fatalx("http_client_new: cannot create an event base");
	if (client_connect(hc, err, sizeof err) != 0) {
		log_warnx("%s", err);
		event_base_free(hc->base);
		free(hc->url);
		free(hc->host);
		free(hc);
		return NULL;
	}
	{
		struct timeval tv = { 0, 250000 };
		hc->tick = event_new(hc->base, -1, EV_PERSIST, client_tick_cb,
		    NULL);
		event_add(hc->tick, &tv);
	}
	return hc;
}

void
http_client_free(struct http_client *hc)
{
	if (hc == NULL)
		return;
	http_watch_stop(&hc->watch);
	if (hc->conn != NULL)
		evhttp_connection_free(hc->conn);
	event_free(hc->tick);
	event_base_free(hc->base);
	if (hc->rate != NULL)
		ev_token_bucket_cfg_free(hc->rate);
	free(hc->url);
	free(hc->host);
	free(hc);
}

void
http_client_set_rate(struct http_client *hc, int64_t bytes_per_sec)
{
	struct timeval tick = { 0, HTTP_RATE_TICK_MS * 1000 };
	int64_t per_tick = bytes_per_sec * HTTP_RATE_TICK_MS / 1000;

	if (hc->conn != NULL)
		bufferevent_set_rate_limit(evhttp_connection_get_bufferevent(
					       hc->conn),
		    NULL);
	if (hc->rate != NULL)
		ev_token_bucket_cfg_free(hc->rate);
	hc->rate = NULL;
	if (bytes_per_sec <= 0)
		return;
	if (per_tick < 1)
		per_tick = 1;
	if (per_tick > EV_RATE_LIMIT_MAX)
		per_tick = EV_RATE_LIMIT_MAX;
	/* No burst beyond a tick's worth: the rate holds over any second. */
	hc->rate = ev_token_bucket_cfg_new((size_t)per_tick, (size_t)per_tick,
	    (size_t)per_tick, (size_t)per_tick, &tick);
	if (hc->conn != NULL)
		bufferevent_set_rate_limit(evhttp_connection_get_bufferevent(
					       hc->conn),
		    hc->rate);
}

/* End a call under way: the done callback will not run; libevent frees
 * the request and resets the connection (the next call reconnects). */
static void
call_abort(struct http_call *c, int status)
{
	evhttp_cancel_request(c->req);
	c->req = NULL;
	c->done = 1;
	c->status = status;
}

int
http_client_call(struct http_client *hc, struct http_call *c)
{
	long long now, window = 0, moved = 0;
	int wait = c->head_timeout > c->timeout ? c->head_timeout : c->timeout;
	int head_seen = 0;

	c->done = 0;
	c->status = 0;
	c->reply_status = 0;
	c->error[0] = '\0';
	if (hc == NULL) {
		snprintf(c->error, sizeof c->error, "%s: cannot connect",
		    c->url);
		return -1;
	}
	if (hc->stale || hc->conn == NULL) {
		http_watch_stop(&hc->watch);
		if (hc->conn != NULL)
			evhttp_connection_free(hc->conn);
		hc->conn = NULL;
		if (client_connect(hc, c->error, sizeof c->error) != 0)
			return -1;
	}
	evhttp_connection_set_timeout(hc->conn, wait);
	hc->watch.timeout = wait;
	c->watch = &hc->watch;
	if (call_start(hc->conn, c) != 0)
		return -1;
	window = mono_now();
	moved = hc->watch.moved;
	while (!c->done) {
		if (c->cancel != NULL && c->cancel()) {
			call_abort(c, 0);
			snprintf(c->error, sizeof c->error,
			    "stopped: the daemon is shutting down");
			break;
		}
		/* A reply its reader refused, or larger than allowed: the
		 * connection is closed at once, not drained to its end. */
		if (c->sink_failed && c->req != NULL) {
			int code = evhttp_request_get_response_code(c->req);
			call_abort(c, c->on_data != NULL ? code : 0);
			if (c->error[0] == '\0')
				snprintf(c->error, sizeof c->error,
				    "%s %s%s: the reply was refused by its "
				    "reader",
				    c->method, c->url, c->path);
			break;
		}
		/* The head came after a wait: the window starts again. */
		if (c->got_head && !head_seen) {
			head_seen = 1;
			window = mono_now();
			moved = hc->watch.moved;
		}
		/* No progress: too few bytes in the last timeout seconds
		 * (before the head, the time it may take). */
		if (c->progress && c->req != NULL &&
		    (now = mono_now()) - window >=
			(c->got_head ? c->timeout : wait)) {
			if (hc->watch.moved - moved < PROTO_MIN_PROGRESS) {
				call_abort(c, 0);
				snprintf(c->error, sizeof c->error,
				    "%s %s%s: no progress: %lld bytes in the "
				    "last %d s (a stalled or trickling peer "
				    "or link)",
				    c->method, c->url, c->path,
				    hc->watch.moved - moved,
				    c->got_head ? c->timeout : wait);
				break;
			}
			window = now;
			moved = hc->watch.moved;
		}
		if (event_base_loop(hc->base, EVLOOP_ONCE) < 0)
			break;
	}
	return c->status > 0 ? 0 : -1;
}

void
http_call_describe(const struct http_call *c, char *buf, size_t len)
{
	struct doc *d = NULL;
	char perr[64];
	const char *msg = NULL;
	size_t n = evbuffer_get_length(c->reply);

	if (c->status == 0) {
		snprintf(buf, len, "%s", c->error);
		return;
	}
	if (n > 0 &&
	    doc_parse((const char *)evbuffer_pullup(c->reply, -1), n, &d, perr,
		sizeof perr) == 0)
		msg = doc_get_str(d, REPLY_ERROR);
	if (msg != NULL)
		snprintf(buf, len, "%s%s answered %d: %s", c->url, c->path,
		    c->status, msg);
	else
		snprintf(buf, len, "%s%s answered %d %s", c->url, c->path,
		    c->status, http_reason(c->status));
	doc_free(d);
}
