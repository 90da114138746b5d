/* The pull-backup daemon's state of each source, shared by its parts:
 *
 *   pullbackup.c  the daemon: sources, events accepted, status, health,
 *                 metrics, the version server's lookup, reload, main()
 *   pull.c        a pull: the sync from the exporter, the commit to the
 *                 store, retention, the report
 *   push.c        the newest version pushed to the importers, and their
 *                 reports gathered and forwarded to the exporter
 *   page.c        the status page
 *   verbs.c       the archive verbs (list, restore, verify, ...)
 *   presign.c     signatures made ahead for the next pull
 *   store.h       the archive of a source, and tarw.c, its tar export */
#ifndef UNDERSTUDY_PULLBACKUP_H
#define UNDERSTUDY_PULLBACKUP_H

#include <pthread.h>
#include <time.h>

#include "node.h"
#include "runner.h"
#include "store.h"
#include "sync.h"

struct evhttp_request;
struct manifest;
struct presign;
struct qentry;
struct serve_version;
struct source_conf;

enum imp_state {
	IMP_NONE,
	IMP_PENDING,
	IMP_OK,
	IMP_FAILED,
	IMP_PROMOTED
};

/* An importer of a source, as the pushes and its reports leave it. */
struct imp {
	char *url;
	char *version;
	enum imp_state state;
	char *error;
	time_t at;
};

struct src {
	struct pullbackup *pb;
	/* the pulls; run.sc is the source's settings */
	struct runner run;
	struct store *st;
	struct gen *gen; /* the source's generation here */
	/* The newest version, as the loop serves it. */
	char *head;
	char *head_mpath;
	struct manifest *head_m;
	/* the versions, oldest first: a copy the loop owns */
	char **vids;
	size_t nversions;
	/* Where things are. */
	char *current, *deltas, *sigs_dir, *hints;
	struct sync_sigs sigs;
	/* The pull in progress, on a worker. */
	struct store_txn txn;
	/* and what of it is served as it is staged (pipelined, pull.c):
	 * the worker hands the staging directory over (stg_lock, stg_ev),
	 * counts what is staged; the loop serves it */
	pthread_mutex_t stg_lock;
	struct event *stg_ev;
	int stg_handoff;             /* a staging directory's fd, or -1 */
	struct manifest *stg_hand_m; /* and its manifest, the worker's copy */
	_Atomic size_t staged;
	char *stg_version; /* served, or NULL */
	struct manifest *stg_m;
	char *stg_mpath;
	int stg_fd;
	int stg_pushed; /* push_staged() went for this attempt */
	struct manifest *new_m;
	int64_t pull_gen; /* the generation its event named */
	struct runner_result res;
	int gone;
	char **pruned;
	size_t npruned;
	char *replaced;          /* the mirror the commit replaced */
	struct presign *presign; /* its signatures to make ahead */
	unsigned long long received_total;
	/* Pushing to the importers (push.c). */
	struct imp *imps;
	char *push_version;
	char *push_peer;
	int push_reported;
};

struct pullbackup {
	struct node node;
	struct config *cf;
	struct src *srcs;
	size_t nsrcs;
	char *tmp_dir;
	/* One thread for the signatures made ahead: they never take a
	 * pull's place in node.runs. */
	struct worker_pool *ahead;
};

/* pullbackup.c */
struct src *src_find(struct pullbackup *, const char *name);
/* Write one of the source's state files on the commit thread, or remove
 * it. */
void src_write(struct src *, enum store_file, struct evbuffer *);
void src_remove(struct src *, enum store_file);

/* pull.c */
extern const struct runner_ops pull_ops;
extern const struct runner_words pull_words;
/* The source's newest version, from the store: m (taken) or loaded. */
void pull_set_head(struct src *, struct manifest *m);
void pull_send_archived(struct src *, const char *version, const char *peer,
    int ok, const char *error);
/* The version being pulled, served as it is staged. */
void pull_stg_init(struct src *);
void pull_stg_free(struct src *);
/* Fill v when version is the one being pulled and served: 0, or -1. */
int pull_stg_lookup(struct src *, const char *version, struct serve_version *);

/* push.c */
const char *push_state_name(enum imp_state);
void push_init(struct src *);
void push_free(struct src *);
/* Push the newest version to every importer not promoted. */
void push_to_importers(struct src *, const char *peer);
/* Push a version being pulled (import.ready with staged): the importers
 * fetch it as it comes, and take it once it is committed. */
void push_staged(struct src *, const char *version, int64_t generation);
/* The version push_staged() pushed is committed, the newest: the
 * importers' answers are awaited for it. */
void push_committed(struct src *, const char *peer);
/* At start-up: push the newest version again. */
void push_resume(struct src *);
void push_import_done(struct src *, const struct doc *ev);
/* An importer refused an import for good: it was promoted. */
void push_refused(struct src *, const struct qentry *, const char *why);

/* page.c */
int pb_page(struct node *, struct evhttp_request *, const char *path);

/* verbs.c */
int pb_list(struct config *, int argc, char **argv);
int pb_changed(struct config *, int argc, char **argv);
int pb_restore(struct config *, int argc, char **argv);
int pb_verify(struct config *, int argc, char **argv);
int pb_prune(struct config *, int argc, char **argv);
int pb_forget(struct config *, int argc, char **argv);
int pb_export(struct config *, int argc, char **argv);
int pb_vc_export(struct config *, int argc, char **argv);
int pb_catalog(struct config *, int argc, char **argv);

#endif
