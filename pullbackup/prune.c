/* Retention (store.h): the oldest versions go, never the newest.  A
 * version depends only on newer ones, so removing from the oldest leaves
 * every version left whole; each goes by a rename into trash/ (the point
 * where it is gone) and is removed from there, by recovery if need be. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "fsutil.h"
#include "store.h"
#include "timespec.h"
#include "xmalloc.h"

static int
prune_locked(struct store *st, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen)
{
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	size_t i, keep_from = 0;
	char *src, *dst;
	int drop;

	if (st->n <= 1)
		return 0;
	if (keep_last <= 0 && older_than < 0)
		return 0;
	/* A version goes only when every rule lets it go: keep_last is a
	 * floor (two weeks of a dead primary with older_than 2W still leave
	 * keep_last versions).  Ages count from the clock, never from a
	 * version's time: a version from the future (clock skew) is never
	 * the reason another goes. */
	for (i = 0; i + 1 < st->n; i++) {
		drop = (keep_last <= 0 || st->n - i > (size_t)keep_last) &&
		    (older_than < 0 ||
			version_id_ms(st->ids[i]) < now_ms - older_than * 1000);
		if (!drop)
			break;
		keep_from = i + 1;
	}
	for (i = 0; i < keep_from; i++) {
		*gone = xreallocarray(*gone, *ngone + 1, sizeof **gone);
		(*gone)[(*ngone)++] = xstrdup(st->ids[i]);
		if (dry_run)
			continue;
		/* Oldest first: every version left keeps what it needs. */
		src = store_vpath(st, st->ids[i], "");
		dst = xasprintf("trash/%s", st->ids[i]);
		if (renameat(st->dfd, src, st->dfd, dst) != 0) {
			snprintf(err, errlen, "removing version %s: %s",
			    st->ids[i], strerror(errno));
			free(src);
			free(dst);
			return -1;
		}
		fsync(st->dfd);
		fault_point("prune-version-moved");
		fs_rm_rf_at(st->dfd, dst);
		free(src);
		free(dst);
	}
	if (!dry_run && keep_from > 0)
		return store_load_ids(st, err, errlen);
	return 0;
}

int
store_prune(struct store *st, int64_t keep_last, int64_t older_than,
    int dry_run, char ***gone, size_t *ngone, char *err, size_t errlen)
{
	int rc;

	*gone = NULL;
	*ngone = 0;
	if (st->mode == STORE_DAEMON && !dry_run &&
	    store_lock(st, 1, err, errlen) != 0)
		return -1;
	rc = prune_locked(st, keep_last, older_than, dry_run, gone, ngone, err,
	    errlen);
	if (st->mode == STORE_DAEMON && !dry_run)
		store_unlock(st);
	return rc;
}
