/* The version server, used by the exporter (its newest export) and the
 * pull-backup (its newest archived version): a version's manifest, a whole
 * file, and a delta against a signature the client posts.  Files go out
 * with sendfile through evbuffer_add_file; deltas are computed on a worker
 * into an unlinked temporary file and sent the same way, so memory stays
 * bounded whatever the file size.  Only paths listed in the manifest are
 * ever opened, beneath the version's root, never through a symlink. */
#ifndef UNDERSTUDY_SERVE_H
#define UNDERSTUDY_SERVE_H

#include <stddef.h>

struct event;
struct event_base;
struct evhttp_request;
struct manifest;
struct proto_req;
struct worker_pool;

struct serve_version {
	const char *root;          /* the version's files */
	const char *manifest_path; /* its manifest, text form */
	const struct manifest *m;
	const char *tmp_dir; /* for delta temporaries */
	/* deltas kept by the last pull (sync_kept_delta()), or NULL */
	const char *deltas_dir;
	/* A version still being pulled (pipelined), or NULL for one whole
	 * and committed: how many of the manifest's entries are staged, in
	 * its order (written by the pull's thread).  Only those are served;
	 * the rest of a request waits (PROTO_PROGRESS).  Its files are then
	 * opened beneath rootfd, not root: the directory is renamed when the
	 * version is committed. */
	const _Atomic size_t *staged;
	int rootfd;
};

/* Fill *v for source/version; return 200, or 404 (unknown) or 410 (no
 * longer served) with a reason in why. */
typedef int (*serve_lookup_fn)(void *arg, const char *source,
    const char *version, struct serve_version *v, char *why, size_t len);

struct serve_wait;

struct serve {
	serve_lookup_fn lookup;
	void *arg;
	struct worker_pool *workers;
	struct event_base *base;
	/* Progress requests waiting (PROTO_PROGRESS), and their timer. */
	struct serve_wait *waits;
	struct event *wait_timer;
	_Atomic int nwaits;
	/* Statistics, for status and metrics. */
	unsigned long long files_sent, deltas_sent, bytes_sent;
	unsigned long long sig_bytes;   /* signatures received */
	unsigned long long stored_sent; /* deltas kept by a pull, relayed */
	unsigned long long ranges_sent; /* files resumed from a byte (Range) */
};

/* Answer a request for a version (PROTO_R_VERSION). */
void serve_request(struct serve *, struct evhttp_request *,
    const struct proto_req *);
/* A version being pulled moved on (more staged, committed, or dropped):
 * the progress requests waiting are looked at again.  On the loop. */
void serve_wake(struct serve *);
/* Whether any progress request waits (any thread: a pull wakes the loop
 * only then). */
int serve_waiting(const struct serve *);
/* Answer what waits (the daemon stops), and free it. */
void serve_free(struct serve *);

#endif
