/* The importer's state of one source, in state_dir/sources/<source>/:
 *
 *   current/           the last good copy: data/ and its manifest
 *   next/              the copy an import is making (resumed after a stop)
 *   replaced.<version>/  the copy that import replaced, until removed
 *   last-import.json   the last import's result (runner.h)
 *   promoted.json      a promotion (promote.c): no more imports
 *   generation.json    the source's generation here (generation.h)
 *   check.json         damage the last check of the copy found (check.h)
 *   delta-hints        hints.h
 *
 * Shared by the daemon (importer.c, import.c), promotion (promote.c), the
 * takeover page (page.c) and the verbs (verbs.c). */
#ifndef UNDERSTUDY_ISRC_H
#define UNDERSTUDY_ISRC_H

#include <stdint.h>
#include <time.h>

#include "generation.h"
#include "manifest.h"
#include "runner.h"

struct config;
struct event;
struct node;
struct source_conf;

/* What a check of the copy found (check.h). */
struct check_result {
	int64_t bad;   /* entries that differ from the manifest */
	char *first;   /* the first of them, and how */
	char *version; /* of the copy */
	time_t at;
	char error[512]; /* when it could not be read */
};

enum promo_state {
	PROMO_NONE,
	PROMO_PROMOTING,
	PROMO_PROMOTED
};

struct isrc {
	struct node *node; /* NULL in a verb */
	/* the imports; run.sc is the source's settings */
	struct runner run;
	char *dir, *current, *next, *hints, *promo_file;
	struct manifest *cur_m; /* the last good copy's */
	/* The import in progress, on a worker. */
	struct manifest *new_m;
	struct runner_result res;
	int gone, hook_ran;
	char *replaced;     /* the copy the import replaced */
	int64_t import_gen; /* the generation its event named */
	int pipelined;      /* its event said staged: still being pulled */
	/* The source's generation here: the node's, or (a verb) own_gen. */
	struct gen *gen;
	struct gen own_gen;
	/* Promotion (promote.c): once asked for, no more imports. */
	enum promo_state promo;
	char *promo_at;
	char *promo_version;
	char *promo_output;
	int promo_forced;
	int promo_busy;
	struct gen_start promo_gen; /* the generation it started */
	/* Checks of the copy (check.h). */
	struct check_result damage; /* bad 0: none known */
	time_t checked_at;
	int checking;
	struct event *check_ev;
};

/* The copy the import of <version> replaced, until it is removed:
 * replaced.<version>. */
#define ISRC_REPLACED_PREFIX "replaced."

/* The names of a source's state, its generation and its last good copy,
 * loaded (node NULL: for a verb); the caller starts run (import_open()
 * does it all).  -1, said, if the directory cannot be made or the
 * generation is damaged. */
int isrc_open(struct isrc *, struct node *, const struct config *,
    const struct source_conf *);
void isrc_close(struct isrc *);
/* The last import's state file. */
char *isrc_last_file(const struct isrc *);
/* At start-up: copies imports replaced, left by a stop. */
void isrc_remove_replaced(struct isrc *);

/* The version of the last good copy, or NULL. */
static inline const char *
isrc_version(const struct isrc *s)
{
	return s->cur_m != NULL ? s->cur_m->version : NULL;
}

#endif
