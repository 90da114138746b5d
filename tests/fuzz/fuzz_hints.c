/* The delta-hints file a daemon reads at start (its own, but on a disk
 * that may have been damaged or edited). */
#include <unistd.h>

#include "fuzz.h"
#include "hints.h"
#include "log.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hints hs = { 0 };
	char path[64];
	int fd;

	log_init("fuzz", LOG_LEVEL_WARN);
	if ((fd = fuzz_file(data, size, path, sizeof path)) < 0)
		return 0;
	hints_load(&hs, path);
	hints_free(&hs);
	close(fd);
	return 0;
}
