#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "json.h"
#include "log.h"

void
json_init(struct json *j, struct evbuffer *buf)
{
	memset(j, 0, sizeof *j);
	j->buf = buf;
	j->first[0] = 1;
}

size_t
utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
json_escape(struct evbuffer *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	evbuffer_add(b, "\"", 1);
	while (*s != '\0') {
		if (*s == '"' || *s == '\\') {
			evbuffer_add_printf(b, "\\%c", *s);
			s++;
		} else if (*s == '\n') {
			evbuffer_add(b, "\\n", 2);
			s++;
		} else if (*s == '\t') {
			evbuffer_add(b, "\\t", 2);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			evbuffer_add_printf(b, "\\u%04x", *s);
			s++;
		} else if ((n = utf8_len(s)) == 0) {
			evbuffer_add(b, "\\ufffd", 6);
			s++;
		} else {
			evbuffer_add(b, s, n);
			s += n;
		}
	}
	evbuffer_add(b, "\"", 1);
}

static void
json_key(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		evbuffer_add(j->buf, ",", 1);
	j->first[j->depth] = 0;
	if (key != NULL) {
		json_escape(j->buf, key);
		evbuffer_add(j->buf, ":", 1);
	}
}

static void
json_open(struct json *j, const char *key, char c)
{
	json_key(j, key);
	evbuffer_add(j->buf, &c, 1);
	if (j->depth + 1 >= JSON_MAX_DEPTH)
		fatalx("json: nested too deep");
	j->first[++j->depth] = 1;
}

void
json_obj_open(struct json *j, const char *key)
{
	json_open(j, key, '{');
}

void
json_arr_open(struct json *j, const char *key)
{
	json_open(j, key, '[');
}

void
json_obj_close(struct json *j)
{
	j->depth--;
	evbuffer_add(j->buf, "}", 1);
}

void
json_arr_close(struct json *j)
{
	j->depth--;
	evbuffer_add(j->buf, "]", 1);
}

void
json_str(struct json *j, const char *key, const char *val)
{
	json_key(j, key);
	if (val == NULL)
		evbuffer_add(j->buf, "null", 4);
	else
		json_escape(j->buf, val);
}

void
json_i64(struct json *j, const char *key, int64_t val)
{
	json_key(j, key);
	evbuffer_add_printf(j->buf, "%lld", (long long)val);
}

void
json_bool(struct json *j, const char *key, int val)
{
	json_key(j, key);
	evbuffer_add_printf(j->buf, "%s", val ? "true" : "false");
}

void
json_null(struct json *j, const char *key)
{
	json_key(j, key);
	evbuffer_add(j->buf, "null", 4);
}
