/* A JSON writer into an evbuffer.  Strings are escaped and made valid
 * UTF-8 (bad bytes become U+FFFD), so hook output or odd file names can
 * never make a body the peer cannot parse. */
#ifndef UNDERSTUDY_JSON_H
#define UNDERSTUDY_JSON_H

#include <stdint.h>

struct evbuffer;

#define JSON_MAX_DEPTH 32

struct json {
	struct evbuffer *buf;
	int depth;
	int first[JSON_MAX_DEPTH];
};

void json_init(struct json *, struct evbuffer *);
void json_obj_open(struct json *, const char *key);
void json_obj_close(struct json *);
void json_arr_open(struct json *, const char *key);
void json_arr_close(struct json *);
void json_str(struct json *, const char *key, const char *val);
void json_i64(struct json *, const char *key, int64_t val);
void json_bool(struct json *, const char *key, int val);
void json_null(struct json *, const char *key);
void json_escape(struct evbuffer *, const char *s);
/* Length of the valid UTF-8 sequence at s, or 0. */
size_t utf8_len(const unsigned char *s);

#endif
