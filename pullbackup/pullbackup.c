/* understudy-pullbackup: the backup host's daemon.  On "backup.ready" it
 * pulls the version from the exporter with the sync client (deltas against
 * its newest copy), commits it to the source's store, applies retention,
 * tells the exporter, and pushes "import.ready" to the importers, whose
 * "import.done" reports it gathers and forwards.  It serves its newest
 * version to the importers with the same version server the exporter uses.
 * It owns archive_dir: one store per source, and the queues.  See
 * pullbackup.h for its parts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fsutil.h"
#include "json.h"
#include "generation.h"
#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "presign.h"
#include "proto.h"
#include "pullbackup.h"
#include "queue.h"
#include "timespec.h"
#include "worker.h"
#include "xmalloc.h"

struct src *
src_find(struct pullbackup *pb, const char *name)
{
	size_t i;

	for (i = 0; i < pb->nsrcs; i++)
		if (strcmp(pb->srcs[i].run.sc->name, name) == 0)
			return &pb->srcs[i];
	return NULL;
}

void
src_write(struct src *s, enum store_file f, struct evbuffer *b)
{
	char *p = store_path(s->st, f);

	durable_write(&s->pb->node, p, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	free(p);
}

void
src_remove(struct src *s, enum store_file f)
{
	char *p = store_path(s->st, f);

	durable_remove(&s->pb->node, p);
	free(p);
}

static int
pb_accept(struct node *n, const struct doc *ev, char *key, size_t keylen,
    char *why, size_t whylen)
{
	struct pullbackup *pb = n->role;
	const char *type = doc_get_str(ev, EVF_TYPE);
	const char *source = doc_get_str(ev, EVF_SOURCE);
	const char *from = doc_get_str(ev, EVF_FROM);
	struct src *s = src_find(pb, source);

	if (s == NULL) {
		snprintf(why, whylen,
		    "this pull-backup has no source \"%s\" (see \"sources\" in "
		    "its config)",
		    source);
		return PROTO_UNKNOWN;
	}
	if (strcmp(type, EV_BACKUP_READY) == 0)
		return runner_accept(&s->run, type,
		    doc_get_str(ev, EVF_VERSION), key, keylen, why, whylen);
	/* The generation is taken already (gen_check_event()); queued, it
	 * is acknowledged once what says so is on disk. */
	if (strcmp(type, EV_SOURCE_PROMOTED) == 0) {
		snprintf(key, keylen, "%s %s", type, source);
		return NODE_QUEUE;
	}
	if (strcmp(type, EV_IMPORT_DONE) == 0) {
		if (from == NULL) {
			snprintf(why, whylen, "%s needs \"%s\"", EV_IMPORT_DONE,
			    EVF_FROM);
			return PROTO_BAD;
		}
		snprintf(key, keylen, "%s %s %s", type, source, from);
		return NODE_QUEUE;
	}
	snprintf(why, whylen, "the pull-backup takes no \"%s\" events", type);
	return PROTO_BAD;
}

static void
pb_status(struct node *n, struct json *j)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	size_t i, k;

	json_str(j, "archive_dir", pb->cf->archive_dir);
	json_arr_open(j, "sources");
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		json_obj_open(j, NULL);
		json_str(j, "source", s->run.sc->name);
		json_str(j, "exporter", s->run.sc->exporter);
		gen_status(j, s->gen);
		json_str(j, "newest_version", s->head);
		json_i64(j, "versions", (int64_t)s->nversions);
		runner_link_status(j, s->run.sc, s->run.sc->exporter);
		runner_status(&s->run, j);
		json_arr_open(j, "importers");
		for (k = 0; k < s->run.sc->nimporters; k++) {
			json_obj_open(j, NULL);
			json_str(j, "url", s->imps[k].url);
			json_str(j, "version", s->imps[k].version);
			json_str(j, "state", push_state_name(s->imps[k].state));
			if (s->imps[k].error)
				json_str(j, "error", s->imps[k].error);
			json_obj_close(j);
		}
		json_arr_close(j);
		json_obj_close(j);
	}
	json_arr_close(j);
}

static int
pb_lookup(void *arg, const char *source, const char *version,
    struct serve_version *v, char *why, size_t len)
{
	struct node *n = arg;
	struct pullbackup *pb = n->role;
	struct src *s = src_find(pb, source);

	if (s == NULL) {
		snprintf(why, len, "this pull-backup has no source \"%s\"",
		    source);
		return PROTO_UNKNOWN;
	}
	if (pull_stg_lookup(s, version, v) == 0)
		return PROTO_OK;
	if (s->head == NULL || s->head_m == NULL ||
	    strcmp(s->head, version) != 0) {
		snprintf(why, len,
		    "version %s of %s is not the newest here (the newest is "
		    "%s)",
		    version, source, s->head ? s->head : "none");
		return PROTO_GONE;
	}
	v->root = s->current;
	v->manifest_path = s->head_mpath;
	v->m = s->head_m;
	v->tmp_dir = pb->tmp_dir;
	v->deltas_dir = s->deltas;
	return PROTO_OK;
}

/* Beside the runners' metrics. */
static void
pb_metrics(struct node *n, struct evbuffer *b)
{
	struct pullbackup *pb = n->role;
	struct src *s;
	size_t i, k;

	metrics_family(b, "understudy_versions", "gauge", NULL);
	for (i = 0; i < pb->nsrcs; i++)
		metrics_int(b, "understudy_versions",
		    (int64_t)pb->srcs[i].nversions, "source",
		    pb->srcs[i].run.sc->name, NULL);
	metrics_family(b, "understudy_received_bytes_total", "counter", NULL);
	for (i = 0; i < pb->nsrcs; i++)
		metrics_int(b, "understudy_received_bytes_total",
		    (int64_t)pb->srcs[i].received_total, "source",
		    pb->srcs[i].run.sc->name, NULL);
	metrics_family(b, "understudy_newest_version_timestamp_seconds",
	    "gauge", NULL);
	for (i = 0; i < pb->nsrcs; i++)
		if ((s = &pb->srcs[i])->head != NULL)
			metrics_int(b,
			    "understudy_newest_version_timestamp_seconds",
			    version_id_ms(s->head) / 1000, "source",
			    s->run.sc->name, NULL);
	metrics_family(b, "understudy_importer_ok", "gauge", NULL);
	for (i = 0; i < pb->nsrcs; i++) {
		s = &pb->srcs[i];
		for (k = 0; k < s->run.sc->nimporters; k++)
			metrics_int(b, "understudy_importer_ok",
			    s->imps[k].state == IMP_OK, "source",
			    s->run.sc->name, "importer", s->imps[k].url, NULL);
	}
}

static void
pb_refused(struct node *n, const struct qentry *e, const char *why)
{
	struct pullbackup *pb = n->role;
	struct doc *d = event_parse(e);
	const char *source = d ? doc_get_str(d, EVF_SOURCE) : NULL;
	struct src *s = source ? src_find(pb, source) : NULL;

	if (s != NULL)
		push_refused(s, e, why);
	doc_free(d);
}

static void
pb_reload(struct node *n, struct config *cf)
{
	struct pullbackup *pb = n->role;

	pb->cf = cf;
}

static const struct node_ops pb_ops = {
	.metrics = pb_metrics,
	.refused = pb_refused,
	.accept = pb_accept,
	.page = pb_page,
	.reload = pb_reload,
	.status = pb_status,
	.lookup = pb_lookup,
};

/* A source's store and names, before the node listens. */
static int
src_open(struct pullbackup *pb, struct src *s, const struct source_conf *sc)
{
	char err[1024];

	s->pb = pb;
	s->run.sc = sc;
	if (store_open(pb->cf->archive_dir, sc->name, STORE_DAEMON, &s->st, err,
		sizeof err) != 0) {
		log_warnx("source \"%s\": %s", sc->name, err);
		return -1;
	}
	if (s->st->recovered != NULL)
		log_info("source \"%s\": recovery: %s", sc->name,
		    s->st->recovered);
	s->current = store_path(s->st, STORE_CURRENT);
	s->deltas = store_path(s->st, STORE_DELTAS);
	s->sigs_dir = store_path(s->st, STORE_SIGNATURES);
	s->hints = store_path(s->st, STORE_HINTS);
	presign_sigs(&s->sigs, s->sigs_dir);
	return 0;
}

/* Its runner, its head and its importers, on the node. */
static void
src_start(struct src *s)
{
	const struct source_conf *sc = s->run.sc;
	char *last = store_path(s->st, STORE_LAST);

	runner_init(&s->run, &s->pb->node, sc, &pull_ops, &pull_words, s, last);
	free(last);
	pull_set_head(s, NULL);
	push_init(s);
	pull_stg_init(s);
}

static void
src_close(struct src *s)
{
	size_t k;

	if (s->imps != NULL) {
		pull_stg_free(s);
		push_free(s);
		/* A job whose end the stopped loop never took. */
		manifest_free(s->new_m);
		runner_result_clear(&s->res);
		runner_free(&s->run);
	}
	store_close(s->st);
	manifest_free(s->head_m);
	free(s->head);
	free(s->head_mpath);
	for (k = 0; k < s->nversions; k++)
		free(s->vids[k]);
	free(s->vids);
	free(s->current);
	free(s->deltas);
	free(s->sigs_dir);
	free(s->hints);
}

static int
pb_serve(struct config *cf, int argc, char **argv)
{
	struct pullbackup pb;
	char err[1024], *qdir;
	size_t i;
	int rc = -1;

	if (argc > 1)
		return usage_error("serve takes no arguments");
	memset(&pb, 0, sizeof pb);
	pb.cf = cf;
	pb.tmp_dir = xasprintf("%s/.tmp", cf->archive_dir);
	if (fs_mkdir_p(pb.tmp_dir, 0700) != 0) {
		log_warn("archive_dir %s", cf->archive_dir);
		free(pb.tmp_dir);
		return EXIT_FAILED;
	}
	pb.nsrcs = cf->nsources;
	pb.srcs = xcalloc(pb.nsrcs, sizeof *pb.srcs);
	for (i = 0; i < pb.nsrcs; i++)
		if (src_open(&pb, &pb.srcs[i], &cf->sources[i]) != 0)
			goto out;
	qdir = xasprintf("%s/.queue", cf->archive_dir);
	rc = node_init(&pb.node, cf, &pb_ops, &pb, qdir, err, sizeof err);
	free(qdir);
	if (rc != 0) {
		log_warnx("%s", err);
		goto out;
	}
	for (i = 0; i < pb.nsrcs; i++) {
		char *gp = store_path(pb.srcs[i].st, STORE_GENERATION);

		rc = gen_add(&pb.node, cf->sources[i].name, gp, err,
		    sizeof err);
		free(gp);
		if (rc != 0) {
			log_warnx("%s", err);
			goto out;
		}
		pb.srcs[i].gen = gen_find(&pb.node, cf->sources[i].name);
	}
	pb.ahead = worker_pool_new(pb.node.base, 1);
	for (i = 0; i < pb.nsrcs; i++)
		src_start(&pb.srcs[i]);
	for (i = 0; i < pb.nsrcs; i++)
		push_resume(&pb.srcs[i]);
	rc = node_run(&pb.node);
	worker_pool_free(pb.ahead); /* a signature under way stops */
	/* A pull under way stops: nothing of a source is freed under it. */
	worker_pool_free(pb.node.runs);
	pb.node.runs = NULL;
	for (i = 0; i < pb.nsrcs; i++)
		src_close(&pb.srcs[i]);
	free(pb.srcs);
	free(pb.tmp_dir);
	node_free(&pb.node);
	return rc == 0 ? EXIT_OK : EXIT_FAILED;
out:
	for (i = 0; i < pb.nsrcs; i++)
		src_close(&pb.srcs[i]);
	free(pb.srcs);
	free(pb.tmp_dir);
	return EXIT_FAILED;
}

static const struct verb pb_verbs[] = {
	{ "list", "SOURCE [--json]", "the versions, newest first", pb_list },
	{ "changed", "SOURCE --since TIME [--json]",
	    "files added, changed and removed since TIME", pb_changed },
	{ "restore", "SOURCE[/PATH] --at TIME [--special-bits] DIR",
	    "write the version at TIME (or its PATH) into DIR, verified "
	    "(owners as root; setuid, setgid, sticky bits with --special-bits)",
	    pb_restore },
	{ "verify", "SOURCE [--at TIME | --all] [--repair]",
	    "rebuild and check every file's SHA-256; name each bad file; with "
	    "--repair, mend it from another version or the exporter",
	    pb_verify },
	{ "prune", "SOURCE [--older-than AGE] [--keep-last N] [--dry-run]",
	    "remove old versions, never the newest; print what goes",
	    pb_prune },
	{ "forget", "SOURCE VERSION",
	    "forget the newest version (one from a clock in the future); the "
	    "daemon stopped",
	    pb_forget },
	{ "export", "SOURCE --at TIME [--format tar|tar.gz] [-o FILE]",
	    "the version as one archive file (stdout by default)", pb_export },
	{ "vc-export", "SOURCE -o DIR [--since TIME] [--latest N]",
	    "every version as plain files, DIR/<version-id>/...",
	    pb_vc_export },
	{ "catalog", "SOURCE", "the versions and their manifests, as YAML",
	    pb_catalog },
	{ NULL, NULL, NULL, NULL },
};

static const struct prog pb_prog = {
	.role = ROLE_PULLBACKUP,
	.name = "understudy-pullbackup",
	.summary = "The backup host's daemon: pulls versions from the exporter "
		   "with librsync deltas,\nkeeps them in an archive (newest as "
		   "plain files, older as reverse deltas),\nand pushes the "
		   "newest to the importers.",
	.serve = pb_serve,
	.verbs = pb_verbs,
};

int
main(int argc, char **argv)
{
	return prog_main(&pb_prog, argc, argv);
}
