/* A queue file and a run-history file as a daemon reads them at start:
 * its own, but on a disk that may have been damaged, truncated or edited.
 * The first byte picks which. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "fuzz.h"
#include "log.h"
#include "queue.h"
#include "runlog.h"

static char dir[64];

/* Everything in dir goes, whatever the loaders renamed. */
static void
empty_dir(void)
{
	struct dirent *de;
	char p[600];
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' ||
			(de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static void
remove_dir(void)
{
	empty_dir();
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue *q;
	struct runlog rl;
	char path[600], err[512];
	FILE *f;

	if (dir[0] == '\0') {
		log_init("fuzz", LOG_LEVEL_WARN);
		snprintf(dir, sizeof dir, "/tmp/understudy-fuzz-queue.XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		atexit(remove_dir);
	}
	if (size == 0)
		return 0;
	snprintf(path, sizeof path, "%s/%s", dir,
	    data[0] & 1 ? "runs.jsonl" : "00000000000000000001.ev");
	if ((f = fopen(path, "wb")) == NULL)
		abort();
	fwrite(data + 1, 1, size - 1, f);
	fclose(f);
	if (data[0] & 1) {
		runlog_open(&rl, path);
		runlog_close(&rl);
	} else if ((q = queue_open(dir, err, sizeof err)) != NULL)
		queue_close(q);
	empty_dir();
	return 0;
}
