/* The exporter's now verb: ask the running daemon for a cycle (POST
 * /v1/now) and follow it (GET /v1/runs/<id>) to the stage asked, printing
 * each step as it is reached.  A version superseded by a newer export
 * before it reached the stage may never reach it (the pull-backups take
 * the newest); now then follows the newer one, and says so. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "exporter.h"
#include "fsutil.h"
#include "generation.h"
#include "http.h"
#include "proto.h"
#include "runlog.h"
#include "timespec.h"
#include "xmalloc.h"

/* A reason the peer may not have given. */
static const char *
or_what(const char *s)
{
	return s != NULL ? s : "?";
}

static const char *
wait_reached(const struct doc *run, const char *wait, int *failed, char *why,
    size_t whylen)
{
	const struct doc *pbs = doc_get(run, "pullbackups");
	const char *state = doc_get_str(run, "state");
	size_t i, archived = 0, imported = 0;
	int64_t iok, itot, st;

	*failed = 0;
	if (state != NULL && strcmp(state, "failed") == 0) {
		*failed = 1;
		snprintf(why, whylen, "export failed: %s",
		    or_what(doc_get_str(run, "error")));
		return NULL;
	}
	if (state == NULL || strcmp(state, "running") == 0 || pbs == NULL)
		return NULL;
	for (i = 0; i < pbs->n; i++) {
		const struct doc *pb = pbs->kids[i];
		const char *a = doc_get_str(pb, "archived");
		const char *im = doc_get_str(pb, "imported");
		if (a && strcmp(a, "pending") == 0 &&
		    doc_get_i64(pb, "delivery_status", &st) == 0 && st >= 400 &&
		    st < 500) {
			/* Refused until an operator acts: the secret, the
			 * source's name. */
			*failed = 1;
			snprintf(why, whylen,
			    "%s does not take the event (the exporter keeps "
			    "trying): %s",
			    doc_get_str(pb, "url"),
			    or_what(doc_get_str(pb, "delivery_error")));
			return NULL;
		}
		if (a && strcmp(a, "failed") == 0) {
			*failed = 1;
			snprintf(why, whylen, "archiving on %s failed: %s",
			    doc_get_str(pb, "url"),
			    or_what(doc_get_str(pb, "archive_error")));
			return NULL;
		}
		if (im && strcmp(im, "failed") == 0 &&
		    strcmp(wait, "imported") == 0) {
			iok = itot = 0;
			doc_get_i64(pb, "importers_ok", &iok);
			doc_get_i64(pb, "importers_total", &itot);
			*failed = 1;
			snprintf(why, whylen,
			    "imported on %lld of %lld importers via %s: %s",
			    (long long)iok, (long long)itot,
			    doc_get_str(pb, "url"),
			    or_what(doc_get_str(pb, "import_error")));
			return NULL;
		}
		archived += a && strcmp(a, "ok") == 0;
		imported += im && strcmp(im, "ok") == 0;
	}
	if (strcmp(wait, "archived") == 0 && archived == pbs->n)
		return "archived";
	if (strcmp(wait, "imported") == 0 && imported == pbs->n)
		return "imported";
	return NULL;
}

/* Print what changed since the last poll. */
static void
now_progress(const struct doc *run, char **seen, size_t nseen)
{
	const struct doc *pbs = doc_get(run, "pullbackups");
	const char *state = doc_get_str(run, "state");
	char line[1024];
	size_t i;
	int64_t files = 0, bytes = 0, iok = 0, itot = 0;

#define SAY(k) \
	do { \
		if (seen[k] == NULL || strcmp(seen[k], line) != 0) { \
			printf("%s\n", line); \
			fflush(stdout); \
			free(seen[k]); \
			seen[k] = xstrdup(line); \
		} \
	} while (0)
	doc_get_i64(run, "files", &files);
	doc_get_i64(run, "bytes", &bytes);
	if (state && strcmp(state, "exported") == 0) {
		snprintf(line, sizeof line, "exported %lld files, %lld bytes",
		    (long long)files, (long long)bytes);
		SAY(0);
	}
	for (i = 0; pbs && i < pbs->n && 3 * i + 3 < nseen; i++) {
		const struct doc *pb = pbs->kids[i];
		const char *a = doc_get_str(pb, "archived");
		const char *im = doc_get_str(pb, "imported");
		const char *de = doc_get_str(pb, "delivery_error");
		if (a && strcmp(a, "pending") == 0 && de != NULL) {
			snprintf(line, sizeof line,
			    "not yet delivered to %s (retrying): %s",
			    doc_get_str(pb, "url"), de);
			SAY(3 * i + 1);
		}
		if (a && strcmp(a, "ok") == 0) {
			snprintf(line, sizeof line, "archived on %s",
			    doc_get_str(pb, "url"));
			SAY(3 * i + 2);
		}
		if (im && strcmp(im, "pending") != 0) {
			doc_get_i64(pb, "importers_ok", &iok);
			doc_get_i64(pb, "importers_total", &itot);
			snprintf(line, sizeof line,
			    "imported on %lld of %lld importers (via %s)",
			    (long long)iok, (long long)itot,
			    doc_get_str(pb, "url"));
			SAY(3 * i + 3);
		}
	}
#undef SAY
}

int
verb_now(struct config *cf, int argc, char **argv)
{
	const char *wait = "archived", *json = NULL, *timeout_s = "1h";
	struct verb_opt opts[] = { { "wait", 1, &wait }, { "json", 0, &json },
		{ "timeout", 1, &timeout_s }, { NULL, 0, NULL } };
	struct http_call c;
	struct doc *d = NULL, *run;
	char *path = NULL, version[64], perr[256], why[1024], *seen[64];
	char first[64] = "", via[128] = "";
	const char *reached = NULL, *newer;
	int64_t timeout;
	time_t deadline;
	int i, failed = 0, rc = EXIT_FAILED;

	if (verb_opts(argc, argv, opts, NULL, 0) < 0)
		return EXIT_USAGE;
	if (strcmp(wait, "archived") != 0 && strcmp(wait, "imported") != 0)
		return usage_error("now: --wait takes archived or imported");
	if (age_parse(timeout_s, &timeout) != 0)
		return usage_error("now: --timeout takes an age like 10m");
	memset(seen, 0, sizeof seen);
	if (cli_request(cf, &c, "POST", ROUTE_NOW, "{}") != 0) {
		http_call_clear(&c);
		return EXIT_FAILED;
	}
	if (doc_parse((const char *)evbuffer_pullup(c.reply, -1),
		evbuffer_get_length(c.reply), &d, perr, sizeof perr) != 0 ||
	    doc_get_str(d, NOW_VERSION) == NULL) {
		fprintf(stderr, "exporter: bad reply to now\n");
		http_call_clear(&c);
		doc_free(d);
		return EXIT_FAILED;
	}
	snprintf(version, sizeof version, "%s", doc_get_str(d, NOW_VERSION));
	doc_free(d);
	http_call_clear(&c);
	if (json == NULL) {
		printf("export of %s started: version %s\n", cf->source,
		    version);
		fflush(stdout);
	}
	path = proto_run_route(version);
	deadline = time(NULL) + timeout;
	for (;;) {
		d = NULL;
		if (cli_request(cf, &c, "GET", path, NULL) != 0) {
			http_call_clear(&c);
			break;
		}
		if (doc_parse((const char *)evbuffer_pullup(c.reply, -1),
			evbuffer_get_length(c.reply), &d, perr,
			sizeof perr) != 0 ||
		    (run = doc_get(d, RUNS_RUN)) == NULL) {
			fprintf(stderr, "exporter: bad run reply\n");
			http_call_clear(&c);
			break;
		}
		if (json == NULL)
			now_progress(run, seen, 64);
		reached = wait_reached(run, wait, &failed, why, sizeof why);
		newer = doc_get_str(run, "superseded_by");
		if (reached == NULL && !failed && newer != NULL &&
		    version_id_valid(newer) && strcmp(newer, version) > 0) {
			/* The pull-backups may take the newer version
			 * instead: follow it. */
			if (json == NULL) {
				printf("version %s superseded by %s before it "
				       "was %s; following %s\n",
				    version, newer, wait, newer);
				fflush(stdout);
			}
			if (first[0] == '\0')
				snprintf(first, sizeof first, "%s", version);
			snprintf(version, sizeof version, "%s", newer);
			free(path);
			path = proto_run_route(version);
			for (i = 0; i < 64; i++) {
				free(seen[i]);
				seen[i] = NULL;
			}
			http_call_clear(&c);
			doc_free(d);
			continue;
		}
		if (reached != NULL || failed || time(NULL) > deadline) {
			if (first[0] != '\0')
				snprintf(via, sizeof via,
				    " (version %s superseded by it)", first);
			if (json != NULL)
				fwrite(evbuffer_pullup(c.reply, -1), 1,
				    evbuffer_get_length(c.reply), stdout);
			if (reached != NULL) {
				if (json == NULL)
					printf("OK: version %s %s%s\n", version,
					    reached, via);
				rc = EXIT_OK;
			} else if (failed)
				fprintf(stderr,
				    "exporter: FAILED: version %s%s: %s\n",
				    version, via, why);
			else
				fprintf(stderr,
				    "exporter: FAILED: version %s%s not %s "
				    "after %s (see status on each host)\n",
				    version, via, wait, timeout_s);
			http_call_clear(&c);
			doc_free(d);
			break;
		}
		http_call_clear(&c);
		doc_free(d);
		usleep(200000);
	}
	for (i = 0; i < 64; i++)
		free(seen[i]);
	free(path);
	return rc;
}

/* generation [N]: the source's generation here, and what fenced this
 * exporter off; with N (the daemon stopped), take generation N: on a
 * promoted host, the one its promotion started; on the old primary after a
 * failback, the one the promotion back started. */
int
verb_generation(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	struct gen g;
	char *pos[1], *path, *end, err[1024], what[512], summary[1024];
	long long n = 0;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc == 1) {
		errno = 0;
		n = strtoll(pos[0], &end, 10);
		if (errno != 0 || *end != '\0' || n < 1 || n > INT32_MAX)
			return usage_error(
			    "generation [N]: N is a generation, 1 or more");
	}
	path = xasprintf("%s/%s", cf->state_dir, EXPORTER_GENERATION);
	rc = gen_load(&g, cf->source, path, err, sizeof err);
	free(path);
	if (rc != 0) {
		fprintf(stderr, "exporter: %s\n", err);
		return EXIT_FAILED;
	}
	rc = EXIT_FAILED;
	if (n == 0) {
		gen_describe(&g.cur, what, sizeof what);
		printf("source \"%s\": %s\n", cf->source, what);
		if (g.fence.n > 0) {
			gen_describe(&g.fence, what, sizeof what);
			printf("fenced off by %s: this exporter exports no "
			       "more\n",
			    what);
		}
		rc = EXIT_OK;
	} else if (cli_daemon_answers(cf))
		fprintf(stderr,
		    "exporter: the daemon runs; stop it first (systemctl stop "
		    "understudy-exporter), then take generation %lld\n",
		    n);
	else if (n < g.cur.n || (g.fence.n > 0 && n < g.fence.n)) {
		gen_describe(g.fence.n > 0 ? &g.fence : &g.cur, what,
		    sizeof what);
		fprintf(stderr,
		    "exporter: source \"%s\" is in %s; generation %lld would "
		    "be older\n",
		    cf->source, what, n);
	} else {
		if (n == g.fence.n)
			gen_set(&g.cur, &g.fence);
		else {
			gen_start_clear(&g.cur);
			g.cur.n = n;
		}
		gen_start_clear(&g.fence);
		if (fs_mkdir_p(cf->state_dir, 0700) != 0 ||
		    gen_write_now(&g) != 0)
			fprintf(stderr, "exporter: %s: %s\n", g.path,
			    strerror(errno));
		else {
			gen_describe(&g.cur, what, sizeof what);
			snprintf(summary, sizeof summary,
			    "this exporter exports %s from now on", what);
			path = xasprintf("%s/runs.jsonl", cf->state_dir);
			runlog_note(path, "generation", cf->source, NULL, 1,
			    time(NULL), summary, NULL);
			free(path);
			printf("source \"%s\": %s\n", cf->source, summary);
			rc = EXIT_OK;
		}
	}
	gen_clear(&g);
	return rc;
}
