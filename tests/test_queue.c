#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "queue.h"
#include "unit.h"

static size_t
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, l = strlen(suffix);

	while (d != NULL && (de = readdir(d)) != NULL) {
		size_t dl = strlen(de->d_name);
		if (dl >= l && strcmp(de->d_name + dl - l, suffix) == 0)
			n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

int
main(void)
{
	char top[4096], dir[4200], err[512], p[4400];
	struct queue *q;
	struct qentry *e, *a, *b, *c;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(top, sizeof top, "%s", unit_tmpdir());
	snprintf(dir, sizeof dir, "%s/q", top);
	q = queue_open(dir, err, sizeof err);
	CHECK(q != NULL && q->count == 0);
	a = queue_push(q, "k1", "http://h:1", "{\"n\":1}", 7, err, sizeof err);
	b = queue_push(q, "k2", "", "{\"n\":2}", 7, err, sizeof err);
	c = queue_push(q, "k3", "http://h:3", "{\"n\":3}", 7, err, sizeof err);
	CHECK(a != NULL && b != NULL && c != NULL);
	CHECK(q->count == 3);
	CHECK(count_files(dir, ".ev") == 3);
	queue_close(q);

	/* Durable across a restart, in order, with keys and destinations. */
	q = queue_open(dir, err, sizeof err);
	CHECK(q != NULL && q->count == 3);
	e = TAILQ_FIRST(&q->entries);
	CHECK(e != NULL && strcmp(e->key, "k1") == 0 &&
	    strcmp(e->dest, "http://h:1") == 0 &&
	    strcmp(e->body, "{\"n\":1}") == 0);
	e = TAILQ_NEXT(e, link);
	CHECK(e != NULL && strcmp(e->key, "k2") == 0 && e->dest[0] == '\0');
	e = TAILQ_NEXT(e, link);
	CHECK(e != NULL && strcmp(e->key, "k3") == 0);

	/* Removal is durable too. */
	queue_remove(q, TAILQ_FIRST(&q->entries));
	CHECK(q->count == 2);
	queue_close(q);
	q = queue_open(dir, err, sizeof err);
	CHECK(
	    q->count == 2 && strcmp(TAILQ_FIRST(&q->entries)->key, "k2") == 0);

	/* A newer event of the same key supersedes the waiting one, and a
	 * busy one is only marked. */
	e = TAILQ_FIRST(&q->entries);
	e->busy = 1;
	CHECK(queue_push(q, "k2", "", "{\"n\":4}", 7, err, sizeof err));
	CHECK(e->superseded == 1);
	CHECK(q->count == 3);
	CHECK(
	    queue_push(q, "k3", "http://h:3", "{\"n\":5}", 7, err, sizeof err));
	CHECK(q->count == 3);
	queue_close(q);
	q = queue_open(dir, err, sizeof err);
	CHECK(q->count == 3);
	e = TAILQ_LAST(&q->entries, qlist);
	CHECK(e != NULL && strcmp(e->body, "{\"n\":5}") == 0);

	/* New sequence numbers continue after a restart. */
	CHECK(queue_push(q, "k9", "", "{}", 2, err, sizeof err));
	e = TAILQ_LAST(&q->entries, qlist);
	CHECK(e->seq > TAILQ_PREV(e, qlist, link)->seq);
	queue_close(q);

	/* A half-written temporary is dropped; a damaged event is kept
	 * aside, never deleted. */
	snprintf(p, sizeof p, "%s/00000000000000000099.ev.tmp.123", dir);
	unit_write(p, "partial");
	snprintf(p, sizeof p, "%s/00000000000000000098.ev", dir);
	unit_write(p, "not a queue file");
	q = queue_open(dir, err, sizeof err);
	CHECK(q != NULL && q->count == 4);
	CHECK(count_files(dir, ".damaged") == 1);
	CHECK(count_files(dir, ".123") == 0);
	queue_close(q);

	/* Bad input to push. */
	q = queue_open(dir, err, sizeof err);
	CHECK(queue_push(q, "bad\nkey", "", "{}", 2, err, sizeof err) == NULL);
	CHECK(
	    queue_prepare(q, "bad\nkey", "", "{}", 2, err, sizeof err) == NULL);
	queue_close(q);

	/* In steps, as the daemons receive events: prepared entries are
	 * numbered in order; stored, they are on disk but not in the queue
	 * until inserted; inserting one supersedes the older of its key;
	 * an entry not stored leaves nothing. */
	q = queue_open(dir, err, sizeof err);
	CHECK(q != NULL && q->count == 4);
	{
		struct qentry *x, *y, *z;
		size_t before = count_files(dir, ".ev");
		x = queue_prepare(q, "k9", "", "{\"n\":6}", 7, err, sizeof err);
		y = queue_prepare(q, "k10", "", "{\"n\":7}", 7, err,
		    sizeof err);
		z = queue_prepare(q, "k11", "", "{\"n\":8}", 7, err,
		    sizeof err);
		CHECK(x != NULL && y != NULL && z != NULL);
		CHECK(x->seq < y->seq && y->seq < z->seq);
		CHECK(queue_store(x) == 0 && queue_store(y) == 0);
		CHECK(queue_sync(q) == 0);
		CHECK(q->count == 4);
		CHECK(count_files(dir, ".ev") == before + 2);
		queue_insert(q, x);
		queue_insert(q, y);
		queue_discard(z);
		CHECK(q->count == 5); /* x took k9's place */
		CHECK(count_files(dir, ".ev") == before + 1);
		e = TAILQ_LAST(&q->entries, qlist);
		CHECK(e == y);
	}
	queue_close(q);
	q = queue_open(dir, err, sizeof err);
	CHECK(q != NULL && q->count == 5);
	e = q != NULL ? TAILQ_LAST(&q->entries, qlist) : NULL;
	CHECK(e != NULL && strcmp(e->body, "{\"n\":7}") == 0);

	/* Stored late (tried again after a full disk): inserted in the
	 * order prepared, and superseded at once by a newer one of its
	 * key already there. */
	{
		struct qentry *x, *y, *z;
		size_t before = count_files(dir, ".ev"), count = q->count;
		x = queue_prepare(q, "late", "", "{\"n\":9}", 7, err,
		    sizeof err);
		y = queue_prepare(q, "other", "", "{\"n\":10}", 8, err,
		    sizeof err);
		z = queue_prepare(q, "late", "", "{\"n\":11}", 8, err,
		    sizeof err);
		CHECK(queue_store(y) == 0 && queue_store(z) == 0);
		queue_insert(q, y);
		queue_insert(q, z);
		CHECK(queue_store(x) == 0);
		queue_insert(q, x);
		CHECK(q->count == count + 2);
		CHECK(count_files(dir, ".ev") == before + 2);
		CHECK(TAILQ_LAST(&q->entries, qlist) == z);
		CHECK(TAILQ_PREV(z, qlist, link) == y);
		x = queue_prepare(q, "third", "", "{}", 2, err, sizeof err);
		y = queue_prepare(q, "fourth", "", "{}", 2, err, sizeof err);
		CHECK(queue_store(y) == 0 && queue_store(x) == 0);
		queue_insert(q, y);
		queue_insert(q, x);
		CHECK(TAILQ_LAST(&q->entries, qlist) == y);
		CHECK(TAILQ_PREV(y, qlist, link) == x);
		CHECK(TAILQ_PREV(x, qlist, link) == z);
	}
	queue_close(q);
	fs_rm_rf(top);
	return unit_done();
}
