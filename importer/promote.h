/* Promotion (promote.c): an operator makes this standby the primary for a
 * source. */
#ifndef UNDERSTUDY_PROMOTE_H
#define UNDERSTUDY_PROMOTE_H

#include <stddef.h>
#include <time.h>

struct evhttp_request;
struct hook_result;
struct isrc;
struct json;

const char *promote_state_name(int state);
void promote_load(struct isrc *);
/* The generation a promotion started becomes the source's, durably (the
 * node's commit thread, or now in a verb); then, with the daemon, the
 * pull-backup is told (EV_SOURCE_PROMOTED; again at every start). */
void promote_generation(struct isrc *);
void promote_announce(struct isrc *);
/* 1, with the reason, when the source takes no more imports. */
int promote_refuses(const struct isrc *, char *why, size_t len);
/* Whether req may promote: with promote_token_file, when it gives that
 * secret (secret); without, when it comes from this host (its CLI, or a
 * browser on it).  0 with the reason otherwise. */
int promote_permitted(const struct config *, struct evhttp_request *,
    const char *secret, char *why, size_t len);
/* The status block's part. */
void promote_status(const struct isrc *, struct json *);

/* How a promotion asked over HTTP is answered, once it is decided: code
 * 200 with why NULL (promoted now) or with why (it was already), else the
 * status of a refusal or a failure, and its reason. */
typedef void promote_reply_fn(struct evhttp_request *, const struct isrc *,
    int code, const char *why);
/* Start a promotion asked over HTTP; via names where, for the log. */
void promote_start(struct isrc *, struct evhttp_request *, int force,
    promote_reply_fn *reply, const char *via);

/* The steps, for a verb doing it without the daemon: may the source be
 * promoted now (0; 1 when it is already, else an HTTP status, with the
 * reason); mark it, durably (0 or -1 with the reason); run the promote
 * hook (blocks); take the hook's result.  promote_save() writes the
 * state file now. */
int promote_check(const struct isrc *, int force, char *why, size_t len);
void promote_mark(struct isrc *, int force);
int promote_save(const struct isrc *);
void promote_hook(const struct isrc *, struct hook_result *);
void promote_end(struct isrc *, const struct hook_result *);
/* The feed's summary of a promotion's end. */
const char *promote_summary(const struct hook_result *);

#endif
