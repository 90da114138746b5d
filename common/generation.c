/* Generations (generation.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "doc.h"
#include "fsutil.h"
#include "generation.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "timespec.h"
#include "xmalloc.h"

#define GEN_STATE_MAX 4096
#define GEN_AT_MAX 40

void
gen_start_clear(struct gen_start *s)
{
	free(s->host);
	free(s->at);
	free(s->version);
	memset(s, 0, sizeof *s);
}

void
gen_set(struct gen_start *dst, const struct gen_start *s)
{
	gen_start_clear(dst);
	dst->n = s->n;
	dst->host = s->host != NULL ? xstrdup(s->host) : NULL;
	dst->at = s->at != NULL ? xstrdup(s->at) : NULL;
	dst->version = s->version != NULL ? xstrdup(s->version) : NULL;
}

/* A name or a time from a peer: printable, bounded. */
static int
text_ok(const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > max)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* generation and promoted of d into s (n 1 when absent): 0, or -1. */
static int
parse_start(const struct doc *d, struct gen_start *s, char *why, size_t whylen)
{
	const struct doc *p;
	const char *host, *at, *version;
	int64_t n = 1;

	memset(s, 0, sizeof *s);
	if (doc_get(d, EVF_GENERATION) != NULL &&
	    (doc_get_i64(d, EVF_GENERATION, &n) != 0 || n < 1 ||
		n > INT32_MAX)) {
		snprintf(why, whylen, "\"%s\" is not a generation (1 or more)",
		    EVF_GENERATION);
		return -1;
	}
	s->n = n;
	if ((p = doc_get(d, EVF_PROMOTED)) == NULL || n == 1)
		return 0;
	host = doc_get_str(p, "host");
	at = doc_get_str(p, "at");
	version = doc_get_str(p, "version");
	if (p->type != DOC_MAP || !text_ok(host, GEN_HOST_MAX) ||
	    !text_ok(at, GEN_AT_MAX) ||
	    (version != NULL && !version_id_valid(version))) {
		snprintf(why, whylen,
		    "\"%s\" needs a \"host\", an \"at\" and a valid "
		    "\"version\"",
		    EVF_PROMOTED);
		return -1;
	}
	s->host = xstrdup(host);
	s->at = xstrdup(at);
	s->version = version != NULL ? xstrdup(version) : NULL;
	return 0;
}

int64_t
gen_parse(const struct doc *d, struct gen_start *s, char *why, size_t whylen)
{
	struct gen_start tmp;
	int64_t n;

	if (parse_start(d, &tmp, why, whylen) != 0) {
		gen_start_clear(&tmp);
		if (s != NULL)
			memset(s, 0, sizeof *s);
		return -1;
	}
	n = tmp.n;
	if (s != NULL)
		*s = tmp;
	else
		gen_start_clear(&tmp);
	return n;
}

void
gen_members(struct json *j, const struct gen_start *s)
{
	json_i64(j, EVF_GENERATION, s->n);
	if (s->n <= 1 || s->host == NULL)
		return;
	json_obj_open(j, EVF_PROMOTED);
	json_str(j, "host", s->host);
	json_str(j, "at", s->at);
	if (s->version != NULL)
		json_str(j, "version", s->version);
	json_obj_close(j);
}

void
gen_describe(const struct gen_start *s, char *buf, size_t len)
{
	if (s->n <= 1 || s->host == NULL)
		snprintf(buf, len, "generation %lld", (long long)s->n);
	else
		snprintf(buf, len,
		    "generation %lld, started by the promotion on %s at %s "
		    "(version %s)",
		    (long long)s->n, s->host, s->at,
		    s->version != NULL ? s->version : "none");
}

void
gen_status(struct json *j, const struct gen *g)
{
	json_i64(j, EVF_GENERATION, g->cur.n);
	if (g->cur.n > 1 && g->cur.host != NULL) {
		json_obj_open(j, "generation_started");
		json_str(j, "host", g->cur.host);
		json_str(j, "at", g->cur.at);
		json_str(j, "version", g->cur.version);
		json_obj_close(j);
	} else
		json_null(j, "generation_started");
	if (g->fence.n > 0) {
		json_obj_open(j, "fenced_by");
		gen_members(j, &g->fence);
		json_obj_close(j);
	} else
		json_null(j, "fenced_by");
}

/* The state file: {"generation":N,"promoted":{...},"fenced_by":{...}}. */
static char *
state_text(const struct gen *g, size_t *len)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;
	char *s;

	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_str(&j, EVF_SOURCE, g->source);
	gen_members(&j, &g->cur);
	if (g->fence.n > 0) {
		json_obj_open(&j, "fenced_by");
		gen_members(&j, &g->fence);
		json_obj_close(&j);
	}
	json_obj_close(&j);
	evbuffer_add(b, "\n", 1);
	*len = evbuffer_get_length(b);
	s = xmalloc(*len);
	evbuffer_remove(b, s, *len);
	evbuffer_free(b);
	return s;
}

void
gen_save(struct node *n, const struct gen *g)
{
	size_t len;
	char *s = state_text(g, &len);

	durable_write(n, g->path, s, len);
	free(s);
}

int
gen_load(struct gen *g, const char *source, const char *path, char *err,
    size_t errlen)
{
	struct doc *d = NULL;
	const struct doc *f;
	char *buf = NULL, why[256];
	size_t len;
	int rc = -1;

	memset(g, 0, sizeof *g);
	g->source = xstrdup(source);
	g->path = xstrdup(path);
	g->cur.n = 1;
	if (fs_read_file(path, GEN_STATE_MAX, &buf, &len) != 0) {
		if (errno == ENOENT)
			rc = 0;
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
	} else if (doc_parse(buf, len, &d, why, sizeof why) != 0 ||
	    d->type != DOC_MAP ||
	    parse_start(d, &g->cur, why, sizeof why) != 0 ||
	    ((f = doc_get(d, "fenced_by")) != NULL &&
		parse_start(f, &g->fence, why, sizeof why) != 0)) {
		/* Taking it as generation 1 could let the old primary in:
		 * the operator decides. */
		snprintf(err, errlen,
		    "%s is damaged (%s): the generation of source \"%s\" is "
		    "unknown; restore it, or remove it to start again from "
		    "generation 1",
		    path, why, source);
	} else
		rc = 0;
	doc_free(d);
	free(buf);
	if (rc != 0)
		gen_clear(g);
	return rc;
}

void
gen_clear(struct gen *g)
{
	gen_start_clear(&g->cur);
	gen_start_clear(&g->fence);
	free(g->source);
	free(g->path);
	memset(g, 0, sizeof *g);
}

int
gen_write_now(const struct gen *g)
{
	size_t len;
	char *s = state_text(g, &len);
	int rc = fs_write_atomic(g->path, s, len);

	free(s);
	return rc;
}

int
gen_add(struct node *n, const char *source, const char *path, char *err,
    size_t errlen)
{
	struct gen *g = xcalloc(1, sizeof *g);

	if (gen_load(g, source, path, err, errlen) != 0) {
		free(g);
		return -1;
	}
	n->gens = xreallocarray(n->gens, n->ngens + 1, sizeof *n->gens);
	n->gens[n->ngens++] = g;
	return 0;
}

struct gen *
gen_find(struct node *n, const char *source)
{
	size_t i;

	for (i = 0; source != NULL && i < n->ngens; i++)
		if (strcmp(n->gens[i]->source, source) == 0)
			return n->gens[i];
	return NULL;
}

void
gen_free_all(struct node *n)
{
	size_t i;

	for (i = 0; i < n->ngens; i++) {
		gen_clear(n->gens[i]);
		free(n->gens[i]);
	}
	free(n->gens);
	n->gens = NULL;
	n->ngens = 0;
}

void
gen_seen(struct node *n, struct gen *g, const struct gen_start *s)
{
	char what[512];

	if (s->n <= g->cur.n)
		return;
	if (n->ops->newer_generation != NULL) {
		n->ops->newer_generation(n, g, s);
		return;
	}
	gen_describe(s, what, sizeof what);
	log_info("source \"%s\": now in %s; anything of an older generation "
		 "is refused",
	    g->source, what);
	gen_set(&g->cur, s);
	gen_save(n, g);
}

int
gen_stale(const struct gen *g, const struct doc *ev, char *why, size_t whylen)
{
	int64_t n = gen_parse(ev, NULL, NULL, 0);
	char what[512];

	if (g == NULL || n < 0 || n >= g->cur.n)
		return 0;
	gen_describe(&g->cur, what, sizeof what);
	snprintf(why, whylen,
	    "source \"%s\" is in %s; this event is of generation %lld, "
	    "refused (docs/operations.md, \"Failback\")",
	    g->source, what, (long long)n);
	return 1;
}

int
gen_check_event(struct node *n, const struct doc *ev, struct gen **gp,
    char *why, size_t whylen)
{
	struct gen *g = gen_find(n, doc_get_str(ev, EVF_SOURCE));
	struct gen_start s;

	*gp = g;
	if (g == NULL)
		return 0;
	if (gen_parse(ev, &s, why, whylen) < 0)
		return PROTO_BAD;
	if (gen_stale(g, ev, why, whylen)) {
		gen_start_clear(&s);
		return PROTO_REFUSED;
	}
	gen_seen(n, g, &s);
	gen_start_clear(&s);
	return 0;
}
