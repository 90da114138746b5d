/* zstd on the wire (common/wirez.c): a file compressed a step at a time
 * comes back whole through the decoder, in any split of its bytes; a
 * damaged stream, one cut short, and bytes after its end are refused; the
 * decoder's output goes to the sink in bounded pieces, and a sink's
 * failure stops it; Accept-Encoding and the compress key are read as a
 * peer and an operator write them. */
#include <string.h>

#include <event2/buffer.h>

#include "unit.h"
#include "wirez.h"

struct out {
	unsigned char *p;
	size_t n, cap, most;
	size_t fail_after; /* fail once this many bytes came, or 0 */
};

static int
out_sink(void *arg, const void *p, size_t n)
{
	struct out *o = arg;

	if (o->fail_after > 0 && o->n + n > o->fail_after)
		return -1;
	if (o->n + n > o->cap) {
		o->cap = (o->n + n) * 2;
		o->p = realloc(o->p, o->cap);
	}
	memcpy(o->p + o->n, p, n);
	o->n += n;
	if (n > o->most)
		o->most = n;
	return 0;
}

/* data compressed in steps of step bytes */
static struct evbuffer *
compress(const unsigned char *data, size_t n, size_t step)
{
	struct wirez_enc *e = wirez_enc_new(WIREZ_LEVEL);
	struct evbuffer *b = evbuffer_new();
	size_t off = 0, k;

	CHECK(e != NULL);
	do {
		k = n - off < step ? n - off : step;
		CHECK(wirez_enc_step(e, data + off, k, off + k == n, b) == 0);
		off += k;
	} while (off < n);
	wirez_enc_free(e);
	return b;
}

/* z fed to a decoder in pieces of piece bytes: 0 and the output in o,
 * or -1 with err. */
static int
decode(const unsigned char *z, size_t zn, size_t piece, struct out *o,
    char *err, size_t errlen)
{
	struct wirez_dec *d = wirez_dec_new(out_sink, o);
	size_t off = 0, k;
	int rc = 0;

	err[0] = '\0';
	while (rc == 0 && off < zn) {
		k = zn - off < piece ? zn - off : piece;
		rc = wirez_dec_feed(d, z + off, k, err, errlen);
		off += k;
	}
	if (rc == 0)
		rc = wirez_dec_finish(d, err, errlen);
	wirez_dec_free(d);
	return rc;
}

int
main(void)
{
	size_t n = 3 * 1024 * 1024 + 17, i, zn;
	unsigned char *data = malloc(n), *z, *bad;
	struct out o;
	struct evbuffer *b;
	enum wirez_mode m;
	char err[256];
	uint32_t x = 1;

	/* Half text-like, half noise. */
	for (i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = i < n / 2 ? (unsigned char)("abcdefgh\n"[i % 9]) :
				      (unsigned char)(x >> 16);
	}
	b = compress(data, n, 256 * 1024);
	zn = evbuffer_get_length(b);
	z = malloc(zn);
	evbuffer_remove(b, z, zn);
	evbuffer_free(b);
	CHECK(zn < n * 6 / 10);

	/* Whole, in any split. */
	{
		size_t pieces[] = { 1, 7, 4096, 65536, 1 << 30 };
		for (i = 0; i < sizeof pieces / sizeof *pieces; i++) {
			memset(&o, 0, sizeof o);
			CHECK(
			    decode(z, zn, pieces[i], &o, err, sizeof err) == 0);
			CHECK(o.n == n && memcmp(o.p, data, n) == 0);
			/* bounded pieces, whatever the input's */
			CHECK(o.most <= 256 * 1024);
			free(o.p);
		}
	}
	/* Cut short: refused at the end. */
	memset(&o, 0, sizeof o);
	CHECK(decode(z, zn - 5, 4096, &o, err, sizeof err) == -1);
	CHECK(strstr(err, "cut short") != NULL);
	free(o.p);
	/* Bytes after the frame's end. */
	bad = malloc(zn + 3);
	memcpy(bad, z, zn);
	memcpy(bad + zn, "xyz", 3);
	memset(&o, 0, sizeof o);
	CHECK(decode(bad, zn + 3, 1 << 30, &o, err, sizeof err) == -1);
	CHECK(strstr(err, "after the end") != NULL);
	free(o.p);
	/* A damaged byte in the middle: refused (zstd's checksum, or its
	 * format). */
	memcpy(bad, z, zn);
	bad[zn / 2] ^= 0x55;
	memset(&o, 0, sizeof o);
	CHECK(decode(bad, zn, 4096, &o, err, sizeof err) == -1);
	CHECK(strstr(err, "damaged") != NULL || strstr(err, "cut short"));
	free(o.p);
	/* Not zstd at all. */
	memset(&o, 0, sizeof o);
	CHECK(decode((const unsigned char *)"plain text", 10, 10, &o, err,
		  sizeof err) == -1);
	CHECK(strstr(err, "damaged") != NULL);
	free(o.p);
	/* The sink's failure stops the decoder, err left to the sink. */
	memset(&o, 0, sizeof o);
	o.fail_after = 1000;
	CHECK(decode(z, zn, 1 << 30, &o, err, sizeof err) == -1);
	CHECK(err[0] == '\0');
	free(o.p);
	free(bad);

	/* An empty file: a frame still. */
	b = compress(data, 0, 4096);
	zn = evbuffer_get_length(b);
	CHECK(zn > 0);
	memset(&o, 0, sizeof o);
	CHECK(
	    decode(evbuffer_pullup(b, -1), zn, 4096, &o, err, sizeof err) == 0);
	CHECK(o.n == 0);
	evbuffer_free(b);
	/* and nothing at all is not one */
	memset(&o, 0, sizeof o);
	CHECK(decode(z, 0, 1, &o, err, sizeof err) == -1);

	CHECK(wirez_accepted("zstd"));
	CHECK(wirez_accepted("gzip, zstd"));
	CHECK(wirez_accepted("ZSTD;q=0.5"));
	CHECK(wirez_accepted("br , zstd ; q=1"));
	CHECK(!wirez_accepted("zstd;q=0"));
	CHECK(!wirez_accepted("zstd; q=0.000"));
	CHECK(wirez_accepted("zstd;q=0.001"));
	CHECK(!wirez_accepted("gzip"));
	CHECK(!wirez_accepted("zstdx"));
	CHECK(!wirez_accepted("xzstd"));
	CHECK(!wirez_accepted(""));
	CHECK(!wirez_accepted(NULL));

	CHECK(wirez_mode_parse("auto", &m) == 0 && m == WIREZ_AUTO);
	CHECK(wirez_mode_parse("zstd", &m) == 0 && m == WIREZ_ZSTD);
	CHECK(wirez_mode_parse("off", &m) == 0 && m == WIREZ_OFF);
	CHECK(wirez_mode_parse("on", &m) == -1);
	CHECK(wirez_mode_parse("", &m) == -1);
	CHECK(!wirez_wanted(WIREZ_AUTO, "http://127.0.0.1:7401"));
	CHECK(!wirez_wanted(WIREZ_AUTO, "https://[::1]:7401"));
	CHECK(!wirez_wanted(WIREZ_AUTO, "http://localhost:7401"));
	CHECK(!wirez_wanted(WIREZ_AUTO, "http://LOCALHOST"));
	CHECK(wirez_wanted(WIREZ_AUTO, "http://localhost.example:7401"));
	CHECK(wirez_wanted(WIREZ_AUTO, "https://10.0.0.5:7401"));
	CHECK(wirez_wanted(WIREZ_AUTO, "https://backup.example:7401"));
	CHECK(wirez_wanted(WIREZ_ZSTD, "http://127.0.0.1:7401"));
	CHECK(!wirez_wanted(WIREZ_OFF, "https://10.0.0.5:7401"));

	free(z);
	free(data);
	return unit_done();
}
