/* Durable writes, off the event loop.  An event received is acknowledged
 * once it is durably queued; an event sent is delivered once it is durably
 * queued; a state file is replaced atomically; a handled inbox entry's
 * file goes only once what the role queued before it is durable (so that
 * a crash in between handles the event again: at least once).  All of it
 * is done by the commit thread, in the order asked, a batch at a time:
 * the loop keeps answering (status, pages) meanwhile.  A batch holds what
 * was asked in one turn of the loop (a handled event's file goes with the
 * events its handling sent) and whatever came while the previous batch
 * was written; it shares one fsync per directory.
 *
 * An event of ours that cannot be queued (a disk full, most often) is
 * not dropped: it is kept in memory and tried again, 1 s later, then
 * doubling to DURABLE_AGAIN_MAX_SECS, with the handled entries of its
 * batch (their files go once it is durable), until it is queued or the
 * daemon stops (and the handled events are then handled again at the
 * next start).  Meanwhile nothing else is written, so that no later
 * event overtakes it.  A report of a failure made while the disk was
 * full so reaches its peer once room returns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "fault.h"
#include "fsutil.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "worker.h"
#include "xmalloc.h"

#define DURABLE_AGAIN_MAX_SECS 8

enum durable_kind {
	DI_RECEIVED, /* an event from a peer, for the inbox */
	DI_SEND,     /* an event of ours, for the outbox */
	DI_WRITE,    /* a file replaced atomically */
	DI_REMOVE,   /* a file removed, in order with the writes */
	DI_APPEND,   /* lines added to a file, unsynced */
	DI_HANDLED   /* an inbox entry's file, after the batch is durable */
};

struct durable_item {
	struct durable_item *next;
	enum durable_kind kind;
	struct http_held held; /* DI_RECEIVED: the request */
	struct qentry *e;      /* DI_RECEIVED, DI_SEND */
	/* DI_WRITE, DI_REMOVE, DI_APPEND, DI_HANDLED */
	char *path;
	char *data; /* DI_HANDLED: its fault point */
	size_t len;
	void (*done)(void *, int); /* DI_WRITE: told on the loop */
	void *done_arg;
	int in_place; /* DI_WRITE: on a full disk, over the old one */
	int tries;    /* DI_SEND: attempts that failed */
	int rc;
	int err;
};

static void durable_start(struct node *);

static void
item_free(struct durable_item *c)
{
	http_unhold(&c->held);
	if (c->e != NULL)
		queue_discard(c->e);
	free(c->path);
	free(c->data);
	free(c);
}

/* Start the next batch at the end of this turn of the loop. */
static void
durable_next(struct node *n)
{
	if (n->writing == NULL && n->waiting != NULL && n->again == NULL &&
	    !n->stopping)
		event_active(n->commit_ev, EV_READ, 0);
}

static struct durable_item *
item_add(struct node *n, enum durable_kind kind)
{
	struct durable_item *c = xcalloc(1, sizeof *c);

	c->kind = kind;
	*n->waiting_tail = c;
	n->waiting_tail = &c->next;
	durable_next(n);
	return c;
}

/* The directory of each file written, once a batch. */
static int
sync_dirs(const struct durable_item *batch)
{
	const struct durable_item *c, *d;
	char *dir, *slash;
	int rc = 0;

	for (c = batch; c != NULL; c = c->next) {
		if (c->kind != DI_WRITE || c->rc != 0)
			continue;
		for (d = batch; d != c; d = d->next)
			if (d->kind == DI_WRITE && d->rc == 0 &&
			    fs_same_dir(d->path, c->path))
				break;
		if (d != c)
			continue;
		dir = xstrdup(c->path);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		if (fs_fsync_dir(slash == NULL ? "." :
			    slash == dir       ? "/" :
						 dir) != 0)
			rc = -1;
		free(dir);
	}
	return rc;
}

static int
append(const char *path, const void *data, size_t len)
{
	int fd, rc;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	rc = fs_write_all(fd, data, len);
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* A full disk has no room for the new file a replacement needs: written
 * over the old one instead, when it is at least as long (its blocks are
 * there), the rest blanked.  Not atomic: a reader of such a file takes
 * blanks after it, and a torn one for damaged. */
static int
rewrite_in_place(const char *path, const char *data, size_t len)
{
	char blanks[512];
	struct stat st;
	off_t off;
	size_t n;
	int fd, saved = ENOSPC, rc = -1;

	memset(blanks, ' ', sizeof blanks);
	if ((fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (off_t)len > st.st_size)
		goto out;
	if (pwrite(fd, data, len, 0) != (ssize_t)len)
		goto fail;
	for (off = (off_t)len; off < st.st_size; off += (off_t)n) {
		n = st.st_size - off < (off_t)sizeof blanks ?
		    (size_t)(st.st_size - off) :
		    sizeof blanks;
		if (pwrite(fd, blanks, n, off) != (ssize_t)n)
			goto fail;
	}
	if (fdatasync(fd) != 0)
		goto fail;
	log_warnx("%s: the disk is full; written over the old copy", path);
	rc = 0;
	goto out;
fail:
	saved = errno;
out:
	if (fd >= 0)
		close(fd);
	errno = saved;
	return rc;
}

static void
durable_work(void *arg)
{
	struct node *n = arg;
	struct durable_item *c;
	int in = 0, out = 0, failed = 0, rc;

	for (c = n->writing; c != NULL; c = c->next) {
		switch (c->kind) {
		case DI_RECEIVED:
		case DI_SEND:
			c->rc = queue_store(c->e);
			*(c->kind == DI_RECEIVED ? &in : &out) = 1;
			break;
		case DI_WRITE:
			c->rc = fs_write_renamed(c->path, c->data, c->len);
			if (c->rc != 0 && c->in_place && fs_no_room(errno))
				c->rc = rewrite_in_place(c->path, c->data,
				    c->len);
			break;
		case DI_REMOVE:
			c->rc = unlink(c->path) != 0 && errno != ENOENT ? -1 :
									  0;
			break;
		case DI_APPEND:
			c->rc = append(c->path, c->data, c->len);
			break;
		case DI_HANDLED:
			break;
		}
		c->err = errno;
	}
	/* Then durable: one fsync a directory. */
	if (in && queue_sync(n->inbox) != 0)
		in = -errno;
	if (out && queue_sync(n->outbox) != 0)
		out = -errno;
	rc = sync_dirs(n->writing);
	for (c = n->writing; c != NULL; c = c->next) {
		if (c->rc == 0 && c->kind == DI_RECEIVED && in < 0) {
			c->rc = -1;
			c->err = -in;
		} else if (c->rc == 0 && c->kind == DI_SEND && out < 0) {
			c->rc = -1;
			c->err = -out;
		} else if (c->rc == 0 && c->kind == DI_WRITE && rc != 0) {
			c->rc = -1;
			c->err = EIO;
		}
		if (c->rc != 0 && (c->kind == DI_SEND || c->kind == DI_WRITE))
			failed = 1;
	}
	/* Only now may handled events go: what their handling queued is
	 * durable.  If it is not, they stay, and are handled again at the
	 * next start. */
	for (c = n->writing; c != NULL; c = c->next) {
		if (c->kind != DI_HANDLED || failed)
			continue;
		if (unlink(c->path) != 0 && errno != ENOENT)
			log_warn("queue: removing %s", c->path);
		fault_point(c->data);
	}
	n->written = 1;
}

/* Kept for another try: appended to n->again, in order. */
static void
again_keep(struct node *n, struct durable_item *c)
{
	struct durable_item **pc;

	for (pc = &n->again; *pc != NULL; pc = &(*pc)->next)
		;
	c->next = NULL;
	c->rc = 0;
	*pc = c;
}

/* Put what is kept in front of what waits, to be tried now. */
static void
again_take(struct node *n)
{
	struct durable_item *c;

	if (n->again == NULL)
		return;
	for (c = n->again; c->next != NULL; c = c->next)
		;
	c->next = n->waiting;
	if (n->waiting == NULL)
		n->waiting_tail = &c->next;
	n->waiting = n->again;
	n->again = NULL;
}

static void
again_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	again_take(n);
	durable_next(n);
}

static void
durable_done(void *arg)
{
	struct node *n = arg;
	struct durable_item *c, *next;
	struct evhttp_request *req;
	int received = 0, sent = 0, send_failed = 0, write_failed = 0;
	struct timeval tv = { 0, 0 };

	for (c = n->writing; c != NULL; c = c->next) {
		if (c->rc != 0 && c->kind == DI_SEND)
			send_failed = 1;
		if (c->rc != 0 && c->kind == DI_WRITE)
			write_failed = 1;
	}
	for (c = n->writing; c != NULL; c = next) {
		next = c->next;
		switch (c->kind) {
		case DI_RECEIVED:
			if (c->rc == 0) {
				queue_insert(n->inbox, c->e);
				c->e = NULL;
				n->events_in++;
				received = 1;
			} else
				log_warnx(
				    "%s: cannot queue the event durably: %s",
				    n->inbox->dir, strerror(c->err));
			if ((req = http_unhold(&c->held)) == NULL)
				break;
			if (c->rc == 0)
				inbox_reply_queued(req, 1, NULL);
			else
				http_reply_error(req, PROTO_UNAVAILABLE,
				    "%s: cannot queue the event durably: %s",
				    n->inbox->dir, strerror(c->err));
			break;
		case DI_SEND:
			if (c->rc == 0) {
				if (c->tries > 0)
					log_info("%s: the event for %s is "
						 "queued at last (%d tries)",
					    n->outbox->dir, c->e->dest,
					    c->tries + 1);
				queue_insert(n->outbox, c->e);
				c->e = NULL;
				sent = 1;
				break;
			}
			if (c->tries++ == 0)
				log_warnx("%s: cannot queue an event for %s: "
					  "%s; kept, and tried again until "
					  "it is",
				    n->outbox->dir, c->e->dest,
				    strerror(c->err));
			if (n->stopping)
				break;
			again_keep(n, c);
			continue;
		case DI_WRITE:
		case DI_REMOVE:
		case DI_APPEND:
			if (c->rc != 0)
				log_warnx("%s: %s", c->path, strerror(c->err));
			if (c->done != NULL)
				c->done(c->done_arg, c->rc);
			break;
		case DI_HANDLED:
			/* Its file goes once what its handling queued is:
			 * with the events tried again.  After a state file
			 * that could not be written, it stays, and the
			 * event is handled again at the next start. */
			if (send_failed && !write_failed && !n->stopping) {
				again_keep(n, c);
				continue;
			}
			break;
		}
		item_free(c);
	}
	n->writing = NULL;
	if (!send_failed && sent)
		n->again_secs = 0;
	if (n->again != NULL && !n->stopping) {
		n->again_secs = n->again_secs == 0 ? 1 :
		    n->again_secs * 2 > DURABLE_AGAIN_MAX_SECS ?
						     DURABLE_AGAIN_MAX_SECS :
						     n->again_secs * 2;
		tv.tv_sec = n->again_secs;
		evtimer_add(n->again_ev, &tv);
	}
	if (sent && !n->stopping)
		outbox_pump(n);
	if (received)
		node_kick(n);
	durable_start(n);
}

static void
durable_start(struct node *n)
{
	if (n->writing != NULL || n->waiting == NULL || n->again != NULL ||
	    n->stopping)
		return;
	n->writing = n->waiting;
	n->waiting = NULL;
	n->waiting_tail = &n->waiting;
	n->written = 0;
	worker_submit(n->commit, durable_work, durable_done, n);
}

static void
durable_start_cb(evutil_socket_t fd, short what, void *arg)
{
	durable_start(arg);
}

void
durable_init(struct node *n)
{
	n->waiting_tail = &n->waiting;
	n->commit_ev = event_new(n->base, -1, 0, durable_start_cb, n);
	n->again_ev = evtimer_new(n->base, again_cb, n);
}

void
durable_flush(struct node *n)
{
	struct durable_item *c, **pc;

	if (n->again_ev != NULL)
		evtimer_del(n->again_ev);
	if ((c = n->writing) != NULL && n->written) {
		/* Written by the thread; the replies are not sent. */
		while ((c = n->writing) != NULL) {
			n->writing = c->next;
			item_free(c);
		}
	} else if (c != NULL) {
		/* Dropped before the thread began it: in front. */
		for (pc = &n->writing; *pc != NULL; pc = &(*pc)->next)
			;
		*pc = n->waiting;
		n->waiting = n->writing;
		n->writing = NULL;
	}
	again_take(n);
	for (pc = &n->waiting; (c = *pc) != NULL;) {
		if (c->kind == DI_RECEIVED) {
			*pc = c->next;
			item_free(c);
		} else
			pc = &c->next;
	}
	if (n->waiting != NULL) {
		n->writing = n->waiting;
		durable_work(n);
		while ((c = n->writing) != NULL) {
			n->writing = c->next;
			if (c->rc != 0)
				log_warnx("%s: %s",
				    c->path != NULL ? c->path : n->outbox->dir,
				    strerror(c->err));
			item_free(c);
		}
	}
	n->waiting = NULL;
	n->waiting_tail = &n->waiting;
}

void
durable_received(struct node *n, struct evhttp_request *req, struct qentry *e)
{
	struct durable_item *c = item_add(n, DI_RECEIVED);

	c->e = e;
	http_hold(&c->held, req);
}

void
durable_send(struct node *n, struct qentry *e)
{
	item_add(n, DI_SEND)->e = e;
}

void
durable_handled(struct node *n, struct qentry *e)
{
	struct durable_item *c = item_add(n, DI_HANDLED);

	c->path = xstrdup(e->file);
	c->data = xasprintf("handled-%.*s", (int)strcspn(e->key, " "), e->key);
	queue_forget(n->inbox, e);
}

static struct durable_item *
item_data(struct node *n, enum durable_kind kind, const char *path,
    const void *data, size_t len)
{
	struct durable_item *c = item_add(n, kind);

	c->path = xstrdup(path);
	c->data = xmalloc(len + 1);
	memcpy(c->data, data, len);
	c->len = len;
	return c;
}

void
durable_write(struct node *n, const char *path, const void *data, size_t len)
{
	item_data(n, DI_WRITE, path, data, len);
}

void
durable_write_in_place(struct node *n, const char *path, const void *data,
    size_t len)
{
	item_data(n, DI_WRITE, path, data, len)->in_place = 1;
}

void
durable_write_then(struct node *n, const char *path, const void *data,
    size_t len, void (*done)(void *, int), void *arg)
{
	struct durable_item *c = item_data(n, DI_WRITE, path, data, len);

	c->done = done;
	c->done_arg = arg;
}

void
durable_remove(struct node *n, const char *path)
{
	item_add(n, DI_REMOVE)->path = xstrdup(path);
}

void
durable_append(struct node *n, const char *path, const void *data, size_t len)
{
	item_data(n, DI_APPEND, path, data, len);
}
