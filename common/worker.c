#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"
#include "xmalloc.h"

struct wjob {
	TAILQ_ENTRY(wjob) link;
	worker_fn work, done;
	void *arg;
	struct event *ev;
	struct worker_pool *wp;
};

struct worker_pool {
	struct event_base *base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	TAILQ_HEAD(, wjob) jobs;
	/* Taken by a thread, their done callback not yet run: freed with
	 * the pool when the loop stopped first. */
	TAILQ_HEAD(, wjob) inflight;
	pthread_t *threads;
	int nthreads;
	int quit;
};

static atomic_int stopping;

int
worker_stopping(void)
{
	return atomic_load(&stopping);
}

void
worker_request_stop(void)
{
	atomic_store(&stopping, 1);
}

static void
wjob_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wjob *j = arg;
	struct worker_pool *wp = j->wp;

	pthread_mutex_lock(&wp->mu);
	TAILQ_REMOVE(&wp->inflight, j, link);
	pthread_mutex_unlock(&wp->mu);
	event_free(j->ev);
	if (j->done != NULL)
		j->done(j->arg);
	free(j);
}

static void *
worker_main(void *arg)
{
	struct worker_pool *wp = arg;
	struct wjob *j;

	for (;;) {
		pthread_mutex_lock(&wp->mu);
		while (!wp->quit && TAILQ_EMPTY(&wp->jobs))
			pthread_cond_wait(&wp->cv, &wp->mu);
		if (wp->quit) {
			pthread_mutex_unlock(&wp->mu);
			return NULL;
		}
		j = TAILQ_FIRST(&wp->jobs);
		TAILQ_REMOVE(&wp->jobs, j, link);
		TAILQ_INSERT_TAIL(&wp->inflight, j, link);
		pthread_mutex_unlock(&wp->mu);
		j->work(j->arg);
		event_active(j->ev, EV_READ, 0);
	}
}

struct worker_pool *
worker_pool_new(struct event_base *base, int nthreads)
{
	struct worker_pool *wp = xcalloc(1, sizeof *wp);
	int i;

	wp->base = base;
	pthread_mutex_init(&wp->mu, NULL);
	pthread_cond_init(&wp->cv, NULL);
	TAILQ_INIT(&wp->jobs);
	TAILQ_INIT(&wp->inflight);
	wp->nthreads = nthreads;
	wp->threads = xcalloc((size_t)nthreads, sizeof *wp->threads);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&wp->threads[i], NULL, worker_main, wp) != 0)
			fatalx("worker_pool_new: cannot start a thread");
	}
	return wp;
}

void
worker_submit(struct worker_pool *wp, worker_fn work, worker_fn done, void *arg)
{
	struct wjob *j = xcalloc(1, sizeof *j);

	j->work = work;
	j->done = done;
	j->arg = arg;
	j->wp = wp;
	j->ev = event_new(wp->base, -1, 0, wjob_done_cb, j);
	pthread_mutex_lock(&wp->mu);
	TAILQ_INSERT_TAIL(&wp->jobs, j, link);
	pthread_cond_signal(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
}

void
worker_pool_free(struct worker_pool *wp)
{
	struct wjob *j;
	int i;

	if (wp == NULL)
		return;
	pthread_mutex_lock(&wp->mu);
	wp->quit = 1;
	while ((j = TAILQ_FIRST(&wp->jobs)) != NULL) {
		TAILQ_REMOVE(&wp->jobs, j, link);
		event_free(j->ev);
		free(j);
	}
	pthread_cond_broadcast(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
	for (i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	/* Jobs whose done callback the stopped loop will never run: what
	 * they made is the role's to free. */
	while ((j = TAILQ_FIRST(&wp->inflight)) != NULL) {
		TAILQ_REMOVE(&wp->inflight, j, link);
		event_free(j->ev);
		free(j);
	}
	free(wp->threads);
	free(wp);
}
