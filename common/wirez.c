/* zstd on the wire (wirez.h), and at rest for the archive's increments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <zstd.h>

#include "wirez.h"
#include "xmalloc.h"

int
wirez_mode_parse(const char *s, enum wirez_mode *out)
{
	if (strcmp(s, "auto") == 0)
		*out = WIREZ_AUTO;
	else if (strcmp(s, "zstd") == 0)
		*out = WIREZ_ZSTD;
	else if (strcmp(s, "off") == 0)
		*out = WIREZ_OFF;
	else
		return -1;
	return 0;
}

const char *
wirez_mode_name(enum wirez_mode m)
{
	return m == WIREZ_ZSTD ? "zstd" : m == WIREZ_OFF ? "off" : "auto";
}

/* The host of an http(s)://host:port URL is a loopback one. */
static int
url_loopback(const char *url)
{
	const char *h = strstr(url, "://");
	size_t n;

	if (h == NULL)
		return 0;
	h += 3;
	n = strcspn(h, "/");
	if (n >= 5 && strncmp(h, "[::1]", 5) == 0)
		return 1;
	if (strncasecmp(h, "localhost", 9) == 0 &&
	    (h[9] == ':' || h[9] == '/' || h[9] == '\0'))
		return 1;
	return strncmp(h, "127.", 4) == 0;
}

int
wirez_wanted(enum wirez_mode m, const char *url)
{
	if (m == WIREZ_AUTO)
		return !url_loopback(url);
	return m == WIREZ_ZSTD;
}

int
wirez_accepted(const char *v)
{
	const char *p = v, *end, *semi;
	size_t n;

	if (v == NULL)
		return 0;
	while (*p != '\0') {
		p += strspn(p, " \t,");
		end = p + strcspn(p, ",");
		semi = memchr(p, ';', (size_t)(end - p));
		n = (size_t)((semi != NULL ? semi : end) - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 4 && strncasecmp(p, "zstd", 4) == 0) {
			/* "zstd;q=0" (or 0.0, 0.00, 0.000) refuses it. */
			if (semi == NULL)
				return 1;
			semi++;
			semi += strspn(semi, " \t");
			if (strncasecmp(semi, "q=", 2) != 0)
				return 1;
			semi += 2;
			if (*semi != '0')
				return 1;
			semi++;
			if (*semi == '.')
				semi += 1 + strspn(semi + 1, "0");
			semi += strspn(semi, " \t");
			return semi != end;
		}
		p = end;
	}
	return 0;
}

struct wirez_enc {
	ZSTD_CCtx *cc;
};

struct wirez_enc *
wirez_enc_new(int level)
{
	struct wirez_enc *e = xcalloc(1, sizeof *e);

	/* With a checksum: a damaged stream says so before the file's
	 * SHA-256 does. */
	if ((e->cc = ZSTD_createCCtx()) == NULL ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->cc, ZSTD_c_compressionLevel,
		level)) ||
	    ZSTD_isError(
		ZSTD_CCtx_setParameter(e->cc, ZSTD_c_checksumFlag, 1))) {
		wirez_enc_free(e);
		return NULL;
	}
	return e;
}

int
wirez_enc_step(struct wirez_enc *e, const void *p, size_t n, int last,
    struct evbuffer *out)
{
	ZSTD_inBuffer in = { p, n, 0 };
	struct evbuffer_iovec v;
	ZSTD_outBuffer ob;
	size_t left, room = ZSTD_CStreamOutSize();

	do {
		if (evbuffer_reserve_space(out, (ev_ssize_t)room, &v, 1) < 1)
			return -1;
		ob.dst = v.iov_base;
		ob.size = room;
		ob.pos = 0;
		left = ZSTD_compressStream2(e->cc, &ob, &in,
		    last ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			return -1;
		v.iov_len = ob.pos;
		if (evbuffer_commit_space(out, &v, 1) != 0)
			return -1;
	} while (in.pos < in.size || (last && left != 0));
	return 0;
}

void
wirez_enc_free(struct wirez_enc *e)
{
	if (e == NULL)
		return;
	ZSTD_freeCCtx(e->cc);
	free(e);
}

struct wirez_dec {
	ZSTD_DCtx *dc;
	wirez_sink sink;
	void *arg;
	void *buf;
	size_t size;
	int ended; /* the frame ended: nothing may follow */
};

struct wirez_dec *
wirez_dec_new(wirez_sink sink, void *arg)
{
	struct wirez_dec *d = xcalloc(1, sizeof *d);

	if ((d->dc = ZSTD_createDCtx()) == NULL) {
		free(d);
		return NULL;
	}
	ZSTD_DCtx_setParameter(d->dc, ZSTD_d_windowLogMax, 23);
	d->sink = sink;
	d->arg = arg;
	d->size = ZSTD_DStreamOutSize();
	d->buf = xmalloc(d->size);
	return d;
}

int
wirez_dec_feed(struct wirez_dec *d, const void *p, size_t n, char *err,
    size_t errlen)
{
	ZSTD_inBuffer in = { p, n, 0 };
	ZSTD_outBuffer out;
	size_t r;

	/* Until the input is used up and the decoder holds no more output
	 * (a full buffer may leave some). */
	do {
		if (d->ended && in.pos < in.size) {
			snprintf(err, errlen,
			    "bytes after the end of the compressed reply");
			return -1;
		}
		out.dst = d->buf;
		out.size = d->size;
		out.pos = 0;
		r = ZSTD_decompressStream(d->dc, &out, &in);
		if (ZSTD_isError(r)) {
			snprintf(err, errlen, "damaged compressed reply: %s",
			    ZSTD_getErrorName(r));
			return -1;
		}
		if (out.pos > 0 && d->sink(d->arg, d->buf, out.pos) != 0)
			return -1; /* the sink said why */
		if (r == 0)
			d->ended = 1;
	} while (in.pos < in.size || (out.pos == out.size && !d->ended));
	return 0;
}

int
wirez_dec_finish(struct wirez_dec *d, char *err, size_t errlen)
{
	if (d->ended)
		return 0;
	snprintf(err, errlen, "the compressed reply was cut short");
	return -1;
}

void
wirez_dec_free(struct wirez_dec *d)
{
	if (d == NULL)
		return;
	ZSTD_freeDCtx(d->dc);
	free(d->buf);
	free(d);
}
