/* A source's runner: handles that source's inbox events one at a time, in
 * order.  Quick events are handled inline; one that needs a long job (a
 * pull, an import) starts it on a worker, and the runner waits for it.  A
 * failed job is retried with backoff (5 s, 10 s, ...) up to a number of
 * attempts, unless the role says retrying is pointless.  Used by the
 * pull-backup and the importer. */
#ifndef UNDERSTUDY_RUNNER_H
#define UNDERSTUDY_RUNNER_H

#include <time.h>

struct doc;
struct event;
struct node;
struct qentry;
struct runner;

enum runner_verdict {
	RUNNER_HANDLED,		/* done inline: the event goes */
	RUNNER_JOB,		/* needs a job: the runner calls start() */
};

enum runner_outcome {
	RUNNER_OK,		/* the job succeeded; the event went */
	RUNNER_GAVE_UP,		/* it failed for good; the event went */
	RUNNER_RETRY,		/* it failed; the event stays for later */
};

struct runner_ops {
	/* Look at the next event of this source. */
	enum runner_verdict (*handle)(struct runner *, const struct doc *ev);
	/* Start the job for ev on a worker; its done callback must call
	 * runner_done(). */
	void (*start)(struct runner *, const struct doc *ev);
};

struct runner {
	struct node *node;
	const char *source;
	const struct runner_ops *ops;
	void *arg;
	int max_attempts;
	/* State. */
	int busy;
	struct qentry *entry;
	int attempts;
	time_t next_try;
	struct event *retry_ev;
};

void runner_init(struct runner *, struct node *, const char *source,
    const struct runner_ops *, void *arg, int max_attempts);
void runner_free(struct runner *);
void runner_kick(struct runner *);
/* From the job's done callback: ok, or failed and final (no point in
 * retrying).  Say what happened to the event; then call runner_kick. */
enum runner_outcome runner_done(struct runner *, int ok, int final);

#endif
