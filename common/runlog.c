#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "doc.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "runlog.h"
#include "xmalloc.h"

#define RUNLOG_MAX_FILE (16 << 20)

static void
rec_clear(struct run_rec *r)
{
	free(r->what);
	free(r->source);
	free(r->version);
	free(r->summary);
	free(r->output);
	memset(r, 0, sizeof *r);
}

static struct run_rec *
rec_push(struct runlog *rl)
{
	struct run_rec *r = &rl->recs[rl->next];

	rec_clear(r);
	rl->next = (rl->next + 1) % RUNLOG_KEEP;
	if (rl->n < RUNLOG_KEEP)
		rl->n++;
	return r;
}

const struct run_rec *
runlog_get(const struct runlog *rl, size_t i)
{
	return &rl->recs[(rl->next + RUNLOG_KEEP - 1 - i) % RUNLOG_KEEP];
}

static void
rec_json(struct evbuffer *b, const struct run_rec *r)
{
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "what", r->what);
	json_str(&j, "source", r->source);
	json_str(&j, "version", r->version);
	json_bool(&j, "ok", r->ok);
	json_i64(&j, "started", (int64_t)r->started);
	json_i64(&j, "finished", (int64_t)r->finished);
	json_str(&j, "summary", r->summary);
	if (r->output != NULL)
		json_str(&j, "output", r->output);
	json_obj_close(&j);
	evbuffer_add(b, "\n", 1);
}

/* One line of the file; 0 if it was a whole, sound record. */
static int
rec_parse(struct runlog *rl, const char *line, size_t len)
{
	struct doc *d;
	const char *what, *source, *version, *summary, *output;
	int64_t started, finished;
	struct run_rec *r;
	char err[256];
	int ok;

	if (doc_parse(line, len, &d, err, sizeof err) != 0)
		return -1;
	if ((what = doc_get_str(d, "what")) == NULL ||
	    (source = doc_get_str(d, "source")) == NULL ||
	    (version = doc_get_str(d, "version")) == NULL ||
	    (summary = doc_get_str(d, "summary")) == NULL ||
	    doc_get_bool(d, "ok", &ok) != 0 ||
	    doc_get_i64(d, "started", &started) != 0 ||
	    doc_get_i64(d, "finished", &finished) != 0) {
		doc_free(d);
		return -1;
	}
	output = doc_get_str(d, "output");
	r = rec_push(rl);
	r->what = xstrdup(what);
	r->source = xstrdup(source);
	r->version = xstrdup(version);
	r->summary = xstrdup(summary);
	r->output = output ? xstrdup(output) : NULL;
	r->ok = ok;
	r->started = (time_t)started;
	r->finished = (time_t)finished;
	doc_free(d);
	return 0;
}

/* Rewrite the file with what is in memory, oldest first. */
static void
runlog_compact(struct runlog *rl)
{
	struct evbuffer *b = evbuffer_new();
	size_t i;

	for (i = rl->n; i-- > 0;)
		rec_json(b, runlog_get(rl, i));
	rl->lines = rl->n;
	runlog_write(rl, b, 1);
}

void
runlog_open(struct runlog *rl, const char *path)
{
	char *buf, *p, *nl;
	size_t len, bad = 0;

	memset(rl, 0, sizeof *rl);
	rl->path = xstrdup(path);
	if (fs_read_file(path, RUNLOG_MAX_FILE, &buf, &len) != 0) {
		if (errno != ENOENT)
			log_warn(
			    "%s: cannot read the run history; it starts afresh",
			    path);
		return;
	}
	for (p = buf; p < buf + len; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(buf + len - p))) == NULL)
			nl = buf + len; /* a torn last line */
		if (nl > p && rec_parse(rl, p, (size_t)(nl - p)) != 0)
			bad++;
		rl->lines++;
	}
	free(buf);
	if (bad > 0) {
		log_warnx("%s: skipped %zu damaged line(s) of the run history",
		    path, bad);
		runlog_compact(rl);
	}
}

void
runlog_close(struct runlog *rl)
{
	size_t i;

	for (i = 0; i < RUNLOG_KEEP; i++)
		rec_clear(&rl->recs[i]);
	free(rl->path);
	rl->path = NULL;
}

struct evbuffer *
runlog_add(struct runlog *rl, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output, int *rewrite)
{
	struct run_rec *r = rec_push(rl);
	struct evbuffer *b;
	size_t i;

	r->what = xstrdup(what);
	r->source = xstrdup(source);
	r->version = xstrdup(version ? version : "");
	r->ok = ok;
	r->started = started;
	r->finished = time(NULL);
	r->summary = xstrdup(summary);
	r->output = output && *output ? xstrdup(output) : NULL;
	*rewrite = 0;
	if (rl->path == NULL)
		return NULL;
	b = evbuffer_new();
	if (rl->lines + 1 >= 2 * RUNLOG_KEEP) {
		/* The file holds what is in memory again, oldest first. */
		for (i = rl->n; i-- > 0;)
			rec_json(b, runlog_get(rl, i));
		rl->lines = rl->n;
		*rewrite = 1;
	} else {
		rec_json(b, r);
		rl->lines++;
	}
	return b;
}

void
runlog_write(const struct runlog *rl, struct evbuffer *b, int rewrite)
{
	int fd;

	if (b == NULL)
		return;
	if (rewrite) {
		if (fs_write_atomic(rl->path, evbuffer_pullup(b, -1),
			evbuffer_get_length(b)) != 0)
			log_warn("%s: cannot rewrite the run history",
			    rl->path);
	} else {
		fd = open(rl->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0600);
		if (fd < 0 ||
		    fs_write_all(fd, evbuffer_pullup(b, -1),
			evbuffer_get_length(b)) != 0)
			log_warn("%s: cannot add to the run history", rl->path);
		if (fd >= 0)
			close(fd);
	}
	evbuffer_free(b);
}

void
runlog_note(const char *path, const char *what, const char *source,
    const char *version, int ok, time_t started, const char *summary,
    const char *output)
{
	struct runlog rl;
	struct evbuffer *b;
	int rewrite;

	runlog_open(&rl, path);
	b = runlog_add(&rl, what, source, version, ok, started, summary, output,
	    &rewrite);
	runlog_write(&rl, b, rewrite);
	runlog_close(&rl);
}
