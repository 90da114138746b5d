/* The content of a file as it passes, counted and hashed, and checked
 * against its manifest entry: what every hop does with every file it
 * writes or reads (the sync client, the archive's restore and verify, the
 * tar export, the importer's verify). */
#ifndef UNDERSTUDY_HASHSINK_H
#define UNDERSTUDY_HASHSINK_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct ment;

struct hashsink {
	struct hash h;
	int64_t n;     /* bytes passed */
	int64_t limit; /* more is refused (EFBIG), or -1 */
	int fd;        /* written there too, or -1 */
	int overflow;  /* refused for the limit */
	int open;      /* h is under way */
};

void hashsink_init(struct hashsink *, int fd, int64_t limit);
/* A delta_sink: 0, or -1 with errno. */
int hashsink_write(void *arg, const void *p, size_t n);
/* Read fd from its offset to the end into the sink: 0, or -1 (errno). */
int hashsink_read(struct hashsink *, int fd);
/* Finish: 0 when what passed is e's content (size and SHA-256); else -1
 * with "N bytes with SHA-256 X...; the manifest says M bytes, Y..." in
 * err. */
int hashsink_check(struct hashsink *, const struct ment *e, char *err,
    size_t errlen);
/* Finish without a check (after a failure). */
void hashsink_abort(struct hashsink *);
/* Whether fd, from its offset, holds e's content. */
int hashsink_fd_matches(int fd, const struct ment *e);

#endif
