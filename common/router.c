/* Every request a daemon gets: its URI parsed once (proto_parse()), then
 * checked and routed.  /health is public; /metrics takes the secret only
 * (scrapers send no protocol header); the pages and /feed follow the
 * config's pages policy; everything under /v1/ takes the secret and the
 * protocol version, then goes to the inbox, the status, the version
 * server, or the role's own routes. */
#include <string.h>

#include <event2/http.h>

#include "allow.h"
#include "gate.h"
#include "html.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "proto.h"

static void
route_page(struct node *n, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	const char *q = evhttp_uri_get_query(
	    evhttp_request_get_evhttp_uri(req));

	if (http_check_page(req, n->cf) != 0)
		return;
	/* "?details": the login that shows them. */
	if (q != NULL && strcmp(q, "details") == 0 &&
	    !http_page_full(req, n->cf)) {
		http_page_login(req);
		return;
	}
	if (strcmp(path, ROUTE_FEED) == 0 && cmd == EVHTTP_REQ_GET) {
		monitor_feed(n, req);
		return;
	}
	if (n->ops->page != NULL && n->ops->page(n, req, path) == 0)
		return;
	html_message(req, PROTO_UNKNOWN, "Not found", "There is no page here.");
}

static void
route_v1(struct node *n, struct evhttp_request *req, const struct proto_req *pr)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	/* The read-only credential reads the status, nothing else. */
	char why[1024];
	int code = 0;

	if (http_check(req, n->cf,
		pr->route == PROTO_R_STATUS && cmd == EVHTTP_REQ_GET) != 0)
		return;
	/* What the peer's certificate allows (events: the inbox checks). */
	if (pr->route == PROTO_R_VERSION)
		code = allow_request(n, req, ALLOW_READ, NULL, pr->source, why,
		    sizeof why);
	else if (pr->route == PROTO_R_NOW || pr->route == PROTO_R_RUN ||
	    pr->route == PROTO_R_VERIFY)
		code = allow_request(n, req, ALLOW_LOCAL, NULL, NULL, why,
		    sizeof why);
	if (code != 0) {
		http_reply_error(req, code, "%s", why);
		return;
	}
	switch (pr->route) {
	case PROTO_R_EVENTS:
		if (cmd != EVHTTP_REQ_POST)
			http_reply_error(req, PROTO_METHOD, "POST events here");
		else
			inbox_receive(n, req);
		return;
	case PROTO_R_STATUS:
		if (cmd == EVHTTP_REQ_GET) {
			monitor_status(n, req);
			return;
		}
		break;
	case PROTO_R_VERSION:
		if (n->ops->lookup != NULL) {
			serve_request(&n->serve, req, pr);
			return;
		}
		break;
	default:
		if (n->ops->route != NULL && n->ops->route(n, req, pr) == 0)
			return;
		break;
	}
	http_reply_error(req, PROTO_UNKNOWN, "no route %s on the %s",
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)),
	    log_role());
}

void
router_request(struct evhttp_request *req, void *arg)
{
	struct node *n = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct proto_req pr;
	char why[512];
	int code;

	if (gate_refusal(n->gate, req))
		return;
	code = proto_parse(evhttp_request_get_evhttp_uri(req), &pr, why,
	    sizeof why);
	if (code == PROTO_BAD) {
		http_reply_error(req, code, "%s", why);
		goto out;
	}
	switch (pr.route) {
	case PROTO_R_HEALTH:
		if (cmd != EVHTTP_REQ_GET)
			break;
		monitor_health(n, req, &pr);
		goto out;
	case PROTO_R_METRICS:
		if (cmd != EVHTTP_REQ_GET)
			break;
		if (http_check_secret(req, n->cf, 1) == 0)
			monitor_metrics(n, req);
		goto out;
	case PROTO_R_PAGE:
		route_page(n, req, pr.page);
		goto out;
	default:
		route_v1(n, req, &pr);
		goto out;
	}
	/* Another method on /health or /metrics: not a page either. */
	route_page(n, req,
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)));
out:
	proto_req_clear(&pr);
}
