/* A parsed YAML or JSON document: a small tree of scalars, sequences and
 * maps, each node with the line and column it came from, so that config and
 * body errors can say exactly where.  libyaml does the parsing (JSON is
 * YAML's flow style); aliases, multiple documents and deep nesting are
 * refused. */
#ifndef UNDERSTUDY_DOC_H
#define UNDERSTUDY_DOC_H

#include <stddef.h>
#include <stdint.h>

enum doc_type {
	DOC_SCALAR,
	DOC_SEQ,
	DOC_MAP
};

struct doc {
	enum doc_type type;
	int line, col;     /* 1-based position in the input */
	int plain;         /* a scalar written without quotes */
	char *str;         /* scalar value, NUL-terminated */
	size_t len;        /* its length */
	struct doc **kids; /* seq items; map keys and values alternate */
	size_t n;          /* number of entries in kids */
};

#define DOC_MAX_DEPTH 32

int doc_parse(const char *buf, size_t len, struct doc **out, char *err,
    size_t errlen);
void doc_free(struct doc *);
const char *doc_type_name(enum doc_type);

/* Map lookups.  doc_get returns NULL when absent or when d is no map. */
struct doc *doc_get(const struct doc *d, const char *key);
const char *doc_get_str(const struct doc *d, const char *key);
int doc_get_i64(const struct doc *d, const char *key, int64_t *out);
int doc_get_bool(const struct doc *d, const char *key, int *out);
int doc_scalar_i64(const struct doc *d, int64_t *out);

#endif
