/* The gate: what every accepted connection goes through before libevent's
 * HTTP server reads a byte of it.  It counts connections (max_connections,
 * max_connections_per_peer) and reads each request's head itself, so that
 * the secret, the route and the body's size are checked before any body
 * is read: a body larger than its route takes, or a body from someone
 * without the secret, is refused at once and the connection closed,
 * instead of being read into memory first (libevent 2.1 reads a whole
 * body before it calls the server).
 *
 * A refused request reaches the HTTP server as a bodyless GET of
 * GATE_REFUSED_PATH with "Connection: close", and the router answers it
 * with gate_refusal(): the reply goes out in order, through the server,
 * and the connection ends there. */
#ifndef UNDERSTUDY_GATE_H
#define UNDERSTUDY_GATE_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct evhttp_request;
struct node;

#define GATE_REFUSED_PATH "/-/refused"
/* A request's head (request line and headers) may not be longer. */
#define GATE_MAX_HEAD (24 * 1024)
/* and must be whole this long after its first byte */
#define GATE_HEAD_SECS 30
#define GATE_DEFAULT_MAX_CONNS 512
#define GATE_DEFAULT_MAX_PEER_CONNS 64

struct gate;

struct gate *gate_new(struct node *);
/* After the HTTP server is freed: its connections point at the gate. */
void gate_free(struct gate *);
/* evhttp_set_bevcb()'s callback, with the gate as its argument. */
struct bufferevent *gate_bevcb(struct event_base *, void *gate);
/* When the gate refused req's connection: reply so (Connection: close)
 * and return 1; else 0. */
int gate_refusal(struct gate *, struct evhttp_request *);
/* The TLS bufferevent req came on (for the peer's certificate), or NULL
 * when it came in plain. */
struct bufferevent *gate_tls_of(struct gate *, struct evhttp_request *);

/* A request's head, parsed (gate_head_parse). */
struct gate_head {
	size_t len;         /* bytes of the head, its empty line included */
	char method[8];     /* GET, POST, HEAD (others are refused) */
	const char *target; /* into the buffer parsed; not terminated */
	size_t target_len;
	int64_t length;   /* Content-Length, 0 when none */
	const char *auth; /* the Authorization header's value, or NULL */
	size_t auth_len;
	int status;    /* when refused: an HTTP status */
	char why[160]; /* and why */
};

/* Parse the head at the start of buf[0..len): 1 when whole (h filled),
 * 0 when more bytes are needed, -1 when refused (h->status, h->why).
 * Stricter than libevent's own parser, so that where this takes a head,
 * both agree where its body ends: one Content-Length of digits, no
 * Transfer-Encoding, no folded lines, no body on HEAD. */
int gate_head_parse(const char *buf, size_t len, struct gate_head *h);

#endif
