/* Promotion: an operator makes this standby the primary for a source.
 * Refused while an import runs or when the last import failed (unless
 * forced); then the promoted state is written to disk before anything
 * else, so that from that moment no import is taken, even across a crash;
 * then the promote hook runs.  Asking again is harmless: a promotion whose
 * hook did not finish runs the hook again, a finished one just says so. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "hook.h"
#include "http.h"
#include "importer.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

const char *
promo_name(enum promo_state p)
{
	return p == PROMO_PROMOTED ? "promoted" : p == PROMO_PROMOTING ?
	    "promoting" : "standby";
}

void
promo_load(struct isrc *s)
{
	struct doc *d = NULL;
	const char *st;
	char *buf, err[128];
	size_t len;

	s->promo = PROMO_NONE;
	if (fs_read_file(s->promo_file, 1 << 20, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) == 0 &&
	    (st = doc_get_str(d, "state")) != NULL) {
		s->promo = strcmp(st, "promoted") == 0 ? PROMO_PROMOTED :
		    PROMO_PROMOTING;
		xstrset(&s->promo_at, doc_get_str(d, "at"));
		xstrset(&s->promo_version, doc_get_str(d, "version"));
		doc_get_bool(d, "forced", &s->promo_forced);
		if (doc_get(d, "hook_output") != NULL &&
		    !doc_get(d, "hook_output")->plain)
			xstrset(&s->promo_output, doc_get_str(d,
			    "hook_output"));
	} else {
		/* Unreadable, yet there: fail safe, take no imports. */
		log_warnx("%s is damaged; source \"%s\" is taken as promoted",
		    s->promo_file, s->sc->name);
		s->promo = PROMO_PROMOTING;
	}
	doc_free(d);
	free(buf);
}

static int
promo_save(struct isrc *s)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;
	int rc;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "state", promo_name(s->promo));
	json_str(&j, "at", s->promo_at);
	json_str(&j, "version", s->promo_version);
	json_bool(&j, "forced", s->promo_forced);
	json_str(&j, "hook_output", s->promo_output);
	json_obj_close(&j);
	rc = fs_write_atomic(s->promo_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return rc;
}

int
promo_refuses(const struct isrc *s, char *why, size_t len)
{
	if (s->promo == PROMO_NONE)
		return 0;
	snprintf(why, len, "source \"%s\" was promoted on this host at %s "
	    "(version %s): it takes no more imports", s->sc->name,
	    s->promo_at ? s->promo_at : "?", s->promo_version ?
	    s->promo_version : "none");
	return 1;
}

void
promo_status(const struct isrc *s, struct json *j)
{
	json_str(j, "role_of_this_host", promo_name(s->promo));
	if (s->promo == PROMO_NONE)
		return;
	json_obj_open(j, "promotion");
	json_str(j, "state", promo_name(s->promo));
	json_str(j, "at", s->promo_at);
	json_str(j, "version", s->promo_version);
	json_bool(j, "forced", s->promo_forced);
	json_str(j, "hook_output", s->promo_output);
	json_obj_close(j);
}

/* May this source be promoted now?  0 yes, 1 already done, else an HTTP
 * status with the reason. */
static int
promo_check(struct isrc *s, int force, char *why, size_t len)
{
	if (s->promo == PROMO_PROMOTED) {
		snprintf(why, len, "source \"%s\" is already promoted on this "
		    "host (since %s, version %s)", s->sc->name, s->promo_at,
		    s->promo_version ? s->promo_version : "none");
		return 1;
	}
	if (s->promo_busy) {
		snprintf(why, len, "a promotion of \"%s\" is already running",
		    s->sc->name);
		return 409;
	}
	if (s->run.busy) {
		snprintf(why, len, "an import of version %s of \"%s\" is "
		    "running; promote when it is done (status shows it)",
		    s->version, s->sc->name);
		return 409;
	}
	if (s->cur_m == NULL) {
		snprintf(why, len, "source \"%s\" has no verified copy on this "
		    "host: there is nothing to promote", s->sc->name);
		return 409;
	}
	if (s->last_version != NULL && !s->last_ok && !force &&
	    s->promo == PROMO_NONE) {
		snprintf(why, len, "the last import of \"%s\" (version %s) "
		    "failed: %s; this host holds version %s. Promote it anyway "
		    "with --force (on the takeover page: the force box)",
		    s->sc->name, s->last_version,
		    s->last_error ? s->last_error : "?", cur_version(s));
		return 409;
	}
	return 0;
}

/* The state goes to disk first: from then on, no import. */
static int
promo_begin(struct isrc *s, int force, char *why, size_t len)
{
	char iso[32];

	if (s->promo == PROMO_NONE) {
		time_format_iso(time(NULL), iso, sizeof iso);
		xstrset(&s->promo_at, iso);
		xstrset(&s->promo_version, cur_version(s));
		s->promo_forced = force;
	}
	s->promo = PROMO_PROMOTING;
	if (promo_save(s) != 0) {
		snprintf(why, len, "%s: %s", s->promo_file, strerror(errno));
		return -1;
	}
	fault_point("promote-marked");
	return 0;
}

/* Blocking: the hook. */
static int
promo_hook(struct isrc *s, struct hook_result *hr)
{
	char *env[4], *data = xasprintf("%s/data", s->current);
	int rc;

	memset(hr, 0, sizeof *hr);
	if (s->sc->promote_command == NULL) {
		hr->ok = 1;
		hr->output = xstrdup("(no promote_command configured)\n");
		free(data);
		return 0;
	}
	env[0] = xasprintf("UNDERSTUDY_SOURCE=%s", s->sc->name);
	env[1] = xasprintf("UNDERSTUDY_VERSION=%s", s->promo_version ?
	    s->promo_version : "");
	env[2] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", data);
	env[3] = NULL;
	rc = hook_run(s->sc->promote_command, env, (int)s->sc->hook_timeout,
	    "promote hook", hr);
	free(env[0]);
	free(env[1]);
	free(env[2]);
	free(data);
	return rc;
}

static void
promo_end(struct isrc *s, struct hook_result *hr, time_t started)
{
	xstrset(&s->promo_output, hr->output);
	node_record(&s->im->node, "promote", s->sc->name, s->promo_version,
	    hr->ok, started, hr->ok ? "promoted: this host holds the primary "
	    "copy and takes no more imports" : hr->error, hr->output);
	if (hr->ok) {
		s->promo = PROMO_PROMOTED;
		log_info("source \"%s\": promoted: this host holds the primary "
		    "copy (version %s) and takes no more imports", s->sc->name,
		    s->promo_version);
	} else
		log_warnx("source \"%s\": the promote hook failed (%s); the "
		    "source stays refusing imports; promote again once fixed",
		    s->sc->name, hr->error);
	if (promo_save(s) != 0)
		log_warn("%s", s->promo_file);
}

static void
promo_reply(struct evhttp_request *req, const struct isrc *s, int already)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_i64(&j, "proto", PROTO_VERSION);
	json_str(&j, "source", s->sc->name);
	json_str(&j, "state", promo_name(s->promo));
	json_str(&j, "version", s->promo_version);
	json_str(&j, "promoted_at", s->promo_at);
	json_bool(&j, "already", already);
	json_str(&j, "hook_output", s->promo_output);
	json_obj_close(&j);
	evbuffer_add(b, "\n", 1);
	http_reply(req, 200, "application/json", b);
	evbuffer_free(b);
}

struct promo_job {
	struct isrc *s;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	int orphaned;
	int html;			/* asked through the takeover page */
	time_t started;
	struct hook_result hr;
};

static void
promo_close_cb(struct evhttp_connection *conn, void *arg)
{
	((struct promo_job *)arg)->orphaned = 1;
}

static void
promo_work(void *arg)
{
	struct promo_job *j = arg;

	promo_hook(j->s, &j->hr);
}

static void
promo_answer(struct evhttp_request *req, int html, const struct isrc *s,
    int code, const char *why)
{
	if (html)
		page_promote_reply(req, s, code, why);
	else if (code == 200)
		promo_reply(req, s, why != NULL);
	else
		http_reply_error(req, code, "%s", why);
}

static void
promo_done(void *arg)
{
	struct promo_job *j = arg;
	char why[1024];

	j->s->promo_busy = 0;
	isrc_reconf(j->s);
	promo_end(j->s, &j->hr, j->started);
	if (!j->orphaned) {
		evhttp_connection_set_closecb(j->conn, NULL, NULL);
		snprintf(why, sizeof why, "the promote hook failed: %s; \"%s\" "
		    "takes no more imports; fix the hook and promote again",
		    j->hr.error, j->s->sc->name);
		promo_answer(j->req, j->html, j->s, j->hr.ok ? 200 : 500,
		    j->hr.ok ? NULL : why);
	}
	hook_result_clear(&j->hr);
	free(j);
}

void
promo_start(struct node *n, struct evhttp_request *req, struct isrc *s,
    int force, int html)
{
	struct promo_job *j;
	char why[1024];
	int code;

	if ((code = promo_check(s, force, why, sizeof why)) == 1) {
		promo_answer(req, html, s, 200, why);
		return;
	}
	if (code != 0) {
		promo_answer(req, html, s, code, why);
		return;
	}
	if (promo_begin(s, force, why, sizeof why) != 0) {
		promo_answer(req, html, s, 500, why);
		return;
	}
	log_info("source \"%s\": promotion asked%s%s; no more imports",
	    s->sc->name, force ? " (forced)" : "", html ?
	    " on the takeover page" : "");
	j = xcalloc(1, sizeof *j);
	j->s = s;
	j->req = req;
	j->html = html;
	j->started = time(NULL);
	j->conn = evhttp_request_get_connection(req);
	evhttp_connection_set_closecb(j->conn, promo_close_cb, j);
	s->promo_busy = 1;
	worker_submit(n->runs, promo_work, promo_done, j);
}

/* POST /v1/promote {"source": S, "force": bool} */
int
promo_route(struct node *n, struct evhttp_request *req, const char *path)
{
	struct importer *im = n->role;
	struct isrc *s;
	struct doc *d = NULL;
	char *body, why[1024];
	const char *source;
	size_t len;
	int force = 0;

	if (strcmp(path, "/v1/promote") != 0 ||
	    evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return -1;
	if ((body = http_body(req, PROTO_MAX_EVENT, &len)) == NULL ||
	    doc_parse(body, len, &d, why, sizeof why) != 0 ||
	    (source = doc_get_str(d, "source")) == NULL)
		http_reply_error(req, 400, "promote needs {\"source\": NAME}");
	else if ((s = isrc_find(im, source)) == NULL)
		http_reply_error(req, 404, "this importer has no source \"%s\"",
		    source);
	else {
		doc_get_bool(d, "force", &force);
		promo_start(n, req, s, force, 0);
	}
	doc_free(d);
	free(body);
	return 0;
}

static void
promo_print(const char *source, const char *version, const char *at,
    int already, const char *output)
{
	if (already)
		printf("source \"%s\" was already promoted on this host at %s "
		    "(version %s)\n", source, at, version);
	else
		printf("promoted \"%s\" on this host: version %s is now the "
		    "primary copy; this host takes no more imports for \"%s\"\n",
		    source, version, source);
	if (output != NULL && *output != '\0')
		printf("promote hook output:\n%s", output);
}

/* promote SOURCE [--force]: through the running daemon, or directly when
 * it is not running. */
int
im_promote(struct config *cf, int argc, char **argv)
{
	const char *force = NULL, *json = NULL;
	struct verb_opt opts[] = { { "force", 0, &force }, { "json", 0, &json },
	    { NULL, 0, NULL } };
	struct http_call c;
	struct http_client *hc;
	struct importer im;
	struct isrc s;
	struct hook_result hr;
	struct doc *d = NULL;
	char *pos[1], *url, *body, *runs, why[1024];
	time_t started;
	int rc, code;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("promote SOURCE [--force]");
	if (config_source(cf, pos[0]) == NULL) {
		fprintf(stderr, "importer: no source \"%s\" in %s\n", pos[0],
		    cf->path);
		return EXIT_USAGE;
	}
	url = cli_url(cf);
	hc = http_client_new(url);
	http_call_init(&c, "POST", url, "/v1/promote", cf->token,
	    cf->token_len);
	c.body = evbuffer_new();
	evbuffer_add_printf(c.body, "{\"proto\":1,\"source\":");
	json_escape(c.body, pos[0]);
	evbuffer_add_printf(c.body, ",\"force\":%s}", force ? "true" :
	    "false");
	c.content_type = "application/json";
	c.timeout = 3600;
	rc = http_client_call(hc, &c);
	http_client_free(hc);
	if (rc == 0) {
		body = (char *)evbuffer_pullup(c.reply, -1);
		if (c.status == 200 && doc_parse(body,
		    evbuffer_get_length(c.reply), &d, why, sizeof why) == 0) {
			int already = 0;
			doc_get_bool(d, "already", &already);
			if (json != NULL)
				fwrite(body, 1, evbuffer_get_length(c.reply),
				    stdout);
			else
				promo_print(pos[0], doc_get_str(d, "version"),
				    doc_get_str(d, "promoted_at"), already,
				    doc_get_str(d, "hook_output"));
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
	http_call_clear(&c);
	/* No daemon: do it here, with the same checks. */
	fprintf(stderr, "importer: the daemon at %s does not answer; promoting "
	    "directly\n", url);
	free(url);
	memset(&im, 0, sizeof im);
	memset(&s, 0, sizeof s);
	im.cf = cf;
	isrc_init(&im, &s, config_source(cf, pos[0]));
	isrc_load(&s);
	isrc_load_state(&s);
	promo_load(&s);
	code = promo_check(&s, force != NULL, why, sizeof why);
	if (code == 1) {
		promo_print(pos[0], s.promo_version, s.promo_at, 1, NULL);
		isrc_free(&s);
		return EXIT_OK;
	}
	if (code != 0 || promo_begin(&s, force != NULL, why, sizeof why)) {
		fprintf(stderr, "importer: promote refused: %s\n", why);
		isrc_free(&s);
		return EXIT_FAILED;
	}
	runs = xasprintf("%s/queue/runs.jsonl", cf->state_dir);
	runlog_open(&im.node.runs_log, runs);
	free(runs);
	started = time(NULL);
	promo_hook(&s, &hr);
	promo_end(&s, &hr, started);
	runlog_close(&im.node.runs_log);
	if (hr.ok)
		promo_print(pos[0], s.promo_version, s.promo_at, 0, hr.output);
	else
		fprintf(stderr, "importer: the promote hook failed: %s; \"%s\" "
		    "takes no more imports; fix the hook and run promote "
		    "again\n", hr.error, pos[0]);
	rc = hr.ok ? EXIT_OK : EXIT_FAILED;
	hook_result_clear(&hr);
	isrc_free(&s);
	return rc;
}
