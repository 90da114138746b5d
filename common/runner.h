/* A source's runner: the per-source job engine of the pull-backup (its
 * pulls) and the importer (its imports).  It takes the source's inbox
 * events one at a time, in order: quick ones are handled inline; one that
 * needs a job starts it on a worker, and the runner waits for it.  A
 * failed job is retried by the one retry rule (proto.h) for as long as its
 * version is the newest, unless the role says retrying is pointless (the
 * peer no longer has it).
 *
 * It keeps, with the same rules in both roles, the result of the last job
 * that ended (succeeded, failed for good, or failed PROTO_JOB_ATTEMPTS
 * times: a failure to report, though it is retried; the attempts before
 * show as "retrying" only), persisted in a state file by the commit
 * thread; and it gives the source's status block, health line and
 * metrics.  A reload's settings are taken when no job runs. */
#ifndef UNDERSTUDY_RUNNER_H
#define UNDERSTUDY_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sync.h"

struct config;
struct doc;
struct event;
struct evbuffer;
struct json;
struct node;
struct qentry;
struct runner;
struct source_conf;

enum runner_verdict {
	RUNNER_HANDLED, /* done inline: the event goes */
	RUNNER_JOB,     /* needs a job: the runner calls start() */
};

enum runner_outcome {
	RUNNER_OK,      /* the job succeeded; the event went */
	RUNNER_GAVE_UP, /* it failed for good; the event went */
	/* it failed PROTO_JOB_ATTEMPTS times: the last result, to report;
	 * the event stays for later */
	RUNNER_FAILED,
	RUNNER_RETRY,   /* it failed; the event stays for later */
	RUNNER_DROPPED, /* RUNNER_DROP: the event went, nothing kept */
	/* it failed, and a newer event of its source superseded it: the
	 * event went, nothing is reported (the newer one reports), the
	 * last result stays as it was */
	RUNNER_SUPERSEDED,
};

/* How a job failed, as the role sees it. */
enum runner_fail {
	RUNNER_TRANSIENT, /* retried; reported once it failed often */
	RUNNER_REPORT,    /* retried, and reported at once (a hook said no) */
	/* retried, never reported: it waited on its peer's own job (an
	 * import fetching a version the pull-backup was still pulling) */
	RUNNER_QUIET,
	RUNNER_FINAL, /* retrying is pointless (the peer has it no more) */
	/* nothing to report: the version will be offered again if ever it
	 * is to be had (a pipelined pull that stopped); the last result
	 * stays as it was */
	RUNNER_DROP,
};

/* What a job did: the role's job fills it, runner_done() takes it. */
struct runner_result {
	char *version;
	int ok;
	char *error;
	char *output; /* the hook's output (tail), or NULL */
	time_t at;    /* when the job ended */
	long secs;    /* how long it took */
	struct sync_stats st;
};

/* How the role names its jobs, in the status, the log and the health. */
struct runner_words {
	const char *doing; /* log: "pulling version", "import of version" */
	const char *last;  /* status: "last_pull" */
	const char *busy;  /* status: "pulling" */
	const char *busy_version; /* status: "pulling_version" */
	const char *none;         /* health: "no version yet" */
	const char *stale;        /* health: "the newest version" */
	const char *fresh;        /* health: "newest version" */
	const char *failed;       /* health: "the last pull failed" */
	const char *duration;  /* metric: "understudy_pull_duration_seconds" */
	const char *page_job;  /* page: "Pull" */
	const char *page_busy; /* page: "PULLING" */
	const char *page_last; /* page: "Last pull" */
};

struct runner_ops {
	/* Look at the next event of this source. */
	enum runner_verdict (*handle)(struct runner *, const struct doc *ev);
	/* Start the job for ev on a worker; its done callback must call
	 * runner_done().  r->version, r->peer, r->started and r->job_cf are
	 * set. */
	void (*start)(struct runner *, const struct doc *ev);
	/* The role's members of the last result in the status; may be
	 * NULL. */
	void (*result_json)(const struct runner *, const struct runner_result *,
	    struct json *);
	/* The version of the source's newest data here, or NULL. */
	const char *(*newest)(const struct runner *);
	/* A word on a source that stands aside from the chain (a promoted
	 * standby), or NULL; its health is that word.  May be NULL. */
	const char *(*aside)(const struct runner *);
	/* 1, with a line saying it, when the source's data here is known
	 * to be damaged: its health is critical.  May be NULL. */
	int (*damaged)(const struct runner *, char *why, size_t len);
};

struct runner {
	struct node *node;
	const struct source_conf *sc;
	const struct source_conf *sc_next; /* a reload's, when free */
	const struct runner_ops *ops;
	const struct runner_words *words;
	void *arg;
	char *state_file;
	/* The job under way, or the one to retry. */
	int busy;
	/* other work on the source that reads sc (a promotion) */
	int holds;
	struct qentry *entry;
	char *version;
	char *peer;
	time_t started;                /* this attempt */
	int64_t started_ms;            /* the same, monotonic milliseconds */
	struct sync_progress progress; /* of its sync, while busy */
	const struct config *job_cf;   /* as it was when it started */
	int attempts;                  /* failed so far */
	time_t failing_since;          /* the first failed attempt's start */
	int reported;                  /* that failure is the last result */
	time_t next_try;
	char *retry_error;
	struct event *retry_ev;
	/* The last job that ended. */
	struct runner_result last;
	time_t ok_at; /* the last success */
	long ok_secs;
	unsigned long long failures;
};

/* The last result is loaded from state_file (a JSON object), if any. */
void runner_init(struct runner *, struct node *, const struct source_conf *,
    const struct runner_ops *, const struct runner_words *, void *arg,
    const char *state_file);
void runner_free(struct runner *);
void runner_kick(struct runner *);
/* The common decision on an event that starts a job: NODE_QUEUE under
 * "TYPE SOURCE", or NODE_ACK_ONLY when a newer one is queued already. */
int runner_accept(struct runner *, const char *type, const char *version,
    char *key, size_t keylen, char *why, size_t whylen);
/* From the job's done callback, with what it did (how: when it failed);
 * the runner takes res's strings.  Then call runner_kick(). */
enum runner_outcome runner_done(struct runner *, struct runner_result *res,
    enum runner_fail how);
void runner_result_clear(struct runner_result *);
/* A reload: sc_next is taken now, or when the job ends. */
void runner_reload(struct runner *, const struct source_conf *sc_next);
/* Other work on the source: sc stays as it is, and no job starts,
 * meanwhile; the release kicks the runner. */
void runner_hold(struct runner *);
void runner_release(struct runner *);
/* A source's link to the peer it fetches from (url): "bandwidth_limit",
 * its limit in bytes per second or null, and "compress", what its
 * transfers ask for ("zstd" or "off"). */
void runner_link_status(struct json *, const struct source_conf *,
    const char *url);
/* A sync's counts in a last result (last_pull, last_import). */
void runner_stats_json(struct json *, const struct sync_stats *);
/* The status block's runner part: busy, busy_version, the last result,
 * the retry under way. */
void runner_status(const struct runner *, struct json *);
/* The sources' health, from the version their newest data is: -1 with
 * why when one has none or it is older than max_age, or (max_lag > 0) the
 * job under way or to retry is of a version exported more than max_lag
 * ago; else 0, with *warn set when a last job failed, and why a line of
 * each source's state. */
int runner_health_all(struct runner *const *, size_t n, int64_t max_age,
    int64_t max_lag, int *warn, char *why, size_t len);
/* The rows of the source's table on the status or takeover page: the job
 * under way, the last result, the retry. */
/* full: with the errors' text (they may name files and peers). */
void runner_html(struct evbuffer *, const struct runner *, time_t now,
    int full);
/* The runners' metrics, family by family. */
void runner_metrics(struct evbuffer *, struct runner *const *, size_t n);

#endif
