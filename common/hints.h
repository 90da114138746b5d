/* The delta-hints file (docs/protocol.md, "Delta block sizes"): what the
 * last sync saw of each file's changes, the block size its delta used and
 * the share of the file that came as literal data, so that the next sync
 * picks a better block.  An optimisation only: a damaged file is dropped
 * with a warning, whole. */
#ifndef UNDERSTUDY_HINTS_H
#define UNDERSTUDY_HINTS_H

#include <stddef.h>
#include <stdint.h>

struct hint {
	char *path;
	uint32_t block; /* bytes */
	uint32_t ppm;   /* literal share, parts per million */
};

struct hints {
	struct hint *h; /* sorted by path */
	size_t n, cap;
};

/* Load file (NULL: none) into an empty hs. */
void hints_load(struct hints *, const char *file);
void hints_save(const struct hints *, const char *file);
/* Add in path order. */
void hints_add(struct hints *, const char *path, uint32_t block, uint32_t ppm);
/* The same, from the wire bytes a delta of a file of size bytes took. */
void hints_add_delta(struct hints *, const char *path, uint32_t block,
    int64_t wire, int64_t size);
const struct hint *hints_find(const struct hints *, const char *path);
/* The block size a delta of a file of size bytes uses, given its hint
 * (NULL: none). */
size_t hints_block(const struct hint *, int64_t size);
void hints_free(struct hints *);

#endif
