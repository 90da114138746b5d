/* An import (import.c): the runner's job of the importer. */
#ifndef UNDERSTUDY_IMPORT_H
#define UNDERSTUDY_IMPORT_H

#include "runner.h"

extern const struct runner_ops import_ops;
extern const struct runner_words import_words;

struct config;
struct isrc;
struct node;
struct source_conf;

/* A source's state opened (isrc_open()), with its runner and its
 * promotion state (node NULL: for a verb). */
int import_open(struct isrc *, struct node *, const struct config *,
    const struct source_conf *);
/* Report an import (or a refusal) to the pull-backup: "import.done". */
void import_send_done(struct isrc *, const char *version, const char *peer,
    int ok, const char *error);

#endif
