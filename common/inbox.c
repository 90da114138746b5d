/* The inbox: events from peers.  POST /v1/events is checked (the common
 * checks, then the role's accept()), and an event to queue goes to the
 * commit thread: it is answered once its file is durable (durable.c), and
 * only then handed to the role, in order.  A handled event leaves the
 * inbox in memory at once, and on disk once what its handling sent is
 * durable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "allow.h"
#include "doc.h"
#include "generation.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "node.h"
#include "proto.h"
#include "queue.h"

void
inbox_reply_queued(struct evhttp_request *req, int queued, const char *note)
{
	struct json j;

	http_json_begin(&j);
	json_bool(&j, REPLY_QUEUED, queued);
	if (!queued)
		json_str(&j, REPLY_NOTE, note);
	http_reply_json(req, PROTO_OK, &j);
}

/* An event refused: the error, and with a generation's refusal the
 * generation, for the sender to learn it. */
static void
reply_refused(struct evhttp_request *req, int code, const char *why,
    const struct gen *g)
{
	struct json j;

	http_json_begin(&j);
	json_str(&j, REPLY_ERROR, why);
	if (code == PROTO_REFUSED && g != NULL)
		gen_members(&j, &g->cur);
	http_reply_json(req, code, &j);
}

void
inbox_receive(struct node *n, struct evhttp_request *req)
{
	struct doc *d = NULL;
	struct qentry *e;
	struct gen *g;
	char *body, perr[256], key[512], why[1024];
	size_t len;
	int code;

	if ((body = http_body(req, PROTO_MAX_EVENT, &len)) == NULL) {
		http_reply_error(req, PROTO_TOO_LARGE,
		    "event larger than %d bytes", PROTO_MAX_EVENT);
		return;
	}
	if (doc_parse(body, len, &d, perr, sizeof perr) != 0) {
		http_reply_error(req, PROTO_BAD,
		    "event body is not a JSON object: %s", perr);
		goto out;
	}
	if ((code = event_check(d, why, sizeof why)) != 0 ||
	    (code = allow_request(n, req, ALLOW_EVENT, doc_get_str(d, EVF_TYPE),
		 doc_get_str(d, EVF_SOURCE), why, sizeof why)) != 0) {
		http_reply_error(req, code, "%s", why);
		goto out;
	}
	if (n->stopping) {
		http_reply_error(req, PROTO_UNAVAILABLE, "%s is shutting down",
		    log_role());
		goto out;
	}
	if ((code = gen_check_event(n, d, &g, why, sizeof why)) != 0) {
		log_warnx("%s %s %s refused: %s", doc_get_str(d, EVF_TYPE),
		    doc_get_str(d, EVF_SOURCE), doc_get_str(d, EVF_VERSION),
		    why);
		reply_refused(req, code, why, g);
		goto out;
	}
	key[0] = '\0';
	why[0] = '\0';
	code = n->ops->accept(n, d, key, sizeof key, why, sizeof why);
	if (code == NODE_QUEUE) {
		if ((e = queue_prepare(n->inbox, key, "", body, len, why,
			 sizeof why)) == NULL) {
			log_warnx("%s", why);
			http_reply_error(req, PROTO_UNAVAILABLE, "%s", why);
			goto out;
		}
		log_debugf("%s %s %s: queued", doc_get_str(d, EVF_TYPE),
		    doc_get_str(d, EVF_SOURCE), doc_get_str(d, EVF_VERSION));
		durable_received(n, req, e);
	} else if (code == NODE_ACK_ONLY) {
		log_debugf("%s %s %s: %s", doc_get_str(d, EVF_TYPE),
		    doc_get_str(d, EVF_SOURCE), doc_get_str(d, EVF_VERSION),
		    why);
		inbox_reply_queued(req, 0, why);
	} else
		http_reply_error(req, code, "%s", why);
out:
	doc_free(d);
	free(body);
}

void
inbox_done(struct node *n, struct qentry *e)
{
	durable_handled(n, e);
}

int
inbox_has_newer(struct node *n, const char *key, const char *version)
{
	struct qentry *e;
	const struct doc *d;
	const char *v;

	TAILQ_FOREACH(e, &n->inbox->entries, link) {
		if (strcmp(e->key, key) != 0 || e->superseded)
			continue;
		if ((d = event_doc(e)) == NULL)
			continue;
		v = doc_get_str(d, EVF_VERSION);
		if (v != NULL && strcmp(v, version) > 0)
			return 1;
	}
	return 0;
}
