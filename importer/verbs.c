/* The importer's own verbs: verify (the local copy against its manifest)
 * and promote (through the running daemon, or directly when it does not
 * answer). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fsutil.h"
#include "hook.h"
#include "http.h"
#include "check.h"
#include "import.h"
#include "importer.h"
#include "json.h"
#include "manifest.h"
#include "promote.h"
#include "proto.h"
#include "runlog.h"
#include "xmalloc.h"

static const struct source_conf *
verb_source(struct config *cf, const char *name)
{
	const struct source_conf *sc = config_source(cf, name);

	if (sc == NULL)
		fprintf(stderr, "importer: no source \"%s\" in %s\n", name,
		    cf->path);
	return sc;
}

/* verify through the daemon, which keeps what it finds for its health:
 * the verb's exit, or -1 when the daemon does not answer. */
static int
verify_remote(struct config *cf, const char *source)
{
	struct http_client *hc;
	struct http_call c;
	struct doc *d = NULL;
	char *url = cli_url(cf), body[256], why[1024];
	int64_t bad = -1, files = 0, bytes = 0;
	int rc = EXIT_FAILED;

	hc = http_client_new(url);
	http_call_init(&c, "POST", url, ROUTE_VERIFY, cf->token, cf->token_len);
	c.body = evbuffer_new();
	snprintf(body, sizeof body, "{\"%s\":\"%s\"}", PROMOTE_SOURCE, source);
	evbuffer_add(c.body, body, strlen(body));
	c.content_type = PROTO_CT_JSON;
	c.timeout = 24 * 3600;
	if (http_client_call(hc, &c) != 0) {
		rc = -1;
		goto out;
	}
	if (c.status != PROTO_OK ||
	    doc_parse((const char *)evbuffer_pullup(c.reply, -1),
		evbuffer_get_length(c.reply), &d, why, sizeof why) != 0 ||
	    doc_get_i64(d, "bad", &bad) != 0) {
		http_call_describe(&c, why, sizeof why);
		fprintf(stderr, "importer: verify: %s\n", why);
		goto out;
	}
	doc_get_i64(d, "files", &files);
	doc_get_i64(d, "bytes", &bytes);
	if (bad == 0) {
		printf("version %s of \"%s\": %lld files, %lld bytes, all "
		       "verified\n",
		    doc_get_str(d, "version"), source, (long long)files,
		    (long long)bytes);
		rc = EXIT_OK;
	} else
		printf("BAD %s\nversion %s of \"%s\": %lld bad entries; the "
		       "next import mends them\n",
		    doc_get_str(d, "first"), doc_get_str(d, "version"), source,
		    (long long)bad);
out:
	doc_free(d);
	http_call_clear(&c);
	http_client_free(hc);
	free(url);
	return rc;
}

/* verify SOURCE: re-read the local copy and compare with its manifest:
 * through the daemon when it runs (its health then says what was found),
 * else here. */
int
verb_verify(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	const struct source_conf *sc;
	struct check_result res;
	struct isrc s;
	char *pos[1];
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("verify SOURCE");
	if ((sc = verb_source(cf, pos[0])) == NULL)
		return EXIT_USAGE;
	if ((rc = verify_remote(cf, pos[0])) >= 0)
		return rc;
	isrc_open(&s, NULL, cf, sc);
	if (s.cur_m == NULL) {
		fprintf(stderr,
		    "importer: source \"%s\" has no imported copy yet\n",
		    pos[0]);
		isrc_close(&s);
		return EXIT_FAILED;
	}
	if (check_copy(&s, stdout, &res) != 0) {
		fprintf(stderr, "importer: %s\n", res.error);
		rc = EXIT_FAILED;
	} else if (res.bad == 0) {
		printf("version %s of \"%s\": %lld files, %lld bytes, all "
		       "verified\n",
		    s.cur_m->version, pos[0], (long long)s.cur_m->files,
		    (long long)s.cur_m->bytes);
		rc = EXIT_OK;
	} else {
		printf("version %s of \"%s\": %lld bad entries\n",
		    s.cur_m->version, pos[0], (long long)res.bad);
		rc = EXIT_FAILED;
	}
	check_result_clear(&res);
	isrc_close(&s);
	return rc;
}

static void
promote_print(const char *source, const char *version, const char *at,
    int already, const char *output, int64_t gen)
{
	if (already)
		printf("source \"%s\" was already promoted on this host at %s "
		       "(version %s)\n",
		    source, at, version);
	else
		printf("promoted \"%s\" on this host: version %s is now the "
		       "primary copy; this host takes no more imports for "
		       "\"%s\"\n",
		    source, version, source);
	if (!already && gen > 1)
		printf(
		    "generation %lld of \"%s\" starts here: the old primary "
		    "is fenced off; to export from this host, run "
		    "understudy-exporter generation %lld (docs/operations.md, "
		    "\"Failback\")\n",
		    (long long)gen, source, (long long)gen);
	if (output != NULL && *output != '\0')
		printf("promote hook output:\n%s", output);
}

/* Through the daemon: 0 or 1 as the verb's exit, -1 when it does not
 * answer. */
static int
promote_remote(struct config *cf, const char *source, int force, int json)
{
	struct http_client *hc;
	struct http_call c;
	struct evbuffer *b;
	struct doc *d = NULL;
	struct json j;
	char *url, *body, why[1024];
	int rc, already = 0;
	int64_t gen;

	url = cli_url(cf);
	hc = http_client_new(url);
	http_call_init(&c, "POST", url, ROUTE_PROMOTE, cf->token,
	    cf->token_len);
	b = c.body = evbuffer_new();
	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_i64(&j, EVF_PROTO, PROTO_VERSION);
	json_str(&j, PROMOTE_SOURCE, source);
	json_bool(&j, PROMOTE_FORCE, force);
	json_obj_close(&j);
	c.content_type = PROTO_CT_JSON;
	c.timeout = 3600;
	if (cf->promote_token != NULL) {
		c.header = PROTO_PROMOTE_HEADER;
		c.header_value = cf->promote_token;
	}
	rc = http_client_call(hc, &c);
	http_client_free(hc);
	if (rc != 0) {
		fprintf(stderr,
		    "importer: the daemon at %s does not answer; promoting "
		    "directly\n",
		    url);
		http_call_clear(&c);
		free(url);
		return -1;
	}
	body = (char *)evbuffer_pullup(c.reply, -1);
	if (c.status == PROTO_OK &&
	    doc_parse(body, evbuffer_get_length(c.reply), &d, why,
		sizeof why) == 0) {
		doc_get_bool(d, "already", &already);
		if (json)
			fwrite(body, 1, evbuffer_get_length(c.reply), stdout);
		else
			promote_print(source, doc_get_str(d, "version"),
			    doc_get_str(d, "promoted_at"), already,
			    doc_get_str(d, "hook_output"),
			    doc_get_i64(d, "generation", &gen) == 0 ? gen : 0);
		rc = EXIT_OK;
	} else {
		http_call_describe(&c, why, sizeof why);
		fprintf(stderr, "importer: promote refused: %s\n", why);
		rc = EXIT_FAILED;
	}
	doc_free(d);
	http_call_clear(&c);
	free(url);
	return rc;
}

/* Without the daemon: the same steps, here. */
static int
promote_local(struct config *cf, const struct source_conf *sc, int force)
{
	struct check_result res = { 0 };
	struct hook_result hr;
	struct isrc s;
	char *runs, why[1024];
	time_t started;
	int code, rc;

	if (import_open(&s, NULL, cf, sc) != 0) {
		fprintf(stderr,
		    "importer: promote refused: the state of "
		    "\"%s\" cannot be read (see above)\n",
		    sc->name);
		isrc_close(&s);
		return EXIT_FAILED;
	}
	code = promote_check(&s, force, why, sizeof why);
	if (code == 1) {
		promote_print(sc->name, s.promo_version, s.promo_at, 1, NULL,
		    s.promo_gen.n);
		isrc_close(&s);
		return EXIT_OK;
	}
	/* The copy is re-read first: a damaged one is not promoted unless
	 * forced. */
	if (code == 0 && check_copy(&s, stderr, &res) != 0) {
		snprintf(why, sizeof why, "the copy cannot be read: %s",
		    res.error);
		code = -1;
	} else if (code == 0 && res.bad > 0 && !force) {
		snprintf(why, sizeof why,
		    "the copy of \"%s\" is damaged: %lld entr%s differ from "
		    "its manifest (listed above); the next import mends it. "
		    "Promote it anyway with --force",
		    sc->name, (long long)res.bad, res.bad == 1 ? "y" : "ies");
		code = -1;
	}
	check_result_clear(&res);
	if (code == 0) {
		promote_mark(&s, force);
		if (promote_save(&s) != 0) {
			snprintf(why, sizeof why, "%s: %s", s.promo_file,
			    strerror(errno));
			code = -1;
		} else
			promote_generation(&s);
	}
	if (code != 0) {
		fprintf(stderr, "importer: promote refused: %s\n", why);
		isrc_close(&s);
		return EXIT_FAILED;
	}
	started = time(NULL);
	promote_hook(&s, &hr);
	promote_end(&s, &hr);
	if (promote_save(&s) != 0)
		fprintf(stderr, "importer: %s: %s\n", s.promo_file,
		    strerror(errno));
	runs = xasprintf("%s/queue/runs.jsonl", cf->state_dir);
	runlog_note(runs, "promote", sc->name, s.promo_version, hr.ok, started,
	    promote_summary(&hr), hr.output);
	free(runs);
	if (hr.ok)
		promote_print(sc->name, s.promo_version, s.promo_at, 0,
		    hr.output, s.promo_gen.n);
	else
		fprintf(stderr,
		    "importer: the promote hook failed: %s; \"%s\" takes no "
		    "more imports; fix the hook and run promote again\n",
		    hr.error, sc->name);
	rc = hr.ok ? EXIT_OK : EXIT_FAILED;
	hook_result_clear(&hr);
	isrc_close(&s);
	return rc;
}

/* promote SOURCE [--force] [--json] */
int
verb_promote(struct config *cf, int argc, char **argv)
{
	const char *force = NULL, *json = NULL;
	struct verb_opt opts[] = { { "force", 0, &force }, { "json", 0, &json },
		{ NULL, 0, NULL } };
	const struct source_conf *sc;
	char *pos[1];
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("promote SOURCE [--force]");
	if ((sc = verb_source(cf, pos[0])) == NULL)
		return EXIT_USAGE;
	if ((rc = promote_remote(cf, pos[0], force != NULL, json != NULL)) >= 0)
		return rc;
	return promote_local(cf, sc, force != NULL);
}

/* rejoin SOURCE (the daemon stopped): a promoted source becomes a standby
 * again, taking imports of its generation or a later one: the old
 * primary's way back after a failback. */
int
verb_rejoin(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	const struct source_conf *sc;
	struct isrc s;
	char *pos[1], *runs, what[512], summary[1024];
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("rejoin SOURCE");
	if ((sc = verb_source(cf, pos[0])) == NULL)
		return EXIT_USAGE;
	if (cli_daemon_answers(cf)) {
		fprintf(stderr,
		    "importer: the daemon runs; stop it first (systemctl stop "
		    "understudy-importer), then rejoin\n");
		return EXIT_FAILED;
	}
	if (import_open(&s, NULL, cf, sc) != 0) {
		isrc_close(&s);
		return EXIT_FAILED;
	}
	rc = EXIT_FAILED;
	if (s.promo == PROMO_NONE) {
		printf("source \"%s\" is a standby here already\n", sc->name);
		rc = EXIT_OK;
	} else if (unlink(s.promo_file) != 0 || fs_fsync_dir(s.dir) != 0)
		fprintf(stderr, "importer: %s: %s\n", s.promo_file,
		    strerror(errno));
	else {
		gen_describe(&s.gen->cur, what, sizeof what);
		snprintf(summary, sizeof summary,
		    "rejoined as a standby: takes imports again, of %s or "
		    "later; the copy here (version %s) goes at the next import",
		    what, isrc_version(&s) != NULL ? isrc_version(&s) : "none");
		runs = xasprintf("%s/queue/runs.jsonl", cf->state_dir);
		runlog_note(runs, "rejoin", sc->name, isrc_version(&s), 1,
		    time(NULL), summary, NULL);
		free(runs);
		printf("source \"%s\" %s\n", sc->name, summary);
		rc = EXIT_OK;
	}
	isrc_close(&s);
	return rc;
}
