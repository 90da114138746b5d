#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

int
fuzz_file(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	lseek(fd, 0, SEEK_SET);
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

int
fuzz_base_file(char *path, size_t pathlen)
{
	static uint8_t base[FUZZ_BASE_SIZE];
	size_t i;

	for (i = 0; i < sizeof base; i++)
		base[i] = (uint8_t)(i * 7 + i / 251);
	return fuzz_file(base, sizeof base, path, pathlen);
}
