/* Promotion: an operator makes this standby the primary for a source.
 * Refused while an import runs or when the last import failed (unless
 * forced); then the promoted state is written to disk before anything
 * else (from the moment it is asked, no import is taken, and across a
 * crash neither), then the promote hook runs.  Asking again is harmless: a
 * promotion whose hook did not finish runs the hook again, a finished one
 * just says so.  Asked over HTTP, the state goes to disk on the commit
 * thread and the hook runs on a worker; the caller says how the answer is
 * given (the route as JSON, the takeover page as HTML). */
#include <errno.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "check.h"
#include "config.h"
#include "doc.h"
#include "fault.h"
#include "fsutil.h"
#include "generation.h"
#include "hash.h"
#include "hook.h"
#include "http.h"
#include "isrc.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "promote.h"
#include "proto.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

#define PROMOTE_STATE_MAX (1 << 20)

const char *
promote_state_name(int p)
{
	return p == PROMO_PROMOTED ? "promoted" :
	    p == PROMO_PROMOTING   ? "promoting" :
				     "standby";
}

void
promote_load(struct isrc *s)
{
	struct doc *d = NULL;
	const struct doc *v;
	const char *st;
	char *buf, err[128];
	size_t len;

	s->promo = PROMO_NONE;
	if (fs_read_file(s->promo_file, PROMOTE_STATE_MAX, &buf, &len) != 0)
		return;
	if (doc_parse(buf, len, &d, err, sizeof err) == 0 &&
	    (st = doc_get_str(d, "state")) != NULL) {
		s->promo = strcmp(st, "promoted") == 0 ? PROMO_PROMOTED :
							 PROMO_PROMOTING;
		xstrset(&s->promo_at, doc_get_str(d, "at"));
		xstrset(&s->promo_version, doc_get_str(d, "version"));
		doc_get_bool(d, "forced", &s->promo_forced);
		gen_start_clear(&s->promo_gen);
		if (gen_parse(d, &s->promo_gen, err, sizeof err) < 0)
			log_warnx("%s: %s", s->promo_file, err);
		/* The promotion is written first: a stop before the
		 * generation file was brings it here. */
		promote_generation(s);
		if ((v = doc_get(d, "hook_output")) != NULL && !v->plain)
			xstrset(&s->promo_output, v->str);
	} else {
		/* Unreadable, yet there: fail safe, take no imports. */
		log_warnx("%s is damaged; source \"%s\" is taken as promoted",
		    s->promo_file, s->run.sc->name);
		s->promo = PROMO_PROMOTING;
	}
	doc_free(d);
	free(buf);
}

static struct evbuffer *
state_json(const struct isrc *s)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "state", promote_state_name(s->promo));
	json_str(&j, "at", s->promo_at);
	json_str(&j, "version", s->promo_version);
	json_bool(&j, "forced", s->promo_forced);
	json_str(&j, "hook_output", s->promo_output);
	if (s->promo_gen.n > 0)
		gen_members(&j, &s->promo_gen);
	json_obj_close(&j);
	return b;
}

int
promote_save(const struct isrc *s)
{
	struct evbuffer *b = state_json(s);
	int rc;

	rc = fs_write_atomic(s->promo_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return rc;
}

/* Whether the peer of req is this host: a loopback address, or the very
 * address it reached (a host calling its own address, as the CLI does
 * when the daemon listens on one, comes from it). */
static int
peer_is_local(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof me, pl = sizeof peer;
	evutil_socket_t fd;

	if (c == NULL ||
	    (fd = bufferevent_getfd(evhttp_connection_get_bufferevent(c))) <
		0 ||
	    getsockname(fd, (struct sockaddr *)&me, &ml) != 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
	    me.ss_family != peer.ss_family)
		return 0;
	if (peer.ss_family == AF_INET) {
		struct in_addr *m = &((struct sockaddr_in *)&me)->sin_addr;
		struct in_addr *p = &((struct sockaddr_in *)&peer)->sin_addr;
		return (ntohl(p->s_addr) >> 24) == 127 ||
		    m->s_addr == p->s_addr;
	}
	if (peer.ss_family == AF_INET6) {
		struct in6_addr *m = &((struct sockaddr_in6 *)&me)->sin6_addr;
		struct in6_addr *p = &((struct sockaddr_in6 *)&peer)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(p) ||
		    (IN6_IS_ADDR_V4MAPPED(p) && p->s6_addr[12] == 127) ||
		    memcmp(m, p, sizeof *p) == 0;
	}
	return 0;
}

int
promote_permitted(const struct config *cf, struct evhttp_request *req,
    const char *secret, char *why, size_t len)
{
	if (cf->promote_token != NULL) {
		if (secret != NULL &&
		    hash_secret_equal(secret, strlen(secret), cf->promote_token,
			cf->promote_token_len))
			return 1;
		snprintf(why, len,
		    "promotion needs the secret of promote_token_file (%s)",
		    cf->promote_token_file);
		return 0;
	}
	if (peer_is_local(req))
		return 1;
	snprintf(why, len,
	    "promotion is taken from this host only (understudy-importer "
	    "promote, or the takeover page opened on it), or from anywhere "
	    "with the secret of promote_token_file, which is not set");
	return 0;
}

int
promote_refuses(const struct isrc *s, char *why, size_t len)
{
	if (s->promo == PROMO_NONE)
		return 0;
	snprintf(why, len,
	    "source \"%s\" was promoted on this host at %s (version %s, "
	    "generation %lld): it takes no more imports",
	    s->run.sc->name, s->promo_at ? s->promo_at : "?",
	    s->promo_version ? s->promo_version : "none",
	    (long long)s->promo_gen.n);
	return 1;
}

void
promote_status(const struct isrc *s, struct json *j)
{
	json_str(j, "role_of_this_host", promote_state_name(s->promo));
	if (s->promo == PROMO_NONE)
		return;
	json_obj_open(j, "promotion");
	json_str(j, "state", promote_state_name(s->promo));
	json_str(j, "at", s->promo_at);
	json_str(j, "version", s->promo_version);
	json_bool(j, "forced", s->promo_forced);
	json_str(j, "hook_output", s->promo_output);
	json_i64(j, "generation", s->promo_gen.n);
	json_obj_close(j);
}

void
promote_generation(struct isrc *s)
{
	char what[512];

	if (s->promo == PROMO_NONE || s->promo_gen.n <= s->gen->cur.n)
		return;
	gen_set(&s->gen->cur, &s->promo_gen);
	gen_describe(&s->gen->cur, what, sizeof what);
	log_info("source \"%s\": now in %s", s->run.sc->name, what);
	if (s->node != NULL)
		gen_save(s->node, s->gen);
	else if (gen_write_now(s->gen) != 0)
		log_warn("%s", s->gen->path);
}

void
promote_announce(struct isrc *s)
{
	struct evbuffer *b;
	struct json j;

	if (s->node == NULL || s->promo == PROMO_NONE ||
	    s->promo_version == NULL || s->gen->cur.n < 2)
		return;
	b = evbuffer_new();
	event_begin(s->node, &j, b, EV_SOURCE_PROMOTED, s->run.sc->name,
	    s->promo_version);
	json_obj_close(&j);
	outbox_send(s->node, s->run.sc->pullbackup, EV_SOURCE_PROMOTED, b);
	evbuffer_free(b);
}

int
promote_check(const struct isrc *s, int force, char *why, size_t len)
{
	const struct runner_result *last = &s->run.last;

	if (s->promo == PROMO_PROMOTED) {
		snprintf(why, len,
		    "source \"%s\" is already promoted on this host (since %s, "
		    "version %s)",
		    s->run.sc->name, s->promo_at,
		    s->promo_version ? s->promo_version : "none");
		return 1;
	}
	if (s->promo_busy) {
		snprintf(why, len, "a promotion of \"%s\" is already running",
		    s->run.sc->name);
		return PROTO_REFUSED;
	}
	if (s->run.busy) {
		snprintf(why, len,
		    "an import of version %s of \"%s\" is running; promote "
		    "when it is done (status shows it)",
		    s->run.version, s->run.sc->name);
		return PROTO_REFUSED;
	}
	if (s->cur_m == NULL) {
		snprintf(why, len,
		    "source \"%s\" has no verified copy on this host: there is "
		    "nothing to promote",
		    s->run.sc->name);
		return PROTO_REFUSED;
	}
	if (last->version != NULL && !last->ok && !force &&
	    s->promo == PROMO_NONE) {
		snprintf(why, len,
		    "the last import of \"%s\" (version %s) failed: %s; this "
		    "host holds version %s. Promote it anyway with --force (on "
		    "the takeover page: the force box)",
		    s->run.sc->name, last->version,
		    last->error ? last->error : "?", isrc_version(s));
		return PROTO_REFUSED;
	}
	return 0;
}

void
promote_mark(struct isrc *s, int force)
{
	char iso[32], host[GEN_HOST_MAX + 1];

	if (s->promo == PROMO_NONE) {
		time_format_iso(time(NULL), iso, sizeof iso);
		xstrset(&s->promo_at, iso);
		xstrset(&s->promo_version, isrc_version(s));
		s->promo_forced = force;
		/* The next generation, started here. */
		gen_start_clear(&s->promo_gen);
		s->promo_gen.n = s->gen->cur.n + 1;
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		s->promo_gen.host = xstrdup(host);
		s->promo_gen.at = xstrdup(iso);
		s->promo_gen.version = xstrdup(isrc_version(s));
	}
	s->promo = PROMO_PROMOTING;
}

void
promote_hook(const struct isrc *s, struct hook_result *hr)
{
	char *env[4], *data = xasprintf("%s/data", s->current);

	memset(hr, 0, sizeof *hr);
	if (s->run.sc->promote_command == NULL) {
		hr->ok = 1;
		hr->output = xstrdup("(no promote_command configured)\n");
		free(data);
		return;
	}
	env[0] = xasprintf("UNDERSTUDY_SOURCE=%s", s->run.sc->name);
	env[1] = xasprintf("UNDERSTUDY_VERSION=%s",
	    s->promo_version ? s->promo_version : "");
	env[2] = xasprintf("UNDERSTUDY_BACKUP_DIR=%s", data);
	env[3] = NULL;
	hook_run(s->run.sc->promote_command, env, (int)s->run.sc->hook_timeout,
	    "promote hook", hr);
	free(env[0]);
	free(env[1]);
	free(env[2]);
	free(data);
}

const char *
promote_summary(const struct hook_result *hr)
{
	return hr->ok ? "promoted: this host holds the primary copy and takes "
			"no more imports" :
			hr->error;
}

void
promote_end(struct isrc *s, const struct hook_result *hr)
{
	xstrset(&s->promo_output, hr->output);
	if (hr->ok) {
		s->promo = PROMO_PROMOTED;
		log_info("source \"%s\": promoted: this host holds the primary "
			 "copy (version %s) and takes no more imports",
		    s->run.sc->name, s->promo_version);
	} else
		log_warnx(
		    "source \"%s\": the promote hook failed (%s); the source "
		    "stays refusing imports; promote again once fixed",
		    s->run.sc->name, hr->error);
}

/* A promotion asked over HTTP, from the marking to the answer. */
struct promo_job {
	struct isrc *s;
	struct http_held held;
	promote_reply_fn *reply;
	const char *via;
	int force;
	time_t started;
	struct hook_result hr;
};

static void
promo_work(void *arg)
{
	struct promo_job *j = arg;

	promote_hook(j->s, &j->hr);
}

static void
promo_finish(struct promo_job *j, int code, const char *why)
{
	struct evhttp_request *req = http_unhold(&j->held);

	j->s->promo_busy = 0;
	runner_release(&j->s->run);
	if (req != NULL)
		j->reply(req, j->s, code, why);
	hook_result_clear(&j->hr);
	free(j);
}

/* The state after the hook is on disk (or could not be written, which
 * the commit thread logged): the answer. */
static void
promo_saved(void *arg, int rc)
{
	struct promo_job *j = arg;
	char why[1024];

	snprintf(why, sizeof why,
	    "the promote hook failed: %s; \"%s\" takes no more imports; fix "
	    "the hook and promote again",
	    j->hr.error, j->s->run.sc->name);
	promo_finish(j, j->hr.ok ? PROTO_OK : PROTO_FAILED,
	    j->hr.ok ? NULL : why);
}

static void
promo_done(void *arg)
{
	struct promo_job *j = arg;
	struct isrc *s = j->s;
	struct evbuffer *b;

	promote_end(s, &j->hr);
	node_record(s->node, "promote", s->run.sc->name, s->promo_version,
	    j->hr.ok, j->started, promote_summary(&j->hr), j->hr.output);
	b = state_json(s);
	durable_write_then(s->node, s->promo_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), promo_saved, j);
	evbuffer_free(b);
}

/* The marking is durable (rc 0), or could not be written. */
static void
promo_marked(void *arg, int rc)
{
	struct promo_job *j = arg;
	struct isrc *s = j->s;
	char why[1024];

	if (rc != 0) {
		snprintf(why, sizeof why,
		    "%s cannot be written (see the log); \"%s\" takes no more "
		    "imports; promote again",
		    s->promo_file, s->run.sc->name);
		promo_finish(j, PROTO_FAILED, why);
		return;
	}
	fault_point("promote-marked");
	log_info("source \"%s\": promotion asked%s%s; no more imports",
	    s->run.sc->name, j->force ? " (forced)" : "", j->via);
	promote_generation(s);
	promote_announce(s);
	worker_submit(s->node->runs, promo_work, promo_done, j);
}

/* The copy checked (check.h), imports still held: a damaged one is not
 * promoted unless forced; else it is marked, durably, and the hook runs
 * once that is on disk. */
static void
promo_checked(struct isrc *s, const struct check_result *damage, int rc,
    void *arg)
{
	struct promo_job *j = arg;
	struct evhttp_request *req;
	struct evbuffer *b;
	char why[1024];

	if (rc != 0 || (damage->bad > 0 && !j->force)) {
		if (rc != 0)
			snprintf(why, sizeof why,
			    "the copy of \"%s\" cannot be read to check it "
			    "(see the log); nothing changed",
			    s->run.sc->name);
		else
			snprintf(why, sizeof why,
			    "the copy of \"%s\" is damaged: %lld entr%s differ "
			    "from its manifest (first: %s); the next import "
			    "mends it. Promote it anyway with --force",
			    s->run.sc->name, (long long)damage->bad,
			    damage->bad == 1 ? "y" : "ies", damage->first);
		s->promo_busy = 0;
		if ((req = http_unhold(&j->held)) != NULL)
			j->reply(req, s, rc != 0 ? PROTO_FAILED : PROTO_REFUSED,
			    why);
		free(j);
		return;
	}
	/* From now on no import is taken; the hook runs once this is on
	 * disk. */
	promote_mark(s, j->force);
	runner_hold(&s->run);
	b = state_json(s);
	durable_write_then(s->node, s->promo_file, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), promo_marked, j);
	evbuffer_free(b);
}

void
promote_start(struct isrc *s, struct evhttp_request *req, int force,
    promote_reply_fn *reply, const char *via)
{
	struct promo_job *j;
	char why[1024];
	int code;

	if ((code = promote_check(s, force, why, sizeof why)) == 1) {
		reply(req, s, PROTO_OK, why);
		return;
	}
	if (code != 0) {
		reply(req, s, code, why);
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->s = s;
	j->reply = reply;
	j->via = via;
	j->force = force;
	j->started = time(NULL);
	/* The copy is re-read first: a damaged one is not promoted unless
	 * forced. */
	http_hold(&j->held, req);
	if (check_start(s, promo_checked, j) != 0) {
		http_unhold(&j->held);
		free(j);
		reply(req, s, PROTO_REFUSED,
		    "a check of the copy or an import is running; promote "
		    "when it is done");
		return;
	}
	s->promo_busy = 1;
}
