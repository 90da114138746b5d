/* What the three programs share around their verbs: argument parsing,
 * --help and --version, exit codes, signals as events, systemd's readiness
 * notification (daemon.c), and the command-line side of talking to a
 * running daemon, with the verbs every program has (verbs.c). */
#ifndef UNDERSTUDY_DAEMON_H
#define UNDERSTUDY_DAEMON_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct doc;
struct event_base;
struct http_call;

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

struct verb {
	const char *name;
	const char *usage; /* arguments after the verb */
	const char *help;
	int (*fn)(struct config *, int argc, char **argv);
};

/* A program: the verbs every program has (check-config, serve, status,
 * check), with its serve(), then its own. */
struct prog {
	enum role role;
	const char *name; /* understudy-exporter */
	const char *summary;
	int (*serve)(struct config *, int argc, char **argv);
	const struct verb *verbs;
};

int prog_main(const struct prog *, int argc, char **argv);
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct event_base *daemon_base_new(void);
/* SIGTERM and SIGINT call cb once on the loop; SIGPIPE is ignored. */
void daemon_signals(struct event_base *, void (*cb)(void *), void *arg);
void daemon_signals_free(void);
void daemon_notify(const char *state);

/* verbs.c */
/* The running daemon's URL, from its listen address. */
char *cli_url(const struct config *);
/* One request to the running daemon; 0 if it answered 200 (reply in
 * call->reply), else -1 with a one-line reason printed to stderr. */
int cli_request(const struct config *, struct http_call *, const char *method,
    const char *path, const char *body);
/* Whether a daemon answers on the config's listen address (quietly). */
int cli_daemon_answers(const struct config *);

/* Verbs every role has. */
int verb_tls_init(struct config *, int argc, char **argv);
int verb_check_config(struct config *, int argc, char **argv);
int verb_status(struct config *, int argc, char **argv);
int verb_check(struct config *, int argc, char **argv);
/* Options of a verb (--json, --at TIME, --at=TIME), anywhere among its
 * arguments.  The others go to pos; returns their number, or -1 after
 * printing a usage error. */
struct verb_opt {
	const char *name; /* "json", "wait" */
	int has_arg;
	const char **value; /* set to the argument, or to "" for flags */
};
int verb_opts(int argc, char **argv, struct verb_opt *opts, char **pos,
    int maxpos);

#endif
