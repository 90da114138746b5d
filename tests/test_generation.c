/* Generations (common/generation.c): what an event or a refusal may say
 * of one, and what a node does with it: an older one refused with the
 * promotion named, a newer one handed to the role; the state file read
 * back as written, and a damaged one refused rather than taken as 1.
 * And a manifest's generation line (common/manifest.c). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "doc.h"
#include "fsutil.h"
#include "generation.h"
#include "log.h"
#include "manifest.h"
#include "node.h"
#include "proto.h"
#include "unit.h"

static struct gen_start seen;
static int nseen;

static void
newer(struct node *n, struct gen *g, const struct gen_start *s)
{
	nseen++;
	gen_set(&seen, s);
}

static const struct node_ops ops = { .newer_generation = newer };

static struct doc *
parse(const char *json)
{
	struct doc *d = NULL;
	char err[128];

	CHECK(doc_parse(json, strlen(json), &d, err, sizeof err) == 0);
	return d;
}

/* gen_parse() of json: the generation, or -1. */
static int64_t
gen_of(const char *json, struct gen_start *s)
{
	struct doc *d = parse(json);
	char why[256];
	int64_t n = gen_parse(d, s, why, sizeof why);

	doc_free(d);
	return n;
}

static int
check_event(struct node *n, const char *json, char *why, size_t len)
{
	struct doc *d = parse(json);
	struct gen *g;
	int code = gen_check_event(n, d, &g, why, len);

	doc_free(d);
	return code;
}

int
main(void)
{
	struct gen_start s;
	struct gen g, g2;
	struct node n;
	struct manifest *m;
	struct evbuffer *b;
	char dir[4096], path[4200], why[1024], err[512];
	const char *text;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());

	/* What an event may say. */
	CHECK(gen_of("{\"x\":1}", NULL) == 1);
	CHECK(gen_of("{\"generation\":3}", NULL) == 3);
	CHECK(gen_of("{\"generation\":0}", NULL) == -1);
	CHECK(gen_of("{\"generation\":-2}", NULL) == -1);
	CHECK(gen_of("{\"generation\":\"two\"}", NULL) == -1);
	CHECK(gen_of("{\"generation\":99999999999}", NULL) == -1);
	CHECK(gen_of("{\"generation\":2,\"promoted\":{\"host\":\"b\","
		     "\"at\":\"2026-11-21T21:12:03Z\",\"version\":"
		     "\"20261121T211142.835Z\"}}",
		  &s) == 2);
	CHECK_STR(s.host, "b");
	CHECK_STR(s.version, "20261121T211142.835Z");
	gen_describe(&s, why, sizeof why);
	CHECK_STR(why,
	    "generation 2, started by the promotion on b at "
	    "2026-11-21T21:12:03Z (version 20261121T211142.835Z)");
	gen_start_clear(&s);
	/* A promotion that does not say where, when or which is refused. */
	CHECK(
	    gen_of("{\"generation\":2,\"promoted\":{\"at\":\"t\"}}", &s) == -1);
	CHECK(s.host == NULL);
	CHECK(gen_of("{\"generation\":2,\"promoted\":{\"host\":\"a b\","
		     "\"at\":\"t\"}}",
		  NULL) == -1);
	CHECK(gen_of("{\"generation\":2,\"promoted\":{\"host\":\"b\","
		     "\"at\":\"t\",\"version\":\"yesterday\"}}",
		  NULL) == -1);
	CHECK(gen_of("{\"generation\":2,\"promoted\":[1]}", NULL) == -1);

	/* The state file: absent is generation 1; written and read back;
	 * damaged is an error, not generation 1. */
	snprintf(path, sizeof path, "%s/generation.json", dir);
	CHECK(gen_load(&g, "db", path, err, sizeof err) == 0);
	CHECK(g.cur.n == 1 && g.fence.n == 0);
	CHECK(gen_of("{\"generation\":4,\"promoted\":{\"host\":\"h\","
		     "\"at\":\"2026-11-21T21:12:03Z\"}}",
		  &s) == 4);
	gen_set(&g.fence, &s);
	gen_start_clear(&s);
	g.cur.n = 3;
	CHECK(gen_write_now(&g) == 0);
	CHECK(gen_load(&g2, "db", path, err, sizeof err) == 0);
	CHECK(g2.cur.n == 3 && g2.fence.n == 4);
	CHECK_STR(g2.fence.host, "h");
	gen_clear(&g2);
	gen_clear(&g);
	unit_write(path, "{\"generation\":\"x\"}");
	CHECK(gen_load(&g, "db", path, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "is damaged");
	CHECK_CONTAINS(err, "remove it to start again from generation 1");
	unit_write(path, "not json at all {");
	CHECK(gen_load(&g, "db", path, err, sizeof err) != 0);
	unlink(path);

	/* A node in generation 2: older events refused with the promotion
	 * named, equal ones taken, newer ones handed to the role. */
	memset(&n, 0, sizeof n);
	n.ops = &ops;
	CHECK(gen_add(&n, "db", path, err, sizeof err) == 0);
	CHECK(gen_of("{\"generation\":2,\"promoted\":{\"host\":\"b\","
		     "\"at\":\"2026-11-21T21:12:03Z\",\"version\":"
		     "\"20261121T211142.835Z\"}}",
		  &s) == 2);
	gen_set(&gen_find(&n, "db")->cur, &s);
	gen_start_clear(&s);
	CHECK(gen_find(&n, "other") == NULL);
	CHECK(check_event(&n, "{\"source\":\"db\"}", why, sizeof why) ==
	    PROTO_REFUSED);
	CHECK_CONTAINS(why,
	    "source \"db\" is in generation 2, started by the "
	    "promotion on b");
	CHECK_CONTAINS(why, "this event is of generation 1");
	CHECK(check_event(&n, "{\"source\":\"db\",\"generation\":2}", why,
		  sizeof why) == 0);
	CHECK(nseen == 0);
	CHECK(check_event(&n, "{\"source\":\"db\",\"generation\":\"x\"}", why,
		  sizeof why) == PROTO_BAD);
	CHECK(check_event(&n, "{\"source\":\"other\"}", why, sizeof why) == 0);
	CHECK(check_event(&n,
		  "{\"source\":\"db\",\"generation\":5,\"promoted\":{\"host\":"
		  "\"c\",\"at\":\"2026-11-22T00:00:00Z\"}}",
		  why, sizeof why) == 0);
	CHECK(nseen == 1 && seen.n == 5);
	CHECK_STR(seen.host, "c");
	gen_start_clear(&seen);
	gen_free_all(&n);

	/* A manifest names its generation past 1, and only then: the
	 * manifests of generation 1 are as they always were. */
	CHECK(manifest_parse("understudy-manifest 1\nsource db\nversion "
			     "20261121T194108.123Z\nentries 0\nend\n",
		  strlen("understudy-manifest 1\nsource db\nversion "
			 "20261121T194108.123Z\nentries 0\nend\n"),
		  &m, err, sizeof err) == 0);
	CHECK(m->generation == 1);
	b = evbuffer_new();
	manifest_write(m, b);
	evbuffer_add(b, "", 1);
	CHECK(strstr((char *)evbuffer_pullup(b, -1), "generation") == NULL);
	m->generation = 7;
	evbuffer_drain(b, evbuffer_get_length(b));
	manifest_write(m, b);
	manifest_free(m);
	text = (const char *)evbuffer_pullup(b, -1);
	CHECK(manifest_parse(text, evbuffer_get_length(b), &m, err,
		  sizeof err) == 0);
	CHECK(m->generation == 7);
	manifest_free(m);
	evbuffer_free(b);
	text = "understudy-manifest 1\nsource db\nversion "
	       "20261121T194108.123Z\ngeneration 0\nentries 0\nend\n";
	CHECK(manifest_parse(text, strlen(text), &m, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "bad generation");
	text = "understudy-manifest 1\nsource db\nversion "
	       "20261121T194108.123Z\nentries 0\ngeneration 2\nend\n";
	CHECK(manifest_parse(text, strlen(text), &m, err, sizeof err) != 0);
	fs_rm_rf(dir);
	return unit_done();
}
