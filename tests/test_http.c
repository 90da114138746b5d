/* The HTTP client against hostile peers (issue 15, part 4): a reply that
 * never ends is cut as soon as its reader refuses more, the connection
 * closed, not drained; a reply trickled a byte at a time ends once too
 * little moved in a timeout, while a slow one that moves gets there
 * (issue 16); every socket has keepalive and a user timeout. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "fixture.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "xmalloc.h"

static struct event_base *base;
static atomic_llong sent; /* bytes the server sent on /endless */
static atomic_int closed; /* its connection was closed by the client */

struct stream {
	struct evhttp_request *req;
	struct event *tick;
	size_t chunk;
	size_t left; /* to send, or 0: no end */
};

/* /slow: SLOW_TOTAL bytes, SLOW_CHUNK every 125 ms (512 KiB/s). */
#define SLOW_CHUNK 65536
#define SLOW_TOTAL (2u << 20)

static void
stream_closed(struct evhttp_connection *conn, void *arg)
{
	struct stream *st = arg;

	(void)conn;
	atomic_store(&closed, 1);
	/* The request outlives its connection: ending the reply frees it. */
	evhttp_send_reply_end(st->req);
	event_free(st->tick);
	free(st);
}

static void
stream_tick(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	struct evbuffer *b = evbuffer_new();
	static char buf[65536];

	(void)fd;
	(void)what;
	memset(buf, 'x', sizeof buf);
	evbuffer_add(b, buf, st->chunk);
	evhttp_send_reply_chunk(st->req, b);
	evbuffer_free(b);
	atomic_fetch_add(&sent, (long long)st->chunk);
	if (st->left > 0 && (st->left -= st->chunk) == 0) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(
						  st->req),
		    NULL, NULL);
		evhttp_send_reply_end(st->req);
		event_free(st->tick);
		free(st);
	}
}

/* /think, /think-trickle: nothing for THINK_MS (a server computing a
 * delta), then a reply: THINK_TOTAL bytes at once, or a trickle. */
#define THINK_MS 2500
#define FAST_TOTAL (3u << 20)
#define THINK_TOTAL (200u << 10)

static void
think_done(evutil_socket_t fd, short what, void *arg)
{
	struct stream *st = arg;
	struct evbuffer *b;
	struct timeval tv = { 0, 200000 };
	static char buf[THINK_TOTAL];

	(void)fd;
	(void)what;
	event_free(st->tick);
	if (st->chunk == 1) {
		st->tick = event_new(base, -1, EV_PERSIST, stream_tick, st);
		evhttp_connection_set_closecb(evhttp_request_get_connection(
						  st->req),
		    stream_closed, st);
		evhttp_send_reply_start(st->req, 200, "OK");
		event_add(st->tick, &tv);
		return;
	}
	b = evbuffer_new();
	memset(buf, 'y', sizeof buf);
	evbuffer_add(b, buf, sizeof buf);
	evhttp_send_reply(st->req, 200, "OK", b);
	evbuffer_free(b);
	free(st);
}

static void
request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_request_get_uri(req);
	struct stream *st = xcalloc(1, sizeof *st);
	struct timeval tv = { 0, 1000 };

	(void)arg;
	st->req = req;
	if (strcmp(path, "/fast") == 0) {
		/* FAST_TOTAL bytes at once (the client may limit its rate). */
		struct evbuffer *b = evbuffer_new();
		static char buf[FAST_TOTAL];

		memset(buf, 'f', sizeof buf);
		evbuffer_add(b, buf, sizeof buf);
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
		free(st);
		return;
	}
	if (strncmp(path, "/think", 6) == 0) {
		st->chunk = strcmp(path, "/think-trickle") == 0 ? 1 : 0;
		tv.tv_sec = THINK_MS / 1000;
		tv.tv_usec = THINK_MS % 1000 * 1000;
		st->tick = evtimer_new(base, think_done, st);
		event_add(st->tick, &tv);
		return;
	}
	st->chunk = strcmp(path, "/endless") == 0 ? 65536 : 1;
	if (strcmp(path, "/slow") == 0) {
		st->chunk = SLOW_CHUNK;
		st->left = SLOW_TOTAL;
		tv.tv_usec = 125000;
	} else if (st->chunk == 1)
		tv.tv_usec = 200000;
	st->tick = event_new(base, -1, EV_PERSIST, stream_tick, st);
	evhttp_connection_set_closecb(evhttp_request_get_connection(req),
	    stream_closed, st);
	evhttp_send_reply_start(req, 200, "OK");
	event_add(st->tick, &tv);
}

static void *
server_run(void *arg)
{
	(void)arg;
	event_base_dispatch(base);
	return NULL;
}

/* The reader: refuses more than 1 MiB. */
static int
reader(void *arg, struct evbuffer *in)
{
	size_t *got = arg;

	*got += evbuffer_get_length(in);
	return *got > (1u << 20) ? -1 : 0;
}

/* The reader that takes all. */
static int
counter(void *arg, struct evbuffer *in)
{
	size_t *got = arg;

	*got += evbuffer_get_length(in);
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(void)
{
	struct evhttp *http;
	struct http_client *hc;
	struct http_call c;
	pthread_t server;
	char url[64];
	size_t got = 0;
	double t0;
	int port, i;

	log_init("test", LOG_LEVEL_WARN);
	evthread_use_pthreads();
	base = event_base_new();
	http = evhttp_new(base);
	while (evhttp_bind_socket(http, "127.0.0.1",
		   (ev_uint16_t)(port = fixture_port())) != 0)
		;
	evhttp_set_gencb(http, request, NULL);
	pthread_create(&server, NULL, server_run, NULL);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	hc = http_client_new(url);

	/* A reply without end: cut once its reader refuses it. */
	http_call_init(&c, "GET", url, "/endless", "t", 1);
	c.on_data = reader;
	c.data_arg = &got;
	t0 = now();
	CHECK(http_client_call(hc, &c) == 0);
	CHECK(c.status == 200 && c.sink_failed);
	CHECK(got > (1u << 20) && got < (8u << 20));
	CHECK(now() - t0 < 10);
	for (i = 0; i < 100 && !atomic_load(&closed); i++)
		usleep(50000);
	CHECK(atomic_load(&closed));
	/* The server stops sending once the client has gone. */
	CHECK(atomic_load(&sent) < (64ll << 20));
	http_call_clear(&c);

	/* A trickle: ended once it moved too little in a timeout, saying
	 * why. */
	http_call_init(&c, "GET", url, "/trickle", "t", 1);
	c.progress = 1;
	c.timeout = 1;
	t0 = now();
	CHECK(http_client_call(hc, &c) != 0);
	CHECK(now() - t0 < 4);
	CHECK_CONTAINS(c.error, "no progress:");
	CHECK_CONTAINS(c.error, "bytes in the last 1 s");
	http_call_clear(&c);

	/* Slow but moving: 2 MiB at 512 KiB/s takes four timeouts, and
	 * gets there. */
	http_call_init(&c, "GET", url, "/slow", "t", 1);
	c.progress = 1;
	c.timeout = 1;
	c.on_data = counter;
	c.data_arg = &got;
	got = 0;
	t0 = now();
	CHECK(http_client_call(hc, &c) == 0);
	CHECK(c.status == 200 && !c.sink_failed);
	CHECK(got == SLOW_TOTAL);
	CHECK(now() - t0 > 3);
	http_call_clear(&c);

	/* A server that computes before it answers (a delta): with the
	 * call's timeout only, cut; given the time for the head, the reply
	 * arrives; once the head is in, the timeout is the call's again. */
	http_call_init(&c, "GET", url, "/think", "t", 1);
	c.progress = 1;
	c.timeout = 1;
	t0 = now();
	CHECK(http_client_call(hc, &c) != 0);
	CHECK(now() - t0 < THINK_MS / 1000.0);
	http_call_clear(&c);
	http_call_init(&c, "GET", url, "/think", "t", 1);
	c.progress = 1;
	c.timeout = 1;
	c.head_timeout = 4;
	c.on_data = counter;
	c.data_arg = &got;
	got = 0;
	t0 = now();
	CHECK(http_client_call(hc, &c) == 0);
	CHECK(c.status == 200 && got == THINK_TOTAL);
	CHECK(now() - t0 >= THINK_MS / 1000.0 - 0.1);
	http_call_clear(&c);
	http_call_init(&c, "GET", url, "/think-trickle", "t", 1);
	c.progress = 1;
	c.timeout = 1;
	c.head_timeout = 4;
	t0 = now();
	CHECK(http_client_call(hc, &c) != 0);
	CHECK_CONTAINS(c.error, "no progress:");
	CHECK_CONTAINS(c.error, "bytes in the last 1 s");
	CHECK(now() - t0 < THINK_MS / 1000.0 + 2.5);
	http_call_clear(&c);

	/* A rate limit, both ways: 3 MiB down and 2 MiB up at 1 MiB/s
	 * take about 3 and 2 s (unlimited, a few milliseconds). */
	{
		struct evbuffer *up = evbuffer_new();
		static char body[2u << 20];
		double secs;

		http_client_set_rate(hc, 1 << 20);
		http_call_init(&c, "GET", url, "/fast", "t", 1);
		c.progress = 1;
		c.on_data = counter;
		c.data_arg = &got;
		got = 0;
		t0 = now();
		CHECK(http_client_call(hc, &c) == 0);
		secs = now() - t0;
		CHECK(c.status == 200 && got == FAST_TOTAL);
		CHECK(secs > 2.6 && secs < 3.6);
		fprintf(stderr, "3 MiB down at 1 MiB/s: %.2f s\n", secs);
		http_call_clear(&c);
		memset(body, 'u', sizeof body);
		evbuffer_add(up, body, sizeof body);
		http_call_init(&c, "POST", url, "/fast", "t", 1);
		c.body = up;
		c.progress = 1;
		c.on_data = counter;
		c.data_arg = &got;
		got = 0;
		t0 = now();
		CHECK(http_client_call(hc, &c) == 0);
		secs = now() - t0;
		/* 2 MiB up, then the 3 MiB reply down. */
		CHECK(secs > 4.5 && secs < 6);
		fprintf(stderr, "2 MiB up, 3 MiB down at 1 MiB/s: %.2f s\n",
		    secs);
		http_call_clear(&c); /* and up, the body */
		http_client_set_rate(hc, 0);
		http_call_init(&c, "GET", url, "/fast", "t", 1);
		c.on_data = counter;
		c.data_arg = &got;
		t0 = now();
		CHECK(http_client_call(hc, &c) == 0);
		CHECK(now() - t0 < 1);
		http_call_clear(&c);
	}

	/* Every connection finds a peer that vanished: keepalive, and a
	 * user timeout of the protocol's. */
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0), v = 0;
		socklen_t vl = sizeof v;
		unsigned int u = 0;
		socklen_t ul = sizeof u;

		http_sock_tune(fd);
		CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &vl) == 0 &&
		    v == 1);
		CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &vl) == 0 &&
		    v == 30);
		CHECK(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &u, &ul) ==
			0 &&
		    u == PROTO_TIMEOUT_SECS * 1000u);
		CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0 &&
		    v == 1);
		close(fd);
	}

	http_client_free(hc);
	event_base_loopbreak(base);
	pthread_join(server, NULL);
	evhttp_free(http);
	event_base_free(base);
	return unit_done();
}
