/* The exporter daemon's state, shared by its parts:
 *
 *   exporter.c  the daemon: the runs, the pull-backups' reports, status,
 *               health, metrics, the version server's lookup, main()
 *   export.c    an export: the hook, the manifest, the schedule
 *   verbs.c     the now verb: a cycle asked of the daemon, followed */
#ifndef UNDERSTUDY_EXPORTER_H
#define UNDERSTUDY_EXPORTER_H

#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "generation.h"
#include "hook.h"
#include "node.h"
#include "timespec.h"

struct config;
struct event;
struct manifest;

#define RUNS_KEPT 32
/* How far ahead of this host's clock an archive's newest version may be
 * for the next versions to be numbered after it: the pull-backup took it
 * at most a day ahead of its own clock, and this host's may be behind
 * that by a day more. */
#define EXPORTER_MAX_FLOOR_AHEAD (2 * PROTO_MAX_AHEAD_SECS)
/* The source's generation here, in state_dir. */
#define EXPORTER_GENERATION "generation.json"

enum pb_state {
	PB_PENDING,
	PB_OK,
	PB_FAILED
};

/* What a pull-backup said of a run. */
struct pb_report {
	char *url;
	enum pb_state archived;
	char *archive_error;
	enum pb_state imported;
	int64_t importers_ok, importers_total;
	char *import_error;
	/* It will not archive it: a newer version is there, or it refused
	 * the version for good. */
	int refused;
	/* The last attempt to tell it of the version, when it failed: the
	 * peer's status (0: no answer) and why. */
	int delivery_status;
	char *delivery_error;
};

enum run_state {
	RUN_RUNNING,
	RUN_EXPORTED,
	RUN_FAILED
};

/* One export cycle: exports/<id>/ (data/, manifest, backup.signature). */
struct run {
	TAILQ_ENTRY(run) link;
	char id[VERSION_ID_SIZE];
	char *dir, *tmp, *data, *mpath;
	/* The version served when it started, for the hook (or NULL). */
	char *prev_data, *prev_id;
	enum run_state state;
	const char *trigger;
	time_t started, finished;
	char *error;
	char *hook_output;
	struct manifest *m; /* while served */
	int served;
	int dir_gone; /* exports/<id>/ removed: nothing needs it */
	/* The newest export after this one, or "": the pull-backups may
	 * take that one instead of this one. */
	char superseded_by[VERSION_ID_SIZE];
	int64_t generation; /* the source's, when it started */
	int64_t files, bytes;
	int64_t hashed; /* files hashed, the others from the cache */
	struct pb_report *pb;
	size_t npb;
	/* Worker results. */
	struct hook_result hr;
	char werr[1024];
	int wrc;
	struct exporter *ex;
	struct config *cf; /* as it was when the run started */
};

TAILQ_HEAD(runlist, run);

struct exporter {
	struct node node;
	struct config *cf;
	char *exports_dir;
	char *tmp_dir;
	struct runlist runs;
	size_t nruns;
	struct run *running;
	struct run *served;
	int64_t last_ms;
	struct event *sched_ev;
	time_t next_scheduled;
	unsigned long long failures;
	/* The newest version imported on a standby, and when: kept in
	 * imported_file (state_dir/last-imported.json). */
	char imported[VERSION_ID_SIZE];
	time_t imported_at;
	char *imported_file;
	/* The newest version a pull-backup's archive holds, as its reports
	 * said: the next version is numbered after it, whatever this host's
	 * clock says or this state directory lost.  Kept in archived_file
	 * (state_dir/archive-newest.json). */
	char archived[VERSION_ID_SIZE];
	char *archived_file;
	int cut_short;   /* an export was under way when the daemon stopped */
	struct gen *gen; /* the source's generation here (generation.h) */
};

/* exporter.c */
struct run *run_find(struct exporter *, const char *id);
/* 1, with why, when a promotion elsewhere fenced this exporter off. */
int exporter_fenced(const struct exporter *, char *why, size_t whylen);
void run_free(struct run *);
/* Stop serving a version: its data goes; its directory too, unless it is
 * the newest export (a restart knows the last export from its manifest). */
void run_unserve(struct exporter *, struct run *, const char *why);
/* Remove the directories of exports nothing needs any more. */
void runs_tidy(struct exporter *);

/* export.c */
/* Start an export now; NULL with the reason when one runs already. */
struct run *export_start(struct exporter *, const char *trigger, char *why,
    size_t whylen);
void export_schedule(struct exporter *);

/* verbs.c */
int verb_now(struct config *, int argc, char **argv);
int verb_generation(struct config *, int argc, char **argv);

#endif
