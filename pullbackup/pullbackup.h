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

#include <time.h>

#include "node.h"
#include "runner.h"
#include "store.h"
#include "sync.h"

struct evhttp_request;
struct manifest;
struct presign;
struct qentry;
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

/* push.c */
const char *push_state_name(enum imp_state);
void push_init(struct src *);
void push_free(struct src *);
/* Push the newest version to every importer not promoted. */
void push_to_importers(struct src *, const char *peer);
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
