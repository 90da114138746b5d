/* The takeover page: what an operator looks at before promoting this
 * standby, at GET /.  Per source: the copy this host holds (version, time,
 * age, size), the last import's result and hook output, an import in
 * progress, the manifest's backup.signature, and a form that promotes.
 * The form is a POST that carries the secret (never in a URL) and the
 * source's name typed again as confirmation; it works without JavaScript,
 * which the page's Content-Security-Policy forbids anyway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "hash.h"
#include "html.h"
#include "http.h"
#include "importer.h"
#include "promote.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "timespec.h"
#include "xmalloc.h"

#define PAGE_SIGNATURE_LINES 200 /* of backup.signature, on the page */

static void
version_row(struct evbuffer *b, const char *head, const char *version,
    time_t now)
{
	char when[96], *text;

	html_when(when, sizeof when, (time_t)(version_id_ms(version) / 1000),
	    now);
	text = xasprintf("%s, exported %s", version, when);
	html_row(b, head, NULL, text);
	free(text);
}

/* The first lines of backup.signature, made from the manifest in memory. */
static void
signature(struct evbuffer *b, const struct isrc *s)
{
	struct evbuffer *sig = evbuffer_new();

	manifest_signature(s->cur_m, sig, PAGE_SIGNATURE_LINES);
	evbuffer_add(sig, "", 1);
	evbuffer_add_printf(b,
	    "<details><summary>backup.signature (%lld files)</summary>\n<pre "
	    "class=\"signature\">",
	    (long long)s->cur_m->files);
	html_text(b, (const char *)evbuffer_pullup(sig, -1));
	if (s->cur_m->files > PAGE_SIGNATURE_LINES)
		evbuffer_add_printf(b, "... and %lld more\n",
		    (long long)s->cur_m->files - PAGE_SIGNATURE_LINES);
	evbuffer_add_printf(b, "</pre></details>\n");
	evbuffer_free(sig);
}

static void
promote_form(struct evbuffer *b, const struct isrc *s)
{
	evbuffer_add_printf(b,
	    "<form method=\"post\" action=\"/promote\" "
	    "autocomplete=\"off\">\n<input type=\"hidden\" name=\"source\" "
	    "value=\"");
	html_text(b, s->run.sc->name);
	evbuffer_add_printf(b,
	    "\">\n<p><strong>Promote this host</strong>: it becomes the "
	    "primary for <code>");
	html_text(b, s->run.sc->name);
	evbuffer_add_printf(b,
	    "</code>, takes no more imports, and runs the promote hook. Do "
	    "this only when the primary is gone for good.</p>\n<label>Type the "
	    "source's name to confirm: <input type=\"text\" name=\"confirm\" "
	    "required></label>\n<label>Secret (%s): <input "
	    "type=\"password\" name=\"secret\" required></label>\n",
	    s->node->cf->promote_token != NULL ?
		"the line of promote_token_file" :
		"the token file's line");
	if (s->run.last.version != NULL && !s->run.last.ok)
		evbuffer_add_printf(b,
		    "<label><input type=\"checkbox\" name=\"force\" "
		    "value=\"1\"> The last import failed: promote the older "
		    "copy this host holds anyway</label>\n");
	evbuffer_add_printf(b,
	    "<button type=\"submit\">Promote</button>\n</form>\n");
}

static void
source_section(struct evbuffer *b, const struct isrc *s, time_t now, int full)
{
	const struct runner_result *last = &s->run.last;
	char *text;

	html_source_begin(b, s->run.sc->name);
	evbuffer_add_printf(b, "<table>\n");
	if (s->promo == PROMO_PROMOTED)
		html_row(b, "This host", "ok",
		    "PROMOTED: it is the primary for this source and takes no "
		    "imports");
	else if (s->promo == PROMO_PROMOTING)
		html_row(b, "This host", "busy",
		    s->promo_busy ? "PROMOTING: the promote hook is running" :
				    "PROMOTING: the promote hook did not "
				    "finish; promote again");
	else
		html_row(b, "This host", NULL, "standby: takes imports");
	if (s->promo != PROMO_NONE) {
		text = xasprintf("%s (version %s)%s",
		    s->promo_at ? s->promo_at : "?",
		    s->promo_version ? s->promo_version : "none",
		    s->promo_forced ? ", forced" : "");
		html_row(b, "Promoted at", NULL, text);
		free(text);
	}
	if (s->cur_m != NULL) {
		version_row(b, "Copy held", isrc_version(s), now);
		text = xasprintf("%lld files, %lld bytes",
		    (long long)s->cur_m->files, (long long)s->cur_m->bytes);
		html_row(b, "Size", NULL, text);
		free(text);
	} else
		html_row(b, "Copy held", "bad", "none: nothing imported yet");
	if (full)
		html_row(b, "From", NULL, s->run.sc->pullbackup);
	runner_html(b, &s->run, now, full);
	evbuffer_add_printf(b, "</table>\n");
	if (full && last->output != NULL && *last->output != '\0') {
		evbuffer_add_printf(b,
		    "<h3>Import hook output</h3>\n<pre class=\"hook-output\">");
		html_text(b, last->output);
		evbuffer_add_printf(b, "</pre>\n");
	}
	if (full && s->promo_output != NULL && *s->promo_output != '\0') {
		evbuffer_add_printf(b, "<h3>Promote hook output</h3>\n<pre>");
		html_text(b, s->promo_output);
		evbuffer_add_printf(b, "</pre>\n");
	}
	if (full && s->cur_m != NULL)
		signature(b, s);
	if (s->promo != PROMO_PROMOTED && s->cur_m != NULL && !s->promo_busy)
		promote_form(b, s);
	evbuffer_add_printf(b, "</section>\n");
}

static void
page_index(struct importer *im, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	time_t now = time(NULL);
	int full = http_page_full(req, im->cf);
	size_t i;

	html_page_begin(b, "importer", full);
	evbuffer_add_printf(b,
	    "<p>The standby copies this host holds, and the way to make it the "
	    "primary. <a href=\"/feed\">Feed of imports</a>.</p>\n");
	for (i = 0; i < im->nsrcs; i++)
		source_section(b, &im->srcs[i], now, full);
	html_end(b);
	html_reply(req, 200, b);
	evbuffer_free(b);
}

/* The answer to the form, once the promotion is decided. */
static void
page_promote_reply(struct evhttp_request *req, const struct isrc *s, int code,
    const char *why)
{
	struct evbuffer *b = evbuffer_new();
	char *title;

	title = xasprintf(code != 200 ? "Promotion of %s refused" :
					"%s is promoted",
	    s->run.sc->name);
	html_begin(b, title);
	html_elem(b, "h1", title);
	evbuffer_add_printf(b, "<p id=\"message\" class=\"%s\">",
	    code == 200 ? "ok" : "bad");
	if (code != 200)
		html_text(b, why);
	else {
		evbuffer_add_printf(b, "%s",
		    why ? "It was already: " :
			  "This host is now the primary for ");
		html_text(b, why ? why : s->run.sc->name);
		if (why == NULL) {
			evbuffer_add_printf(b, " (version ");
			html_text(b, s->promo_version);
			evbuffer_add_printf(b,
			    "). It takes no more imports. Point the service's "
			    "clients here.");
		}
	}
	evbuffer_add_printf(b, "</p>\n");
	if (s->promo_output != NULL && *s->promo_output != '\0') {
		evbuffer_add_printf(b, "<h2>Promote hook output</h2>\n<pre>");
		html_text(b, s->promo_output);
		evbuffer_add_printf(b, "</pre>\n");
	}
	evbuffer_add_printf(b,
	    "<p><a href=\"/\">Back to the takeover page</a></p>\n");
	html_end(b);
	html_reply(req, code, b);
	evbuffer_free(b);
	free(title);
}

/* POST /promote, from the form: source, confirm, secret[, force]. */
static void
page_promote(struct importer *im, struct evhttp_request *req)
{
	struct evkeyvalq q;
	const char *source, *confirm, *secret, *force;
	struct isrc *s;
	char *body, why[512];
	size_t len;

	TAILQ_INIT(&q);
	if ((body = http_body(req, PROTO_MAX_FORM, &len)) == NULL ||
	    strlen(body) != len || evhttp_parse_query_str(body, &q) != 0 ||
	    (source = evhttp_find_header(&q, "source")) == NULL) {
		html_message(req, 400, "Bad form",
		    "The promote form came malformed or too large; reload the "
		    "page and try again.");
		goto out;
	}
	confirm = evhttp_find_header(&q, "confirm");
	secret = evhttp_find_header(&q, "secret");
	force = evhttp_find_header(&q, "force");
	if ((s = importer_find(im, source)) == NULL) {
		html_message(req, 404, "No such source",
		    "This importer has no such source; reload the page.");
		goto out;
	}
	/* With promote_token_file, its secret; without, the secret of
	 * token_file, and a browser on this host. */
	if (im->cf->promote_token == NULL &&
	    (secret == NULL ||
		!hash_secret_equal(secret, strlen(secret), im->cf->token,
		    im->cf->token_len))) {
		log_warnx("source \"%s\": promotion on the takeover page "
			  "refused: wrong secret",
		    s->run.sc->name);
		page_promote_reply(req, s, 403,
		    "Wrong secret: nothing was changed. The secret is the line "
		    "of the token file (token_file in the configuration).");
		goto out;
	}
	if (!promote_permitted(im->cf, req,
		im->cf->promote_token != NULL ? secret : NULL, why,
		sizeof why)) {
		log_warnx("source \"%s\": promotion on the takeover page "
			  "refused: %s",
		    s->run.sc->name, why);
		page_promote_reply(req, s, 403, why);
		goto out;
	}
	if (confirm == NULL || strcmp(confirm, s->run.sc->name) != 0) {
		page_promote_reply(req, s, 400,
		    "Not confirmed: type the source's name exactly to confirm. "
		    "Nothing was changed.");
		goto out;
	}
	promote_start(s, req, force != NULL && strcmp(force, "1") == 0,
	    page_promote_reply, " on the takeover page");
out:
	evhttp_clear_headers(&q);
	free(body);
}

int
page_request(struct node *n, struct evhttp_request *req, const char *path)
{
	struct importer *im = n->role;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (strcmp(path, ROUTE_PAGE) == 0 &&
	    (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
		page_index(im, req);
		return 0;
	}
	if (strcmp(path, ROUTE_PAGE_PROMOTE) == 0 && cmd == EVHTTP_REQ_POST) {
		page_promote(im, req);
		return 0;
	}
	return -1;
}
