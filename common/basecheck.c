#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "basecheck.h"
#include "fsutil.h"
#include "hashsink.h"
#include "manifest.h"
#include "worker.h"
#include "xmalloc.h"

enum {
	BC_FREE,
	BC_TAKEN,
	BC_OK,
	BC_BAD
};

struct basecheck {
	const struct manifest *m;
	int basefd;
	basecheck_want_fn *want;
	void *arg;
	atomic_uchar *state; /* per entry of m */
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t t;
};

static int
intact(int fd, const struct ment *e)
{
	return hashsink_fd_matches(fd, e) && lseek(fd, 0, SEEK_SET) == 0;
}

static void *
basecheck_run(void *arg)
{
	struct basecheck *bc = arg;
	const struct ment *e, *be;
	unsigned char want;
	size_t i = bc->m->n;
	int fd, ok;

	while (i-- > 0 && !atomic_load(&bc->stop) && !worker_stopping()) {
		e = &bc->m->e[i];
		if ((be = bc->want(bc->arg, e)) == NULL)
			continue;
		want = BC_FREE;
		if (!atomic_compare_exchange_strong(&bc->state[i], &want,
			BC_TAKEN))
			break; /* the sync got here: they met */
		fd = fs_open_beneath(bc->basefd, be->path, O_RDONLY, 0);
		ok = fd >= 0 && intact(fd, e);
		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&bc->mu);
		atomic_store(&bc->state[i], ok ? BC_OK : BC_BAD);
		pthread_cond_broadcast(&bc->cv);
		pthread_mutex_unlock(&bc->mu);
	}
	return NULL;
}

struct basecheck *
basecheck_start(const struct manifest *m, int basefd, basecheck_want_fn *want,
    void *arg)
{
	struct basecheck *bc;

	if (basefd < 0 || m->n < 2)
		return NULL;
	bc = xcalloc(1, sizeof *bc);
	bc->m = m;
	bc->basefd = basefd;
	bc->want = want;
	bc->arg = arg;
	bc->state = xcalloc(m->n, sizeof *bc->state);
	pthread_mutex_init(&bc->mu, NULL);
	pthread_cond_init(&bc->cv, NULL);
	if (pthread_create(&bc->t, NULL, basecheck_run, bc) != 0) {
		pthread_mutex_destroy(&bc->mu);
		pthread_cond_destroy(&bc->cv);
		free(bc->state);
		free(bc);
		return NULL;
	}
	return bc;
}

void
basecheck_stop(struct basecheck *bc)
{
	if (bc == NULL)
		return;
	atomic_store(&bc->stop, 1);
	pthread_join(bc->t, NULL);
	pthread_mutex_destroy(&bc->mu);
	pthread_cond_destroy(&bc->cv);
	free(bc->state);
	free(bc);
}

int
basecheck_file(struct basecheck *bc, const struct ment *e, int bfd)
{
	unsigned char st = BC_FREE;
	size_t i;

	if (bc == NULL || e < bc->m->e || e >= bc->m->e + bc->m->n)
		return intact(bfd, e);
	i = (size_t)(e - bc->m->e);
	if (atomic_compare_exchange_strong(&bc->state[i], &st, BC_TAKEN))
		return intact(bfd, e);
	pthread_mutex_lock(&bc->mu);
	while ((st = atomic_load(&bc->state[i])) == BC_TAKEN)
		pthread_cond_wait(&bc->cv, &bc->mu);
	pthread_mutex_unlock(&bc->mu);
	return st == BC_OK;
}
