/* Pushing the newest version to a source's importers: "import.ready" to
 * each (but a promoted one), their "import.done" reports gathered, and one
 * "backup.imported" to the exporter once every importer has answered.
 * What was pushed, and to which of the exporter's names for us the report
 * goes, survives a restart in push.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "doc.h"
#include "fsutil.h"
#include "json.h"
#include "generation.h"
#include "manifest.h"
#include "log.h"
#include "proto.h"
#include "pullbackup.h"
#include "queue.h"
#include "xmalloc.h"

const char *
push_state_name(enum imp_state st)
{
	switch (st) {
	case IMP_NONE:
		return "none";
	case IMP_PENDING:
		return "pending";
	case IMP_OK:
		return "ok";
	case IMP_FAILED:
		return "failed";
	case IMP_PROMOTED:
		return "promoted";
	}
	return "?";
}

void
push_init(struct src *s)
{
	size_t k;

	s->imps = xcalloc(s->run.sc->nimporters + 1, sizeof *s->imps);
	for (k = 0; k < s->run.sc->nimporters; k++)
		s->imps[k].url = xstrdup(s->run.sc->importers[k]);
}

void
push_free(struct src *s)
{
	size_t k;

	for (k = 0; k < s->run.sc->nimporters; k++) {
		free(s->imps[k].url);
		free(s->imps[k].version);
		free(s->imps[k].error);
	}
	free(s->imps);
	free(s->push_version);
	free(s->push_peer);
}

/* Once every importer answered the push: the report to the exporter. */
static void
send_imported(struct src *s)
{
	const struct source_conf *sc = s->run.sc;
	const char *error = NULL;
	struct evbuffer *b;
	struct json j;
	int64_t ok = 0;
	size_t i;

	for (i = 0; i < sc->nimporters; i++) {
		if (s->imps[i].state == IMP_PENDING)
			return;
		if (s->imps[i].state == IMP_OK)
			ok++;
		else if (error == NULL)
			error = s->imps[i].error != NULL ? s->imps[i].error :
							   "promoted";
	}
	if (s->push_reported || s->push_version == NULL)
		return;
	s->push_reported = 1;
	b = evbuffer_new();
	event_begin(&s->pb->node, &j, b, EV_BACKUP_IMPORTED, sc->name,
	    s->push_version);
	json_str(&j, EVF_FROM, s->push_peer);
	json_bool(&j, EVF_OK, ok == (int64_t)sc->nimporters);
	json_i64(&j, EVF_IMPORTERS_OK, ok);
	json_i64(&j, EVF_IMPORTERS_TOTAL, (int64_t)sc->nimporters);
	if (error != NULL)
		json_str(&j, EVF_ERROR, error);
	json_obj_close(&j);
	outbox_send(&s->pb->node, sc->exporter, EV_BACKUP_IMPORTED, b);
	evbuffer_free(b);
}

static void
push_save(struct src *s)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "version", s->push_version);
	json_str(&j, "peer", s->push_peer);
	json_obj_close(&j);
	src_write(s, STORE_PUSH, b);
	evbuffer_free(b);
}

/* An import.ready names the generation its version was exported in (its
 * manifest's): a standby of a newer one refuses it. */
static void
push_generation(struct src *s, int64_t n, struct json *j)
{
	struct gen_start g;

	memset(&g, 0, sizeof g);
	g.n = n;
	gen_members(j, g.n == s->gen->cur.n ? &s->gen->cur : &g);
}

/* import.ready of version (of generation gen) to every importer; staged:
 * it is still being pulled. */
static void
push_send(struct src *s, const char *version, int64_t gen, int staged)
{
	const struct source_conf *sc = s->run.sc;
	struct evbuffer *b;
	struct json j;
	size_t i;

	for (i = 0; i < sc->nimporters; i++) {
		/* A promoted standby is asked too: it refuses again (409),
		 * unless it re-joined meanwhile (understudy-importer
		 * rejoin), which nothing here need know. */
		b = evbuffer_new();
		event_begin(NULL, &j, b, EV_IMPORT_READY, sc->name, version);
		push_generation(s, gen, &j);
		json_str(&j, EVF_PEER, s->imps[i].url);
		if (staged)
			json_bool(&j, EVF_STAGED, 1);
		json_obj_close(&j);
		outbox_send(&s->pb->node, s->imps[i].url, EV_IMPORT_READY, b);
		evbuffer_free(b);
	}
}

/* The newest version is the one pushed: every importer's answer awaited
 * for it. */
static void
push_expect(struct src *s, const char *peer)
{
	size_t i;

	xstrset(&s->push_version, s->head);
	xstrset(&s->push_peer, peer);
	s->push_reported = 0;
	push_save(s);
	for (i = 0; i < s->run.sc->nimporters; i++) {
		xstrset(&s->imps[i].version, s->head);
		s->imps[i].state = IMP_PENDING;
		xstrset(&s->imps[i].error, NULL);
	}
}

void
push_to_importers(struct src *s, const char *peer)
{
	push_expect(s, peer);
	push_send(s, s->head, s->head_m != NULL ? s->head_m->generation : 1, 0);
	send_imported(s);
}

void
push_staged(struct src *s, const char *version, int64_t gen)
{
	push_send(s, version, gen, 1);
}

void
push_committed(struct src *s, const char *peer)
{
	push_expect(s, peer);
	send_imported(s);
}

/* Push the newest version again, so that reports lost with the previous
 * run come again (importers answer at once for a version they have). */
void
push_resume(struct src *s)
{
	char *p = store_path(s->st, STORE_PUSH), *buf, err[128];
	struct doc *d = NULL;
	const char *v;
	size_t len;

	if (fs_read_file(p, 1 << 16, &buf, &len) == 0) {
		if (doc_parse(buf, len, &d, err, sizeof err) == 0 &&
		    s->head != NULL &&
		    (v = doc_get_str(d, "version")) != NULL &&
		    strcmp(v, s->head) == 0) {
			log_info("source \"%s\": pushing version %s to the "
				 "importers again after the restart",
			    s->run.sc->name, s->head);
			push_to_importers(s, doc_get_str(d, "peer"));
		}
		doc_free(d);
		free(buf);
	}
	free(p);
}

void
push_import_done(struct src *s, const struct doc *ev)
{
	const struct source_conf *sc = s->run.sc;
	const char *from = doc_get_str(ev, EVF_FROM);
	const char *version = doc_get_str(ev, EVF_VERSION);
	const char *error = doc_get_str(ev, EVF_ERROR);
	struct imp *m;
	int ok = 0;
	size_t i;

	doc_get_bool(ev, EVF_OK, &ok);
	for (i = 0; i < sc->nimporters; i++) {
		m = &s->imps[i];
		if (from == NULL || strcmp(m->url, from) != 0)
			continue;
		log_info("source \"%s\": importer %s %s version %s%s%s",
		    sc->name, from, ok ? "imported" : "FAILED to import",
		    version, error ? ": " : "", error ? error : "");
		if (m->state == IMP_PROMOTED)
			return; /* it said so already */
		if (m->version != NULL && strcmp(m->version, version) > 0)
			return; /* a report on an older push */
		xstrset(&m->version, version);
		m->state = ok ? IMP_OK : IMP_FAILED;
		xstrset(&m->error, error);
		m->at = time(NULL);
		if (s->push_version != NULL &&
		    strcmp(s->push_version, version) == 0)
			send_imported(s);
		return;
	}
	log_warnx("source \"%s\": import.done from %s, which is not among its "
		  "importers",
	    sc->name, from ? from : "(unknown)");
}

void
push_refused(struct src *s, const struct qentry *e, const char *why)
{
	const struct source_conf *sc = s->run.sc;
	size_t i;

	for (i = 0; i < sc->nimporters; i++) {
		if (strcmp(s->imps[i].url, e->dest) != 0)
			continue;
		log_warnx("source \"%s\": importer %s refused version %s "
			  "for good (promoted: take it out of \"importers\" "
			  "once the failover is done): %s",
		    sc->name, e->dest, s->imps[i].version, why);
		s->imps[i].state = IMP_PROMOTED;
		xstrset(&s->imps[i].error, why);
		send_imported(s);
	}
}
