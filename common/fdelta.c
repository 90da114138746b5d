/* Deltas against librsync's RabinKarp + BLAKE2 signatures, made here
 * rather than by librsync: the same format, read by librsync's patch.
 *
 * librsync's scan through changed data costs a lookup in its hash table
 * a byte, and the table (some 40 bytes a block, 10 MiB for 2^18 blocks)
 * is out of the cache: on a dump, the load of its key slot was the
 * hottest instruction, and the counters it writes on every probe the
 * next (docs/benchmarks.md).  Here the window rolls in a loop of its own
 * that asks only a bit filter (two bits a block in one word, at most
 * 512 KiB, in the cache); only the positions it lets through look in the
 * table, which is read only.  After a match the next block of the
 * signature is tried first, so an unchanged stretch costs no lookups and
 * comes out as one copy command.
 *
 * The signature is outside input (a peer's): its header is checked, its
 * entries must fill it exactly, and the table bounds its probes, so a
 * signature made to collide costs literal data, not time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <blake2.h>

#include "delta.h"
#include "dwrite.h"
#include "xmalloc.h"

/* librsync's RabinKarp (its src/rabinkarp.h): hash = seed * M^n +
 * sum of byte_i * M^(n-1-i), mod 2^32. */
#define RK_SEED 1u
#define RK_MULT 0x08104225u
#define RK_INVM 0x98f009adu /* RK_MULT's inverse mod 2^32 */
#define RK_ADJ 0x08104224u  /* RK_MULT - RK_SEED */

#define SIG_HEAD 12
#define STRONG_MAX 32 /* BLAKE2b's output as librsync uses it */
#define BLOCK_MAX (16u << 20)
#define PROBE_MAX 32 /* slots looked at, at most, to add or find */
#define READ_STEP (1u << 20)

struct fsig {
	uint32_t block, strong_len;
	size_t n;
	const unsigned char *sums; /* n entries: weak (4), strong */
	uint32_t *weak;
	uint64_t *slot; /* weak << 32 | index + 1; 0: empty */
	uint32_t slot_shift, slot_mask;
	uint64_t *filter; /* two bits a block, in one word */
	uint32_t filter_shift;
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint32_t
rk_pow(uint32_t n)
{
	uint32_t r = 1, m = RK_MULT;

	for (; n > 0; n >>= 1, m *= m)
		if (n & 1)
			r *= m;
	return r;
}

/* The weak sum of p[0..n), sixteen bytes a step without a chain of
 * multiplications through each. */
static uint32_t
rk_sum(const unsigned char *p, size_t n)
{
	uint32_t pw[17], h = RK_SEED, s;
	size_t i;
	int k;

	for (pw[0] = 1, k = 1; k <= 16; k++)
		pw[k] = pw[k - 1] * RK_MULT;
	for (i = 0; i + 16 <= n; i += 16) {
		s = 0;
		for (k = 0; k < 16; k++)
			s += p[i + (size_t)k] * pw[15 - k];
		h = h * pw[16] + s;
	}
	for (; i < n; i++)
		h = h * RK_MULT + p[i];
	return h;
}

/* A word of the filter and two bits in it, from one product. */
static uint64_t
filter_key(const struct fsig *s, uint32_t weak, uint64_t *bits)
{
	uint64_t k = weak * 0x9e3779b97f4a7c15u;

	*bits = (uint64_t)1 << (k >> 20 & 63) | (uint64_t)1 << (k >> 26 & 63);
	return k >> s->filter_shift;
}

static int
filter_has(const struct fsig *s, uint32_t weak)
{
	uint64_t bits, at = filter_key(s, weak, &bits);

	return (s->filter[at] & bits) == bits;
}

static uint32_t
slot_of(const struct fsig *s, uint32_t weak)
{
	return (weak * 0x85ebca77u) >> s->slot_shift;
}

static const unsigned char *
strong_of(const struct fsig *s, size_t i)
{
	return s->sums + i * (4 + s->strong_len) + 4;
}

static void
fsig_free(struct fsig *s)
{
	free(s->weak);
	free(s->slot);
	free(s->filter);
}

/* 0, 1 when the signature is not one of ours to do (another kind, or
 * more blocks than we bound memory for: librsync's to refuse or do), or
 * -1 with a reason. */
static int
fsig_load(struct fsig *s, const unsigned char *sig, size_t siglen, char *err,
    size_t errlen)
{
	uint32_t bits, h, at;
	uint64_t v, fb;
	size_t i, k, entry;

	memset(s, 0, sizeof *s);
	if (siglen < SIG_HEAD || be32(sig) != DELTA_SIG_MAGIC_RK_BLAKE2)
		return 1;
	s->block = be32(sig + 4);
	s->strong_len = be32(sig + 8);
	if (s->block == 0 || s->block > BLOCK_MAX || s->strong_len == 0 ||
	    s->strong_len > STRONG_MAX) {
		snprintf(err, errlen,
		    "bad signature: block of %u bytes, strong sums of %u",
		    s->block, s->strong_len);
		return -1;
	}
	entry = 4 + s->strong_len;
	if ((siglen - SIG_HEAD) % entry != 0) {
		snprintf(err, errlen,
		    "bad signature: %zu bytes of sums, not whole entries of "
		    "%zu",
		    siglen - SIG_HEAD, entry);
		return -1;
	}
	s->n = (siglen - SIG_HEAD) / entry;
	if (s->n > DELTA_MAX_BLOCKS)
		return 1;
	s->sums = sig + SIG_HEAD;
	/* Twice as many slots as blocks; 32 filter bits a block, at most
	 * 2^22 (512 KiB). */
	for (bits = 4; bits < 31 && ((size_t)1 << bits) < 2 * s->n; bits++)
		;
	s->slot_shift = 32 - bits;
	s->slot_mask = (1u << bits) - 1;
	s->slot = xcalloc((size_t)1 << bits, sizeof *s->slot);
	for (bits = 15; bits < 22 && ((size_t)1 << bits) < 32 * s->n; bits++)
		;
	s->filter_shift = 64 - (bits - 6);
	s->filter = xcalloc(((size_t)1 << bits) / 64, sizeof *s->filter);
	s->weak = xreallocarray(NULL, s->n ? s->n : 1, sizeof *s->weak);
	for (i = 0; i < s->n; i++) {
		s->weak[i] = h = be32(s->sums + i * entry);
		s->filter[filter_key(s, h, &fb)] |= fb;
		/* The first of equal blocks is kept; one that finds no slot
		 * near its own goes without (its data comes as literal). */
		for (k = 0; k < PROBE_MAX; k++) {
			at = (slot_of(s, h) + (uint32_t)k) & s->slot_mask;
			if ((v = s->slot[at]) == 0) {
				s->slot[at] = (uint64_t)h << 32 | (i + 1);
				break;
			}
			if ((uint32_t)(v >> 32) == h &&
			    memcmp(strong_of(s, (v & 0xffffffffu) - 1),
				strong_of(s, i), s->strong_len) == 0)
				break;
		}
	}
	return 0;
}

/* A window of the new file and its sums, the strong one made when first
 * needed. */
struct win {
	const unsigned char *p;
	size_t len;
	uint32_t weak;
	int have_strong;
	int may_hash; /* within the budget for strong sums made in vain */
	unsigned char strong[STRONG_MAX];
};

static int
same_block(const struct fsig *s, struct win *w, size_t i)
{
	if (!w->have_strong) {
		if (!w->may_hash)
			return 0;
		blake2b(w->strong, w->p, NULL, STRONG_MAX, w->len, 0);
		w->have_strong = 1;
	}
	return memcmp(w->strong, strong_of(s, i), s->strong_len) == 0;
}

/* The block the window holds, or -1: the one after the last match
 * first, then the table. */
static int64_t
find(const struct fsig *s, struct win *w, size_t next)
{
	uint32_t at;
	uint64_t v;
	size_t k, i;

	if (next < s->n && s->weak[next] == w->weak && same_block(s, w, next))
		return (int64_t)next;
	if (!filter_has(s, w->weak))
		return -1;
	at = slot_of(s, w->weak);
	for (k = 0; k < PROBE_MAX; k++) {
		v = s->slot[(at + (uint32_t)k) & s->slot_mask];
		if (v == 0)
			return -1;
		i = (v & 0xffffffffu) - 1;
		if ((uint32_t)(v >> 32) == w->weak && i != next &&
		    same_block(s, w, i))
			return (int64_t)i;
	}
	return -1;
}

/* Strong sums made where the weak one matched and the strong did not
 * cost their window each: a signature made to collide with the file (its
 * weak sums those of a run of zeros, say, with large blocks) would have
 * the scan hash a block at every byte.  Once those in vain exceed four
 * times what was read plus VAIN_FREE, no more are made: the rest comes
 * as literal data (a delta with fewer matches is only larger).  An honest
 * signature's weak sums collide once in 2^32 or so. */
#define VAIN_FREE ((uint64_t)64 << 20)

struct scan {
	int fd;
	uint64_t before; /* bytes of the file before buf[0] */
	uint64_t vain;   /* bytes hashed for strong sums that did not match */
	unsigned char *buf;
	size_t cap, pos, end, lit; /* lit: literal data from here to pos */
	int eof;
	struct dwrite out;
	char *err;
	size_t errlen;
};

/* Hand the literal data before pos to the output, and move what is left
 * to the front of the buffer, then read more. */
static int
refill(struct scan *c)
{
	ssize_t n;

	if (dwrite_literal(&c->out, c->buf + c->lit, c->pos - c->lit) != 0) {
		snprintf(c->err, c->errlen, "writing output: %s",
		    strerror(errno));
		return -1;
	}
	memmove(c->buf, c->buf + c->pos, c->end - c->pos);
	c->before += c->pos;
	c->end -= c->pos;
	c->pos = c->lit = 0;
	while (!c->eof && c->end < c->cap) {
		n = read(c->fd, c->buf + c->end, c->cap - c->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(c->err, c->errlen, "read: %s",
			    strerror(errno));
			return -1;
		}
		c->eof = n == 0;
		c->end += (size_t)n;
	}
	return 0;
}

static int
put_copy(struct scan *c, uint64_t pos, uint64_t len)
{
	if (dwrite_literal(&c->out, c->buf + c->lit, c->pos - c->lit) != 0 ||
	    dwrite_copy(&c->out, pos, len) != 0) {
		snprintf(c->err, c->errlen, "writing output: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* find() for the window at pos, within the budget. */
static int64_t
find_at(const struct fsig *s, struct scan *c, struct win *w, size_t len,
    size_t next)
{
	int64_t i;

	w->p = c->buf + c->pos;
	w->len = len;
	w->have_strong = 0;
	w->may_hash = c->vain <= 4 * (c->before + c->pos) + VAIN_FREE;
	i = find(s, w, next);
	if (i < 0 && w->have_strong)
		c->vain += len;
	return i;
}

/* The scan: a window of a block rolls through the file a byte at a time
 * until it holds a block of the signature, which becomes a copy.  The
 * rolling is a loop of its own, stopped only where the filter lets the
 * window's weak sum through. */
static int
scan(const struct fsig *s, struct scan *c)
{
	const uint32_t outmul = rk_pow(s->block);
	const size_t b = s->block;
	const unsigned char *p, *stop;
	uint32_t weak = 0, mult;
	struct win w;
	size_t next = s->n;
	int64_t i;
	int have = 0;

	memset(&w, 0, sizeof w);
	for (;;) {
		if (c->end - c->pos <= b && !c->eof) {
			if (refill(c) != 0)
				return -1;
			continue;
		}
		if (c->end - c->pos < b)
			break;
		if (!have) {
			weak = rk_sum(c->buf + c->pos, b);
			have = 1;
		} else {
			p = c->buf + c->pos;
			stop = c->buf + c->end - b;
			while (p < stop && !filter_has(s, weak)) {
				weak = weak * RK_MULT + p[b] -
				    outmul * (p[0] + RK_ADJ);
				p++;
			}
			c->pos = (size_t)(p - c->buf);
		}
		w.weak = weak;
		if ((i = find_at(s, c, &w, b, next)) >= 0) {
			if (put_copy(c, (uint64_t)i * b, b) != 0)
				return -1;
			c->pos += b;
			c->lit = c->pos;
			next = (size_t)i + 1;
			have = 0;
			continue;
		}
		if (c->end - c->pos == b) {
			if (c->eof)
				break; /* the window shrinks from here */
			continue;
		}
		weak = weak * RK_MULT + c->buf[c->pos + b] -
		    outmul * (c->buf[c->pos] + RK_ADJ);
		c->pos++;
	}
	/* The last block of the old file may be short: the window shrinks
	 * through the file's tail, looking for it. */
	mult = outmul;
	if (c->pos < c->end && !have) {
		weak = rk_sum(c->buf + c->pos, c->end - c->pos);
		mult = rk_pow((uint32_t)(c->end - c->pos));
	}
	for (; c->pos < c->end; c->pos++) {
		w.weak = weak;
		if ((i = find_at(s, c, &w, c->end - c->pos, next)) >= 0) {
			if (put_copy(c, (uint64_t)i * b, w.len) != 0)
				return -1;
			c->lit = c->pos = c->end;
			break;
		}
		mult *= RK_INVM;
		weak -= mult * (c->buf[c->pos] + RK_ADJ);
	}
	if (dwrite_literal(&c->out, c->buf + c->lit, c->pos - c->lit) != 0 ||
	    dwrite_end(&c->out) != 0) {
		snprintf(c->err, c->errlen, "writing output: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
fdelta_run(const void *sig, size_t siglen, int fd, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	struct fsig s;
	struct scan c;
	int rc;

	if ((rc = fsig_load(&s, sig, siglen, err, errlen)) != 0) {
		fsig_free(&s);
		return rc;
	}
	memset(&c, 0, sizeof c);
	c.fd = fd;
	c.cap = READ_STEP > 2 * (size_t)s.block ? READ_STEP : 2 * s.block;
	c.buf = xmalloc(c.cap);
	c.out.sink = sink;
	c.out.arg = arg;
	c.err = err;
	c.errlen = errlen;
	if (dwrite_magic(&c.out) != 0) {
		snprintf(err, errlen, "writing output: %s", strerror(errno));
		rc = -1;
	} else
		rc = scan(&s, &c);
	free(c.buf);
	fsig_free(&s);
	return rc;
}
