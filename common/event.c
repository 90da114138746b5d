/* The envelope of an event: {"proto":1,"type":T,"source":S,"version":V,
 * ...}, built by senders, checked by receivers, parsed again from the
 * queue by the role that handles it. */
#include <stdio.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "config.h"
#include "doc.h"
#include "generation.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"
#include "timespec.h"

void
event_begin(struct node *n, struct json *j, struct evbuffer *b,
    const char *type, const char *source, const char *version)
{
	struct gen *g = n != NULL ? gen_find(n, source) : NULL;

	json_init(j, b);
	json_obj_open(j, NULL);
	json_i64(j, EVF_PROTO, PROTO_VERSION);
	json_str(j, EVF_TYPE, type);
	json_str(j, EVF_SOURCE, source);
	json_str(j, EVF_VERSION, version);
	if (g != NULL)
		gen_members(j, &g->cur);
}

void
event_report(struct node *n, const char *dest, const char *type,
    const char *source, const char *version, const char *from, int ok,
    const char *error)
{
	struct evbuffer *b = evbuffer_new();
	struct json j;

	event_begin(n, &j, b, type, source, version);
	json_str(&j, EVF_FROM, from);
	json_bool(&j, EVF_OK, ok);
	if (error != NULL)
		json_str(&j, EVF_ERROR, error);
	json_obj_close(&j);
	outbox_send(n, dest, type, b);
	evbuffer_free(b);
}

int
event_check(const struct doc *d, char *why, size_t whylen)
{
	const char *source, *version;
	int64_t proto;

	if (d->type != DOC_MAP) {
		snprintf(why, whylen, "event body is not a JSON object");
		return PROTO_BAD;
	}
	if (doc_get_i64(d, EVF_PROTO, &proto) != 0 || proto != PROTO_VERSION) {
		snprintf(why, whylen,
		    "event of protocol version %s: this %s speaks version %d",
		    doc_get_str(d, EVF_PROTO) ? doc_get_str(d, EVF_PROTO) :
						"(none)",
		    log_role(), PROTO_VERSION);
		return PROTO_BAD;
	}
	source = doc_get_str(d, EVF_SOURCE);
	version = doc_get_str(d, EVF_VERSION);
	if (doc_get_str(d, EVF_TYPE) == NULL || source == NULL ||
	    !source_name_valid(source) || version == NULL ||
	    !version_id_valid(version)) {
		snprintf(why, whylen,
		    "event needs \"%s\", a valid \"%s\" and \"%s\"", EVF_TYPE,
		    EVF_SOURCE, EVF_VERSION);
		return PROTO_BAD;
	}
	return 0;
}

struct doc *
event_parse(const struct qentry *e)
{
	struct doc *d = NULL;
	char err[128];

	if (doc_parse(e->body, e->len, &d, err, sizeof err) != 0)
		return NULL;
	return d;
}

const struct doc *
event_doc(struct qentry *e)
{
	if (!e->parsed) {
		e->doc = event_parse(e);
		e->parsed = 1;
	}
	return e->doc;
}
