/* The archive verbs of understudy-pullbackup: list, changed, restore,
 * verify, prune, export, vc-export, catalog.  They work on the store
 * directly, whether the daemon runs or not: readers under its shared lock,
 * prune under the exclusive one. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "store.h"
#include "config.h"
#include "daemon.h"
#include "doc.h"
#include "fsutil.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "tarw.h"
#include "timespec.h"
#include "treemeta.h"
#include "pullbackup.h"
#include "xmalloc.h"

static int
open_source(struct config *cf, const char *source, enum store_mode mode,
    struct store **a)
{
	char err[1024];

	if (config_source(cf, source) == NULL) {
		fprintf(stderr, "pullbackup: no source \"%s\" in %s\n", source,
		    cf->path);
		return EXIT_USAGE;
	}
	if (store_open(cf->archive_dir, source, mode, a, err, sizeof err)) {
		fprintf(stderr, "pullbackup: %s\n", err);
		return EXIT_FAILED;
	}
	return 0;
}

static int
resolve(struct store *a, const char *at, size_t *idx)
{
	char err[512];

	if (time_resolve(at, a->ids, a->n, time(NULL), idx, err, sizeof err)) {
		fprintf(stderr, "pullbackup: source \"%s\": %s\n", a->source,
		    err);
		return -1;
	}
	return 0;
}

static void
print_json(struct evbuffer *b)
{
	evbuffer_add(b, "\n", 1);
	fwrite(evbuffer_pullup(b, -1), 1, evbuffer_get_length(b), stdout);
}

int
pb_list(struct config *cf, int argc, char **argv)
{
	const char *json = NULL;
	struct verb_opt opts[] = { { "json", 0, &json }, { NULL, 0, NULL } };
	struct version_info vi;
	struct store *a;
	struct evbuffer *b;
	struct json j;
	struct doc *att = NULL;
	char err[1024], *pos[1], *p, *buf;
	size_t i, len;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("list SOURCE [--json]");
	if ((rc = open_source(cf, pos[0], STORE_READ, &a)) != 0)
		return rc;
	/* A pull under way or failed, newer than every version. */
	p = store_path(a, STORE_ATTEMPT);
	if (fs_read_file(p, 1 << 16, &buf, &len) == 0) {
		if (doc_parse(buf, len, &att, err, sizeof err) != 0 ||
		    doc_get_str(att, "version") == NULL ||
		    (store_head(a) != NULL &&
			strcmp(doc_get_str(att, "version"), store_head(a)) <=
			    0)) {
			doc_free(att);
			att = NULL;
		}
		free(buf);
	}
	free(p);
	b = evbuffer_new();
	json_init(&j, b);
	json_arr_open(&j, NULL);
	if (json == NULL)
		printf("%-22s %-22s %-11s %4s %8s %14s %14s\n", "ID",
		    "TIME (UTC)", "STATE", "GEN", "FILES", "BYTES", "STORED");
	if (att != NULL) {
		const char *v = doc_get_str(att, "version");
		const char *st = doc_get_str(att, "state");
		const char *error = doc_get_str(att, "error");
		char iso[32];
		version_id_iso(v, iso, sizeof iso);
		if (json != NULL) {
			json_obj_open(&j, NULL);
			json_str(&j, "id", v);
			json_str(&j, "time", iso);
			json_str(&j, "state", st);
			json_str(&j, "error", error);
			json_obj_close(&j);
		} else
			printf("%-22s %-22s %-11s %4s %8s %14s %14s%s%s\n", v,
			    iso, st, "-", "-", "-", "-",
			    error != NULL ? "  " : "",
			    error != NULL ? error : "");
	}
	for (i = a->n; i-- > 0;) {
		if (store_info(a, i, &vi, err, sizeof err) != 0) {
			fprintf(stderr, "pullbackup: %s\n", err);
			rc = EXIT_FAILED;
			continue;
		}
		if (json != NULL) {
			json_obj_open(&j, NULL);
			json_str(&j, "id", vi.id);
			json_str(&j, "time", vi.time);
			json_str(&j, "state", "completed");
			json_bool(&j, "newest", i + 1 == a->n);
			json_i64(&j, "generation", vi.generation);
			json_i64(&j, "files", vi.files);
			json_i64(&j, "bytes", vi.bytes);
			json_i64(&j, "increment_bytes", vi.stored);
			json_obj_close(&j);
		} else
			printf(
			    "%-22s %-22s %-11s %4lld %8lld %14lld %14lld%s\n",
			    vi.id, vi.time, "completed",
			    (long long)vi.generation, (long long)vi.files,
			    (long long)vi.bytes, (long long)vi.stored,
			    i + 1 == a->n ? "  (newest, plain files)" : "");
	}
	json_arr_close(&j);
	if (json != NULL)
		print_json(b);
	else if (a->n == 0 && att == NULL)
		printf("(no versions yet)\n");
	evbuffer_free(b);
	doc_free(att);
	store_close(a);
	return rc;
}

/* What changed since a version, by kind: what a file's mtime alone
 * tells is not a change. */
struct changes {
	const struct ment **e[3];
	size_t n[3];
};

enum {
	CH_ADDED,
	CH_CHANGED,
	CH_REMOVED
};

static void
change_add(struct changes *c, int kind, const struct ment *e)
{
	c->e[kind] = xreallocarray(c->e[kind], c->n[kind] + 1,
	    sizeof *c->e[kind]);
	c->e[kind][c->n[kind]++] = e;
}

static void
note_change(void *arg, const struct ment *o, const struct ment *n)
{
	struct changes *c = arg;

	if (o == NULL)
		change_add(c, CH_ADDED, n);
	else if (n == NULL)
		change_add(c, CH_REMOVED, o);
	else if (o->type != n->type || o->mode != n->mode ||
	    strcmp(o->sha, n->sha) != 0 ||
	    (o->type == MENT_LINK && strcmp(o->target, n->target) != 0))
		change_add(c, CH_CHANGED, n);
}

int
pb_changed(struct config *cf, int argc, char **argv)
{
	const char *json = NULL, *since = NULL;
	struct verb_opt opts[] = { { "json", 0, &json }, { "since", 1, &since },
		{ NULL, 0, NULL } };
	static const char *const kinds[3] = { "added", "changed", "removed" };
	struct manifest *old = NULL, *new = NULL;
	struct changes c;
	const struct ment *e;
	struct store *a;
	struct evbuffer *b = NULL;
	struct json j;
	char err[1024], *pos[1];
	size_t idx, i, k;
	int rc;

	memset(&c, 0, sizeof c);
	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1 || since == NULL)
		return usage_error("changed SOURCE --since TIME [--json]");
	if ((rc = open_source(cf, pos[0], STORE_READ, &a)) != 0)
		return rc;
	rc = EXIT_FAILED;
	if (resolve(a, since, &idx) != 0)
		goto out;
	if (store_manifest(a, idx, &old, err, sizeof err) != 0 ||
	    store_manifest(a, a->n - 1, &new, err, sizeof err) != 0) {
		fprintf(stderr, "pullbackup: %s\n", err);
		goto out;
	}
	manifest_diff(old, new, note_change, &c);
	b = evbuffer_new();
	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, "since", a->ids[idx]);
	json_str(&j, "until", a->ids[a->n - 1]);
	for (k = 0; k < 3; k++) {
		json_arr_open(&j, kinds[k]);
		for (i = 0; i < c.n[k]; i++) {
			e = c.e[k][i];
			json_str(&j, NULL, e->path);
			if (json == NULL)
				printf("%-8s %s%s\n", kinds[k], e->path,
				    e->type == MENT_DIR ? "/" : "");
		}
		json_arr_close(&j);
	}
	json_obj_close(&j);
	if (json != NULL)
		print_json(b);
	else
		printf("since %s: %zu added, %zu changed, %zu removed\n",
		    a->ids[idx], c.n[CH_ADDED], c.n[CH_CHANGED],
		    c.n[CH_REMOVED]);
	rc = EXIT_OK;
out:
	for (k = 0; k < 3; k++)
		free(c.e[k]);
	manifest_free(old);
	manifest_free(new);
	if (b != NULL)
		evbuffer_free(b);
	store_close(a);
	return rc;
}

int
pb_restore(struct config *cf, int argc, char **argv)
{
	const char *at = NULL, *why, *special = NULL;
	struct verb_opt opts[] = { { "at", 1, &at },
		{ "special-bits", 0, &special }, { NULL, 0, NULL } };
	struct store *a;
	struct version_info vi;
	char err[1024], *pos[2], *source, *sub;
	size_t idx;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 2)) < 0)
		return EXIT_USAGE;
	if (at == NULL || rc != 2)
		return usage_error(
		    "restore SOURCE[/PATH] --at TIME [--special-bits] DIR");
	/* SOURCE/sub/path restores just that subtree. */
	source = xstrdup(pos[0]);
	if ((sub = strchr(source, '/')) != NULL) {
		*sub++ = '\0';
		while (*sub != '\0' && sub[strlen(sub) - 1] == '/')
			sub[strlen(sub) - 1] = '\0';
		if (*sub != '\0' && (why = path_check(sub)) != NULL) {
			rc = usage_error("restore: bad path %s: %s", sub, why);
			free(source);
			return rc;
		}
	}
	if ((rc = open_source(cf, source, STORE_READ, &a)) != 0) {
		free(source);
		return rc;
	}
	rc = EXIT_FAILED;
	if (resolve(a, at, &idx) != 0)
		goto out;
	if (store_restore(a, idx, sub, pos[1],
		TREEMETA_OWNERS | (special != NULL ? TREEMETA_SPECIAL : 0), err,
		sizeof err) != 0) {
		fprintf(stderr,
		    "pullbackup: restoring version %s of \"%s\": %s\n",
		    a->ids[idx], pos[0], err);
		goto out;
	}
	store_info(a, idx, &vi, err, sizeof err);
	if (sub != NULL && *sub != '\0')
		printf("restored %s of version %s (%s) of \"%s\" into %s, "
		       "every file verified\n",
		    sub, vi.id, vi.time, source, pos[1]);
	else
		printf("restored version %s (%s) of \"%s\" into %s: %lld "
		       "files, %lld bytes, every file verified\n",
		    vi.id, vi.time, source, pos[1], (long long)vi.files,
		    (long long)vi.bytes);
	rc = EXIT_OK;
out:
	store_close(a);
	free(source);
	return rc;
}

static void
verify_bad(void *arg, const char *version, const char *path, const char *why)
{
	printf("BAD version %s: %s: %s\n", version, path, why);
	fflush(stdout);
}

/* verify --repair: a file from the exporter, which serves its newest
 * export while a pull-backup may still need it. */
struct fetch_ctx {
	const struct config *cf;
	const struct source_conf *sc;
	int fd, failed;
};

static int
fetch_data(void *arg, struct evbuffer *chunk)
{
	struct fetch_ctx *f = arg;

	if (fs_write_all(f->fd, evbuffer_pullup(chunk, -1),
		evbuffer_get_length(chunk)) != 0)
		f->failed = 1;
	return f->failed ? -1 : 0;
}

static int
fetch_exporter(void *arg, const char *version, const struct ment *e, int fd,
    char *from, size_t fromlen)
{
	struct fetch_ctx *f = arg;
	struct http_client *hc;
	struct http_call c;
	char *route;
	int rc;

	if (f->sc == NULL || f->sc->exporter == NULL)
		return -1;
	route = proto_version_route(f->sc->name, version, PROTO_FILE, e->path,
	    NULL);
	hc = http_client_new(f->sc->exporter);
	http_call_init(&c, "GET", f->sc->exporter, route, f->cf->token,
	    f->cf->token_len);
	f->fd = fd;
	f->failed = 0;
	c.on_data = fetch_data;
	c.data_arg = f;
	rc = hc != NULL && http_client_call(hc, &c) == 0 &&
		c.status == PROTO_OK && !f->failed ?
	    0 :
	    -1;
	snprintf(from, fromlen, "from the exporter at %s", f->sc->exporter);
	http_call_clear(&c);
	http_client_free(hc);
	free(route);
	return rc;
}

static void
repair_note(void *arg, const char *version, const char *path, const char *how,
    int ok)
{
	printf("%s version %s: %s: %s\n", ok ? "MENDED" : "NOT MENDED", version,
	    path, how);
	fflush(stdout);
}

int
pb_verify(struct config *cf, int argc, char **argv)
{
	const char *at = NULL, *all = NULL, *repair = NULL;
	struct verb_opt opts[] = { { "at", 1, &at }, { "all", 0, &all },
		{ "repair", 0, &repair }, { NULL, 0, NULL } };
	struct fetch_ctx f;
	struct store *a;
	char *pos[1];
	size_t idx, first, last, i;
	int64_t files, bytes;
	int rc, bad, total = 0, unchecked, not_checked = 0;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1 || (at != NULL && all != NULL))
		return usage_error(
		    "verify SOURCE [--at TIME | --all] [--repair]");
	if ((rc = open_source(cf, pos[0], repair ? STORE_WRITE : STORE_READ,
		 &a)) != 0)
		return rc;
	if (a->n == 0) {
		fprintf(stderr,
		    "pullbackup: source \"%s\": the archive holds no version "
		    "yet\n",
		    pos[0]);
		store_close(a);
		return EXIT_FAILED;
	}
	if (all != NULL) {
		first = 0;
		last = a->n - 1;
	} else {
		if (resolve(a, at ? at : "now", &idx) != 0) {
			store_close(a);
			return EXIT_FAILED;
		}
		first = last = idx;
	}
	if (repair != NULL) {
		f.cf = cf;
		f.sc = config_source(cf, pos[0]);
		if (store_repair(a, first, last, fetch_exporter, &f,
			repair_note, NULL) > 0)
			fprintf(stderr,
			    "pullbackup: source \"%s\": some damage could not "
			    "be mended (NOT MENDED above)\n",
			    pos[0]);
	}
	for (i = last + 1; i-- > first;) {
		bad = store_verify(a, i, verify_bad, NULL, &files, &bytes,
		    &unchecked);
		if (bad == 0 && unchecked == 0)
			printf("version %s: %lld files, %lld bytes, all "
			       "verified\n",
			    a->ids[i], (long long)files, (long long)bytes);
		else if (bad == 0)
			printf("version %s: %d files not checked (no room to "
			       "rebuild them), the others verified\n",
			    a->ids[i], unchecked);
		else
			printf("version %s: %d bad\n", a->ids[i], bad);
		total += bad;
		not_checked += unchecked;
	}
	store_close(a);
	if (total > 0) {
		fprintf(stderr,
		    "pullbackup: source \"%s\": %d bad entries; see above\n",
		    pos[0], total);
		return EXIT_FAILED;
	}
	if (not_checked > 0) {
		fprintf(stderr,
		    "pullbackup: source \"%s\": %d files could not be "
		    "checked: no room on the archive's disk to rebuild them; "
		    "free some space and verify again\n",
		    pos[0], not_checked);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

int
pb_forget(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	struct store *a;
	char err[1024], *pos[2], iso[32];
	long ahead;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 2)) < 0)
		return EXIT_USAGE;
	if (rc != 2 || !version_id_valid(pos[1]))
		return usage_error(
		    "forget SOURCE VERSION (the newest version's "
		    "id, as list shows it)");
	if ((rc = open_source(cf, pos[0], STORE_ALONE, &a)) != 0)
		return rc;
	if (store_forget(a, pos[1], err, sizeof err) != 0) {
		fprintf(stderr, "pullbackup: forget: %s\n", err);
		store_close(a);
		return EXIT_FAILED;
	}
	version_id_iso(pos[1], iso, sizeof iso);
	ahead = proto_version_ahead(pos[1]);
	printf("forgot version %s (%s%s); the newest is now %s\n", pos[1], iso,
	    ahead > PROTO_MAX_SKEW_SECS ? ", in the future" : "",
	    store_head(a) != NULL ? store_head(a) : "none");
	store_close(a);
	return EXIT_OK;
}

int
pb_prune(struct config *cf, int argc, char **argv)
{
	const char *older = NULL, *keep = NULL, *dry = NULL;
	struct verb_opt opts[] = { { "older-than", 1, &older },
		{ "keep-last", 1, &keep }, { "dry-run", 0, &dry },
		{ NULL, 0, NULL } };
	const struct source_conf *sc;
	struct store *a;
	char err[1024], *pos[1], **gone, iso[32], *end;
	int64_t older_than = -1, keep_last = 0;
	size_t ngone, i;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("prune SOURCE [--older-than AGE] "
				   "[--keep-last N] [--dry-run]");
	if (older != NULL && age_parse(older, &older_than) != 0)
		return usage_error("prune: --older-than takes an age like 2W");
	if (keep != NULL) {
		errno = 0;
		keep_last = strtoll(keep, &end, 10);
		if (errno != 0 || *end != '\0' || keep_last < 1)
			return usage_error(
			    "prune: --keep-last takes a number, at least 1");
	}
	if (older == NULL && keep == NULL &&
	    (sc = config_source(cf, pos[0])) != NULL) {
		/* Without options: the source's retention. */
		older_than = sc->older_than;
		keep_last = sc->keep_last;
		if (older_than < 0 && keep_last == 0)
			return usage_error(
			    "prune: give --older-than or --keep-last (source "
			    "\"%s\" has no retention)",
			    pos[0]);
	}
	if ((rc = open_source(cf, pos[0], dry ? STORE_READ : STORE_WRITE,
		 &a)) != 0)
		return rc;
	if (store_prune(a, keep_last, older_than, dry != NULL, &gone, &ngone,
		err, sizeof err) != 0) {
		fprintf(stderr, "pullbackup: prune: %s\n", err);
		rc = EXIT_FAILED;
	}
	for (i = 0; i < ngone; i++) {
		version_id_iso(gone[i], iso, sizeof iso);
		printf("%s version %s (%s)\n", dry ? "would remove" : "removed",
		    gone[i], iso);
		free(gone[i]);
	}
	free(gone);
	if (ngone == 0 && rc == 0)
		printf("nothing to remove: %zu version(s) kept\n", a->n);
	store_close(a);
	return rc;
}

int
pb_export(struct config *cf, int argc, char **argv)
{
	const char *at = NULL, *format = "tar", *output = NULL;
	struct verb_opt opts[] = { { "at", 1, &at }, { "format", 1, &format },
		{ "o", 1, &output }, { "output", 1, &output },
		{ NULL, 0, NULL } };
	struct store_reader *r = NULL;
	const struct manifest *m;
	struct store *a;
	struct tarw *t = NULL;
	char err[1024], *pos[1], *tmp = NULL;
	size_t idx, i;
	int rc, fd = STDOUT_FILENO, in;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1 || at == NULL)
		return usage_error(
		    "export SOURCE --at TIME [--format tar|tar.gz] [-o FILE]");
	if (strcmp(format, "tar") != 0 && strcmp(format, "tar.gz") != 0)
		return usage_error("export: --format takes tar or tar.gz");
	if (output == NULL && isatty(STDOUT_FILENO))
		return usage_error("export: will not write an archive to a "
				   "terminal; use -o FILE or a pipe");
	if ((rc = open_source(cf, pos[0], STORE_READ, &a)) != 0)
		return rc;
	rc = EXIT_FAILED;
	if (resolve(a, at, &idx) != 0)
		goto out;
	if (output != NULL) {
		/* Written aside and renamed: a failed export leaves nothing
		 * that looks like a good one. */
		tmp = xasprintf("%s.tmp.%d", output, (int)getpid());
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			 0644)) < 0) {
			fprintf(stderr, "pullbackup: %s: %s\n", output,
			    strerror(errno));
			goto out;
		}
	}
	if ((r = store_reader_new(a, err, sizeof err)) == NULL ||
	    (m = store_reader_manifest(r, idx, err, sizeof err)) == NULL ||
	    (t = tarw_open(fd, strcmp(format, "tar.gz") == 0, m, err,
		 sizeof err)) == NULL)
		goto fail;
	for (i = 0; i < m->n; i++) {
		in = -1;
		if (m->e[i].type == MENT_FILE &&
		    (in = store_reader_content(r, idx, &m->e[i], err,
			 sizeof err)) < 0)
			goto fail;
		rc = tarw_add(t, &m->e[i], m->e[i].path, in, err, sizeof err);
		if (in >= 0)
			close(in);
		if (rc != 0) {
			rc = EXIT_FAILED;
			goto fail;
		}
	}
	rc = tarw_close(t, err, sizeof err);
	t = NULL;
	if (rc != 0) {
		rc = EXIT_FAILED;
		goto fail;
	}
	if (output != NULL &&
	    (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, output) != 0)) {
		fd = -1;
		snprintf(err, sizeof err, "%s: %s", output, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (output != NULL)
		fprintf(stderr,
		    "exported version %s of \"%s\" to %s (%s): %lld files, "
		    "%lld bytes, every file verified\n",
		    a->ids[idx], pos[0], output, format, (long long)m->files,
		    (long long)m->bytes);
	rc = EXIT_OK;
	goto out;
fail:
	rc = EXIT_FAILED;
	fprintf(stderr, "pullbackup: export of version %s of \"%s\": %s\n",
	    a->ids[idx], pos[0], err);
	if (t != NULL)
		tarw_close(t, err, sizeof err);
	if (tmp != NULL)
		unlink(tmp);
out:
	if (output != NULL && fd >= 0)
		close(fd);
	free(tmp);
	store_reader_free(r);
	store_close(a);
	return rc;
}

int
pb_vc_export(struct config *cf, int argc, char **argv)
{
	const char *output = NULL, *since = NULL, *latest = NULL;
	struct verb_opt opts[] = { { "o", 1, &output },
		{ "output", 1, &output }, { "since", 1, &since },
		{ "latest", 1, &latest }, { NULL, 0, NULL } };
	struct store *a;
	char err[1024], *pos[1], *dst, *tmp, *end;
	size_t first = 0, idx, i, made = 0, kept = 0;
	long long n;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1 || output == NULL)
		return usage_error(
		    "vc-export SOURCE -o DIR [--since TIME] [--latest N]");
	if ((rc = open_source(cf, pos[0], STORE_READ, &a)) != 0)
		return rc;
	rc = EXIT_FAILED;
	if (since != NULL) {
		if (resolve(a, since, &idx) != 0)
			goto out;
		first = idx;
	}
	if (latest != NULL) {
		errno = 0;
		n = strtoll(latest, &end, 10);
		if (errno != 0 || *end != '\0' || n < 1) {
			store_close(a);
			return usage_error(
			    "vc-export: --latest takes a number, at least 1");
		}
		if ((size_t)n < a->n - first)
			first = a->n - (size_t)n;
	}
	if (fs_mkdir_p(output, 0755) != 0) {
		fprintf(stderr, "pullbackup: %s: %s\n", output,
		    strerror(errno));
		goto out;
	}
	for (i = first; i < a->n; i++) {
		dst = xasprintf("%s/%s", output, a->ids[i]);
		tmp = xasprintf("%s/.%s.tmp", output, a->ids[i]);
		if (fs_exists(dst)) {
			kept++;
		} else if (fs_rm_rf(tmp) != 0 ||
		    store_restore(a, i, NULL, tmp, TREEMETA_OWNERS, err,
			sizeof err) != 0 ||
		    rename(tmp, dst) != 0) {
			fprintf(stderr,
			    "pullbackup: vc-export of version %s: %s\n",
			    a->ids[i], err[0] ? err : strerror(errno));
			fs_rm_rf(tmp);
			free(dst);
			free(tmp);
			goto out;
		} else {
			printf("%s\n", dst);
			made++;
		}
		free(dst);
		free(tmp);
	}
	fs_fsync_dir(output);
	fprintf(stderr,
	    "vc-export of \"%s\": %zu version(s) written, %zu already there\n",
	    pos[0], made, kept);
	rc = EXIT_OK;
out:
	store_close(a);
	return rc;
}

/* Scalars as JSON strings are valid YAML, whatever they hold. */
static void
yaml_str(struct evbuffer *b, const char *key, const char *val)
{
	evbuffer_add_printf(b, "%s: ", key);
	json_escape(b, val);
}

int
pb_catalog(struct config *cf, int argc, char **argv)
{
	struct verb_opt opts[] = { { NULL, 0, NULL } };
	struct manifest *m;
	struct version_info vi;
	struct store *a;
	struct evbuffer *b;
	const struct ment *e;
	char err[1024], *pos[1];
	size_t i, k;
	int rc;

	if ((rc = verb_opts(argc, argv, opts, pos, 1)) < 0)
		return EXIT_USAGE;
	if (rc != 1)
		return usage_error("catalog SOURCE");
	if ((rc = open_source(cf, pos[0], STORE_READ, &a)) != 0)
		return rc;
	b = evbuffer_new();
	yaml_str(b, "source", a->source);
	evbuffer_add_printf(b, "\n");
	yaml_str(b, "archive", a->dir);
	evbuffer_add_printf(b, "\nversions:%s\n", a->n ? "" : " []");
	for (i = a->n; i-- > 0;) {
		if (store_info(a, i, &vi, err, sizeof err) != 0 ||
		    store_manifest(a, i, &m, err, sizeof err) != 0) {
			fprintf(stderr, "pullbackup: %s\n", err);
			rc = EXIT_FAILED;
			continue;
		}
		evbuffer_add_printf(b, "  - ");
		yaml_str(b, "id", vi.id);
		evbuffer_add_printf(b, "\n    ");
		yaml_str(b, "time", vi.time);
		evbuffer_add_printf(b,
		    "\n    newest: %s\n    files: %lld\n    bytes: %lld\n    "
		    "stored_bytes: %lld\n    manifest:%s\n",
		    i + 1 == a->n ? "true" : "false", (long long)vi.files,
		    (long long)vi.bytes, (long long)vi.stored,
		    m->n ? "" : " []");
		for (k = 0; k < m->n; k++) {
			e = &m->e[k];
			evbuffer_add_printf(b, "      - {");
			yaml_str(b, "path", e->path);
			evbuffer_add_printf(b,
			    ", type: %s, mode: \"%04o\", mtime: %lld.%09ld",
			    e->type == MENT_FILE    ? "file" :
				e->type == MENT_DIR ? "dir" :
						      "symlink",
			    (unsigned)e->mode, (long long)e->mtime_sec,
			    e->mtime_nsec);
			if (e->type == MENT_FILE)
				evbuffer_add_printf(b,
				    ", size: %lld, sha256: %s",
				    (long long)e->size, e->sha);
			if (e->type == MENT_LINK) {
				evbuffer_add_printf(b, ", ");
				yaml_str(b, "target", e->target);
			}
			evbuffer_add_printf(b, "}\n");
		}
		manifest_free(m);
	}
	fwrite(evbuffer_pullup(b, -1), 1, evbuffer_get_length(b), stdout);
	evbuffer_free(b);
	store_close(a);
	return rc;
}
