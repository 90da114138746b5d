/* What the command-line verbs of every role share: their options, the
 * request to the running daemon, and the verbs every program has
 * (check-config, status, check). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "timespec.h"
#include "tls.h"
#include "xmalloc.h"

char *
cli_url(const struct config *cf)
{
	const char *h = cf->listen_host;

	if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "*") == 0)
		h = "127.0.0.1";
	else if (strcmp(h, "::") == 0)
		h = "::1";
	return url_make_scheme(cf->tls != NULL, h, cf->listen_port);
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
		c->content_type = PROTO_CT_JSON;
	}
	c->max_reply = 64u << 20;
	rc = http_client_call(hc, c);
	if (rc != 0 || c->status != PROTO_OK) {
		http_call_describe(c, why, sizeof why);
		if (rc != 0)
			fprintf(stderr,
			    "%s: cannot reach the %s at %s: %s; is it running "
			    "(%s serve)?\n",
			    role_name(cf->role), role_name(cf->role), url,
			    c->error, role_name(cf->role));
		else
			fprintf(stderr, "%s: %s\n", role_name(cf->role), why);
		rc = -1;
	}
	http_client_free(hc);
	c->url = NULL;
	free(url);
	return rc;
}

int
cli_daemon_answers(const struct config *cf)
{
	struct http_client *hc;
	struct http_call c;
	char *url = cli_url(cf);
	int answers;

	hc = http_client_new(url);
	http_call_init(&c, "GET", url, ROUTE_STATUS, cf->token, cf->token_len);
	c.timeout = 10;
	answers = http_client_call(hc, &c) == 0 && c.status != 0;
	http_call_clear(&c);
	http_client_free(hc);
	free(url);
	return answers;
}

/* A JSON document as indented "key: value" text: status without --json. */
static void
print_doc(FILE *f, const struct doc *d, int indent)
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
				print_doc(f, d->kids[i], indent + 2);
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
				print_doc(f, d->kids[i + 1], indent + 2);
			} else if (d->kids[i + 1]->n == 0)
				fprintf(f, " (none)\n");
			else
				print_doc(f, d->kids[i + 1], indent + 2);
		}
		break;
	}
}

int
verb_opts(int argc, char **argv, struct verb_opt *opts, char **pos, int maxpos)
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
			    (argv[i][2 + n] == '\0' ||
				(o->has_arg && argv[i][2 + n] == '=')))
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
	const char *max_age = NULL, *max_lag = NULL;
	struct verb_opt opts[] = { { "max-age", 1, &max_age },
		{ "max-lag", 1, &max_lag }, { NULL, 0, NULL } };
	struct http_client *hc;
	struct http_call c;
	int64_t secs = cf->max_age, lag = 0;
	char *url, *path, line[1024];
	size_t n;
	int rc;

	if (verb_opts(argc, argv, opts, NULL, 0) < 0)
		return 3;
	if (max_age != NULL && age_parse(max_age, &secs) != 0) {
		printf("UNKNOWN: --max-age takes an age like 25h\n");
		return 3;
	}
	if (max_lag != NULL && (age_parse(max_lag, &lag) != 0 || lag == 0)) {
		printf("UNKNOWN: --max-lag takes an age like 15m\n");
		return 3;
	}
	url = cli_url(cf);
	path = proto_health_route(secs, lag);
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
		if (c.status == PROTO_OK)
			rc = strncmp(line, "WARNING", 7) == 0 ? 1 : 0;
		else
			rc = c.status == PROTO_UNAVAILABLE ? 2 : 3;
	}
	http_call_clear(&c);
	http_client_free(hc);
	free(path);
	free(url);
	return rc;
}

int
verb_tls_init(struct config *cf, int argc, char **argv)
{
	const char *name = NULL, *days_s = NULL;
	struct verb_opt opts[] = { { "name", 1, &name }, { "days", 1, &days_s },
		{ NULL, 0, NULL } };
	char *pos[2], host[256], fp[TLS_FP_SIZE], err[1024], *end;
	long days = 730;

	(void)cf;
	if (verb_opts(argc, argv, opts, pos, 2) != 2)
		return usage_error(
		    "tls-init [--name HOST] [--days N] CERTIFICATE KEY");
	if (days_s != NULL) {
		errno = 0;
		days = strtol(days_s, &end, 10);
		if (errno != 0 || *end != '\0' || days < 1 || days > 36500)
			return usage_error("tls-init: --days takes a number of "
					   "days from 1 to 36500, not %s",
			    days_s);
	}
	if (name == NULL) {
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		name = host;
	}
	if (tls_make_self_signed(name, (int)days, pos[0], pos[1], fp, err,
		sizeof err) != 0) {
		fprintf(stderr, "tls-init: %s\n", err);
		return EXIT_FAILED;
	}
	printf("made %s (key, 0600) and %s (a certificate for %s, valid %ld "
	       "days)\nfingerprint %s\n"
	       "pin it in the tls: pins of the hosts this one talks to\n",
	    pos[1], pos[0], name, days, fp);
	return EXIT_OK;
}

int
verb_check_config(struct config *cf, int argc, char **argv)
{
	if (argc > 1)
		return usage_error("check-config takes no arguments");
	if (cf->warning != NULL)
		fprintf(stderr, "%s: warning: %s\n", cf->path, cf->warning);
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
	if (cli_request(cf, &c, "GET", ROUTE_STATUS, NULL) == 0) {
		size_t n = evbuffer_get_length(c.reply);
		const char *p = (const char *)evbuffer_pullup(c.reply, -1);
		if (json != NULL) {
			fwrite(p, 1, n, stdout);
			rc = EXIT_OK;
		} else if (doc_parse(p, n, &d, err, sizeof err) == 0) {
			print_doc(stdout, d, 0);
			rc = EXIT_OK;
		} else
			fprintf(stderr, "%s: bad status reply: %s\n",
			    role_name(cf->role), err);
	}
	doc_free(d);
	http_call_clear(&c);
	return rc;
}
