/* What the three programs share around their verbs: argument parsing,
 * --help and --version, the verb table, and for a daemon its event base,
 * its signals as events and systemd's readiness notification. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "daemon.h"
#include "log.h"
#include "proto.h"
#include "tls.h"
#include "understudy-config.h"
#include "xmalloc.h"

static const struct prog *the_prog;

/* The verbs every program has; serve is the program's own. */
static const struct verb common_verbs[] = {
	{ "check-config", "", "parse and validate the configuration",
	    verb_check_config },
	{ "serve", "", "run the daemon in the foreground", NULL },
	{ "status", "[--json]", "what the running daemon knows", verb_status },
	{ "check", "[--max-age AGE] [--max-lag AGE]",
	    "one line and a Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 "
	    "UNKNOWN",
	    verb_check },
	{ "tls-init", "[--name HOST] [--days N] CERTIFICATE KEY",
	    "make this host's key and a self-signed certificate for HOST (this "
	    "host's name), valid N days (730), and print its fingerprint",
	    verb_tls_init },
	{ NULL, NULL, NULL, NULL },
};

static void
print_verbs(FILE *f, const struct verb *v)
{
	for (; v->name != NULL; v++)
		fprintf(f, "  %s%s%s\n      %s\n", v->name,
		    *v->usage ? " " : "", v->usage, v->help);
}

static void
prog_usage(FILE *f)
{
	fprintf(f, "usage: %s [-c CONFIG] VERB [ARGS...]\n\n%s\n\nverbs:\n",
	    the_prog->name, the_prog->summary);
	print_verbs(f, common_verbs);
	print_verbs(f, the_prog->verbs);
	fprintf(f,
	    "\noptions:\n  -c CONFIG   the configuration (default "
	    "%s/%s.yaml)\n  --help      this text\n  --version   the "
	    "version\n\nexit status: 0 success, 1 the operation failed, 2 bad "
	    "usage or bad config\n",
	    UNDERSTUDY_SYSCONFDIR, role_name(the_prog->role));
}

int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", the_prog->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", the_prog->name);
	return EXIT_USAGE;
}

static const struct verb *
verb_find(const struct prog *p, const char *name)
{
	const struct verb *v;

	for (v = common_verbs; v->name != NULL; v++)
		if (strcmp(v->name, name) == 0)
			return v;
	for (v = p->verbs; v->name != NULL; v++)
		if (strcmp(v->name, name) == 0)
			return v;
	return NULL;
}

int
prog_main(const struct prog *p, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const struct verb *v;
	struct config *cf;
	char *path = NULL, err[1024];
	int ch, rc;

	the_prog = p;
	log_init(role_name(p->role),
	    getenv("UNDERSTUDY_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	/* Options stop at the verb, whose own options follow it. */
	while ((ch = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			prog_usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("%s %s (protocol %d)\n", p->name,
			    UNDERSTUDY_VERSION, PROTO_VERSION);
			return EXIT_OK;
		default:
			prog_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no verb given");
	if ((v = verb_find(p, argv[optind])) == NULL)
		return usage_error("unknown verb \"%s\"", argv[optind]);
	if (path == NULL)
		path = xasprintf("%s/%s.yaml", UNDERSTUDY_SYSCONFDIR,
		    role_name(p->role));
	if (config_load(path, p->role, &cf, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	/* The daemon and the verbs that call it use this host's certificate;
	 * tls-init makes it. */
	if (strcmp(v->name, "tls-init") != 0 &&
	    tls_setup(cf, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", cf->path, err);
		config_free(cf);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* the verb parses its own options */
	rc = (v->fn != NULL ? v->fn : p->serve)(cf, argc, argv);
	config_free(cf);
	return rc;
}

struct event_base *
daemon_base_new(void)
{
	struct event_base *base;

	/* glibc gives each thread that allocates an arena of its own, which
	 * keeps what it freed: with the worker pools' seven threads a daemon
	 * held half again the memory it used (peak RSS 32 MiB against 21 MiB
	 * over a bench cycle).  Two arenas are shared among them instead. */
	mallopt(M_ARENA_MAX, 2);
	if (evthread_use_pthreads() != 0)
		fatalx("libevent has no pthreads support");
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create the event base");
	return base;
}

struct sigctx {
	void (*cb)(void *);
	void *arg;
	int fired;
};

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sigctx *s = arg;

	if (s->fired++) {
		log_warnx("second signal: exiting now");
		exit(1);
	}
	log_info("received %s, shutting down", strsignal((int)sig));
	s->cb(s->arg);
}

static struct event *sig_events[2];

void
daemon_signals(struct event_base *base, void (*cb)(void *), void *arg)
{
	static struct sigctx ctx;

	signal(SIGPIPE, SIG_IGN);
	ctx.cb = cb;
	ctx.arg = arg;
	sig_events[0] = evsignal_new(base, SIGTERM, signal_cb, &ctx);
	event_add(sig_events[0], NULL);
	sig_events[1] = evsignal_new(base, SIGINT, signal_cb, &ctx);
	event_add(sig_events[1], NULL);
}

void
daemon_signals_free(void)
{
	size_t i;

	for (i = 0; i < 2; i++) {
		if (sig_events[i] != NULL)
			event_free(sig_events[i]);
		sig_events[i] = NULL;
	}
}

void
daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	ssize_t n;
	int fd;

	if (path == NULL || *path == '\0' ||
	    strlen(path) >= sizeof sun.sun_path)
		return;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	n = sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun, len);
	if (n < 0)
		log_warn("notifying systemd (%s)", path);
	close(fd);
}
