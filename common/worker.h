/* A small pool of threads for work that must not block the event loop:
 * hashing, librsync jobs, compression, whole sync runs and hooks.  A job's
 * work() runs on a pool thread; its done() runs afterwards on the loop. */
#ifndef UNDERSTUDY_WORKER_H
#define UNDERSTUDY_WORKER_H

struct event_base;
struct worker_pool;

typedef void (*worker_fn)(void *arg);

struct worker_pool *worker_pool_new(struct event_base *, int nthreads);
void worker_submit(struct worker_pool *, worker_fn work, worker_fn done,
    void *arg);
/* Jobs not started are dropped (their done() is not called); running ones
 * are waited for, and their done() is not called either when the loop
 * stopped before running it: what a job leaves for done() is then its
 * owner's to free.  Long jobs poll worker_stopping() to end early. */
void worker_pool_free(struct worker_pool *);
int worker_stopping(void);
void worker_request_stop(void);

#endif
