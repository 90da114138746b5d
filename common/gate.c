/* The gate (gate.h).  libevent 2.1's HTTP server offers no hook between a
 * request's head and its body, and a filtering bufferevent under it would
 * let a reply be cut when the server closes (it counts a reply sent once
 * the filter took it).  So the gate makes each connection's bufferevent
 * itself and follows its input buffer through a callback: the server's
 * read low-water mark holds it back until a head is whole, and a refused
 * head is replaced in the buffer before the server reads it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "allow.h"
#include "config.h"
#include "gate.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "tls.h"
#include "xmalloc.h"

enum gate_state {
	G_HEAD,    /* reading a request's head */
	G_BODY,    /* passing its body: left bytes */
	G_DISCARD, /* refused: nothing more gets through */
};

struct gate_conn {
	TAILQ_ENTRY(gate_conn) link;
	struct gate *g;
	struct bufferevent *bev; /* the server's: the socket's, or TLS's */
	struct evbuffer_cb_entry *cbent;
	struct http_watch watch; /* timeouts of no progress */
	int tls;
	struct event *admit;
	struct event *head_timer; /* a head must be whole in time */
	int admitted;
	int served; /* the server took it (set its callbacks) */
	int busy;   /* changing the input itself */
	char addr[INET6_ADDRSTRLEN];
	char peer[INET6_ADDRSTRLEN + 8]; /* addr:port, for the log */
	enum gate_state state;
	/* Offsets in the connection's input stream: what the gate followed,
	 * what the server read, where the current head began. */
	uint64_t received, consumed, head_off;
	uint64_t left; /* of the body under way */
	size_t keep;   /* G_DISCARD: bytes the server has yet to read */
	char head[GATE_MAX_HEAD];
	size_t head_len;
	size_t scanned; /* of head, without finding its end */
	int refused;    /* an HTTP status, or 0 */
	char why[320];
};

struct gate {
	TAILQ_HEAD(, gate_conn) conns;
	size_t n;
	struct node *node;
	struct event *sweeper;
	time_t last_cap_log;
	unsigned long capped;
};

struct gate *
gate_new(struct node *n)
{
	struct gate *g = xcalloc(1, sizeof *g);

	TAILQ_INIT(&g->conns);
	g->node = n;
	return g;
}

static void conn_release(struct gate *, struct gate_conn *);

void
gate_free(struct gate *g)
{
	struct gate_conn *c;

	if (g == NULL)
		return;
	/* After the server was freed: every connection is let go. */
	while ((c = TAILQ_FIRST(&g->conns)) != NULL)
		conn_release(g, c);
	if (g->sweeper != NULL)
		event_free(g->sweeper);
	free(g);
}

/* Header names are compared without case (RFC 9110). */
static int
name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static int
head_refuse(struct gate_head *h, int status, const char *why)
{
	h->status = status;
	snprintf(h->why, sizeof h->why, "%s", why);
	return -1;
}

/* One header line, line[0..n) without its end: 0, or -1 refused. */
static int
head_field(const char *line, size_t n, struct gate_head *h, int *seen_len)
{
	const char *colon = memchr(line, ':', n), *v;
	size_t name_len, vlen, i;

	if (line[0] == ' ' || line[0] == '\t')
		return head_refuse(h, PROTO_BAD,
		    "a folded header line (obsolete, RFC 9112)");
	if (colon == NULL || colon == line)
		return head_refuse(h, PROTO_BAD,
		    "a header line without a name");
	name_len = (size_t)(colon - line);
	for (i = 0; i < name_len; i++)
		if (line[i] <= ' ' || line[i] == 0x7f)
			return head_refuse(h, PROTO_BAD,
			    "a header name with a space or a control byte");
	v = colon + 1;
	vlen = n - name_len - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 &&
	    (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
		vlen--;
	if (name_is(line, name_len, "Transfer-Encoding"))
		return head_refuse(h, 411,
		    "Transfer-Encoding is not taken: send a Content-Length");
	if (name_is(line, name_len, "Content-Length")) {
		if ((*seen_len)++)
			return head_refuse(h, PROTO_BAD,
			    "more than one Content-Length");
		if (vlen == 0 || vlen > 18)
			return head_refuse(h, PROTO_BAD,
			    "a bad Content-Length");
		h->length = 0;
		for (i = 0; i < vlen; i++) {
			if (!isdigit((unsigned char)v[i]))
				return head_refuse(h, PROTO_BAD,
				    "a bad Content-Length");
			h->length = h->length * 10 + (v[i] - '0');
		}
	} else if (name_is(line, name_len, PROTO_AUTH_HEADER)) {
		if (h->auth != NULL)
			return head_refuse(h, PROTO_BAD,
			    "more than one Authorization");
		h->auth = v;
		h->auth_len = vlen;
	}
	return 0;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x */
static int
head_first(const char *line, size_t n, struct gate_head *h)
{
	const char *sp1 = memchr(line, ' ', n), *sp2;
	size_t mlen;

	if (sp1 == NULL)
		return head_refuse(h, PROTO_BAD, "not an HTTP request line");
	mlen = (size_t)(sp1 - line);
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (sp2 == NULL || sp2 == sp1 + 1)
		return head_refuse(h, PROTO_BAD, "not an HTTP request line");
	if ((size_t)(line + n - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
		memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return head_refuse(h, 505, "only HTTP/1.0 and 1.1 are spoken");
	if (mlen == 0 || mlen >= sizeof h->method)
		return head_refuse(h, PROTO_METHOD, "an unknown method");
	memcpy(h->method, line, mlen);
	h->method[mlen] = '\0';
	if (strcmp(h->method, "GET") != 0 && strcmp(h->method, "POST") != 0 &&
	    strcmp(h->method, "HEAD") != 0)
		return head_refuse(h, PROTO_METHOD,
		    "only GET, HEAD and POST are taken");
	h->target = sp1 + 1;
	h->target_len = (size_t)(sp2 - h->target);
	return 0;
}

int
gate_head_parse(const char *buf, size_t len, struct gate_head *h)
{
	size_t pos = 0, end, n;
	int seen_len = 0, first = 1;
	const char *nl;

	memset(h, 0, sizeof *h);
	if (len > GATE_MAX_HEAD)
		len = GATE_MAX_HEAD;
	if (memchr(buf, '\0', len) != NULL)
		return head_refuse(h, PROTO_BAD, "a NUL byte in the head");
	for (;;) {
		if ((nl = memchr(buf + pos, '\n', len - pos)) == NULL)
			break;
		end = (size_t)(nl - buf);
		n = end - pos;
		if (n > 0 && buf[end - 1] == '\r')
			n--;
		if (n == 0) {
			if (first)
				return head_refuse(h, PROTO_BAD,
				    "an empty line before the request line");
			h->len = end + 1;
			if (h->length > 0 && strcmp(h->method, "HEAD") == 0)
				return head_refuse(h, PROTO_BAD,
				    "a body on a HEAD request");
			return 1;
		}
		if (first ? head_first(buf + pos, n, h) != 0 :
			    head_field(buf + pos, n, h, &seen_len) != 0)
			return -1;
		first = 0;
		pos = end + 1;
	}
	if (len >= GATE_MAX_HEAD)
		return head_refuse(h, 431, "the head is too long");
	return 0;
}

/* What a request with a body may send, from its route: 0 (passes, with
 * *limit), or an HTTP status with why. */
static int
body_rule(struct gate_conn *c, const struct gate_head *h, uint64_t *limit,
    char *why, size_t len)
{
	const struct config *cf = c->g->node->cf;
	struct evhttp_uri *u;
	struct proto_req pr;
	char target[1024], perr[256];
	int code, secret = 0;

	if (strcmp(h->method, "POST") != 0) {
		snprintf(why, len, "a body on a %s request", h->method);
		return PROTO_TOO_LARGE;
	}
	if (h->target_len >= sizeof target) {
		snprintf(why, len, "a POST to a target of %zu bytes",
		    h->target_len);
		return 414;
	}
	memcpy(target, h->target, h->target_len);
	target[h->target_len] = '\0';
	if ((u = evhttp_uri_parse_with_flags(target, 0)) == NULL) {
		snprintf(why, len, "a POST to a target that is no URI");
		return PROTO_BAD;
	}
	code = proto_parse(u, &pr, perr, sizeof perr);
	if (code == PROTO_BAD) {
		evhttp_uri_free(u);
		snprintf(why, len, "%s", perr);
		return PROTO_BAD;
	}
	switch (pr.route) {
	case PROTO_R_VERSION:
		*limit = pr.what == PROTO_DELTA ? PROTO_MAX_BODY : 0;
		secret = 1;
		/* A large body: only from a peer that may read the source. */
		if (*limit > 0 &&
		    (code = allow_peer(c->g->node, c->tls ? c->bev : NULL,
			 c->peer, ALLOW_READ, NULL, pr.source, why, len)) !=
			0) {
			proto_req_clear(&pr);
			evhttp_uri_free(u);
			return code;
		}
		break;
	case PROTO_R_EVENTS:
	case PROTO_R_NOW:
	case PROTO_R_PROMOTE:
	case PROTO_R_VERIFY:
		*limit = PROTO_MAX_EVENT;
		secret = 1;
		break;
	case PROTO_R_PAGE:
		/* The standby's promotion form, checked by its page. */
		*limit = strcmp(pr.page, ROUTE_PAGE_PROMOTE) == 0 ?
		    PROTO_MAX_FORM :
		    0;
		break;
	default:
		*limit = 0;
		break;
	}
	proto_req_clear(&pr);
	evhttp_uri_free(u); /* pr.page pointed into it */
	if (*limit == 0) {
		snprintf(why, len, "no body is taken here");
		return PROTO_TOO_LARGE;
	}
	switch (secret ? http_secret_of(h->auth, h->auth_len, cf) :
			 HTTP_SECRET_FULL) {
	case HTTP_SECRET_FULL:
		break;
	case HTTP_SECRET_READ:
		snprintf(why, len,
		    "the read-only credential may not: " HTTP_READ_ONLY_MAY);
		return PROTO_FORBIDDEN;
	default:
		snprintf(why, len, "%s; a body needs the secret of token_file",
		    h->auth == NULL ? "no secret given" : "wrong secret");
		return PROTO_UNAUTHORIZED;
	}
	if ((uint64_t)h->length > *limit) {
		snprintf(why, len,
		    "a body of %lld bytes; this route takes at most %llu",
		    (long long)h->length, (unsigned long long)*limit);
		return PROTO_TOO_LARGE;
	}
	return 0;
}

/* The input of a connection that went too far: keep its first keep bytes
 * (what the server has yet to read), drop the rest. */
static void
truncate_input(struct gate_conn *c, struct evbuffer *in, size_t keep)
{
	struct evbuffer *tmp;
	size_t n = evbuffer_get_length(in);

	if (n <= keep)
		return;
	c->busy = 1;
	if (keep == 0)
		evbuffer_drain(in, n);
	else if ((tmp = evbuffer_new()) != NULL) {
		evbuffer_remove_buffer(in, tmp, keep);
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add_buffer(in, tmp);
		evbuffer_free(tmp);
	}
	c->busy = 0;
}

/* Refuse the request whose head starts at stream offset c->head_off: the
 * server gets a bodyless request in its place that it answers with
 * gate_refusal(), and nothing more of this connection. */
static void
refuse(struct gate_conn *c, struct evbuffer *in, const struct gate_head *h,
    int status, const char *why)
{
	static const char synth[] = "GET " GATE_REFUSED_PATH " HTTP/1.1\r\n"
				    "Connection: close\r\n\r\n";
	char target[96];
	size_t n = h->target != NULL ? h->target_len : 0;
	const char *m = h->method[0] != '\0' ? h->method : "";

	if (n >= sizeof target)
		n = sizeof target - 4;
	if (h->target != NULL) {
		memcpy(target, h->target, n);
		strcpy(target + n, n < h->target_len ? "..." : "");
	} else
		strcpy(target, "a request");
	c->refused = status;
	snprintf(c->why, sizeof c->why, "%s refused %s%s%s: %s", log_role(), m,
	    *m ? " " : "", target, why);
	log_warnx("refused %s%s%s from %s: %s", m, *m ? " " : "", target,
	    c->peer, why);
	c->state = G_DISCARD;
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	if (c->consumed > c->head_off) {
		/* The server read part of it already (pipelined requests):
		 * no reply can be put in order; the connection ends. */
		c->keep = 0;
		truncate_input(c, in, 0);
		shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		return;
	}
	c->keep = (size_t)(c->head_off - c->consumed);
	truncate_input(c, in, c->keep);
	c->busy = 1;
	evbuffer_add(in, synth, sizeof synth - 1);
	c->busy = 0;
	c->keep += sizeof synth - 1;
}

/* A head is whole in c->head[0..len): pass it, or refuse it. */
static void
head_done(struct gate_conn *c, struct evbuffer *in, size_t len)
{
	struct gate_head h;
	char why[256];
	uint64_t limit;
	int code;

	if (gate_head_parse(c->head, len, &h) != 1) {
		refuse(c, in, &h, h.status, h.why);
		return;
	}
	if (h.length > 0 &&
	    (code = body_rule(c, &h, &limit, why, sizeof why)) != 0) {
		refuse(c, in, &h, code, why);
		return;
	}
	c->head_len = 0;
	c->scanned = 0;
	evtimer_del(c->head_timer);
	if ((c->left = (uint64_t)h.length) > 0)
		c->state = G_BODY;
}

static void admit_cb(evutil_socket_t, short, void *);

/* A head that trickles in (a byte a minute keeps a connection open for
 * ever, the server's timeout being one of inactivity): whole within
 * GATE_HEAD_SECS of its first byte, or the connection ends. */
static void
head_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gate_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->g == NULL || c->state != G_HEAD || c->head_len == 0)
		return;
	log_warnx("closing the connection of %s: its request's head took "
		  "more than %d s",
	    c->peer, GATE_HEAD_SECS);
	c->state = G_DISCARD;
	shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
}

static void
head_timer_arm(struct gate_conn *c)
{
	struct timeval tv = { GATE_HEAD_SECS, 0 };

	evtimer_add(c->head_timer, &tv);
}

/* Where the head in c->head ends, if it does yet: its length, or 0. */
static size_t
head_end(struct gate_conn *c)
{
	const char *p = c->head, *q;
	size_t from = c->scanned > 2 ? c->scanned - 2 : 0;

	/* An empty line: "\n\n" or "\n\r\n" (an empty first line too). */
	for (q = p + from; q < p + c->head_len; q++) {
		if (*q != '\n')
			continue;
		if (q == p || (q == p + 1 && p[0] == '\r'))
			return (size_t)(q - p) + 1;
		if (q[-1] == '\n' ||
		    (q[-1] == '\r' && q - 2 >= p && q[-2] == '\n'))
			return (size_t)(q - p) + 1;
	}
	c->scanned = c->head_len;
	return 0;
}

/* Every change to a connection's input: the server read some (deleted),
 * or the socket brought more (added, at the end).  The stream is followed
 * head by head; while a head is incomplete the server is not woken
 * (its read low-water mark is above what is there), so it never sees a
 * head before the gate has passed it. */
static void
input_cb(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct gate_conn *c = arg;
	size_t len = evbuffer_get_length(in), n, take, end, off;
	struct evbuffer_ptr p;

	if (c->busy || c->g == NULL)
		return;
	if (!c->admitted)
		admit_cb(-1, 0, c);
	c->consumed += info->n_deleted;
	if (c->state == G_DISCARD) {
		c->keep -= info->n_deleted < c->keep ? info->n_deleted :
						       c->keep;
		truncate_input(c, in, c->keep);
		return;
	}
	/* The new bytes are the last n_added of the buffer. */
	for (off = len - info->n_added; off < len && c->state != G_DISCARD;) {
		n = len - off;
		if (c->state == G_BODY) {
			take = n < c->left ? n : (size_t)c->left;
			off += take;
			c->received += take;
			if ((c->left -= take) == 0)
				c->state = G_HEAD;
			continue;
		}
		if (c->head_len == 0) {
			c->head_off = c->received;
			head_timer_arm(c);
		}
		take = GATE_MAX_HEAD - c->head_len;
		if (take > n)
			take = n;
		evbuffer_ptr_set(in, &p, off, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &p, c->head + c->head_len, take);
		c->head_len += take;
		if ((end = head_end(c)) == 0) {
			if (c->head_len < GATE_MAX_HEAD) {
				off += take;
				c->received += take;
				continue;
			}
			end = GATE_MAX_HEAD;
		}
		/* Only the head's bytes of what was taken. */
		take -= c->head_len - end;
		off += take;
		c->received += take;
		head_done(c, in, end);
	}
	if (c->state == G_DISCARD)
		return;
	/* A head under way: the server waits for it whole, once it has read
	 * what came before it (a pipelined request's body). */
	bufferevent_setwatermark(c->bev, EV_READ,
	    c->state == G_HEAD && c->head_len > 0 &&
		    c->consumed >= c->head_off ?
		evbuffer_get_length(in) + 1 :
		0,
	    0);
}

/* Once the server gave the connection its socket: count it, refuse it
 * when there are too many. */
static void
admit_cb(evutil_socket_t fd_unused, short what, void *arg)
{
	struct gate_conn *c = arg, *o;
	struct gate *g = c->g;
	const struct config *cf;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	evutil_socket_t fd;
	size_t same = 0;
	time_t now;
	int port = 0;

	(void)fd_unused;
	(void)what;
	if (g == NULL || c->admitted)
		return;
	/* The server has set its callbacks by now, unless it let the
	 * connection go at once. */
	c->served = 1;
	if ((fd = bufferevent_getfd(c->bev)) < 0) {
		c->admitted = 1;
		return;
	}
	http_sock_tune(fd);
	cf = g->node->cf;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a->sin_addr, c->addr,
			    sizeof c->addr);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a->sin6_addr, c->addr,
			    sizeof c->addr);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->peer, sizeof c->peer, "%s:%d", c->addr, port);
	c->admitted = 1;
	TAILQ_FOREACH(o, &g->conns, link)
		if (o->admitted && strcmp(o->addr, c->addr) == 0)
			same++;
	if (g->n <= (size_t)cf->max_conns && same <= (size_t)cf->max_peer_conns)
		return;
	/* Too many: closed at once, before any TLS or HTTP work. */
	g->capped++;
	now = time(NULL);
	if (now - g->last_cap_log >= 60) {
		log_warnx("closing connections: %zu open, %zu from %s "
			  "(max_connections %lld, max_connections_per_peer "
			  "%lld); %lu closed since the last message",
		    g->n, same, c->addr, (long long)cf->max_conns,
		    (long long)cf->max_peer_conns, g->capped);
		g->last_cap_log = now;
		g->capped = 0;
	}
	c->state = G_DISCARD;
	c->refused = PROTO_UNAVAILABLE;
	snprintf(c->why, sizeof c->why, "too many connections");
	shutdown(fd, SHUT_RDWR);
}

static void
conn_release(struct gate *g, struct gate_conn *c)
{
	TAILQ_REMOVE(&g->conns, c, link);
	g->n--;
	evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->cbent);
	http_watch_stop(&c->watch);
	if (c->admit != NULL)
		event_free(c->admit);
	if (c->head_timer != NULL)
		event_free(c->head_timer);
	/* The server freed it; this was the last hold on it. */
	bufferevent_decref(c->bev);
	free(c);
}

/* Connections the server has let go of (it cleared their callbacks) are
 * released here: the gate holds a reference to each bufferevent, which
 * keeps it, and its socket, until then. */
static void
sweep(struct gate *g)
{
	struct gate_conn *c, *next;
	bufferevent_data_cb r, w;
	bufferevent_event_cb e;

	for (c = TAILQ_FIRST(&g->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		bufferevent_getcb(c->bev, &r, &w, &e, NULL);
		if (c->served && r == NULL && w == NULL && e == NULL)
			conn_release(g, c);
	}
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sweep(arg);
}

struct bufferevent *
gate_bevcb(struct event_base *base, void *arg)
{
	struct gate *g = arg;
	struct gate_conn *c = xcalloc(1, sizeof *c);
	struct timeval now = { 0, 0 }, sec = { 1, 0 };

	sweep(g);
	if (g->sweeper == NULL) {
		g->sweeper = event_new(base, -1, EV_PERSIST, sweep_cb, g);
		event_add(g->sweeper, &sec);
	}
	c->g = g;
	strcpy(c->addr, "?");
	strcpy(c->peer, "?");
	if (g->node->cf->tls != NULL) {
		c->bev = tls_server_bev(base);
		c->tls = 1;
	} else if ((c->bev = bufferevent_socket_new(base, -1,
			BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("cannot make a bufferevent");
	bufferevent_incref(c->bev);
	c->cbent = evbuffer_add_cb(bufferevent_get_input(c->bev), input_cb, c);
	http_watch_start(&c->watch, c->bev, proto_timeout());
	TAILQ_INSERT_TAIL(&g->conns, c, link);
	g->n++;
	/* The server sets the socket right after this returns. */
	c->admit = evtimer_new(base, admit_cb, c);
	evtimer_add(c->admit, &now);
	c->head_timer = evtimer_new(base, head_timeout_cb, c);
	return c->bev;
}

static struct gate_conn *
conn_of(struct gate *g, struct evhttp_request *req)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct gate_conn *c;

	if (g == NULL || ec == NULL ||
	    (bev = evhttp_connection_get_bufferevent(ec)) == NULL)
		return NULL;
	TAILQ_FOREACH(c, &g->conns, link)
		if (c->bev == bev)
			return c;
	return NULL;
}

int
gate_refusal(struct gate *g, struct evhttp_request *req)
{
	struct gate_conn *c = conn_of(g, req);
	const char *path = evhttp_uri_get_path(
	    evhttp_request_get_evhttp_uri(req));

	if (c == NULL || c->refused == 0 || path == NULL ||
	    strcmp(path, GATE_REFUSED_PATH) != 0)
		return 0;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
	    "close");
	http_reply_error(req, c->refused, "%s", c->why);
	return 1;
}

struct bufferevent *
gate_tls_of(struct gate *g, struct evhttp_request *req)
{
	struct gate_conn *c = conn_of(g, req);

	return c != NULL && c->tls ? c->bev : NULL;
}
