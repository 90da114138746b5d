#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "delta.h"
#include "fsutil.h"
#include "hints.h"
#include "log.h"
#include "manifest.h"
#include "xmalloc.h"

#define HINTS_MAGIC "understudy-delta-hints 1\n"
#define HINTS_MAX_BYTES (64u << 20)

void
hints_add(struct hints *hs, const char *path, uint32_t block, uint32_t ppm)
{
	if (hs->n == hs->cap) {
		hs->cap = hs->cap ? hs->cap * 2 : 64;
		hs->h = xreallocarray(hs->h, hs->cap, sizeof *hs->h);
	}
	hs->h[hs->n].path = xstrdup(path);
	hs->h[hs->n].block = block;
	hs->h[hs->n].ppm = ppm;
	hs->n++;
}

void
hints_add_delta(struct hints *hs, const char *path, uint32_t block,
    int64_t wire, int64_t size)
{
	hints_add(hs, path, block,
	    (uint32_t)(wire >= size ? 1000000 : wire * 1000000 / size));
}

void
hints_free(struct hints *hs)
{
	size_t i;

	for (i = 0; i < hs->n; i++)
		free(hs->h[i].path);
	free(hs->h);
	memset(hs, 0, sizeof *hs);
}

void
hints_load(struct hints *hs, const char *file)
{
	char *buf, *p, *nl, *end, *path;
	unsigned long block, ppm;
	size_t len;

	if (file == NULL ||
	    fs_read_file(file, HINTS_MAX_BYTES, &buf, &len) != 0)
		return;
	if (len < strlen(HINTS_MAGIC) ||
	    memcmp(buf, HINTS_MAGIC, strlen(HINTS_MAGIC)) != 0 ||
	    buf[len - 1] != '\n')
		goto bad;
	for (p = buf + strlen(HINTS_MAGIC); p < buf + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		errno = 0;
		block = strtoul(p, &end, 10);
		if (errno || *end != ' ' || block < DELTA_BLOCK_MIN ||
		    block > DELTA_BLOCK_MAX)
			goto bad;
		ppm = strtoul(end + 1, &end, 10);
		if (errno || *end != ' ' || ppm > 1000000 || end + 1 >= nl)
			goto bad;
		path = manifest_decode(end + 1, (size_t)(nl - end - 1));
		if (path == NULL)
			goto bad;
		if (hs->n > 0 && strcmp(hs->h[hs->n - 1].path, path) >= 0) {
			free(path);
			goto bad;
		}
		hints_add(hs, path, (uint32_t)block, (uint32_t)ppm);
		free(path);
	}
	free(buf);
	return;
bad:
	log_warnx("%s is damaged; deltas start afresh", file);
	hints_free(hs);
	free(buf);
}

const struct hint *
hints_find(const struct hints *hs, const char *path)
{
	size_t lo = 0, hi = hs->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(path, hs->h[mid].path)) == 0)
			return &hs->h[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t
hints_block(const struct hint *h, int64_t size)
{
	return h != NULL ? delta_block_choose(size, h->block, h->ppm / 1e6) :
			   delta_block_default(size);
}

void
hints_save(const struct hints *hs, const char *file)
{
	struct evbuffer *b = evbuffer_new();
	size_t i;

	evbuffer_add(b, HINTS_MAGIC, strlen(HINTS_MAGIC));
	for (i = 0; i < hs->n; i++) {
		evbuffer_add_printf(b, "%u %u ", hs->h[i].block, hs->h[i].ppm);
		manifest_encode(b, hs->h[i].path);
		evbuffer_add(b, "\n", 1);
	}
	if (fs_write_atomic(file, evbuffer_pullup(b, -1),
		evbuffer_get_length(b)) != 0)
		log_warn("%s", file);
	evbuffer_free(b);
}
