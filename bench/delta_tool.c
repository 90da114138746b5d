/* The delta machinery alone, for bench/delta.py: a signature as the sync
 * makes one, a delta as the server makes one (common/fdelta.c), a patch
 * as the client applies one.
 *   delta-tool signature BLOCK OLD SIG
 *   delta-tool delta SIG NEW DELTA
 *   delta-tool patch OLD DELTA OUT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta.h"
#include "xmalloc.h"

static int
open_in(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		perror(path);
	return fd;
}

static int
open_out(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		perror(path);
	return fd;
}

int
main(int argc, char **argv)
{
	char err[512], *sig = NULL;
	struct stat st;
	int in, out, other, rc = -1;

	if (argc != 5) {
		fprintf(stderr,
		    "usage: delta-tool signature BLOCK OLD SIG | "
		    "delta SIG NEW DELTA | patch OLD DELTA OUT\n");
		return 2;
	}
	if ((in = open_in(argv[strcmp(argv[1], "signature") == 0 ? 3 : 2])) <
		0 ||
	    (out = open_out(argv[4])) < 0)
		return 1;
	if (strcmp(argv[1], "signature") == 0)
		rc = delta_signature(in, (size_t)strtoul(argv[2], NULL, 10),
		    delta_sink_fd, &out, err, sizeof err);
	else if (strcmp(argv[1], "delta") == 0) {
		if (fstat(in, &st) != 0 || (other = open_in(argv[3])) < 0)
			return 1;
		sig = xmalloc((size_t)st.st_size + 1);
		if (read(in, sig, (size_t)st.st_size) != st.st_size) {
			fprintf(stderr, "%s: short read\n", argv[2]);
			return 1;
		}
		rc = delta_compute(sig, (size_t)st.st_size, other,
		    delta_sink_fd, &out, err, sizeof err);
	} else if (strcmp(argv[1], "patch") == 0) {
		if ((other = open_in(argv[3])) < 0)
			return 1;
		rc = delta_patch_fd(in, other, delta_sink_fd, &out, err,
		    sizeof err);
	} else
		snprintf(err, sizeof err, "no verb %s", argv[1]);
	free(sig);
	if (rc != 0) {
		fprintf(stderr, "delta-tool %s: %s\n", argv[1], err);
		return 1;
	}
	return 0;
}
