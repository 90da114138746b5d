/* A config file, as each of the three programs reads it. */
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum role roles[] = { ROLE_EXPORTER, ROLE_PULLBACKUP,
		ROLE_IMPORTER };
	struct config *cf;
	char path[64], err[1024];
	size_t i;
	int fd;

	if ((fd = fuzz_file(data, size, path, sizeof path)) < 0)
		return 0;
	for (i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		cf = NULL;
		if (config_load(path, roles[i], &cf, err, sizeof err) == 0)
			config_free(cf);
	}
	close(fd);
	return 0;
}
