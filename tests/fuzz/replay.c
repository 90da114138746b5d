/* Replays a fuzz target's corpus: every file named, or every file of every
 * directory named, through LLVMFuzzerTestOneInput.  A crash or a sanitizer
 * report fails the test; each input is named before it runs. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((buf = realloc(buf, cap)) == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct dirent **names;
	struct stat st;
	char path[4096];
	int i, j, n, count = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) != 0)
				return 1;
			count++;
			continue;
		}
		/* In name order, so that a run is the same every time. */
		if ((n = scandir(argv[i], &names, NULL, alphasort)) < 0)
			return 1;
		for (j = 0; j < n; j++) {
			if (names[j]->d_name[0] != '.') {
				snprintf(path, sizeof path, "%s/%s", argv[i],
				    names[j]->d_name);
				if (run_file(path) != 0)
					return 1;
				count++;
			}
			free(names[j]);
		}
		free(names);
	}
	if (count == 0) {
		fprintf(stderr, "replay: no input\n");
		return 1;
	}
	printf("%d inputs replayed\n", count);
	return 0;
}
