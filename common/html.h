/* The HTML pages (the importer's takeover page, the pull-backup's status
 * page): plain documents that work without JavaScript, escaped and sent
 * with headers that forbid scripts, framing and caching. */
#ifndef UNDERSTUDY_HTML_H
#define UNDERSTUDY_HTML_H

#include <stddef.h>
#include <time.h>

struct evbuffer;
struct evhttp_request;

/* Text as HTML: escaped, invalid UTF-8 and control bytes replaced. */
void html_text(struct evbuffer *, const char *s);
/* <tag>text</tag> */
void html_elem(struct evbuffer *, const char *tag, const char *text);
void html_begin(struct evbuffer *, const char *title);
/* A whole page's start: "understudy WHAT on HOST" as title and heading. */
/* full: with the details (the host's name); else a line that says how to
 * see them. */
void html_page_begin(struct evbuffer *, const char *what, int full);
/* <section id="source-NAME"><h2>Source NAME</h2> */
void html_source_begin(struct evbuffer *, const char *name);
/* <td class="CLS">text</td>, and a table row of a heading and a cell. */
void html_cell(struct evbuffer *, const char *cls, const char *text);
void html_row(struct evbuffer *, const char *head, const char *cls,
    const char *text);
void html_end(struct evbuffer *);
void html_reply(struct evhttp_request *, int code, struct evbuffer *);
/* A short page with a heading, one message and a link back to /. */
void html_message(struct evhttp_request *, int code, const char *title,
    const char *msg);
/* "3 min", "2 h 5 min", "4 days 1 h" */
void html_age(char *buf, size_t len, long secs);
/* "2026-11-21 19:41:08 UTC (3 min ago)" for the time t. */
void html_when(char *buf, size_t len, time_t t, time_t now);

#endif
