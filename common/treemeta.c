#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

	if (!(flags & TREEMETA_SPECIAL))
		mode &= 0777;

	if (flags & TREEMETA_OWNER_ACCESS)
		mode |= e->type == MENT_DIR ? 0700 : 0400;
	return mode;
}

/* The local ids of a manifest's owners, when they are to be applied. */
struct idmap {
	int on;
	uint32_t *users, *groups;
};

static void
idmap_init(struct idmap *im, const struct manifest *m, int flags)
{
	memset(im, 0, sizeof *im);
	if (!(flags & TREEMETA_OWNERS) || !m->owners || geteuid() != 0)
		return;
	im->on = 1;
	im->users = owners_local(m->users, m->nusers, 0);
	im->groups = owners_local(m->groups, m->ngroups, 1);
}

static uid_t
idmap_uid(const struct idmap *im, const struct manifest *m, uint32_t id)
{
	return (uid_t)owners_map(m->users, im->users, m->nusers, id);
}

static gid_t
idmap_gid(const struct idmap *im, const struct manifest *m, uint32_t id)
{
	return (gid_t)owners_map(m->groups, im->groups, m->ngroups, id);
}

/* Whether the entry at dfd/base already has e's mode, owners and mtime. */
static int
meta_same(int dfd, const char *base, const struct ment *e, int flags,
    const struct idmap *im, const struct manifest *m)
{
	struct stat sb;

	return fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (!im->on ||
		(sb.st_uid == idmap_uid(im, m, e->uid) &&
		    sb.st_gid == idmap_gid(im, m, e->gid))) &&
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
	int dfd = -1, rc = 0;
	struct idmap im;
	unsigned int top;

	idmap_init(&im, m, flags);
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
				rc = -1;
				goto out;
			}
			pe = e;
			pelen = plen;
		}
		/* A file linked from the base copy mostly has them already. */
		if (meta_same(dfd, base, e, flags, &im, m))
			continue;
		ts[0].tv_sec = e->mtime_sec;
		ts[0].tv_nsec = e->mtime_nsec;
		ts[1] = ts[0];
		rc = 0;
		/* Owners first: a chown clears the set-id bits. */
		if (im.on &&
		    fchownat(dfd, base, idmap_uid(&im, m, e->uid),
			idmap_gid(&im, m, e->gid), AT_SYMLINK_NOFOLLOW) != 0) {
			snprintf(err, errlen, "%s: setting owners: %s", e->path,
			    strerror(errno));
			rc = -1;
			goto out;
		}
		if (e->type != MENT_LINK)
			rc = fchmodat(dfd, base, treemeta_mode(e, flags), 0);
		if (rc == 0)
			rc = utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW);
		if (rc != 0) {
			snprintf(err, errlen, "%s: setting mode and mtime: %s",
			    e->path, strerror(errno));
			goto out;
		}
	}
	if ((flags & TREEMETA_TOP) && m->owners) {
		top = (unsigned int)m->root_mode &
		    (flags & TREEMETA_SPECIAL ? 07777 : 0777);
		if (flags & TREEMETA_OWNER_ACCESS)
			top |= 0700;
		if (im.on &&
		    fchown(rootfd, idmap_uid(&im, m, m->root_uid),
			idmap_gid(&im, m, m->root_gid)) != 0) {
			snprintf(err, errlen,
			    "the top directory: setting "
			    "owners: %s",
			    strerror(errno));
			rc = -1;
			goto out;
		}
		if (fchmod(rootfd, top) != 0) {
			snprintf(err, errlen,
			    "the top directory: setting "
			    "mode: %s",
			    strerror(errno));
			rc = -1;
			goto out;
		}
	}
out:
	if (dfd >= 0)
		close(dfd);
	free(im.users);
	free(im.groups);
	return rc;
}
