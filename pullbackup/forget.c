/* Forgetting the newest version (store.h): the way out of a version that
 * should never have been archived, above all one whose id is in the future
 * (a clock that jumped, once), which would otherwise supersede every later
 * version for ever.  Versions depend on newer ones, so only the newest can
 * go: the one before it is rebuilt into rollback/ and becomes current/.
 *
 * Like a commit (commit.c), it is journalled: rollback/ is made and synced
 * first, then the journal "forget NEWEST PREVIOUS" ("-" when there is none)
 * is the point of no return; rolling forward moves current/, the forgotten
 * version and the previous one's increments into trash/, rollback/ to
 * current/, and writes HEAD (or removes it).  Every step is skipped when
 * already done, so recovery at start-up finishes a forget cut short. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "store.h"
#include "timespec.h"
#include "xmalloc.h"

#define ROLLBACK "rollback"

/* Move name into trash/ as tname when it is there still. */
static int
to_trash(struct store *st, const char *name, const char *tname)
{
	char *t;
	int rc = 0;

	if (!fs_exists_at(st->dfd, name))
		return 0;
	t = xasprintf("trash/%s", tname);
	if (fs_rm_rf_at(st->dfd, t) != 0 ||
	    renameat(st->dfd, name, st->dfd, t) != 0)
		rc = -1;
	free(t);
	return rc;
}

int
forget_roll_forward(struct store *st, const char *gone, const char *prev,
    char *err, size_t errlen)
{
	char *v = store_vpath(st, gone, ""), *inc = NULL, *t = NULL;
	char line[64];
	int rc = -1;

	if (fs_exists_at(st->dfd, ROLLBACK) || *prev == '\0') {
		t = xasprintf("forgotten.%s", gone);
		if (to_trash(st, "current", t) != 0)
			goto fail;
		fault_point("forget-current-moved");
		if (*prev != '\0' &&
		    renameat(st->dfd, ROLLBACK, st->dfd, "current") != 0)
			goto fail;
	}
	free(t);
	t = xasprintf("version.%s", gone);
	if (to_trash(st, v, t) != 0)
		goto fail;
	if (*prev != '\0') {
		inc = store_vpath(st, prev, "increment");
		free(t);
		t = xasprintf("increment.%s", prev);
		if (to_trash(st, inc, t) != 0)
			goto fail;
	}
	if (fsync(st->dfd) != 0)
		goto fail;
	if (*prev != '\0') {
		snprintf(line, sizeof line, "%s\n", prev);
		if (fs_write_atomic_at(st->dfd, "HEAD", line, strlen(line)) !=
		    0)
			goto fail;
	} else if (unlinkat(st->dfd, "HEAD", 0) != 0 && errno != ENOENT)
		goto fail;
	fault_point("forget-head-written");
	unlinkat(st->dfd, "journal", 0);
	fsync(st->dfd);
	rc = 0;
fail:
	if (rc != 0)
		snprintf(err, errlen, "%s: forgetting version %s: %s", st->dir,
		    gone, strerror(errno));
	free(v);
	free(inc);
	free(t);
	return rc;
}

/* What the daemon kept of the forgotten version goes with it: it would
 * push it again at start-up, or show it as the last pull. */
static void
forget_daemon_files(struct store *st, const char *gone)
{
	static const enum store_file files[] = { STORE_PUSH, STORE_ATTEMPT,
		STORE_LAST };
	char *p, *buf;
	size_t i, len;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		p = store_path(st, files[i]);
		if (fs_read_file(p, 1 << 16, &buf, &len) == 0) {
			if (strstr(buf, gone) != NULL)
				unlink(p);
			free(buf);
		}
		free(p);
	}
}

int
store_forget(struct store *st, const char *version, char *err, size_t errlen)
{
	char *gone, *dest = NULL, line[128];
	const char *prev;
	int fd, rc = -1;

	if (st->n == 0) {
		snprintf(err, errlen, "source \"%s\" has no version",
		    st->source);
		return -1;
	}
	gone = st->ids[st->n - 1];
	if (strcmp(version, gone) != 0) {
		snprintf(err, errlen,
		    "only the newest version can be forgotten (the older ones "
		    "are kept as differences from it): %s, not %s",
		    gone, version);
		return -1;
	}
	prev = st->n > 1 ? st->ids[st->n - 2] : "";
	if (fs_rm_rf_at(st->dfd, ROLLBACK) != 0) {
		snprintf(err, errlen, "%s/%s: %s", st->dir, ROLLBACK,
		    strerror(errno));
		return -1;
	}
	if (*prev != '\0') {
		dest = xasprintf("%s/%s", st->dir, ROLLBACK);
		if (store_restore(st, st->n - 2, NULL, dest, 0, err, errlen) !=
		    0)
			goto out;
		fd = openat(st->dfd, ROLLBACK,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) != 0) {
			snprintf(err, errlen, "%s: %s", dest, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	fault_point("forget-rollback-made");
	snprintf(line, sizeof line, "forget %s %s\n", gone,
	    *prev != '\0' ? prev : "-");
	if (fs_write_atomic_at(st->dfd, "journal", line, strlen(line)) != 0) {
		snprintf(err, errlen, "%s/journal: %s", st->dir,
		    strerror(errno));
		goto out;
	}
	fault_point("forget-journal-written");
	if (forget_roll_forward(st, gone, prev, err, errlen) != 0)
		goto out;
	forget_daemon_files(st, gone);
	fs_rm_rf_at(st->dfd, "trash");
	mkdirat(st->dfd, "trash", 0700);
	rc = store_load_ids(st, err, errlen);
out:
	free(dest);
	return rc;
}
