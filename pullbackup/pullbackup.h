/* The pull-backup daemon's state of each source, shared by pullbackup.c
 * (pulls and pushes) and page.c (the status page). */
#ifndef UNDERSTUDY_PULLBACKUP_H
#define UNDERSTUDY_PULLBACKUP_H

#include <time.h>

#include "node.h"
#include "runner.h"
#include "sync.h"

struct archive;
struct evhttp_request;
struct manifest;
struct source_conf;

enum imp_state { IMP_NONE, IMP_PENDING, IMP_OK, IMP_FAILED, IMP_PROMOTED };

struct imp {
	char *url;
	char *version;
	enum imp_state state;
	char *error;
	time_t at;
};

struct src {
	struct pullbackup *pb;
	const struct source_conf *sc;
	const struct source_conf *sc_next;	/* a reload's, when the pull
						 * (which reads sc) ends */
	const struct config *job_cf;		/* the running pull's */
	struct archive *ar;
	char *head;
	char *head_mpath;
	char *current;
	char *deltas;		/* the deltas of the last pull, kept */
	char *sigs;		/* signatures made ahead for the next */
	struct manifest *head_m;
	char **vids;			/* the versions, oldest first: a
					 * copy the loop owns */
	size_t nversions;
	/* The pull in progress. */
	struct runner run;
	char *version;
	char *peer;
	time_t started;
	struct manifest *new_m;
	struct sync_stats st;
	char err[1024];
	int rc, gone;
	char **pruned;
	size_t npruned;
	char *replaced;			/* the mirror the commit replaced */
	struct sync_presign *presign;	/* its signatures to make ahead */
	/* The last pull. */
	char *last_version;
	int last_ok;
	char *last_error;
	time_t last_at;
	struct sync_stats last_st;
	long last_secs;
	/* Counters, for metrics. */
	unsigned long long failures;
	unsigned long long received_total;
	time_t last_ok_at;
	/* Pushing to the importers. */
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

const char *imp_state_name(enum imp_state);
/* page.c */
int pb_page(struct node *, struct evhttp_request *, const char *path);

#endif
