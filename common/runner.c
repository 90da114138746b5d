#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "doc.h"
#include "node.h"
#include "queue.h"
#include "runner.h"

#define RUNNER_BACKOFF_SECS 5

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	runner_kick(arg);
}

void
runner_init(struct runner *r, struct node *n, const char *source,
    const struct runner_ops *ops, void *arg, int max_attempts)
{
	memset(r, 0, sizeof *r);
	r->node = n;
	r->source = source;
	r->ops = ops;
	r->arg = arg;
	r->max_attempts = max_attempts;
	r->retry_ev = evtimer_new(n->base, retry_cb, r);
}

void
runner_free(struct runner *r)
{
	if (r->retry_ev != NULL)
		event_free(r->retry_ev);
	r->retry_ev = NULL;
}

void
runner_kick(struct runner *r)
{
	struct node *n = r->node;
	struct qentry *e, *next;
	const struct doc *d;
	const char *source;
	time_t now = time(NULL);
	struct timeval tv;

	if (r->busy || n->stopping)
		return;
	for (e = TAILQ_FIRST(&n->inbox->entries); e != NULL; e = next) {
		next = TAILQ_NEXT(e, link);
		if ((d = event_doc(e)) == NULL) {
			node_inbox_done(n, e);
			continue;
		}
		source = doc_get_str(d, "source");
		if (source == NULL || strcmp(source, r->source) != 0)
			continue;
		if (r->ops->handle(r, d) == RUNNER_HANDLED) {
			node_inbox_done(n, e);
			continue;
		}
		if (r->next_try > now) {
			tv.tv_sec = r->next_try - now;
			tv.tv_usec = 0;
			evtimer_add(r->retry_ev, &tv);
			return;
		}
		r->busy = 1;
		r->entry = e;
		e->busy = 1;
		r->ops->start(r, d);
		return;
	}
}

enum runner_outcome
runner_done(struct runner *r, int ok, int final)
{
	struct node *n = r->node;
	struct qentry *e = r->entry;

	r->busy = 0;
	r->entry = NULL;
	e->busy = 0;
	if (ok || final || e->superseded ||
	    r->attempts + 1 >= r->max_attempts) {
		node_inbox_done(n, e);
		r->attempts = 0;
		r->next_try = 0;
		return ok ? RUNNER_OK : RUNNER_GAVE_UP;
	}
	r->attempts++;
	r->next_try = time(NULL) + (RUNNER_BACKOFF_SECS << (r->attempts - 1));
	return RUNNER_RETRY;
}
