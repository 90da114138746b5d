/* librsync delta streams from the wire, patched onto a base, and read by
 * the reverse-delta maker (common/rdelta.c) against both sizes. */
#include <unistd.h>

#include "delta.h"
#include "fuzz.h"

static int
sink_null(void *arg, const void *p, size_t n)
{
	size_t *total = arg;

	(void)p;
	*total += n;
	/* A patch that makes more than this is cut short, as the sync
	 * client cuts a file at its manifest size. */
	return *total > (16u << 20) ? -1 : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], bpath[64], err[512];
	struct delta_patch *p;
	size_t total = 0;
	int fd, bfd;

	if ((bfd = fuzz_base_file(bpath, sizeof bpath)) < 0)
		return 0;
	if ((p = delta_patch_new(bfd, sink_null, &total)) != NULL) {
		if (delta_patch_feed(p, data, size, err, sizeof err) == 0)
			(void)delta_patch_finish(p, err, sizeof err);
		delta_patch_free(p);
	}
	if ((fd = fuzz_file(data, size, path, sizeof path)) >= 0) {
		total = 0;
		lseek(bfd, 0, SEEK_SET);
		(void)delta_reverse(fd, bfd, FUZZ_BASE_SIZE, 4096, sink_null,
		    &total, err, sizeof err);
		close(fd);
	}
	close(bfd);
	return 0;
}
