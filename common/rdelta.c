/* Reverse deltas from forward ones, without a second pass of the rsync
 * algorithm.
 *
 * A forward delta (librsync's format, docs/archive-format.md) builds the
 * new file from literal data and COPY commands that each say "new bytes
 * [p, p+n) are old bytes [o, o+n)".  Read backwards, the same commands say
 * where in the new file each covered stretch of the old one can be found;
 * what no command covers is exactly what changed, and goes into the reverse
 * delta as literal data read from the old file.  This costs a read of the
 * forward delta and of the old file's changed stretches, where computing
 * the reverse delta with librsync costs a signature of the whole new file
 * and a rolling-checksum pass over the whole old one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta.h"
#include "dwrite.h"
#include "xmalloc.h"

#define RBUF (64 * 1024)
/* Copy commands kept at most: beyond, the caller falls back to librsync.
 * A delta of a file with 2^18 blocks has at most 2^18 + 1 of them. */
#define MAX_COPIES (1u << 22)

struct copy {
	uint64_t newpos, oldpos, len;
};

struct reader {
	int fd;
	unsigned char buf[RBUF];
	size_t pos, len;
	int eof;
};

static int
rd_fill(struct reader *r)
{
	ssize_t n;

	if (r->pos < r->len || r->eof)
		return 0;
	do
		n = read(r->fd, r->buf, sizeof r->buf);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	r->pos = 0;
	r->len = (size_t)n;
	r->eof = n == 0;
	return 0;
}

/* Big-endian integer of width bytes; -1 at a read error or the end. */
static int
rd_int(struct reader *r, int width, uint64_t *v)
{
	*v = 0;
	while (width-- > 0) {
		if (rd_fill(r) != 0 || r->pos == r->len)
			return -1;
		*v = *v << 8 | r->buf[r->pos++];
	}
	return 0;
}

static int
rd_skip(struct reader *r, uint64_t n)
{
	size_t k;

	while (n > 0) {
		if (rd_fill(r) != 0 || r->pos == r->len)
			return -1;
		k = r->len - r->pos < n ? r->len - r->pos : (size_t)n;
		r->pos += k;
		n -= k;
	}
	return 0;
}

/* The copy commands of the forward delta read from fd, checked against
 * the sizes of both files. */
static int
read_copies(int fd, int64_t old_size, int64_t new_size, struct copy **out,
    size_t *nout, char *err, size_t errlen)
{
	struct reader *r = xcalloc(1, sizeof *r);
	struct copy *c = NULL;
	size_t n = 0, cap = 0;
	uint64_t magic, pos = 0, off, len;
	int op, rc = -1;

	r->fd = fd;
	if (rd_int(r, 4, &magic) != 0 || magic != RS_DELTA_MAGIC) {
		snprintf(err, errlen, "not a librsync delta");
		goto out;
	}
	for (;;) {
		if (rd_fill(r) != 0 || r->pos == r->len) {
			snprintf(err, errlen,
			    "delta truncated at output offset %llu",
			    (unsigned long long)pos);
			goto out;
		}
		op = r->buf[r->pos++];
		if (op == OP_END)
			break;
		if (op <= OP_LITERAL_64 || op < OP_COPY_N1_N1) {
			if (op <= OP_LITERAL_64)
				len = (uint64_t)op;
			else if (rd_int(r, 1 << (op - OP_LITERAL_N1), &len))
				len = UINT64_MAX;
			if (len > (uint64_t)new_size - pos ||
			    rd_skip(r, len) != 0) {
				snprintf(err, errlen,
				    "literal of %llu bytes at output offset "
				    "%llu: past the end",
				    (unsigned long long)len,
				    (unsigned long long)pos);
				goto out;
			}
			pos += len;
			continue;
		}
		if (op > OP_COPY_N8_N8) {
			snprintf(err, errlen, "unknown command 0x%02x", op);
			goto out;
		}
		if (rd_int(r, 1 << ((op - OP_COPY_N1_N1) / 4), &off) != 0 ||
		    rd_int(r, 1 << ((op - OP_COPY_N1_N1) % 4), &len) != 0 ||
		    len == 0 || off > (uint64_t)old_size ||
		    len > (uint64_t)old_size - off ||
		    len > (uint64_t)new_size - pos) {
			snprintf(err, errlen,
			    "copy command at output offset %llu: out of range "
			    "or truncated",
			    (unsigned long long)pos);
			goto out;
		}
		if (n == MAX_COPIES) {
			snprintf(err, errlen, "more than %u copy commands",
			    MAX_COPIES);
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			c = xreallocarray(c, cap, sizeof *c);
		}
		c[n].newpos = pos;
		c[n].oldpos = off;
		c[n].len = len;
		n++;
		pos += len;
	}
	if (pos != (uint64_t)new_size) {
		snprintf(err, errlen,
		    "delta makes %llu bytes, the file has %lld",
		    (unsigned long long)pos, (long long)new_size);
		goto out;
	}
	if (rd_fill(r) != 0 || r->pos != r->len) {
		snprintf(err, errlen, "trailing data after the end command");
		goto out;
	}
	*out = c;
	*nout = n;
	c = NULL;
	rc = 0;
out:
	free(c);
	free(r);
	return rc;
}

static int
by_oldpos(const void *a, const void *b)
{
	const struct copy *x = a, *y = b;

	return x->oldpos < y->oldpos ? -1 : x->oldpos > y->oldpos;
}

/* Old bytes [off, off+len) as one literal command. */
static int
emit_literal(struct dwrite *e, int oldfd, uint64_t off, uint64_t len,
    unsigned char *buf, char *err, size_t errlen)
{
	if (dwrite_literal_head(e, len) != 0)
		goto sink;
	switch (delta_copy_range(oldfd, off, len, buf, RBUF, e->sink, e->arg)) {
	case 0:
		return 0;
	case -1:
		snprintf(err, errlen, "reading the old file: %s",
		    errno == ENODATA ? "shorter than its size" :
				       strerror(errno));
		return -1;
	}
sink:
	snprintf(err, errlen, "writing output: %s", strerror(errno));
	return -1;
}

int
delta_reverse(int fwdfd, int oldfd, int64_t old_size, int64_t new_size,
    delta_sink sink, void *arg, char *err, size_t errlen)
{
	struct copy *c = NULL, *best = NULL;
	struct dwrite e = { sink, arg, 0, 0 };
	unsigned char *buf = NULL;
	uint64_t pos = 0, end, gap;
	size_t n = 0, i = 0;
	int rc = -1;

	if (old_size < 0 || new_size < 0) {
		snprintf(err, errlen, "negative file size");
		return -1;
	}
	if (read_copies(fwdfd, old_size, new_size, &c, &n, err, errlen) != 0)
		return -1;
	if (n > 1)
		qsort(c, n, sizeof *c, by_oldpos);
	buf = xmalloc(RBUF);
	if (dwrite_magic(&e) != 0) {
		snprintf(err, errlen, "writing output: %s", strerror(errno));
		goto out;
	}
	/* Walk the old file: each stretch comes from the new file where some
	 * copy covers it (the one reaching furthest), else as literal data. */
	while (pos < (uint64_t)old_size) {
		for (; i < n && c[i].oldpos <= pos; i++)
			if (best == NULL ||
			    c[i].oldpos + c[i].len > best->oldpos + best->len)
				best = &c[i];
		if (best != NULL && best->oldpos + best->len > pos) {
			end = best->oldpos + best->len;
			if (dwrite_copy(&e, best->newpos + (pos - best->oldpos),
				end - pos) != 0) {
				snprintf(err, errlen, "writing output: %s",
				    strerror(errno));
				goto out;
			}
			pos = end;
			continue;
		}
		gap = (i < n ? c[i].oldpos : (uint64_t)old_size) - pos;
		if (emit_literal(&e, oldfd, pos, gap, buf, err, errlen) != 0)
			goto out;
		pos += gap;
	}
	if (dwrite_end(&e) != 0) {
		snprintf(err, errlen, "writing output: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	free(c);
	return rc;
}
