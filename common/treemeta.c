#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "manifest.h"
#include "treemeta.h"

unsigned int
treemeta_mode(const struct ment *e, int flags)
{
	unsigned int mode = (unsigned int)e->mode;

	if (flags & TREEMETA_OWNER_ACCESS)
		mode |= e->type == MENT_DIR ? 0700 : 0400;
	return mode;
}

/* Whether the entry at dfd/base already has e's mode and mtime. */
static int
meta_same(int dfd, const char *base, const struct ment *e, int flags)
{
	struct stat sb;

	return fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (e->type == MENT_LINK ||
		(sb.st_mode & 07777) == treemeta_mode(e, flags)) &&
	    sb.st_mtim.tv_sec == e->mtime_sec &&
	    sb.st_mtim.tv_nsec == e->mtime_nsec;
}

int
treemeta_apply(int rootfd, const struct manifest *m, int flags, char *err,
    size_t errlen)
{
	const struct ment *e, *pe = NULL;
	struct timespec ts[2];
	const char *base, *slash;
	size_t i, plen, pelen = 0;
	int dfd = -1, rc;

	for (i = m->n; i-- > 0;) {
		e = &m->e[i];
		/* Siblings come together: their directory is opened once. */
		slash = strrchr(e->path, '/');
		plen = slash != NULL ? (size_t)(slash - e->path) : 0;
		if (dfd >= 0 && plen == pelen &&
		    strncmp(e->path, pe->path, plen) == 0)
			base = slash != NULL ? slash + 1 : e->path;
		else {
			if (dfd >= 0)
				close(dfd);
			dfd = fs_open_parent(rootfd, e->path, &base);
			if (dfd < 0) {
				snprintf(err, errlen, "%s: %s", e->path,
				    strerror(errno));
				return -1;
			}
			pe = e;
			pelen = plen;
		}
		/* A file linked from the base copy mostly has them already. */
		if (meta_same(dfd, base, e, flags))
			continue;
		ts[0].tv_sec = e->mtime_sec;
		ts[0].tv_nsec = e->mtime_nsec;
		ts[1] = ts[0];
		rc = 0;
		if (e->type != MENT_LINK)
			rc = fchmodat(dfd, base, treemeta_mode(e, flags), 0);
		if (rc == 0)
			rc = utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW);
		if (rc != 0) {
			snprintf(err, errlen, "%s: setting mode and mtime: %s",
			    e->path, strerror(errno));
			close(dfd);
			return -1;
		}
	}
	if (dfd >= 0)
		close(dfd);
	return 0;
}
