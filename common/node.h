/* A running daemon of any role: its event loop, HTTP server, worker pools,
 * and the two durable queues of the event protocol.  The parts, a file
 * each:
 *
 *   node.c     start-up, the loop, SIGHUP reload, shut-down
 *   router.c   every request: parsed once (proto_parse), checked, routed
 *   event.c    the envelope of an event: built, parsed, checked
 *   inbox.c    events from peers: acknowledged only once on disk, then
 *              handed to the role in order
 *   outbox.c   the role's events to peers, retried with backoff until each
 *              is acknowledged
 *   durable.c  the commit thread: what must be on disk (events received and
 *              sent, state files), written off the loop, in order
 *   monitor.c  status, /health, /metrics, /feed, the loop's own lag
 *
 * A role (exporter, pull-backup, importer) fills a node_ops table. */
#ifndef UNDERSTUDY_NODE_H
#define UNDERSTUDY_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "runlog.h"
#include "serve.h"

struct config;
struct doc;
struct evbuffer;
struct event;
struct event_base;
struct evdns_base;
struct gate;
struct evhttp;
struct evhttp_request;
struct json;
struct proto_req;
struct qentry;
struct queue;
struct runner;
struct worker_pool;

struct node;
struct gen;
struct gen_start;

#define NODE_QUEUE 200    /* queue it */
#define NODE_ACK_ONLY 208 /* acknowledge, nothing to do */

struct node_ops {
	/* An event passed the common checks (proto, type, source, version);
	 * say what to do with it: NODE_QUEUE under *key, NODE_ACK_ONLY, or an
	 * HTTP error code with a reason. */
	int (*accept)(struct node *, const struct doc *ev, char *key,
	    size_t keylen, char *why, size_t whylen);
	/* The inbox may have work; NULL: the node kicks its runners. */
	void (*kick)(struct node *);
	/* Routes of the role under /v1/, after the secret was checked;
	 * return 0 if the route was handled. */
	int (*route)(struct node *, struct evhttp_request *,
	    const struct proto_req *);
	/* Add the role's part to the status document. */
	void (*status)(struct node *, struct json *);
	/* A peer refused an event for good (409: e.g. a promoted importer);
	 * the event is dropped after this. */
	void (*refused)(struct node *, const struct qentry *, const char *why);
	/* A newer generation of a source seen (generation.h); NULL: it is
	 * taken as the source's own. */
	void (*newer_generation)(struct node *, struct gen *,
	    const struct gen_start *);
	/* An attempt to deliver an outbox event: status 200 (why NULL) when
	 * delivered, else the peer's status (0: no answer) and why; it is
	 * retried.  May be NULL. */
	void (*delivery)(struct node *, struct qentry *, int status,
	    const char *why);
	/* Monitoring.  health(): 0 when every source has data younger than
	 * max_age, else -1 with one line saying which and why; with *warn
	 * set when fresh but the last run failed; max_lag (0: none asked)
	 * bounds the lag from an export to its import, where the role knows
	 * it; NULL: the node asks its runners.  metrics(): the role's Prometheus families (metrics.h),
	 * after the runners'. */
	int (*health)(struct node *, int64_t max_age, int64_t max_lag,
	    int *warn, char *why, size_t whylen);
	void (*metrics)(struct node *, struct evbuffer *);
	/* The HTML pages (GET / and the role's forms), after the pages
	 * policy was checked; return 0 if the path was handled.  May be
	 * NULL. */
	int (*page)(struct node *, struct evhttp_request *, const char *path);
	/* SIGHUP: take the new configuration (already checked to need no
	 * restart): point the role's pointers into it.  The runners take
	 * their sources' new settings themselves.  May be NULL. */
	void (*reload)(struct node *, struct config *cf);
	/* The version server's lookup, for the roles that serve. */
	serve_lookup_fn lookup;
};

struct durable_item;

struct node {
	struct config *cf;
	const struct node_ops *ops;
	void *role;
	struct event_base *base;
	struct evdns_base *dns; /* peers' names, resolved off the loop */
	struct evhttp *http;
	struct gate *gate;          /* under every connection (gate.h) */
	struct worker_pool *cpu;    /* short jobs: deltas */
	struct worker_pool *runs;   /* long jobs: syncs, hooks, commits */
	struct worker_pool *commit; /* one thread: what must be durable */
	/* Writes not yet durable: the ones waiting, and the batch the
	 * commit thread is writing (durable.c). */
	struct durable_item *waiting, **waiting_tail, *writing;
	int written; /* the commit thread is done with it */
	/* Events that could not be queued (a full disk), with the handled
	 * entries of their batch: tried again after again_secs. */
	struct durable_item *again;
	struct event *again_ev;
	int again_secs;
	struct queue *inbox, *outbox;
	struct event *outbox_timer, *kick_ev, *hup_ev, *commit_ev;
	/* Configurations replaced by a reload: jobs on workers may still
	 * read them, so they live until node_free(). */
	struct config **retired;
	size_t nretired;
	struct serve serve;
	struct runner **runners; /* the sources' job engines */
	size_t nrunners;
	struct gen **gens; /* the sources' generations (generation.h) */
	size_t ngens;
	struct runlog runs_log; /* for /feed */
	time_t started;
	int stopping;
	unsigned long long events_in, events_out;
	/* How late the loop ran a timer due every MONITOR_TICK_MS: the
	 * longest, and how many times by more than 100 ms (monitor.c). */
	struct event *lag_ev;
	int64_t lag_due_ms; /* monotonic */
	double lag_max;
	unsigned long long lag_stalls;
};

/* node.c */
int node_init(struct node *, struct config *, const struct node_ops *,
    void *role, const char *queue_dir, char *err, size_t errlen);
int node_run(struct node *);
/* After the role has let go of its sources: frees the configurations
 * that reloads loaded. */
void node_free(struct node *);
void node_kick(struct node *);
/* A source's runner, added by runner_init(): the node kicks it, reloads
 * it, and asks it for health and metrics. */
void node_add_runner(struct node *, struct runner *);
/* Remove a tree nothing needs any more (a replaced copy, already renamed
 * to a name of its own) on a worker, after what is reported now: start-up
 * removes what a stop left.  Takes path. */
void node_discard_tree(struct node *, char *path);
/* Record a finished run for /feed. */
void node_record(struct node *, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output);

/* event.c */
/* Start an event body: {"proto":1,"type":T,"source":S,"version":V, and
 * the source's generation here (generation.h) when n knows it. */
void event_begin(struct node *, struct json *, struct evbuffer *,
    const char *type, const char *source, const char *version);
/* Send a report (backup.archived, import.done) on the event of version
 * that named us from: ok, or not with error. */
void event_report(struct node *, const char *dest, const char *type,
    const char *source, const char *version, const char *from, int ok,
    const char *error);
/* The checks every event passes: 0, or an HTTP status with a reason. */
int event_check(const struct doc *, char *why, size_t whylen);
/* Parse a queued event's body; NULL if damaged.  event_parse() parses
 * it again, for the caller to free; event_doc() parses it once and keeps
 * it with the entry, which owns it. */
struct doc *event_parse(const struct qentry *);
const struct doc *event_doc(struct qentry *);

/* inbox.c */
void inbox_receive(struct node *, struct evhttp_request *);
/* {"proto":1,"queued":Q[,"note":NOTE]} */
void inbox_reply_queued(struct evhttp_request *, int queued, const char *note);
/* An inbox entry was handled: it leaves the inbox now, and its file goes
 * once what was queued before (the events its handling sent) is durable.
 * A crash in between handles it again. */
void inbox_done(struct node *, struct qentry *);
/* Is there a queued entry with key whose version is newer than version? */
int inbox_has_newer(struct node *, const char *key, const char *version);

/* outbox.c */
/* Queue an event for dest.  body is a complete event (see event_begin).
 * It is written by the commit thread and delivered once durable. */
void outbox_send(struct node *, const char *dest, const char *key,
    struct evbuffer *body);
void outbox_init(struct node *);
void outbox_pump(struct node *);

/* durable.c */
/* Replace a state file atomically, or remove one, on the commit thread,
 * in order with the events sent.  Only the daemon may read it back
 * meanwhile, from memory, not from the file.  With durable_write_then(),
 * done(arg, rc) runs on the loop once the file is durable (rc 0) or could
 * not be written (-1, errno in the log). */
void durable_write(struct node *, const char *path, const void *data,
    size_t len);
void durable_write_then(struct node *, const char *path, const void *data,
    size_t len, void (*done)(void *arg, int rc), void *arg);
/* The same for a small state file that must survive a full disk (the last
 * result promotion looks at): then written over the old copy, which the
 * caller keeps as long as any new one (padded with blanks). */
void durable_write_in_place(struct node *, const char *path, const void *data,
    size_t len);
void durable_remove(struct node *, const char *path);
/* Append to a file, unsynced, in order with the rest (the run history). */
void durable_append(struct node *, const char *path, const void *data,
    size_t len);
/* For inbox.c and outbox.c: an event received (answered once durable),
 * one to send, one handled (its file goes once the batch is durable). */
void durable_received(struct node *, struct evhttp_request *, struct qentry *);
void durable_send(struct node *, struct qentry *);
void durable_handled(struct node *, struct qentry *);
void durable_init(struct node *);
/* At exit, once the commit thread has stopped: what the role asked is
 * written now; events received and not yet written are not
 * acknowledged, and their senders send them again. */
void durable_flush(struct node *);

/* router.c */
void router_request(struct evhttp_request *, void *node);

/* monitor.c */
void monitor_status(struct node *, struct evhttp_request *);
void monitor_health(struct node *, struct evhttp_request *,
    const struct proto_req *);
void monitor_metrics(struct node *, struct evhttp_request *);
void monitor_feed(struct node *, struct evhttp_request *);
void monitor_lag_start(struct node *);

#endif
