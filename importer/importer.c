/* understudy-importer: a standby host's daemon.  On "import.ready" it
 * imports the version from the pull-backup (import.c): synced, verified,
 * restored by the operator's import hook, swapped in as the last good
 * copy, reported with "import.done".  It is promoted by hand (promote.c),
 * from the command line or its takeover page (page.c), after which it
 * refuses imports.  It owns state_dir: sources/<source>/ (isrc.h) and the
 * queues.  See importer.h for its parts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

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
#include "log.h"
#include "metrics.h"
#include "promote.h"
#include "proto.h"
#include "timespec.h"
#include "xmalloc.h"

static int
im_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct importer *im = n->role;
	const char *type = doc_get_str(ev, EVF_TYPE);
	const char *source = doc_get_str(ev, EVF_SOURCE);
	struct isrc *s;

	if (strcmp(type, EV_IMPORT_READY) != 0) {
		snprintf(why, whylen, "the importer takes no \"%s\" events",
		    type);
		return PROTO_BAD;
	}
	if ((s = importer_find(im, source)) == NULL) {
		snprintf(why, whylen,
		    "this importer has no source \"%s\" (see \"sources\" in "
		    "its config)",
		    source);
		return PROTO_UNKNOWN;
	}
	/* Refused for good: the pull-backup stops pushing here. */
	if (promote_refuses(s, why, whylen))
		return PROTO_REFUSED;
	return runner_accept(&s->run, type, doc_get_str(ev, EVF_VERSION), key,
	    keylen, why, whylen);
}

static void
im_status(struct node *n, struct json *j)
{
	struct importer *im = n->role;
	struct isrc *s;
	size_t i;

	json_str(j, "state_dir", im->cf->state_dir);
	json_arr_open(j, "sources");
	for (i = 0; i < im->nsrcs; i++) {
		s = &im->srcs[i];
		json_obj_open(j, NULL);
		json_str(j, "source", s->run.sc->name);
		json_str(j, "pullbackup", s->run.sc->pullbackup);
		runner_link_status(j, s->run.sc, s->run.sc->pullbackup);
		gen_status(j, s->gen);
		json_str(j, "current_version", isrc_version(s));
		if (s->cur_m != NULL) {
			json_i64(j, "files", s->cur_m->files);
			json_i64(j, "bytes", s->cur_m->bytes);
		}
		promote_status(s, j);
		check_status(s, j);
		runner_status(&s->run, j);
		json_obj_close(j);
	}
	json_arr_close(j);
}

/* Beside the runners' metrics. */
static void
im_metrics(struct node *n, struct evbuffer *b)
{
	struct importer *im = n->role;
	struct isrc *s;
	size_t i;

	metrics_family(b, "understudy_promoted", "gauge", NULL);
	for (i = 0; i < im->nsrcs; i++)
		metrics_int(b, "understudy_promoted",
		    im->srcs[i].promo != PROMO_NONE, "source",
		    im->srcs[i].run.sc->name, NULL);
	metrics_family(b, "understudy_current_version_timestamp_seconds",
	    "gauge", NULL);
	for (i = 0; i < im->nsrcs; i++)
		if (isrc_version(s = &im->srcs[i]) != NULL)
			metrics_int(b,
			    "understudy_current_version_timestamp_seconds",
			    version_id_ms(isrc_version(s)) / 1000, "source",
			    s->run.sc->name, NULL);
	metrics_family(b, "understudy_replication_lag_seconds", "gauge",
	    "From the version's export to its import here.");
	for (i = 0; i < im->nsrcs; i++)
		if ((s = &im->srcs[i])->run.ok_at != 0 &&
		    isrc_version(s) != NULL)
			metrics_int(b, "understudy_replication_lag_seconds",
			    s->run.ok_at -
				version_id_ms(isrc_version(s)) / 1000,
			    "source", s->run.sc->name, NULL);
}

/* The answer of POST /v1/promote. */
static void
promote_reply_json(struct evhttp_request *req, const struct isrc *s, int code,
    const char *why)
{
	struct json j;

	if (code != PROTO_OK) {
		http_reply_error(req, code, "%s", why);
		return;
	}
	http_json_begin(&j);
	json_str(&j, "source", s->run.sc->name);
	json_str(&j, "state", promote_state_name(s->promo));
	json_str(&j, "version", s->promo_version);
	json_str(&j, "promoted_at", s->promo_at);
	json_bool(&j, "already", why != NULL);
	json_str(&j, "hook_output", s->promo_output);
	json_i64(&j, "generation", s->promo_gen.n);
	http_reply_json(req, PROTO_OK, &j);
}

/* The answer of POST /v1/verify, once the check is done. */
static void
verify_replied(struct isrc *s, const struct check_result *damage, int rc,
    void *arg)
{
	struct http_held *held = arg;
	struct evhttp_request *req = http_unhold(held);
	char when[32];
	struct json j;

	free(held);
	if (req == NULL)
		return;
	if (rc != 0) {
		http_reply_error(req, PROTO_FAILED,
		    "checking the copy of \"%s\" failed (see the log)",
		    s->run.sc->name);
		return;
	}
	http_json_begin(&j);
	json_str(&j, "source", s->run.sc->name);
	json_str(&j, "version", isrc_version(s));
	json_i64(&j, "files", s->cur_m != NULL ? s->cur_m->files : 0);
	json_i64(&j, "bytes", s->cur_m != NULL ? s->cur_m->bytes : 0);
	json_i64(&j, "bad", damage->bad);
	if (damage->bad > 0)
		json_str(&j, "first", damage->first);
	time_format_iso(s->checked_at, when, sizeof when);
	json_str(&j, "checked_at", when);
	http_reply_json(req, PROTO_OK, &j);
}

/* POST /v1/verify {"source": S}: check the copy now. */
static void
verify_route(struct importer *im, struct evhttp_request *req,
    const char *source)
{
	struct http_held *held;
	struct isrc *s;

	if ((s = importer_find(im, source)) == NULL) {
		http_reply_error(req, PROTO_UNKNOWN,
		    "this importer has no source \"%s\"", source);
		return;
	}
	if (s->cur_m == NULL) {
		http_reply_error(req, PROTO_REFUSED,
		    "source \"%s\" has no imported copy yet", source);
		return;
	}
	held = xcalloc(1, sizeof *held);
	http_hold(held, req);
	if (check_start(s, verify_replied, held) != 0) {
		http_unhold(held);
		free(held);
		http_reply_error(req, PROTO_REFUSED,
		    "an import or a check of \"%s\" is running; try again "
		    "when it is done",
		    source);
	}
}

/* POST /v1/promote {"source": S, "force": bool}, POST /v1/verify */
static int
im_route(struct node *n, struct evhttp_request *req, const struct proto_req *pr)
{
	struct importer *im = n->role;
	struct isrc *s;
	struct doc *d = NULL;
	const char *source;
	char *body, why[1024];
	size_t len;
	int force = 0;

	if ((pr->route != PROTO_R_PROMOTE && pr->route != PROTO_R_VERIFY) ||
	    evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		return -1;
	if ((body = http_body(req, PROTO_MAX_EVENT, &len)) == NULL ||
	    doc_parse(body, len, &d, why, sizeof why) != 0 ||
	    (source = doc_get_str(d, PROMOTE_SOURCE)) == NULL)
		http_reply_error(req, PROTO_BAD, "%s needs {\"%s\": NAME}",
		    pr->route == PROTO_R_VERIFY ? "verify" : "promote",
		    PROMOTE_SOURCE);
	else if (pr->route == PROTO_R_VERIFY)
		verify_route(im, req, source);
	else if ((s = importer_find(im, source)) == NULL)
		http_reply_error(req, PROTO_UNKNOWN,
		    "this importer has no source \"%s\"", source);
	else if (!promote_permitted(n->cf, req,
		     evhttp_find_header(evhttp_request_get_input_headers(req),
			 PROTO_PROMOTE_HEADER),
		     why, sizeof why)) {
		log_warnx("source \"%s\": promotion refused: %s", source, why);
		http_reply_error(req, PROTO_FORBIDDEN, "%s", why);
	} else {
		doc_get_bool(d, PROMOTE_FORCE, &force);
		promote_start(s, req, force, promote_reply_json, "");
	}
	doc_free(d);
	free(body);
	return 0;
}

static void
im_reload(struct node *n, struct config *cf)
{
	((struct importer *)n->role)->cf = cf;
}

static const struct node_ops im_ops = {
	.metrics = im_metrics,
	.accept = im_accept,
	.route = im_route,
	.page = page_request,
	.reload = im_reload,
	.status = im_status,
};

static int
im_serve(struct config *cf, int argc, char **argv)
{
	struct importer im;
	char err[1024], *qdir;
	struct isrc *s;
	size_t i;
	int rc;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&im, 0, sizeof im);
	im.cf = cf;
	/* What a killed daemon's hooks left running ends first. */
	qdir = xasprintf("%s/queue/hooks", cf->state_dir);
	if (hook_init(qdir) != 0)
		log_warn("%s: hooks under way cannot be recorded", qdir);
	free(qdir);
	qdir = xasprintf("%s/queue", cf->state_dir);
	rc = node_init(&im.node, cf, &im_ops, &im, qdir, err, sizeof err);
	free(qdir);
	if (rc != 0) {
		log_warnx("%s", err);
		return EXIT_FAILED;
	}
	im.srcs = xcalloc(cf->nsources, sizeof *im.srcs);
	for (i = 0; i < cf->nsources; i++) {
		s = &im.srcs[i];
		im.nsrcs++;
		if (import_open(s, &im.node, cf, &cf->sources[i]) != 0) {
			rc = -1;
			goto out;
		}
		/* An import cut short left next/: its queued event brings it
		 * back, and the sync resumes what it verified.  current/ is
		 * always a whole, verified copy. */
		if (fs_exists(s->next))
			log_info("source \"%s\": an import was cut short; it "
				 "resumes from its queued event",
			    s->run.sc->name);
		isrc_remove_replaced(s);
		check_schedule(s);
		if (s->promo != PROMO_NONE) {
			log_info(
			    "source \"%s\": promoted on this host; no imports",
			    s->run.sc->name);
			/* The pull-backup may not have heard. */
			promote_announce(s);
		}
	}
	rc = node_run(&im.node);
out:
	for (i = 0; i < im.nsrcs; i++)
		isrc_close(&im.srcs[i]);
	free(im.srcs);
	node_free(&im.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
}

static const struct verb im_verbs[] = {
	{ "verify", "SOURCE", "re-check the local copy against its manifest",
	    verb_verify },
	{ "promote", "SOURCE [--force] [--json]",
	    "make this host the primary for SOURCE: no more imports, then the "
	    "promote hook",
	    verb_promote },
	{ "rejoin", "SOURCE",
	    "a promoted SOURCE becomes a standby again (the daemon stopped)",
	    verb_rejoin },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog im_prog = {
	.role = ROLE_IMPORTER,
	.name = "understudy-importer",
	.summary = "A standby host's daemon: takes each new version from the "
		   "pull-backup,\nverifies every file, runs the import hook, "
		   "keeps the last good copy.",
	.serve = im_serve,
	.verbs = im_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&im_prog, argc, argv);
}
