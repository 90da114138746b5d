#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "doc.h"
#include "json.h"
#include "log.h"
#include "unit.h"

static struct doc *
parse(struct evbuffer *b)
{
	struct doc *d = NULL;
	char err[256];

	if (doc_parse((const char *)evbuffer_pullup(b, -1),
		evbuffer_get_length(b), &d, err, sizeof err) != 0)
		fprintf(stderr, "parse: %s\n", err);
	return d;
}

static void
bad(const char *text, const char *why)
{
	struct doc *d = NULL;
	char err[256];

	err[0] = '\0';
	CHECK(doc_parse(text, strlen(text), &d, err, sizeof err) != 0);
	CHECK(d == NULL);
	CHECK_CONTAINS(err, why);
}

int
main(void)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;
	struct doc *d, *arr;
	int64_t n;
	int flag;
	const char *tricky = "quote\" backslash\\ newline\n tab\t bell\a "
			     "caf\xc3\xa9 bad\xff\xfe end";
	char deep[200];

	log_init("test", LOG_LEVEL_WARN);
	json_init(&j, b);
	json_obj_open(&j, NULL);
	json_i64(&j, "proto", 1);
	json_str(&j, "s", tricky);
	json_str(&j, "null", NULL);
	json_bool(&j, "t", 1);
	json_i64(&j, "neg", -42);
	json_arr_open(&j, "list");
	json_str(&j, NULL, "a");
	json_obj_open(&j, NULL);
	json_str(&j, "k", "v");
	json_obj_close(&j);
	json_arr_close(&j);
	json_obj_close(&j);
	d = parse(b);
	CHECK(d != NULL && d->type == DOC_MAP);
	CHECK(doc_get_i64(d, "proto", &n) == 0 && n == 1);
	CHECK(doc_get_i64(d, "neg", &n) == 0 && n == -42);
	CHECK(doc_get_bool(d, "t", &flag) == 0 && flag == 1);
	CHECK_STR(doc_get_str(d, "s"),
	    "quote\" backslash\\ newline\n tab\t bell\a caf\xc3\xa9 "
	    "bad\xef\xbf\xbd\xef\xbf\xbd end");
	arr = doc_get(d, "list");
	CHECK(arr != NULL && arr->type == DOC_SEQ && arr->n == 2);
	CHECK(arr != NULL && arr->n == 2 &&
	    strcmp(doc_get_str(arr->kids[1], "k"), "v") == 0);
	CHECK(doc_get(d, "missing") == NULL);
	CHECK(doc_get_i64(d, "s", &n) != 0);
	doc_free(d);

	/* Positions are kept for error messages. */
	{
		const char *y = "a: 1\nbb:\n  c: [x, y]\n";
		CHECK(doc_parse(y, strlen(y), &d, deep, sizeof deep) == 0);
		arr = doc_get(doc_get(d, "bb"), "c");
		CHECK(arr != NULL && arr->line == 3 && arr->col == 6);
		CHECK(arr != NULL && arr->kids[1]->line == 3 &&
		    arr->kids[1]->col == 10);
		doc_free(d);
	}

	bad("{\"a\": [1, 2}", "1:");
	bad("", "empty");
	bad("a: 1\n---\nb: 2\n", "only one document");
	bad("a: &x 1\nb: *x\n", "aliases");
	memset(deep, '[', 100);
	deep[100] = '\0';
	bad(deep, "nested deeper");
	evbuffer_free(b);
	return unit_done();
}
