/* A running daemon of any role: its event loop, HTTP server, worker pools,
 * and the two durable queues of the event protocol.  The inbox takes
 * events from peers (acknowledged only once on disk) and hands them to the
 * role in order; the outbox delivers the role's events to peers, retrying
 * with capped exponential backoff until each is acknowledged. */
#ifndef UNDERSTUDY_NODE_H
#define UNDERSTUDY_NODE_H

#include <stddef.h>
#include <time.h>

#include "runlog.h"
#include "serve.h"

struct config;
struct doc;
struct evbuffer;
struct event;
struct event_base;
struct evhttp;
struct evhttp_request;
struct json;
struct qentry;
struct queue;
struct worker_pool;

struct node;

#define NODE_QUEUE 200		/* queue it */
#define NODE_ACK_ONLY 208	/* acknowledge, nothing to do */

struct node_ops {
	/* An event passed the common checks (proto, type, source, version);
	 * say what to do with it: NODE_QUEUE under *key, NODE_ACK_ONLY, or an
	 * HTTP error code with a reason. */
	int (*accept)(struct node *, const struct doc *ev, char *key,
	    size_t keylen, char *why, size_t whylen);
	/* The inbox may have work. */
	void (*kick)(struct node *);
	/* Routes of the role, after the secret was checked; return 0 if the
	 * route was handled. */
	int (*route)(struct node *, struct evhttp_request *, const char *path);
	/* Add the role's part to the status document. */
	void (*status)(struct node *, struct json *);
	/* A peer refused an event for good (409: e.g. a promoted importer);
	 * the event is dropped after this. */
	void (*refused)(struct node *, const struct qentry *, const char *why);
	/* Monitoring.  health(): 0 when every source has data younger than
	 * max_age, else -1 with one line saying which and why; with *warn
	 * set when fresh but the last run failed.  metrics(): the role's
	 * Prometheus lines. */
	int (*health)(struct node *, int64_t max_age, int *warn, char *why,
	    size_t whylen);
	void (*metrics)(struct node *, struct evbuffer *);
	/* The HTML pages (GET / and the role's forms), after the pages
	 * policy was checked; return 0 if the path was handled.  May be
	 * NULL. */
	int (*page)(struct node *, struct evhttp_request *, const char *path);
	/* SIGHUP: take the new configuration (already checked to need no
	 * restart): point the role's pointers into it. */
	void (*reload)(struct node *, struct config *cf);
	/* The version server's lookup, for the roles that serve. */
	serve_lookup_fn lookup;
};

struct pending_event;

struct node {
	struct config *cf;
	const struct node_ops *ops;
	void *role;
	struct event_base *base;
	struct evhttp *http;
	struct worker_pool *cpu;	/* short jobs: deltas */
	struct worker_pool *runs;	/* long jobs: syncs, hooks, commits */
	struct worker_pool *commit;	/* one thread: events made durable */
	/* Events received and not yet durable: the ones waiting, and the
	 * batch being written (see node.c, "Receiving events"). */
	struct pending_event *waiting, **waiting_tail, *writing;
	struct queue *inbox, *outbox;
	struct event *outbox_timer, *kick_ev, *hup_ev;
	/* Configurations replaced by a reload: jobs on workers may still
	 * read them, so they live until node_free(). */
	struct config **retired;
	size_t nretired;
	struct serve serve;
	struct runlog runs_log;		/* for /feed */
	time_t started;
	int stopping;
	unsigned long long events_in, events_out;
};

int node_init(struct node *, struct config *, const struct node_ops *,
    void *role, const char *queue_dir, char *err, size_t errlen);
int node_run(struct node *);
/* After the role has let go of its sources: frees the configurations
 * that reloads loaded. */
void node_free(struct node *);
/* Queue an event for dest.  body is a complete event (see event_begin). */
void node_send(struct node *, const char *dest, const char *key,
    struct evbuffer *body);
void node_kick(struct node *);
/* Start an event body: {"proto":1,"type":T,"source":S,"version":V */
void event_begin(struct json *, struct evbuffer *, const char *type,
    const char *source, const char *version);
/* Parse a queued event's body; NULL if damaged. */
struct doc *event_parse(const struct qentry *);
/* Is there a queued entry with key whose version is newer than version? */
/* Record a finished run for /feed. */
void node_record(struct node *, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output);
int node_inbox_has_newer(struct node *, const char *key, const char *version);

#endif
