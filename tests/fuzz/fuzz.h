/* The fuzz targets: each defines LLVMFuzzerTestOneInput for one parser of
 * outside input.  Built with libFuzzer (clang -fsanitize=fuzzer) for a
 * campaign, and with replay.c for the test suite, which runs every input of
 * the target's seed corpus (tests/fuzz/corpus/NAME/) through it. */
#ifndef UNDERSTUDY_FUZZ_H
#define UNDERSTUDY_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a file: an fd of a memfd holding it, rewound (-1 on failure),
 * and its /proc path in path. */
int fuzz_file(const uint8_t *data, size_t size, char *path, size_t pathlen);
/* The same for FUZZ_BASE_SIZE bytes of a fixed pattern (the seeds'
 * signatures and deltas are made against it). */
#define FUZZ_BASE_SIZE 8192
int fuzz_base_file(char *path, size_t pathlen);

#endif
