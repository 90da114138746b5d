/* librsync, driven in streams with bounded buffers: signatures of a local
 * file, deltas of a file against a peer's signature, and patches applied as
 * the delta arrives.  Nothing holds a whole file in memory. */
#ifndef UNDERSTUDY_DELTA_H
#define UNDERSTUDY_DELTA_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Receives output; returns 0, or -1 to stop the job (errno kept). */
typedef int (*delta_sink)(void *arg, const void *p, size_t n);

#define DELTA_MAX_SIGNATURE (64u << 20)

/* Signature block sizes.  A client that remembers, per file, the block it
 * used last time and the share of the file the delta then carried as
 * literal data (its change density) picks the block that makes the next
 * delta and signature smallest; see docs/protocol.md. */
#define DELTA_BLOCK_MIN 256
#define DELTA_BLOCK_MAX 65536
#define DELTA_BLOCK_COLD 2048   /* the largest, with no history */
#define DELTA_BLOCK_OVERHEAD 16 /* signature entry + copy command */
/* At most this many blocks a signature: librsync keeps about 40 bytes a
 * block in memory to compute a delta, so this bounds a delta job to some
 * 10 MiB, whatever the file's size. */
#define DELTA_MAX_BLOCKS (1u << 18)
size_t delta_block_default(int64_t size);
size_t delta_block_choose(int64_t size, size_t prev_block, double prev_literal);
/* Files of at least delta_split_min bytes are read in two halves, by two
 * threads, for their signature. */
#define DELTA_SPLIT_MIN ((int64_t)64 << 20)
extern int64_t delta_split_min; /* tests lower it */
/* block_len 0: delta_block_default().  In halves, the result is the same. */
int delta_signature(int fd, size_t block_len, delta_sink, void *arg, char *err,
    size_t errlen);
/* The same on the calling thread alone, for work in the background: it
 * stops as soon as the sink fails. */
int delta_signature_alone(int fd, size_t block_len, delta_sink, void *arg,
    char *err, size_t errlen);
/* Delta turning the file the signature was made of into the file at fd
 * (read from its offset to the end): made by fdelta_run()
 * (common/fdelta.c) when the signature is librsync's RabinKarp + BLAKE2
 * kind with at most DELTA_MAX_BLOCKS blocks, else by librsync.
 * fdelta_run() alone: 0, -1 with a reason, or 1 when the signature is not
 * of that kind. */
#define DELTA_SIG_MAGIC_RK_BLAKE2 0x72730147u
int delta_compute(const void *sig, size_t siglen, int fd, delta_sink, void *arg,
    char *err, size_t errlen);
int fdelta_run(const void *sig, size_t siglen, int fd, delta_sink, void *arg,
    char *err, size_t errlen);

struct delta_patch;
struct delta_patch *delta_patch_new(int basefd, delta_sink, void *arg);
int delta_patch_feed(struct delta_patch *, const void *p, size_t n, char *err,
    size_t errlen);
int delta_patch_finish(struct delta_patch *, char *err, size_t errlen);
void delta_patch_free(struct delta_patch *);

/* Whole-file helpers for the archive: patch basefd with the delta read from
 * deltafd (plain) into sink. */
int delta_patch_fd(int basefd, int deltafd, delta_sink, void *arg, char *err,
    size_t errlen);
/* From the forward delta read at fwdfd (old -> new, librsync's format)
 * and the old file, the reverse delta (new -> old), without the rsync
 * algorithm's passes over either file (common/rdelta.c).  The forward
 * delta is checked against both sizes; -1 with a reason if it does not
 * fit them. */
int delta_reverse(int fwdfd, int oldfd, int64_t old_size, int64_t new_size,
    delta_sink, void *arg, char *err, size_t errlen);
int delta_sink_fd(void *arg, const void *p, size_t n);
/* Hand len bytes of fd from off to sink, through buf: 0, -1 if reading
 * failed (errno; ENODATA when the file is shorter), -2 if the sink did. */
int delta_copy_range(int fd, uint64_t off, uint64_t len, void *buf,
    size_t buflen, delta_sink, void *arg);
int delta_sink_evbuffer(void *arg, const void *p, size_t n);

#endif
