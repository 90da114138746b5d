#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "html.h"
#include "json.h"
#include "log.h"
#include "xmalloc.h"
#include "understudy-config.h"

void
html_text(struct evbuffer *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	if (s == NULL)
		return;
	while (*s != '\0') {
		switch (*s) {
		case '<':
			evbuffer_add(b, "&lt;", 4);
			break;
		case '>':
			evbuffer_add(b, "&gt;", 4);
			break;
		case '&':
			evbuffer_add(b, "&amp;", 5);
			break;
		case '"':
			evbuffer_add(b, "&quot;", 6);
			break;
		case '\'':
			evbuffer_add(b, "&#39;", 5);
			break;
		case '\n':
		case '\t':
			evbuffer_add(b, s, 1);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				evbuffer_add(b, "\xef\xbf\xbd", 3);
			else if ((n = utf8_len(s)) == 0)
				evbuffer_add(b, "\xef\xbf\xbd", 3);
			else {
				evbuffer_add(b, s, n);
				s += n;
				continue;
			}
		}
		s++;
	}
}

void
html_elem(struct evbuffer *b, const char *tag, const char *text)
{
	evbuffer_add_printf(b, "<%s>", tag);
	html_text(b, text);
	evbuffer_add_printf(b, "</%s>", tag);
}

void
html_begin(struct evbuffer *b, const char *title)
{
	evbuffer_add_printf(b,
	    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
	    "charset=\"utf-8\">\n<meta name=\"viewport\" "
	    "content=\"width=device-width, initial-scale=1\">\n<title>");
	html_text(b, title);
	evbuffer_add_printf(b,
	    "</title>\n<style>\nbody{font:15px/1.45 "
	    "system-ui,sans-serif;margin:1.5em auto;max-width:62em;padding:0 "
	    "1em;color:#1b1b1b}\nh1{font-size:1.4em}h2{font-size:1.15em;margin-"
	    "top:1.6em;border-bottom:1px solid "
	    "#ccc}\ntable{border-collapse:collapse;margin:.4em "
	    "0}th,td{text-align:left;padding:.15em .8em .15em "
	    "0;vertical-align:top}th{font-weight:600;color:#444}\npre{"
	    "background:#f4f4f4;padding:.6em;overflow:auto;max-height:22em;"
	    "white-space:pre-wrap}\n.ok{color:#06612a;font-weight:600}.bad{"
	    "color:#a30000;font-weight:600}.busy{color:#8a5a00;font-weight:600}"
	    "\nform{border:2px solid #a30000;padding:.8em;margin:.8em "
	    "0}label{display:block;margin:.4em "
	    "0}input[type=text],input[type=password]{font:inherit;padding:.2em;"
	    "width:22em}\nbutton{font:inherit;padding:.3em "
	    "1em;background:#a30000;color:#fff;border:0}\nfooter{margin-top:"
	    "2em;color:#666;font-size:.9em}\n</style>\n</head>\n<body>\n");
}

void
html_page_begin(struct evbuffer *b, const char *what, int full)
{
	char host[256], *title;

	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "this host");
	host[sizeof host - 1] = '\0';
	title = full ? xasprintf("understudy %s on %s", what, host) :
		       xasprintf("understudy %s", what);
	html_begin(b, title);
	html_elem(b, "h1", title);
	free(title);
	if (!full)
		evbuffer_add_printf(b,
		    "<p class=\"details\">The host's name, its peers, file "
		    "names and hook output show with the secret or the "
		    "read-only credential: <a href=\"/?details\">details</a>."
		    "</p>\n");
}

void
html_source_begin(struct evbuffer *b, const char *name)
{
	evbuffer_add_printf(b, "<section id=\"source-");
	html_text(b, name);
	evbuffer_add_printf(b, "\">\n<h2>Source ");
	html_text(b, name);
	evbuffer_add_printf(b, "</h2>\n");
}

void
html_cell(struct evbuffer *b, const char *cls, const char *text)
{
	evbuffer_add_printf(b, "<td%s%s%s>", cls ? " class=\"" : "",
	    cls ? cls : "", cls ? "\"" : "");
	html_text(b, text);
	evbuffer_add_printf(b, "</td>");
}

void
html_row(struct evbuffer *b, const char *head, const char *cls,
    const char *text)
{
	evbuffer_add_printf(b, "<tr><th>%s</th>", head);
	html_cell(b, cls, text);
	evbuffer_add_printf(b, "</tr>\n");
}

void
html_end(struct evbuffer *b)
{
	evbuffer_add_printf(b,
	    "<footer>understudy %s</footer>\n</body>\n</html>\n",
	    UNDERSTUDY_VERSION);
}

void
html_reply(struct evhttp_request *req, int code, struct evbuffer *b)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; form-action "
	    "'self'; frame-ancestors 'none'; base-uri 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", b);
}

void
html_message(struct evhttp_request *req, int code, const char *title,
    const char *msg)
{
	struct evbuffer *b = evbuffer_new();

	html_begin(b, title);
	html_elem(b, "h1", title);
	evbuffer_add_printf(b, "<p id=\"message\" class=\"%s\">",
	    code == 200 ? "ok" : "bad");
	html_text(b, msg);
	evbuffer_add_printf(b,
	    "</p>\n<p><a href=\"/\">Back to the status page</a></p>\n");
	html_end(b);
	html_reply(req, code, b);
	evbuffer_free(b);
}

void
html_age(char *buf, size_t len, long s)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%ld s", s);
	else if (s < 3600)
		snprintf(buf, len, "%ld min", s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, len, "%ld h %ld min", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%ld days %ld h", s / 86400,
		    s % 86400 / 3600);
}

void
html_when(char *buf, size_t len, time_t t, time_t now)
{
	char age[48];
	struct tm tm;

	gmtime_r(&t, &tm);
	html_age(age, sizeof age, (long)(now - t));
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d UTC (%s ago)",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, age);
}
