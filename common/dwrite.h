/* Writing librsync's delta format (docs/archive-format.md): a magic,
 * literal and copy commands, an END command.  Copies that continue each
 * other are merged into one command as they come. */
#ifndef UNDERSTUDY_DWRITE_H
#define UNDERSTUDY_DWRITE_H

#include <stdint.h>

#include "delta.h"

#define RS_DELTA_MAGIC 0x72730236u
#define OP_END 0x00
#define OP_LITERAL_64 0x40
#define OP_LITERAL_N1 0x41
#define OP_COPY_N1_N1 0x45
#define OP_COPY_N8_N8 0x54

struct dwrite {
	delta_sink sink;
	void *arg;
	uint64_t cpos, clen; /* a copy not yet written */
};

/* Each returns 0, or -1 when the sink failed (errno kept). */
int dwrite_magic(struct dwrite *);
int dwrite_copy(struct dwrite *, uint64_t pos, uint64_t len);
/* A literal command's head: the caller hands its len bytes to the sink
 * next. */
int dwrite_literal_head(struct dwrite *, uint64_t len);
int dwrite_literal(struct dwrite *, const void *p, uint64_t len);
int dwrite_end(struct dwrite *);

#endif
