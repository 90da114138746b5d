/* A standby's copy re-read against its manifest (check.c): by the verify
 * verb, by the daemon every verify_every, and before a promotion's hook.
 * Damage found is kept (health says it, status shows it, a state file
 * keeps it across a restart) until an import replaces the copy: the next
 * one mends it, fetching from the pull-backup what differs. */
#ifndef UNDERSTUDY_CHECK_H
#define UNDERSTUDY_CHECK_H

#include <stddef.h>
#include <stdio.h>

#include "isrc.h"

struct json;

/* Hash the copy and compare it with its manifest; each bad entry goes to
 * report (or nowhere).  0, or -1 with res->error when it cannot be read. */
int check_copy(const struct isrc *, FILE *report, struct check_result *);
void check_result_clear(struct check_result *);
/* The daemon's: what the last check found, from its state file. */
void check_load(struct isrc *);
/* Check now on a worker, imports held meanwhile; done() (may be NULL)
 * runs on the loop after.  -1 when an import or a check runs, or there is
 * no copy. */
int check_start(struct isrc *,
    void (*done)(struct isrc *, const struct check_result *, int rc, void *arg),
    void *arg);
/* The next check in verify_every (none when 0). */
void check_schedule(struct isrc *);
/* An import replaced the copy: what was found of the old one goes. */
void check_replaced(struct isrc *);
/* 1, with a line saying it, when the copy is known to be damaged. */
int check_damaged(const struct isrc *, char *why, size_t len);
void check_status(const struct isrc *, struct json *);

#endif
