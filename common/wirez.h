/* zstd on the wire: the bodies of files and deltas, compressed when the
 * fetching side asks ("Accept-Encoding: zstd", its source's compress key)
 * and the serving side can ("Content-Encoding: zstd" on the reply).  A
 * peer that knows nothing of it answers as before, uncompressed.  Range
 * offsets are of the file, never of the compressed stream. */
#ifndef UNDERSTUDY_WIREZ_H
#define UNDERSTUDY_WIREZ_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* A source's compress key. */
enum wirez_mode {
	WIREZ_AUTO, /* zstd, except to a peer on loopback */
	WIREZ_ZSTD,
	WIREZ_OFF
};
int wirez_mode_parse(const char *s, enum wirez_mode *out);
const char *wirez_mode_name(enum wirez_mode);
/* Whether a transfer from url is to ask for zstd. */
int wirez_wanted(enum wirez_mode, const char *url);
/* Whether an Accept-Encoding value accepts zstd (a "zstd" token whose
 * q is not 0). */
int wirez_accepted(const char *accept_encoding);

/* The serving side: a stream compressed a step at a time, at a level
 * (WIREZ_LEVEL on the wire: the link, not the CPU, is what compression is
 * for there, and zstd's fastest level keeps up with a gigabit link on one
 * core), with zstd's checksum. */
#define WIREZ_LEVEL 1
struct wirez_enc;
struct wirez_enc *wirez_enc_new(int level);
/* Compress n bytes of p into out; last ends the frame.  0, or -1. */
int wirez_enc_step(struct wirez_enc *, const void *p, size_t n, int last,
    struct evbuffer *out);
void wirez_enc_free(struct wirez_enc *);

/* The fetching side: a stream decoded as it comes, into sink.  A window
 * larger than 8 MiB is refused (level 19's): memory stays bounded,
 * whatever the peer says. */
typedef int (*wirez_sink)(void *arg, const void *p, size_t n);
struct wirez_dec;
struct wirez_dec *wirez_dec_new(wirez_sink, void *arg);
/* 0, or -1 with a reason in err (a damaged stream, bytes after its end),
 * or -1 as the sink returned it (err untouched). */
int wirez_dec_feed(struct wirez_dec *, const void *p, size_t n, char *err,
    size_t errlen);
/* Whether the stream ended where a frame does: 0, or -1 (cut short). */
int wirez_dec_finish(struct wirez_dec *, char *err, size_t errlen);
void wirez_dec_free(struct wirez_dec *);

#endif
