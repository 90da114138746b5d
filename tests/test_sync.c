/* The sync client (common/sync.c) against the version server
 * (common/serve.c), in process over loopback: a fresh copy, deltas against
 * a base with the deltas kept, a kept delta relayed, a sync cut short and
 * resumed, signatures made ahead (good and bad), a damaged base, a server
 * that lies about a file, and a version that is gone; the writeback of
 * what it writes started as it goes. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "delta.h"
#include "fixture.h"
#include "fsutil.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "serve.h"
#include "sync.h"
#include "unit.h"
#include "worker.h"
#include "xmalloc.h"

static char dir[4096], url[64];
static struct event_base *base;
static struct serve sv;
static pthread_t server;

/* The version served now. */
static struct {
	char root[4300], mpath[4300], tmp[4300], deltas[4300];
	struct manifest *m;
	int code; /* or the lookup's answer */
} served;

static int
lookup(void *arg, const char *source, const char *version,
    struct serve_version *v, char *why, size_t len)
{
	if (served.code != PROTO_OK || served.m == NULL ||
	    strcmp(version, served.m->version) != 0) {
		snprintf(why, len, "version %s is not served", version);
		return served.code != PROTO_OK ? served.code : PROTO_GONE;
	}
	v->root = served.root;
	v->manifest_path = served.mpath;
	v->m = served.m;
	v->tmp_dir = served.tmp;
	v->deltas_dir = served.deltas[0] ? served.deltas : NULL;
	return PROTO_OK;
}

static void
request(struct evhttp_request *req, void *arg)
{
	struct proto_req pr;
	char why[256];

	if (proto_parse(evhttp_request_get_evhttp_uri(req), &pr, why,
		sizeof why) == 0 &&
	    pr.route == PROTO_R_VERSION)
		serve_request(&sv, req, &pr);
	else
		http_reply_error(req, PROTO_UNKNOWN, "no route");
	proto_req_clear(&pr);
}

static void *
server_run(void *arg)
{
	event_base_dispatch(base);
	return NULL;
}

static void
put(const char *root, const char *rel, const char *text)
{
	char p[8400];

	snprintf(p, sizeof p, "%s/%s", root, rel);
	unit_write(p, text);
}

/* size bytes of text lines, where every line whose number is picked by
 * seed (1 in 50) differs. */
static void
put_lines(const char *root, const char *rel, int size, int seed)
{
	char p[8400], line[65];
	FILE *f;
	int i;

	snprintf(p, sizeof p, "%s/%s", root, rel);
	f = fopen(p, "w");
	for (i = 0; i < size / 64; i++) {
		snprintf(line, sizeof line, "%-63d\n",
		    i * 7 +
			(seed != 0 && (i * 13 + seed) % 50 == 0 ? 1000000 : 0));
		fputs(line, f);
	}
	fclose(f);
}

/* Serve tree (made by the caller) as version id. */
static void
serve_tree(const char *name, const char *id)
{
	char err[512];

	snprintf(served.root, sizeof served.root, "%s/%s", dir, name);
	snprintf(served.mpath, sizeof served.mpath, "%s/%s.manifest", dir,
	    name);
	manifest_free(served.m);
	CHECK(manifest_scan(served.root, "db", id, &served.m, err,
		  sizeof err) == 0);
	CHECK(manifest_save(served.m, served.mpath) == 0);
	served.code = PROTO_OK;
}

static void
count_diff(void *arg, const struct ment *o, const struct ment *n)
{
	(*(int *)arg)++;
	fprintf(stderr, "differs: %s\n", o != NULL ? o->path : n->path);
}

/* The tree at path is exactly what m says. */
static int
tree_is(const char *path, const struct manifest *m)
{
	struct manifest *scan;
	char err[512];
	int diffs = 0;

	if (manifest_scan(path, m->source, m->version, &scan, err,
		sizeof err) != 0)
		return 0;
	manifest_diff(m, scan, count_diff, &diffs);
	manifest_free(scan);
	return diffs == 0;
}

static void
opts_init(struct sync_opts *o, const char *version, const char *staging)
{
	static char token[] = "0123456789abcdef0123456789abcdef";

	memset(o, 0, sizeof *o);
	o->url = url;
	o->token = token;
	o->token_len = strlen(token);
	o->source = "db";
	o->version = version;
	o->staging = staging;
	o->link_unchanged = 1;
}

/* Signatures made ahead, for the test: one kept in memory. */
static struct evbuffer *ahead_sig;
static int ahead_bad;

static int
sigs_get(void *arg, const char *sha, size_t block, struct evbuffer *sig)
{
	if (ahead_sig == NULL)
		return -1;
	evbuffer_add(sig, evbuffer_pullup(ahead_sig, -1),
	    evbuffer_get_length(ahead_sig));
	return 0;
}

static void
sigs_bad(void *arg, const char *sha, size_t block)
{
	ahead_bad++;
	evbuffer_free(ahead_sig);
	ahead_sig = NULL;
}

static const struct sync_sigs sigs = { sigs_get, sigs_bad, NULL };

static char *
path_of(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

int
main(void)
{
	struct sync_opts o;
	struct sync_stats st;
	struct manifest *m = NULL, *base_m;
	struct hints hints;
	struct evhttp *http;
	char err[1024], *stg, *stg2, *deltas, *p, *kept;
	const struct ment *e;
	int port, gone, rc, fd;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	evthread_use_pthreads();
	base = event_base_new();
	http = evhttp_new(base);
	while (evhttp_bind_socket(http, "127.0.0.1",
		   (ev_uint16_t)(port = fixture_port())) != 0)
		;
	evhttp_set_gencb(http, request, NULL);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	snprintf(served.tmp, sizeof served.tmp, "%s/srvtmp", dir);
	mkdir(served.tmp, 0700);
	sv.lookup = lookup;
	sv.workers = worker_pool_new(base, 2);
	pthread_create(&server, NULL, server_run, NULL);
	stg = path_of("staging");
	stg2 = path_of("staging2");
	deltas = path_of("deltas");

	/* Version 1, fresh: every file whole, the tree exact. */
	p = path_of("v1");
	mkdir(p, 0755);
	free(p);
	p = path_of("v1/d");
	mkdir(p, 0750);
	free(p);
	p = path_of("v1");
	put(p, "d/small", "small\n");
	put(p, "unchanged", "this file stays the same\n");
	put_lines(p, "dump.sql", 256 << 10, 0);
	free(p);
	p = path_of("v1/link");
	CHECK(symlink("d/small", p) == 0);
	free(p);
	serve_tree("v1", "20261121T000001.000Z");
	opts_init(&o, "20261121T000001.000Z", stg);
	o.deltas_dir = deltas;
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(m != NULL && st.files == 3 && st.whole == 3 && st.deltas == 0);
	CHECK(tree_is(stg, served.m));
	/* Every byte written had its writeback started before the end. */
	CHECK(st.flushed == st.bytes);
	base_m = m;
	m = NULL;
	p = path_of("base");
	CHECK(rename(stg, p) == 0);
	free(p);

	/* Version 2 against version 1: the dump by delta (kept), the
	 * unchanged file linked, the new one whole. */
	p = path_of("v2");
	mkdir(p, 0755);
	free(p);
	p = path_of("v2/d");
	mkdir(p, 0750);
	free(p);
	p = path_of("v2");
	put(p, "unchanged", "this file stays the same\n");
	put(p, "new", "a new file\n");
	put_lines(p, "dump.sql", 256 << 10, 3);
	free(p);
	p = path_of("v1/unchanged");
	kept = path_of("v2/unchanged");
	{
		struct stat sb;
		struct timespec ts[2];
		stat(p, &sb);
		ts[0] = sb.st_mtim;
		ts[1] = sb.st_mtim;
		utimensat(AT_FDCWD, kept, ts, 0);
	}
	free(p);
	free(kept);
	serve_tree("v2", "20261121T000002.000Z");
	opts_init(&o, "20261121T000002.000Z", stg);
	o.base_dir = p = path_of("base");
	o.base_m = base_m;
	o.deltas_dir = deltas;
	memset(&hints, 0, sizeof hints);
	o.hints = kept = path_of("hints");
	o.hints_out = &hints;
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(st.files == 3 && st.deltas == 1 && st.unchanged == 1 &&
	    st.whole == 1);
	CHECK(st.received < 128 << 10);
	CHECK(tree_is(stg, served.m));
	CHECK(hints.n == 1 && strcmp(hints.h[0].path, "dump.sql") == 0 &&
	    fs_exists(kept));
	hints_free(&hints);
	free(kept);
	e = manifest_find(served.m, "dump.sql");
	kept = sync_kept_delta(deltas, manifest_find(base_m, "dump.sql")->sha,
	    e->sha);
	CHECK(fs_exists(kept));
	free(kept);
	manifest_free(m);
	m = NULL;

	/* The kept delta relayed: a second client with version 1 asks for
	 * it first, and posts no signature. */
	served.code = PROTO_OK;
	snprintf(served.deltas, sizeof served.deltas, "%s", deltas);
	opts_init(&o, "20261121T000002.000Z", stg2);
	o.base_dir = p;
	o.base_m = base_m;
	o.ask_stored = 1;
	o.verify_base = 1;
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(st.stored == 1 && st.deltas == 1 && st.sent == 0);
	CHECK(tree_is(stg2, served.m));
	manifest_free(m);
	m = NULL;
	served.deltas[0] = '\0';

	/* Cut short: the marker of this version and what was fetched stay,
	 * and the next sync resumes them. */
	CHECK(fs_exists(stg2));
	kept = xasprintf("%s%s", stg2, SYNC_MARKER_SUFFIX);
	CHECK(fs_exists(kept));
	free(kept);
	opts_init(&o, "20261121T000002.000Z", stg2);
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(st.resumed == 3 && st.received == 0);
	CHECK(tree_is(stg2, served.m));
	manifest_free(m);
	m = NULL;

	/* A resumed pull commits exactly the manifest fetched again: what a
	 * first manifest listed and the second does not (a file, a symlink
	 * out of the tree, a directory with its files), and what it lists as
	 * another kind (a symlink where a file is), are dropped. */
	put(stg2, "junk", "not in the manifest\n");
	kept = xasprintf("%s/shadow", stg2);
	CHECK(symlink("/etc/shadow", kept) == 0);
	free(kept);
	kept = xasprintf("%s/gone", stg2);
	CHECK(mkdir(kept, 0555) == 0);
	free(kept);
	kept = xasprintf("%s/dump.sql", stg2);
	CHECK(unlink(kept) == 0 && symlink("/etc/passwd", kept) == 0);
	free(kept);
	opts_init(&o, "20261121T000002.000Z", stg2);
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(tree_is(stg2, served.m));
	manifest_free(m);
	m = NULL;
	sync_staging_drop(stg2);
	CHECK(!fs_exists(stg2));

	/* A signature made ahead serves; a damaged one is told bad, and the
	 * file still comes by delta. */
	ahead_sig = evbuffer_new();
	kept = path_of("base/dump.sql");
	fd = open(kept, O_RDONLY);
	free(kept);
	CHECK(delta_signature(fd,
		  hints_block(NULL, manifest_find(base_m, "dump.sql")->size),
		  delta_sink_evbuffer, ahead_sig, err, sizeof err) == 0);
	close(fd);
	opts_init(&o, "20261121T000002.000Z", stg2);
	o.base_dir = p;
	o.base_m = base_m;
	o.sigs = &sigs;
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(st.ahead == 1 && st.deltas == 1 && ahead_bad == 0);
	manifest_free(m);
	m = NULL;
	sync_staging_drop(stg2);
	evbuffer_drain(ahead_sig, evbuffer_get_length(ahead_sig));
	evbuffer_add(ahead_sig, "not a signature", 15);
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(ahead_bad == 1 && st.ahead == 0 && st.deltas == 1);
	CHECK(tree_is(stg2, served.m));
	manifest_free(m);
	m = NULL;
	sync_staging_drop(stg2);

	/* A damaged base file is not linked: it comes whole. */
	kept = path_of("base/unchanged");
	unit_write(kept, "this file stays the samE\n");
	{
		struct stat sb;
		struct timespec ts[2];
		char *v2u = path_of("v2/unchanged");
		stat(v2u, &sb);
		ts[0] = sb.st_mtim;
		ts[1] = sb.st_mtim;
		utimensat(AT_FDCWD, kept, ts, 0);
		free(v2u);
	}
	free(kept);
	opts_init(&o, "20261121T000002.000Z", stg2);
	o.base_dir = p;
	o.base_m = base_m;
	o.verify_base = 1;
	CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
	CHECK(st.unchanged == 0 && st.whole == 2);
	CHECK(tree_is(stg2, served.m));
	manifest_free(m);
	m = NULL;
	sync_staging_drop(stg2);

	/* Renamed and moved: found in the base by content, nothing
	 * fetched; moved and changed: patched against the file of that
	 * name the base had where the version no longer has it. */
	{
		char *r1 = path_of("r1"), *r2 = path_of("r2");
		char *rb = path_of("rbase"), *s9 = path_of("staging9");
		char *sub;
		struct manifest *rm = NULL;

		mkdir(r1, 0755);
		put_lines(r1, "dump.sql", 256 << 10, 0);
		put_lines(r1, "big.log", 200 << 10, 0);
		put(r1, "keep", "kept\n");
		serve_tree("r1", "20261121T000010.000Z");
		opts_init(&o, "20261121T000010.000Z", s9);
		CHECK(sync_run(&o, &rm, &st, &gone, err, sizeof err) == 0);
		CHECK(rename(s9, rb) == 0);
		sync_staging_drop(s9);
		mkdir(r2, 0755);
		sub = path_of("r2/moved");
		mkdir(sub, 0755);
		free(sub);
		sub = path_of("r2/other");
		mkdir(sub, 0755);
		free(sub);
		put_lines(r2, "moved/renamed.sql", 256 << 10, 0);
		put_lines(r2, "other/big.log", 200 << 10, 3);
		put(r2, "keep", "kept\n");
		serve_tree("r2", "20261121T000011.000Z");
		opts_init(&o, "20261121T000011.000Z", s9);
		o.base_dir = rb;
		o.base_m = rm;
		CHECK(sync_run(&o, &m, &st, &gone, err, sizeof err) == 0);
		CHECK(st.moved == 1 && st.unchanged == 2 && st.deltas == 1 &&
		    st.whole == 0);
		CHECK(st.received < 128 << 10);
		CHECK(tree_is(s9, served.m));
		manifest_free(m);
		m = NULL;
		manifest_free(rm);
		sync_staging_drop(s9);
		free(r1);
		free(r2);
		free(rb);
		free(s9);
		serve_tree("v2", "20261121T000002.000Z");
	}

	/* A server whose file is not what its manifest says: refused. */
	kept = path_of("v2/new");
	unit_write(kept, "a new filE\n");
	free(kept);
	opts_init(&o, "20261121T000002.000Z", stg2);
	rc = sync_run(&o, &m, &st, &gone, err, sizeof err);
	CHECK(rc != 0 && m == NULL && !gone);
	CHECK_CONTAINS(err, "new (whole file): got 11 bytes with SHA-256");
	CHECK_CONTAINS(err, "the manifest says 11 bytes");

	/* A version no longer served: gone, no point retrying. */
	served.code = PROTO_GONE;
	opts_init(&o, "20261121T000002.000Z", stg2);
	rc = sync_run(&o, &m, &st, &gone, err, sizeof err);
	CHECK(rc != 0 && gone);
	CHECK_CONTAINS(err, "answered 410");
	opts_init(&o, "20261121T000009.000Z", stg2);
	served.code = PROTO_OK;
	rc = sync_run(&o, &m, &st, &gone, err, sizeof err);
	CHECK(rc != 0 && gone);

	event_base_loopexit(base, NULL);
	pthread_join(server, NULL);
	worker_pool_free(sv.workers);
	evhttp_free(http);
	free(p);
	free(stg);
	free(stg2);
	free(deltas);
	manifest_free(base_m);
	manifest_free(served.m);
	if (ahead_sig != NULL)
		evbuffer_free(ahead_sig);
	fs_rm_rf(dir);
	return unit_done();
}
