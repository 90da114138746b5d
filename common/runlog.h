/* The history of a daemon's runs (exports, pulls, imports, promotions) for
 * /feed: the newest RUNLOG_KEEP in memory, and a file of JSON lines beside
 * the queues so the feed outlives a restart.  Appends are single write()s;
 * a torn last line after a crash is skipped when loading.  runlog_add()
 * only says what to write: a daemon has its commit thread write it, off
 * the loop (node_record()), a verb runlog_write(). */
#ifndef UNDERSTUDY_RUNLOG_H
#define UNDERSTUDY_RUNLOG_H

#include <stddef.h>
#include <time.h>

struct evbuffer;

#define RUNLOG_KEEP 50

struct run_rec {
	char *what; /* "export", "pull", "import", "promote" */
	char *source;
	char *version;
	int ok;
	time_t started, finished;
	char *summary; /* one line */
	char *output;  /* the hook's output (tail), or NULL */
};

struct runlog {
	char *path;
	struct run_rec recs[RUNLOG_KEEP]; /* ring */
	size_t n, next;
	size_t lines; /* in the file */
};

void runlog_open(struct runlog *, const char *path);
void runlog_close(struct runlog *);
/* Add a record; returns what the file needs then: the line to append,
 * or with *rewrite set its whole new content (it is compacted); NULL when
 * the history has no file. */
struct evbuffer *runlog_add(struct runlog *, const char *what,
    const char *source, const char *version, int ok, time_t started,
    const char *summary, const char *output, int *rewrite);
/* Write it now, and free b. */
void runlog_write(const struct runlog *, struct evbuffer *b, int rewrite);
/* A verb's record in the daemon's history at path (it runs without the
 * daemon): opened, added, written, closed; started is now. */
void runlog_note(const char *path, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output);
/* The i-th newest record (0 = newest), i < n. */
const struct run_rec *runlog_get(const struct runlog *, size_t i);

#endif
