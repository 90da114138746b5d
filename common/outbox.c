/* The outbox: the role's events to peers.  outbox_send() hands an event to
 * the commit thread; once its file is durable it joins the outbox and is
 * POSTed to its peer, one attempt at a time per event, until the peer
 * acknowledges it (200) or refuses it for good (409).  Anything else is
 * retried by the one retry rule (proto.h), for ever. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "doc.h"
#include "generation.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "xmalloc.h"

struct delivery {
	struct node *n;
	struct qentry *e;
	struct http_call call;
};

/* A refusal that names a newer generation of the event's source: the
 * peer saw a promotion this node had not. */
static void
learn_generation(struct node *n, struct qentry *e, const struct http_call *c)
{
	const struct doc *ev = event_doc(e);
	struct doc *r = NULL;
	struct gen_start s;
	struct gen *g;
	char err[128];
	size_t len = evbuffer_get_length(c->reply);

	if (ev == NULL ||
	    (g = gen_find(n, doc_get_str(ev, EVF_SOURCE))) == NULL ||
	    len == 0 ||
	    doc_parse((const char *)evbuffer_pullup(c->reply, -1), len, &r, err,
		sizeof err) != 0)
		return;
	if (gen_parse(r, &s, err, sizeof err) > g->cur.n)
		gen_seen(n, g, &s);
	gen_start_clear(&s);
	doc_free(r);
}

static void
delivered(struct http_call *c, void *arg)
{
	struct delivery *s = arg;
	struct qentry *e = s->e;
	struct node *n = s->n;
	char why[1024];
	int delay;

	/* The entry stays busy until it is removed or rescheduled: what the
	 * role does below may pump the outbox again. */
	if (c->status == PROTO_OK) {
		log_debugf("delivered %s to %s", e->key, e->dest);
		n->events_out++;
		if (n->ops->delivery != NULL)
			n->ops->delivery(n, e, c->status, NULL);
		queue_remove(n->outbox, e);
	} else if (c->status == PROTO_REFUSED) {
		/* Refused for good: retrying would not change the answer. */
		http_call_describe(c, why, sizeof why);
		log_warnx("event %s refused by %s: %s", e->key, e->dest, why);
		learn_generation(n, e, c);
		if (n->ops->refused != NULL)
			n->ops->refused(n, e, why);
		queue_remove(n->outbox, e);
	} else {
		e->busy = 0;
		http_call_describe(c, why, sizeof why);
		e->attempts++;
		delay = proto_retry_delay(e->attempts, PROTO_RETRY_EVENT_SECS,
		    PROTO_RETRY_MAX_SECS);
		e->next_try = time(NULL) + delay;
		if (e->last_error == NULL || strcmp(e->last_error, why) != 0 ||
		    e->attempts % 10 == 0)
			log_warnx("event %s to %s not delivered (attempt %d, "
				  "next in %ds): %s",
			    e->key, e->dest, e->attempts, delay, why);
		queue_set_error(e, why);
		if (n->ops->delivery != NULL)
			n->ops->delivery(n, e, c->status, why);
		if (e->superseded)
			queue_remove(n->outbox, e);
	}
	http_call_clear(c);
	free(s);
	if (!n->stopping)
		outbox_pump(n);
}

static void
outbox_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	outbox_pump(arg);
}

void
outbox_init(struct node *n)
{
	n->outbox_timer = evtimer_new(n->base, outbox_timer_cb, n);
}

void
outbox_pump(struct node *n)
{
	struct qentry *e;
	struct delivery *s;
	time_t now = time(NULL), next = 0;
	struct timeval tv;

	TAILQ_FOREACH(e, &n->outbox->entries, link) {
		if (e->busy)
			continue;
		if (e->next_try > now) {
			if (next == 0 || e->next_try < next)
				next = e->next_try;
			continue;
		}
		s = xcalloc(1, sizeof *s);
		s->n = n;
		s->e = e;
		e->busy = 1;
		http_call_init(&s->call, "POST", e->dest, ROUTE_EVENTS,
		    n->cf->token, n->cf->token_len);
		s->call.body = evbuffer_new();
		evbuffer_add(s->call.body, e->body, e->len);
		s->call.content_type = PROTO_CT_JSON;
		s->call.timeout = PROTO_EVENT_TIMEOUT_SECS;
		http_call_async(n->base, n->dns, &s->call, delivered, s);
	}
	if (next != 0) {
		tv.tv_sec = next - now;
		tv.tv_usec = 0;
		evtimer_add(n->outbox_timer, &tv);
	}
}

void
outbox_send(struct node *n, const char *dest, const char *key,
    struct evbuffer *body)
{
	char err[512], *k = xasprintf("%s %s", dest, key);
	struct qentry *e;

	e = queue_prepare(n->outbox, k, dest,
	    (const char *)evbuffer_pullup(body, -1), evbuffer_get_length(body),
	    err, sizeof err);
	free(k);
	if (e == NULL) {
		log_warnx("cannot queue an event for %s: %s", dest, err);
		return;
	}
	durable_send(n, e);
}
