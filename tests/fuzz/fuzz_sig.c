/* Signatures from the wire (a peer's, of its copy of a file), read by our
 * delta maker (common/fdelta.c) and used against a file of ours. */
#include <unistd.h>

#include "delta.h"
#include "fuzz.h"

static int
sink_count(void *arg, const void *p, size_t n)
{
	size_t *total = arg;

	(void)p;
	*total += n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	size_t total = 0;
	int fd, rc;

	if ((fd = fuzz_base_file(path, sizeof path)) < 0)
		return 0;
	rc = fdelta_run(data, size, fd, sink_count, &total, err, sizeof err);
	/* A delta is at least a magic and an END; the data comes as
	 * literal or copies, never more than itself plus commands. */
	if (rc == 0 && (total < 5 || total > 5 + FUZZ_BASE_SIZE * 10))
		__builtin_trap();
	close(fd);
	return 0;
}
