#include <stdint.h>

#include "dwrite.h"

static int
width(uint64_t v)
{
	return v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
}

static int
wlog(int w)
{
	return w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3;
}

static size_t
put_int(unsigned char *p, uint64_t v, int w)
{
	int i;

	for (i = w - 1; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	return (size_t)w;
}

static int
copy_flush(struct dwrite *e)
{
	unsigned char cmd[17];
	size_t k = 1;
	int wo, wl;

	if (e->clen == 0)
		return 0;
	wo = width(e->cpos);
	wl = width(e->clen);
	cmd[0] = (unsigned char)(OP_COPY_N1_N1 + 4 * wlog(wo) + wlog(wl));
	k += put_int(cmd + k, e->cpos, wo);
	k += put_int(cmd + k, e->clen, wl);
	e->clen = 0;
	return e->sink(e->arg, cmd, k);
}

int
dwrite_copy(struct dwrite *e, uint64_t pos, uint64_t len)
{
	if (e->clen > 0 && e->cpos + e->clen == pos) {
		e->clen += len;
		return 0;
	}
	if (copy_flush(e) != 0)
		return -1;
	e->cpos = pos;
	e->clen = len;
	return 0;
}

int
dwrite_magic(struct dwrite *e)
{
	unsigned char m[4];

	put_int(m, RS_DELTA_MAGIC, 4);
	return e->sink(e->arg, m, sizeof m);
}

int
dwrite_literal_head(struct dwrite *e, uint64_t len)
{
	unsigned char cmd[9];
	size_t k;
	int w;

	if (copy_flush(e) != 0)
		return -1;
	if (len <= OP_LITERAL_64) {
		cmd[0] = (unsigned char)len;
		k = 1;
	} else {
		w = width(len);
		cmd[0] = (unsigned char)(OP_LITERAL_N1 + wlog(w));
		k = 1 + put_int(cmd + 1, len, w);
	}
	return e->sink(e->arg, cmd, k);
}

int
dwrite_literal(struct dwrite *e, const void *p, uint64_t len)
{
	if (len == 0)
		return 0;
	if (dwrite_literal_head(e, len) != 0)
		return -1;
	return e->sink(e->arg, p, (size_t)len);
}

int
dwrite_end(struct dwrite *e)
{
	unsigned char end = OP_END;

	if (copy_flush(e) != 0)
		return -1;
	return e->sink(e->arg, &end, 1);
}
