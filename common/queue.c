#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "doc.h"
#include "fsutil.h"
#include "log.h"
#include "manifest.h"
#include "queue.h"
#include "xmalloc.h"

#define QUEUE_MAGIC "understudy-queue 1\n"

static void
qentry_free(struct qentry *e)
{
	free(e->key);
	free(e->dest);
	free(e->body);
	free(e->file);
	free(e->last_error);
	doc_free(e->doc);
	free(e);
}

void
queue_set_error(struct qentry *e, const char *msg)
{
	free(e->last_error);
	e->last_error = msg != NULL ? xstrdup(msg) : NULL;
}

static char *
line_field(char **p, char *end, const char *kw)
{
	char *nl, *val;
	size_t kwlen = strlen(kw);

	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL || (size_t)(nl - *p) < kwlen + 1 ||
	    memcmp(*p, kw, kwlen) != 0 || (*p)[kwlen] != ' ')
		return NULL;
	val = xstrndup(*p + kwlen + 1, (size_t)(nl - *p) - kwlen - 1);
	*p = nl + 1;
	return val;
}

static struct qentry *
queue_load_one(struct queue *q, const char *name, uint64_t seq)
{
	struct qentry *e;
	char *path, *buf, *p, *end;
	size_t len;

	path = xasprintf("%s/%s", q->dir, name);
	if (fs_read_file(path, QUEUE_MAX_EVENT + 4096, &buf, &len) != 0) {
		log_warn("queue %s: cannot read %s", q->dir, name);
		free(path);
		return NULL;
	}
	e = xcalloc(1, sizeof *e);
	e->seq = seq;
	e->file = path;
	p = buf;
	end = buf + len;
	if (len < strlen(QUEUE_MAGIC) ||
	    memcmp(buf, QUEUE_MAGIC, strlen(QUEUE_MAGIC)) != 0)
		goto bad;
	p += strlen(QUEUE_MAGIC);
	if ((e->key = line_field(&p, end, "key")) == NULL ||
	    (e->dest = line_field(&p, end, "dest")) == NULL)
		goto bad;
	if (strcmp(e->dest, "-") == 0)
		e->dest[0] = '\0';
	if (p >= end || *p != '\n')
		goto bad;
	p++;
	e->len = (size_t)(end - p);
	e->body = xstrndup(p, e->len);
	free(buf);
	return e;
bad:
	/* Keep the bytes for a human: never delete what we cannot read. */
	log_warnx("queue %s: %s is damaged; moved aside as %s.damaged", q->dir,
	    name, name);
	{
		char *aside = xasprintf("%s.damaged", path);
		rename(path, aside);
		free(aside);
	}
	free(buf);
	qentry_free(e);
	return NULL;
}

static int
seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct queue *
queue_open(const char *dir, char *err, size_t errlen)
{
	struct queue *q;
	DIR *d;
	struct dirent *de;
	uint64_t *seqs = NULL, seq;
	size_t n = 0, i;
	char name[64], *end;
	struct qentry *e;

	if (fs_mkdir_p(dir, 0700) != 0) {
		snprintf(err, errlen, "%s: cannot create: %s", dir,
		    strerror(errno));
		return NULL;
	}
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	q = xcalloc(1, sizeof *q);
	q->dir = xstrdup(dir);
	TAILQ_INIT(&q->entries);
	q->next_seq = 1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (strstr(de->d_name, ".tmp.") != NULL) {
			/* A write that never reached its rename. */
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		errno = 0;
		seq = strtoull(de->d_name, &end, 10);
		if (errno != 0 || strcmp(end, ".ev") != 0 || seq == 0)
			continue;
		seqs = xreallocarray(seqs, n + 1, sizeof *seqs);
		seqs[n++] = seq;
	}
	closedir(d);
	if (n > 0)
		qsort(seqs, n, sizeof *seqs, seq_cmp);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "%020llu.ev",
		    (unsigned long long)seqs[i]);
		if ((e = queue_load_one(q, name, seqs[i])) == NULL)
			continue;
		TAILQ_INSERT_TAIL(&q->entries, e, link);
		q->count++;
		q->next_seq = seqs[i] + 1;
	}
	free(seqs);
	return q;
}

void
queue_close(struct queue *q)
{
	struct qentry *e;

	if (q == NULL)
		return;
	while ((e = TAILQ_FIRST(&q->entries)) != NULL) {
		TAILQ_REMOVE(&q->entries, e, link);
		qentry_free(e);
	}
	free(q->dir);
	free(q);
}

struct qentry *
queue_prepare(struct queue *q, const char *key, const char *dest,
    const char *body, size_t len, char *err, size_t errlen)
{
	struct qentry *e;

	if (len > QUEUE_MAX_EVENT || strchr(key, '\n') != NULL ||
	    strchr(dest, '\n') != NULL) {
		snprintf(err, errlen, "event refused: too large or bad key");
		return NULL;
	}
	e = xcalloc(1, sizeof *e);
	e->seq = q->next_seq++;
	e->key = xstrdup(key);
	e->dest = xstrdup(dest);
	e->body = xstrndup(body, len);
	e->len = len;
	e->file = xasprintf("%s/%020llu.ev", q->dir,
	    (unsigned long long)e->seq);
	return e;
}

int
queue_store(const struct qentry *e)
{
	struct evbuffer *b = evbuffer_new();
	int rc;

	evbuffer_add_printf(b, "%skey %s\ndest %s\n\n", QUEUE_MAGIC, e->key,
	    *e->dest ? e->dest : "-");
	evbuffer_add(b, e->body, e->len);
	rc = fs_write_renamed(e->file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return rc;
}

int
queue_sync(const struct queue *q)
{
	return fs_fsync_dir(q->dir);
}

void
queue_insert(struct queue *q, struct qentry *e)
{
	struct qentry *old, *next, *after;

	/* In the order prepared, whatever the order stored in; a newer
	 * entry of its key already there supersedes it at once. */
	for (after = TAILQ_LAST(&q->entries, qlist);
	     after != NULL && after->seq > e->seq;
	     after = TAILQ_PREV(after, qlist, link))
		;
	if (after == NULL)
		TAILQ_INSERT_HEAD(&q->entries, e, link);
	else
		TAILQ_INSERT_AFTER(&q->entries, after, e, link);
	q->count++;
	for (old = TAILQ_NEXT(e, link); old != NULL;
	     old = TAILQ_NEXT(old, link))
		if (strcmp(old->key, e->key) == 0) {
			queue_remove(q, e);
			return;
		}
	/* Only now that the new event is durable may the old ones go. */
	for (old = TAILQ_FIRST(&q->entries); old != e; old = next) {
		next = TAILQ_NEXT(old, link);
		if (strcmp(old->key, e->key) != 0)
			continue;
		if (old->busy)
			old->superseded = 1;
		else
			queue_remove(q, old);
	}
}

void
queue_discard(struct qentry *e)
{
	qentry_free(e);
}

struct qentry *
queue_push(struct queue *q, const char *key, const char *dest, const char *body,
    size_t len, char *err, size_t errlen)
{
	struct qentry *e;

	if ((e = queue_prepare(q, key, dest, body, len, err, errlen)) == NULL)
		return NULL;
	if (queue_store(e) != 0 || queue_sync(q) != 0) {
		snprintf(err, errlen, "%s: cannot queue the event durably: %s",
		    q->dir, strerror(errno));
		qentry_free(e);
		return NULL;
	}
	queue_insert(q, e);
	return e;
}

void
queue_remove(struct queue *q, struct qentry *e)
{
	if (unlink(e->file) != 0 && errno != ENOENT)
		log_warn("queue: removing %s", e->file);
	queue_forget(q, e);
}

void
queue_forget(struct queue *q, struct qentry *e)
{
	TAILQ_REMOVE(&q->entries, e, link);
	q->count--;
	qentry_free(e);
}
