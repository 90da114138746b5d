/* The pull-backup's status page, at GET /: per source, the exporter, the
 * versions kept, the last pull, and each importer's state and lag.  Made
 * from what the daemon holds in memory: no disk access on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "config.h"
#include "html.h"
#include "http.h"
#include "manifest.h"
#include "pullbackup.h"
#include "timespec.h"
#include "xmalloc.h"

#define PAGE_VERSIONS 30 /* newest versions listed */

static time_t
vtime(const char *version)
{
	return (time_t)(version_id_ms(version) / 1000);
}

static void
importers(struct evbuffer *b, const struct src *s, time_t now, int full)
{
	const struct imp *m;
	char lag[64], age[64];
	size_t k;

	evbuffer_add_printf(b,
	    "<h3>Importers</h3>\n<table "
	    "class=\"importers\">\n<tr><th>Importer</th><th>State</"
	    "th><th>Version it holds</th><th>Behind the newest</th><th>Age of "
	    "its copy</th><th>Error</th></tr>\n");
	for (k = 0; k < s->run.sc->nimporters; k++) {
		m = &s->imps[k];
		evbuffer_add_printf(b, "<tr>");
		if (full)
			html_cell(b, NULL, m->url);
		else
			evbuffer_add_printf(b, "<td>importer %zu</td>", k + 1);
		html_cell(b,
		    m->state == IMP_OK          ? "ok" :
			m->state == IMP_FAILED  ? "bad" :
			m->state == IMP_PENDING ? "busy" :
						  NULL,
		    push_state_name(m->state));
		html_cell(b, NULL, m->version ? m->version : "-");
		if (m->version == NULL || s->head == NULL)
			snprintf(lag, sizeof lag, "-");
		else if (strcmp(m->version, s->head) >= 0)
			snprintf(lag, sizeof lag, "up to date");
		else
			html_age(lag, sizeof lag,
			    (long)(vtime(s->head) - vtime(m->version)));
		html_cell(b, NULL, lag);
		if (m->version != NULL)
			html_age(age, sizeof age,
			    (long)(now - vtime(m->version)));
		else
			snprintf(age, sizeof age, "-");
		html_cell(b, NULL, age);
		html_cell(b, m->error ? "bad" : NULL, m->error ? m->error : "");
		evbuffer_add_printf(b, "</tr>\n");
	}
	evbuffer_add_printf(b, "</table>\n");
}

static void
versions(struct evbuffer *b, const struct src *s, time_t now)
{
	char when[96];
	size_t i, shown = 0;

	evbuffer_add_printf(b,
	    "<details><summary>%zu version%s kept</summary>\n<table "
	    "class=\"versions\">\n<tr><th>Version</th><th>Exported</th></tr>\n",
	    s->nversions, s->nversions == 1 ? "" : "s");
	for (i = s->nversions; i-- > 0 && shown++ < PAGE_VERSIONS;) {
		evbuffer_add_printf(b, "<tr>");
		html_cell(b, NULL, s->vids[i]);
		html_when(when, sizeof when, vtime(s->vids[i]), now);
		html_cell(b, NULL, when);
		evbuffer_add_printf(b, "</tr>\n");
	}
	evbuffer_add_printf(b, "</table>\n");
	if (s->nversions > PAGE_VERSIONS)
		evbuffer_add_printf(b,
		    "<p>and %zu older: <code>understudy-pullbackup list "
		    "%s</code></p>\n",
		    s->nversions - PAGE_VERSIONS, s->run.sc->name);
	evbuffer_add_printf(b, "</details>\n");
}

static void
source_section(struct evbuffer *b, const struct src *s, time_t now, int full)
{
	char when[96], *text;

	html_source_begin(b, s->run.sc->name);
	evbuffer_add_printf(b, "<table>\n");
	if (full)
		html_row(b, "Exporter", NULL, s->run.sc->exporter);
	if (s->head != NULL) {
		html_when(when, sizeof when, vtime(s->head), now);
		text = xasprintf("%s, exported %s%s", s->head, when,
		    s->head_m ? "" : " (its manifest is unreadable)");
		html_row(b, "Newest version", NULL, text);
		free(text);
	} else
		html_row(b, "Newest version", "bad",
		    "none: nothing archived yet");
	if (s->head_m != NULL) {
		text = xasprintf("%lld files, %lld bytes",
		    (long long)s->head_m->files, (long long)s->head_m->bytes);
		html_row(b, "Size", NULL, text);
		free(text);
	}
	runner_html(b, &s->run, now, full);
	evbuffer_add_printf(b, "</table>\n");
	versions(b, s, now);
	importers(b, s, now, full);
	evbuffer_add_printf(b, "</section>\n");
}

int
pb_page(struct node *n, struct evhttp_request *req, const char *path)
{
	struct pullbackup *pb = n->role;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *b;
	time_t now = time(NULL);
	int full = http_page_full(req, n->cf);
	size_t i;

	if (strcmp(path, "/") != 0 ||
	    (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD))
		return -1;
	b = evbuffer_new();
	html_page_begin(b, "pull-backup", full);
	evbuffer_add_printf(b,
	    "<p>The archive of each source and where its newest version "
	    "went.");
	if (full) {
		evbuffer_add_printf(b, " Archive: <code>");
		html_text(b, pb->cf->archive_dir);
		evbuffer_add_printf(b, "</code>.");
	}
	evbuffer_add_printf(b, " <a href=\"/feed\">Feed of pulls</a>.</p>\n");
	for (i = 0; i < pb->nsrcs; i++)
		source_section(b, &pb->srcs[i], now, full);
	html_end(b);
	html_reply(req, 200, b);
	evbuffer_free(b);
	return 0;
}
