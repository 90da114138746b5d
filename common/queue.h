/* The durable event queue: one file per event in a directory, written to a
 * temporary name, fsynced, renamed, and the directory fsynced before the
 * event counts as queued.  Used as the inbox (events received and not yet
 * handled) and the outbox (events not yet acknowledged by their peer).
 * Entries keep their order; an entry pushed with the key of older waiting
 * entries supersedes them. */
#ifndef UNDERSTUDY_QUEUE_H
#define UNDERSTUDY_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

struct doc;

struct qentry {
	TAILQ_ENTRY(qentry) link;
	uint64_t seq;
	char *key;  /* entries with one key supersede each other */
	char *dest; /* outbox: the peer's URL; inbox: "" */
	char *body; /* the event, JSON */
	size_t len;
	char *file;
	/* Not stored: the state of the entry's delivery or handling. */
	int busy;
	int superseded;
	int attempts;
	time_t next_try;
	char *last_error;
	struct doc *doc; /* the body parsed, once (event_doc()) */
	int parsed;
};

TAILQ_HEAD(qlist, qentry);

struct queue {
	char *dir;
	uint64_t next_seq;
	struct qlist entries;
	size_t count;
};

#define QUEUE_MAX_EVENT (1u << 20)

struct queue *queue_open(const char *dir, char *err, size_t errlen);
void queue_close(struct queue *);
/* Add an event, durably, before it returns. */
struct qentry *queue_push(struct queue *, const char *key, const char *dest,
    const char *body, size_t len, char *err, size_t errlen);
/* The same in steps, so that the writing can be done off the event loop
 * and many events share one directory fsync: queue_prepare() numbers the
 * entry; queue_store() writes its file (any thread), queue_sync() makes
 * the stored files durable (any thread); queue_insert() adds it, in the
 * order prepared, and only then drops the entries it supersedes.
 * queue_discard() frees an entry that is not inserted. */
struct qentry *queue_prepare(struct queue *, const char *key, const char *dest,
    const char *body, size_t len, char *err, size_t errlen);
int queue_store(const struct qentry *);
int queue_sync(const struct queue *);
void queue_insert(struct queue *, struct qentry *);
void queue_discard(struct qentry *);
/* Remove an entry for good (its event was handled or delivered). */
void queue_remove(struct queue *, struct qentry *);
/* Take an entry out of the queue in memory only: its file is the
 * caller's to remove. */
void queue_forget(struct queue *, struct qentry *);
void queue_set_error(struct qentry *, const char *);

#endif
