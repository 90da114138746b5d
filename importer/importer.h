/* The importer's state of each source, shared by importer.c (the daemon
 * and its imports) and promote.c (promotion). */
#ifndef UNDERSTUDY_IMPORTER_H
#define UNDERSTUDY_IMPORTER_H

#include <time.h>

#include "hook.h"
#include "node.h"
#include "runner.h"
#include "sync.h"

struct config;
struct evhttp_request;
struct json;
struct manifest;
struct source_conf;

enum promo_state { PROMO_NONE, PROMO_PROMOTING, PROMO_PROMOTED };

struct isrc {
	struct importer *im;
	const struct source_conf *sc;
	/* A reload's new settings, taken when the running job ends (its
	 * worker reads sc). */
	const struct source_conf *sc_next;
	const struct config *job_cf;	/* the running job's */
	char *dir, *current, *next, *state_file;
	struct manifest *cur_m;
	/* The import in progress. */
	struct runner run;
	char *version, *peer;
	time_t started;
	struct sync_stats st;
	struct hook_result hr;
	char err[1024];
	int rc, gone, hook_ran;
	char *replaced;			/* the copy the import replaced */
	/* The last import. */
	char *last_version, *last_error, *last_output;
	int last_ok;
	time_t last_at;
	long last_secs;
	unsigned long long failures;
	long lag;			/* version's export to its import, s */
	time_t ok_at;			/* the last successful import */
	long ok_secs;
	/* Promotion (promote.c): once asked for, no more imports. */
	enum promo_state promo;
	char *promo_file;
	char *promo_at;
	char *promo_version;
	char *promo_output;
	int promo_forced;
	int promo_busy;
};

struct importer {
	struct node node;
	struct config *cf;
	struct isrc *srcs;
	size_t nsrcs;
	char *tmp_dir;
};

struct isrc *isrc_find(struct importer *, const char *name);
const char *cur_version(const struct isrc *);
void isrc_init(struct importer *, struct isrc *, const struct source_conf *);
void isrc_free(struct isrc *);
void isrc_load(struct isrc *);
void isrc_load_state(struct isrc *);
/* Take a reload's settings, unless a job (which reads sc) runs. */
void isrc_reconf(struct isrc *);

/* promote.c */
const char *promo_name(enum promo_state);
void promo_load(struct isrc *);
int promo_refuses(const struct isrc *, char *why, size_t len);
int promo_route(struct node *, struct evhttp_request *, const char *path);
void promo_status(const struct isrc *, struct json *);
int im_promote(struct config *, int argc, char **argv);
/* Start a promotion asked over HTTP; the answer is JSON, or with html an
 * HTML page (the takeover page's form). */
void promo_start(struct node *, struct evhttp_request *, struct isrc *,
    int force, int html);

/* page.c: the takeover page. */
int im_page(struct node *, struct evhttp_request *, const char *path);
/* code 200 with why == NULL: promoted now; 200 with why: already was. */
void page_promote_reply(struct evhttp_request *, const struct isrc *,
    int code, const char *why);

#endif
