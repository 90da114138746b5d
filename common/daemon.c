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
#include "doc.h"
#include "http.h"
#include "timespec.h"
#include "log.h"
#include "understudy-config.h"
#include "xmalloc.h"

static const struct prog *the_prog;

static void
prog_usage(FILE *f)
{
	const struct verb *v;

	fprintf(f, "usage: %s [-c CONFIG] VERB [ARGS...]\n\n%s\n\nverbs:\n",
	    the_prog->name, the_prog->summary);
	for (v = the_prog->verbs; v->name != NULL; v++)
		fprintf(f, "  %s%s%s\n      %s\n", v->name, *v->usage ? " " :
		    "", v->usage, v->help);
	fprintf(f, "\noptions:\n  -c CONFIG   the configuration (default "
	    "%s/%s.yaml)\n  --help      this text\n  --version   the "
	    "version\n\nexit status: 0 success, 1 the operation failed, 2 bad "
	    "usage or bad config\n", UNDERSTUDY_SYSCONFDIR,
	    role_name(the_prog->role));
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
	log_init(role_name(p->role), getenv("UNDERSTUDY_DEBUG") ?
	    LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
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
			    UNDERSTUDY_VERSION, 1);
			return EXIT_OK;
		default:
			prog_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no verb given");
	for (v = p->verbs; v->name != NULL; v++)
		if (strcmp(v->name, argv[optind]) == 0)
			break;
	if (v->name == NULL)
		return usage_error("unknown verb \"%s\"", argv[optind]);
	if (path == NULL)
		path = xasprintf("%s/%s.yaml", UNDERSTUDY_SYSCONFDIR,
		    role_name(p->role));
	if (config_load(path, p->role, &cf, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0;	/* the verb parses its own options */
	rc = v->fn(cf, argc, argv);
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

void
daemon_signals(struct event_base *base, void (*cb)(void *), void *arg)
{
	static struct sigctx ctx;
	struct event *ev;

	signal(SIGPIPE, SIG_IGN);
	ctx.cb = cb;
	ctx.arg = arg;
	ev = evsignal_new(base, SIGTERM, signal_cb, &ctx);
	event_add(ev, NULL);
	ev = evsignal_new(base, SIGINT, signal_cb, &ctx);
	event_add(ev, NULL);
}

void
daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || *path == '\0' || strlen(path) >=
	    sizeof sun.sun_path)
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
	if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun,
	    len) < 0)
		log_warn("notifying systemd (%s)", path);
	close(fd);
}

char *
cli_url(const struct config *cf)
{
	const char *h = cf->listen_host;

	if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "*") == 0)
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	if (strchr(h, ':') != NULL)
		return xasprintf("http://[%s]:%d", h, cf->listen_port);
	return xasprintf("http://%s:%d", h, cf->listen_port);
}

int
cli_request(const struct config *cf, struct http_call *c, const char *method,
    const char *path, const char *body)
{
	struct http_client *hc;
	char *url = cli_url(cf), why[1024];
	int rc;

	hc = http_client_new(url);
	http_call_init(c, method, url, path, cf->token, cf->token_len);
	c->url = url;
	if (body != NULL) {
		c->body = evbuffer_new();
		evbuffer_add(c->body, body, strlen(body));
		c->content_type = "application/json";
	}
	c->max_reply = 64u << 20;
	rc = http_client_call(hc, c);
	if (rc != 0 || c->status != 200) {
		http_call_describe(c, why, sizeof why);
		if (rc != 0)
			fprintf(stderr, "%s: cannot reach the %s at %s: %s; is "
			    "it running (%s serve)?\n", role_name(cf->role),
			    role_name(cf->role), url, c->error,
			    role_name(cf->role));
		else
			fprintf(stderr, "%s: %s\n", role_name(cf->role), why);
		rc = -1;
	}
	http_client_free(hc);
	c->url = NULL;
	free(url);
	return rc;
}

void
doc_print(FILE *f, const struct doc *d, int indent)
{
	size_t i;

	switch (d->type) {
	case DOC_SCALAR:
		fprintf(f, "%s\n", d->str);
		break;
	case DOC_SEQ:
		if (d->n == 0) {
			fprintf(f, "(none)\n");
			break;
		}
		if (indent > 0)
			fprintf(f, "\n");
		for (i = 0; i < d->n; i++) {
			fprintf(f, "%*s-", indent, "");
			if (d->kids[i]->type == DOC_SCALAR)
				fprintf(f, " %s\n", d->kids[i]->str);
			else {
				fprintf(f, "\n");
				doc_print(f, d->kids[i], indent + 2);
			}
		}
		break;
	case DOC_MAP:
		for (i = 0; i + 1 < d->n; i += 2) {
			fprintf(f, "%*s%s:", indent, "", d->kids[i]->str);
			if (d->kids[i + 1]->type == DOC_SCALAR)
				fprintf(f, " %s\n", d->kids[i + 1]->str);
			else if (d->kids[i + 1]->type == DOC_MAP) {
				fprintf(f, "\n");
				doc_print(f, d->kids[i + 1], indent + 2);
			} else if (d->kids[i + 1]->n == 0)
				fprintf(f, " (none)\n");
			else
				doc_print(f, d->kids[i + 1], indent + 2);
		}
		break;
	}
}

int
verb_opts(int argc, char **argv, struct verb_opt *opts, char **pos,
    int maxpos)
{
	struct verb_opt *o;
	int i, npos = 0, only_pos = 0;
	size_t n = 0;

	for (i = 1; i < argc; i++) {
		if (!only_pos && argv[i][0] == '-' && argv[i][1] != '-' &&
		    argv[i][1] != '\0' && argv[i][2] == '\0') {
			/* A one-letter option: -o FILE. */
			for (o = opts; o->name != NULL; o++)
				if (strlen(o->name) == 1 &&
				    o->name[0] == argv[i][1])
					break;
			if (o->name == NULL) {
				usage_error("%s: unknown option %s", argv[0],
				    argv[i]);
				return -1;
			}
			if (!o->has_arg)
				*o->value = "";
			else if (i + 1 < argc)
				*o->value = argv[++i];
			else {
				usage_error("%s: %s needs a value", argv[0],
				    argv[i]);
				return -1;
			}
			continue;
		}
		if (only_pos || strncmp(argv[i], "--", 2) != 0 ||
		    argv[i][2] == '\0') {
			if (!only_pos && strcmp(argv[i], "--") == 0) {
				only_pos = 1;
				continue;
			}
			if (npos == maxpos) {
				usage_error("%s: unexpected argument %s",
				    argv[0], argv[i]);
				return -1;
			}
			pos[npos++] = argv[i];
			continue;
		}
		for (o = opts; o->name != NULL; o++) {
			n = strlen(o->name);
			if (strncmp(argv[i] + 2, o->name, n) == 0 &&
			    (argv[i][2 + n] == '\0' || (o->has_arg &&
			    argv[i][2 + n] == '=')))
				break;
		}
		if (o->name == NULL) {
			usage_error("%s: unknown option %s", argv[0], argv[i]);
			return -1;
		}
		if (!o->has_arg)
			*o->value = "";
		else if (argv[i][2 + n] == '=')
			*o->value = argv[i] + 3 + n;
		else if (i + 1 < argc)
			*o->value = argv[++i];
		else {
			usage_error("%s: %s needs a value", argv[0], argv[i]);
			return -1;
		}
	}
	return npos;
}

/* check [--max-age AGE]: one line, and Nagios's exit codes: 0 OK,
 * 1 WARNING (fresh, but the last run failed), 2 CRITICAL (stale or
 * nothing yet), 3 UNKNOWN (the daemon does not answer). */
int
verb_check(struct config *cf, int argc, char **argv)
{
	const char *max_age = NULL;
	struct verb_opt opts[] = { { "max-age", 1, &max_age },
	    { NULL, 0, NULL } };
	struct http_client *hc;
	struct http_call c;
	int64_t secs = cf->max_age;
	char *url, *path, line[1024];
	size_t n;
	int rc;

	if (verb_opts(argc, argv, opts, NULL, 0) < 0)
		return 3;
	if (max_age != NULL && age_parse(max_age, &secs) != 0) {
		printf("UNKNOWN: --max-age takes an age like 25h\n");
		return 3;
	}
	url = cli_url(cf);
	path = xasprintf("/health?max_age=%lld", (long long)secs);
	hc = http_client_new(url);
	http_call_init(&c, "GET", url, path, cf->token, cf->token_len);
	c.timeout = 30;
	if (http_client_call(hc, &c) != 0) {
		printf("UNKNOWN: cannot reach the %s at %s: %s\n",
		    role_name(cf->role), url, c.error);
		rc = 3;
	} else {
		n = evbuffer_get_length(c.reply);
		if (n >= sizeof line)
			n = sizeof line - 1;
		evbuffer_remove(c.reply, line, n);
		line[n] = '\0';
		line[strcspn(line, "\n")] = '\0';
		printf("%s\n", line);
		rc = c.status == 200 ? (strncmp(line, "WARNING", 7) == 0 ?
		    1 : 0) : c.status == 503 ? 2 : 3;
	}
	http_call_clear(&c);
	http_client_free(hc);
	free(path);
	free(url);
	return rc;
}

int
verb_check_config(struct config *cf, int argc, char **argv)
{
	if (argc > 1)
		return usage_error("check-config takes no arguments");
	printf("configuration OK\n");
	return EXIT_OK;
}

int
verb_status(struct config *cf, int argc, char **argv)
{
	const char *json = NULL;
	struct verb_opt opts[] = { { "json", 0, &json }, { NULL, 0, NULL } };
	struct http_call c;
	struct doc *d = NULL;
	char err[256];
	int rc = EXIT_FAILED;

	if (verb_opts(argc, argv, opts, NULL, 0) < 0)
		return EXIT_USAGE;
	if (cli_request(cf, &c, "GET", "/v1/status", NULL) == 0) {
		size_t n = evbuffer_get_length(c.reply);
		const char *p = (const char *)evbuffer_pullup(c.reply, -1);
		if (json != NULL) {
			fwrite(p, 1, n, stdout);
			rc = EXIT_OK;
		} else if (doc_parse(p, n, &d, err, sizeof err) == 0) {
			doc_print(stdout, d, 0);
			rc = EXIT_OK;
		} else
			fprintf(stderr, "%s: bad status reply: %s\n",
			    role_name(cf->role), err);
	}
	doc_free(d);
	http_call_clear(&c);
	return rc;
}
