#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "doc.h"
#include "xmalloc.h"

static struct doc *
doc_new(enum doc_type type, const yaml_mark_t *m)
{
	struct doc *d = xcalloc(1, sizeof *d);

	d->type = type;
	d->line = (int)m->line + 1;
	d->col = (int)m->column + 1;
	return d;
}

static void
doc_add(struct doc *parent, struct doc *kid)
{
	parent->kids = xreallocarray(parent->kids, parent->n + 1,
	    sizeof *parent->kids);
	parent->kids[parent->n++] = kid;
}

void
doc_free(struct doc *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++)
		doc_free(d->kids[i]);
	free(d->kids);
	free(d->str);
	free(d);
}

const char *
doc_type_name(enum doc_type t)
{
	switch (t) {
	case DOC_SCALAR:
		return "a scalar";
	case DOC_SEQ:
		return "a list";
	case DOC_MAP:
		return "a mapping";
	}
	return "?";
}

int
doc_parse(const char *buf, size_t len, struct doc **out, char *err,
    size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct doc *stack[DOC_MAX_DEPTH + 1];
	struct doc *root = NULL, *d;
	enum doc_type kind;
	int depth = 0, done = 0, ndocs = 0, rc = -1;

	*out = NULL;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "1:1: cannot initialize the YAML parser");
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(err, errlen, "%zu:%zu: %s%s%s",
			    parser.problem_mark.line + 1,
			    parser.problem_mark.column + 1,
			    parser.problem ? parser.problem : "syntax error",
			    parser.context ? " " : "",
			    parser.context ? parser.context : "");
			goto out;
		}
		d = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++ndocs > 1) {
				snprintf(err, errlen,
				    "%zu:%zu: only one document is allowed",
				    ev.start_mark.line + 1,
				    ev.start_mark.column + 1);
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_ALIAS_EVENT:
			snprintf(err, errlen,
			    "%zu:%zu: aliases are not allowed",
			    ev.start_mark.line + 1, ev.start_mark.column + 1);
			yaml_event_delete(&ev);
			goto out;
		case YAML_SCALAR_EVENT:
			d = doc_new(DOC_SCALAR, &ev.start_mark);
			if (memchr(ev.data.scalar.value, '\0',
				ev.data.scalar.length) != NULL) {
				snprintf(err, errlen,
				    "%d:%d: NUL character in a string", d->line,
				    d->col);
				doc_free(d);
				yaml_event_delete(&ev);
				goto out;
			}
			d->str = xstrndup((const char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			d->len = ev.data.scalar.length;
			d->plain = ev.data.scalar.style ==
			    YAML_PLAIN_SCALAR_STYLE;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			kind = ev.type == YAML_SEQUENCE_START_EVENT ? DOC_SEQ :
								      DOC_MAP;
			d = doc_new(kind, &ev.start_mark);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		if (d != NULL) {
			if (depth == 0) {
				if (root != NULL)
					doc_free(root);
				root = d;
			} else
				doc_add(stack[depth - 1], d);
			if (d->type != DOC_SCALAR) {
				if (depth >= DOC_MAX_DEPTH) {
					snprintf(err, errlen,
					    "%d:%d: nested deeper than %d "
					    "levels",
					    d->line, d->col, DOC_MAX_DEPTH);
					yaml_event_delete(&ev);
					goto out;
				}
				stack[depth++] = d;
			}
		}
		yaml_event_delete(&ev);
	}
	if (root == NULL) {
		snprintf(err, errlen, "1:1: the document is empty");
		goto out;
	}
	*out = root;
	root = NULL;
	rc = 0;
out:
	doc_free(root);
	yaml_parser_delete(&parser);
	return rc;
}

struct doc *
doc_get(const struct doc *d, const char *key)
{
	size_t i;

	if (d == NULL || d->type != DOC_MAP)
		return NULL;
	for (i = 0; i + 1 < d->n; i += 2) {
		if (d->kids[i]->type == DOC_SCALAR &&
		    strcmp(d->kids[i]->str, key) == 0)
			return d->kids[i + 1];
	}
	return NULL;
}

const char *
doc_get_str(const struct doc *d, const char *key)
{
	struct doc *v = doc_get(d, key);

	if (v == NULL || v->type != DOC_SCALAR)
		return NULL;
	return v->str;
}

int
doc_scalar_i64(const struct doc *v, int64_t *out)
{
	char *end;
	long long n;

	if (v == NULL || v->type != DOC_SCALAR || v->len == 0 || v->len > 20)
		return -1;
	errno = 0;
	n = strtoll(v->str, &end, 10);
	if (errno != 0 || *end != '\0' || end == v->str)
		return -1;
	*out = n;
	return 0;
}

int
doc_get_i64(const struct doc *d, const char *key, int64_t *out)
{
	return doc_scalar_i64(doc_get(d, key), out);
}

int
doc_get_bool(const struct doc *d, const char *key, int *out)
{
	const char *s = doc_get_str(d, key);

	if (s == NULL)
		return -1;
	if (strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "false") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}
