/* The node's durable paths on a real loop, over real sockets: an event a
 * peer posts is answered only once its file is on disk (inbox.c,
 * durable.c); an event sent is on disk before it is delivered, removed
 * once the peer acknowledges it, retried by the one rule when it does not,
 * and dropped when the peer refuses it for good (outbox.c); state files
 * are written, removed and appended in order, with a callback once
 * durable; a handled event's file goes only after what its handling sent;
 * what is left at exit is written then. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "doc.h"
#include "fault.h"
#include "fixture.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "unit.h"
#include "xmalloc.h"

static struct node n;
static char dir[4096], qdir[4200];

/* The role: accepts test.ready events, counts kicks and refusals. */
static int kicks, refusals;
static char refused_why[512];

static int
test_accept(struct node *node, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	const char *type = doc_get_str(ev, EVF_TYPE);

	if (strcmp(type, "test.ready") != 0) {
		snprintf(why, whylen, "no \"%s\" here", type);
		return PROTO_BAD;
	}
	snprintf(key, keylen, "%s %s", type, doc_get_str(ev, EVF_SOURCE));
	return NODE_QUEUE;
}

static void
test_kick(struct node *node)
{
	kicks++;
}

static void
test_refused(struct node *node, const struct qentry *e, const char *why)
{
	refusals++;
	snprintf(refused_why, sizeof refused_why, "%s", why);
}

static void
test_status(struct node *node, struct json *j)
{
}

static void
test_metrics(struct node *node, struct evbuffer *b)
{
}

static int
test_health(struct node *node, int64_t max_age, int64_t max_lag, int *warn,
    char *why, size_t len)
{
	snprintf(why, len, "fine");
	return 0;
}

static const struct node_ops ops = {
	.accept = test_accept,
	.kick = test_kick,
	.refused = test_refused,
	.status = test_status,
	.metrics = test_metrics,
	.health = test_health,
};

/* The peer: answers events with the code asked, keeps their bodies. */
static int peer_code = PROTO_OK, peer_got;
static char peer_body[4096];

static void
peer_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);

	peer_got++;
	if (len >= sizeof peer_body)
		len = sizeof peer_body - 1;
	evbuffer_remove(in, peer_body, len);
	peer_body[len] = '\0';
	if (peer_code == PROTO_OK)
		inbox_reply_queued(req, 1, NULL);
	else
		http_reply_error(req, peer_code, "the peer says %d", peer_code);
}

/* A client's call to the node, done on the same loop. */
struct call {
	struct http_call c;
	int done;
	int file_there; /* the inbox file existed when answered */
};

static void
call_done(struct http_call *c, void *arg)
{
	struct call *k = arg;
	char p[4400];

	snprintf(p, sizeof p, "%s/inbox/00000000000000000001.ev", qdir);
	k->file_there = fs_exists(p);
	k->done = 1;
}

static int
call_finished(void *arg)
{
	return ((struct call *)arg)->done;
}

static void
post_event(struct call *k, const char *url, const char *body)
{
	memset(k, 0, sizeof *k);
	http_call_init(&k->c, "POST", url, ROUTE_EVENTS, n.cf->token,
	    n.cf->token_len);
	k->c.body = evbuffer_new();
	evbuffer_add(k->c.body, body, strlen(body));
	k->c.content_type = PROTO_CT_JSON;
	http_call_async(n.base, n.dns, &k->c, call_done, k);
}

static int
idle(void *arg)
{
	return n.writing == NULL && n.waiting == NULL;
}

static int
outbox_empty(void *arg)
{
	return n.outbox->count == 0 && idle(arg);
}

static int
outbox_tried(void *arg)
{
	struct qentry *e = TAILQ_FIRST(&n.outbox->entries);

	return e != NULL && e->attempts >= *(int *)arg && !e->busy;
}

static int done_rc = -2;

static void
written(void *arg, int rc)
{
	done_rc = rc;
	/* The file is there when the callback runs. */
	CHECK(fs_exists(arg));
}

static int
called_back(void *arg)
{
	return done_rc != -2;
}

static int
count_files(const char *sub)
{
	char p[4400];
	struct dirent *de;
	DIR *d;
	int count = 0;

	snprintf(p, sizeof p, "%s/%s", qdir, sub);
	if ((d = opendir(p)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		count += strstr(de->d_name, ".ev") != NULL &&
		    strstr(de->d_name, ".tmp") == NULL;
	closedir(d);
	return count;
}

static void
state_files(void)
{
	char a[4300], b[4300], *buf;
	size_t len;

	/* Written, removed, appended: in the order asked. */
	snprintf(a, sizeof a, "%s/state.json", dir);
	snprintf(b, sizeof b, "%s/lines", dir);
	durable_write(&n, a, "first", 5);
	durable_remove(&n, a);
	durable_write(&n, a, "second", 6);
	durable_append(&n, b, "one\n", 4);
	durable_append(&n, b, "two\n", 4);
	durable_write_then(&n, a, "third", 5, written, a);
	CHECK(fixture_loop(n.base, called_back, NULL, 10));
	CHECK(done_rc == 0);
	CHECK(fs_read_file(a, 100, &buf, &len) == 0 && len == 5 &&
	    memcmp(buf, "third", 5) == 0);
	free(buf);
	CHECK(fs_read_file(b, 100, &buf, &len) == 0 && len == 8 &&
	    memcmp(buf, "one\ntwo\n", 8) == 0);
	free(buf);
	/* A file that cannot be written: the callback says so. */
	done_rc = -2;
	snprintf(a, sizeof a, "%s/no/such/dir/state.json", dir);
	durable_write_then(&n, a, "x", 1, written, dir);
	CHECK(fixture_loop(n.base, called_back, NULL, 10));
	CHECK(done_rc == -1);
#if UNDERSTUDY_FAULTS
	/* A full disk: a state file that may be is written over its old
	 * copy (as long as the new one), the rest blanked; one longer, or
	 * another file, is not written at all. */
	snprintf(a, sizeof a, "%s/last.json", dir);
	snprintf(b, sizeof b, "%s/sync", dir);
	durable_write_in_place(&n, a, "0123456789", 10);
	done_rc = -2;
	durable_write_then(&n, b, "x", 1, written, b);
	CHECK(fixture_loop(n.base, called_back, NULL, 10));
	setenv("UNDERSTUDY_FAULT", "enospc:atomic-write", 1);
	durable_write_in_place(&n, a, "new", 3);
	done_rc = -2;
	durable_write_then(&n, b, "y", 1, written, b);
	CHECK(fixture_loop(n.base, called_back, NULL, 10));
	CHECK(done_rc == -1); /* an ordinary file: not written */
	CHECK(fs_read_file(a, 100, &buf, &len) == 0 && len == 10 &&
	    memcmp(buf, "new       ", 10) == 0);
	free(buf);
	durable_write_in_place(&n, a, "longer than the file", 20);
	done_rc = -2;
	durable_write_then(&n, b, "z", 1, written, b);
	CHECK(fixture_loop(n.base, called_back, NULL, 10));
	unsetenv("UNDERSTUDY_FAULT");
	CHECK(fs_read_file(a, 100, &buf, &len) == 0 && len == 10 &&
	    memcmp(buf, "new       ", 10) == 0);
	free(buf);
	CHECK(
	    fs_read_file(b, 100, &buf, &len) == 0 && len == 1 && buf[0] == 'x');
	free(buf);
#endif
}

static void
inbox(const char *url)
{
	struct call k;
	struct qentry *e;

	/* Acknowledged only once durable, then handed to the role. */
	post_event(&k, url,
	    "{\"proto\":1,\"type\":\"test.ready\",\"source\":\"db\","
	    "\"version\":\"20261121T194108.123Z\"}");
	CHECK(fixture_loop(n.base, call_finished, &k, 10));
	CHECK(k.c.status == PROTO_OK);
	CHECK(k.file_there);
	CHECK_CONTAINS((char *)evbuffer_pullup(k.c.reply, -1),
	    "\"queued\":true");
	http_call_clear(&k.c);
	CHECK(n.inbox->count == 1 && n.events_in == 1);
	event_base_loop(n.base, EVLOOP_NONBLOCK);
	CHECK(kicks > 0);
	/* Refused by the role, or malformed: nothing queued. */
	post_event(&k, url,
	    "{\"proto\":1,\"type\":\"other\",\"source\":\"db\",\"version\":"
	    "\"20261121T194108.123Z\"}");
	CHECK(fixture_loop(n.base, call_finished, &k, 10));
	CHECK(k.c.status == PROTO_BAD);
	http_call_clear(&k.c);
	post_event(&k, url,
	    "{\"proto\":2,\"type\":\"test.ready\",\"source\":\"db\","
	    "\"version\":\"20261121T194108.123Z\"}");
	CHECK(fixture_loop(n.base, call_finished, &k, 10));
	CHECK(k.c.status == PROTO_BAD);
	CHECK_CONTAINS((char *)evbuffer_pullup(k.c.reply, -1),
	    "protocol version 2");
	http_call_clear(&k.c);
	post_event(&k, url, "[1, 2]");
	CHECK(fixture_loop(n.base, call_finished, &k, 10));
	CHECK(k.c.status == PROTO_BAD);
	http_call_clear(&k.c);
	CHECK(n.inbox->count == 1);

	/* Handled: it leaves the inbox at once, its file only after what
	 * the handling sent is durable. */
	e = TAILQ_FIRST(&n.inbox->entries);
	inbox_done(&n, e);
	CHECK(n.inbox->count == 0);
	CHECK(count_files("inbox") == 1);
	CHECK(fixture_loop(n.base, idle, NULL, 10));
	CHECK(count_files("inbox") == 0);
}

static void
outbox(const char *peer)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;
	int want;

	/* Delivered: durable first, gone once acknowledged. */
	event_begin(NULL, &j, b, "test.done", "db", "20261121T194108.123Z");
	json_obj_close(&j);
	outbox_send(&n, peer, "test.done", b);
	CHECK(n.outbox->count == 0); /* not before it is durable */
	CHECK(fixture_loop(n.base, outbox_empty, NULL, 10));
	CHECK(peer_got == 1 && n.events_out == 1);
	CHECK_CONTAINS(peer_body, "\"type\":\"test.done\"");
	CHECK(count_files("outbox") == 0);

	/* Not acknowledged: kept, on disk, retried by the rule. */
	peer_code = PROTO_UNAVAILABLE;
	outbox_send(&n, peer, "test.done", b);
	want = 1;
	CHECK(fixture_loop(n.base, outbox_tried, &want, 10));
	CHECK(n.outbox->count == 1 && count_files("outbox") == 1);
	CHECK(TAILQ_FIRST(&n.outbox->entries)->next_try - time(NULL) <=
	    proto_retry_delay(1, PROTO_RETRY_EVENT_SECS, PROTO_RETRY_MAX_SECS));
	CHECK_CONTAINS(TAILQ_FIRST(&n.outbox->entries)->last_error,
	    "the peer says 503");
	want = 2;
	CHECK(fixture_loop(n.base, outbox_tried, &want, 10));
	CHECK(peer_got == 3);
	/* Then acknowledged. */
	peer_code = PROTO_OK;
	CHECK(fixture_loop(n.base, outbox_empty, NULL, 10));
	CHECK(peer_got == 4 && count_files("outbox") == 0);

	/* Refused for good: dropped, the role told. */
	peer_code = PROTO_REFUSED;
	outbox_send(&n, peer, "test.done", b);
	CHECK(fixture_loop(n.base, outbox_empty, NULL, 10));
	CHECK(refusals == 1 && peer_got == 5);
	CHECK_CONTAINS(refused_why, "the peer says 409");

	/* A peer that does not answer: kept, with the reason. */
	outbox_send(&n, "http://127.0.0.1:1", "test.done", b);
	want = 1;
	CHECK(fixture_loop(n.base, outbox_tried, &want, 10));
	CHECK(TAILQ_FIRST(&n.outbox->entries)->last_error != NULL);
	evbuffer_free(b);
}

#if UNDERSTUDY_FAULTS
static int
kept_a_while(void *arg)
{
	return n.again_secs >= 2 && n.again != NULL;
}

static size_t outbox_before;

static int
delivered_late(void *arg)
{
	return peer_got > *(int *)arg && n.again == NULL && idle(NULL) &&
	    n.outbox->count == outbox_before;
}

/* A report that cannot be queued (the disk is full) is kept, and with it
 * the file of the event whose handling sent it; tried again until it is
 * queued; nothing written after it overtakes it. */
static void
full_disk(const char *url, const char *peer)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;
	struct call k;
	char a[4300];
	size_t before = outbox_before = n.outbox->count;
	int got = peer_got;

	peer_code = PROTO_OK;
	post_event(&k, url,
	    "{\"proto\":1,\"type\":\"test.ready\",\"source\":\"db\","
	    "\"version\":\"20261121T194108.124Z\"}");
	CHECK(fixture_loop(n.base, call_finished, &k, 10));
	CHECK(k.c.status == PROTO_OK);
	http_call_clear(&k.c);
	CHECK(count_files("inbox") == 1);

	setenv("UNDERSTUDY_FAULT", "enospc:atomic-write", 1);
	event_begin(NULL, &j, b, "test.failed", "db", "20261121T194108.124Z");
	json_obj_close(&j);
	outbox_send(&n, peer, "test.full", b);
	inbox_done(&n, TAILQ_FIRST(&n.inbox->entries));
	CHECK(fixture_loop(n.base, kept_a_while, NULL, 10));
	CHECK(n.outbox->count == before && count_files("inbox") == 1);
	/* Written after it: waits behind it. */
	snprintf(a, sizeof a, "%s/after.json", dir);
	durable_write(&n, a, "after", 5);
	event_base_loop(n.base, EVLOOP_NONBLOCK);
	CHECK(!fs_exists(a));

	unsetenv("UNDERSTUDY_FAULT");
	CHECK(fixture_loop(n.base, delivered_late, &got, 20));
	CHECK(peer_got == got + 1);
	CHECK_CONTAINS(peer_body, "\"type\":\"test.failed\"");
	CHECK(count_files("inbox") == 0);
	CHECK(fs_exists(a));
	CHECK(n.outbox->count == before);
	evbuffer_free(b);
}
#endif

/* At exit, what is not yet durable is written; an event received and not
 * yet written is not (its sender sends it again). */
static void
at_exit(void)
{
	char a[4300];

	snprintf(a, sizeof a, "%s/at-exit.json", dir);
	durable_write(&n, a, "late", 4);
	n.stopping = 1;
	durable_flush(&n);
	CHECK(fs_exists(a));
}

int
main(void)
{
	struct config *cf;
	struct evhttp *peer;
	char yaml[8192], err[1024], *url, purl[64];
	struct queue *q;
	int port = fixture_port(), pport = fixture_port();

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	snprintf(qdir, sizeof qdir, "%s/queue", dir);
	snprintf(yaml, sizeof yaml,
	    "listen: 127.0.0.1:%d\narchive_dir: %s/a\nsources:\n  db:\n    "
	    "exporter: http://127.0.0.1:9\n    importers: []\n",
	    port, dir);
	cf = fixture_config(dir, ROLE_PULLBACKUP, yaml);
	CHECK(node_init(&n, cf, &ops, NULL, qdir, err, sizeof err) == 0);
	peer = evhttp_new(n.base);
	while (evhttp_bind_socket(peer, "127.0.0.1", (ev_uint16_t)pport) != 0)
		pport = fixture_port();
	evhttp_set_gencb(peer, peer_cb, NULL);
	snprintf(purl, sizeof purl, "http://127.0.0.1:%d", pport);
	url = xasprintf("http://127.0.0.1:%d", port);

	state_files();
	inbox(url);
	outbox(purl);
#if UNDERSTUDY_FAULTS
	full_disk(url, purl);
#endif
	at_exit();

	/* What the outbox held survives: a queue opened again has it. */
	snprintf(yaml, sizeof yaml, "%s/outbox", qdir);
	q = queue_open(yaml, err, sizeof err);
	CHECK(q != NULL && q->count == 1);
	queue_close(q);

	free(url);
	evhttp_free(peer);
	evhttp_free(n.http);
	n.http = NULL;
	/* Connections closed are freed by the loop, later. */
	{
		struct timeval tv = { 0, 200000 };
		event_base_loopexit(n.base, &tv);
		event_base_dispatch(n.base);
	}
	node_free(&n);
	config_free(cf);
	fs_rm_rf(dir);
	return unit_done();
}
