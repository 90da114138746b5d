/* A version, or a subtree of it, written out of the store (store.h): the
 * directories and symlinks first, then the files on RESTORE_THREADS
 * threads, each taking the next file of the list and checking it against
 * its SHA-256 as it is written, then modes and mtimes, then one syncfs()
 * for all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "manifest.h"
#include "store.h"
#include "treemeta.h"
#include "xmalloc.h"

#define RESTORE_THREADS 2

/* The entries of m under sub ("" for all), with paths relative to it. */
static struct manifest *
subtree(const struct manifest *m, const char *sub, const struct ment **root)
{
	struct manifest *t = xcalloc(1, sizeof *t);
	size_t i, n = strlen(sub);

	*root = NULL;
	t->e = xcalloc(m->n ? m->n : 1, sizeof *t->e);
	for (i = 0; i < m->n; i++) {
		const struct ment *e = &m->e[i];
		if (n > 0 && strcmp(e->path, sub) == 0) {
			*root = e;
			continue;
		}
		if (n > 0 &&
		    (strncmp(e->path, sub, n) != 0 || e->path[n] != '/'))
			continue;
		t->e[t->n] = *e;
		t->e[t->n].path = xstrdup(e->path + (n ? n + 1 : 0));
		t->e[t->n].target = e->target ? xstrdup(e->target) : NULL;
		t->n++;
	}
	/* Owners, and the top directory's: the version's, or sub's. */
	t->owners = m->owners;
	t->root_uid = *root ? (*root)->uid : m->root_uid;
	t->root_gid = *root ? (*root)->gid : m->root_gid;
	t->root_mode = *root ? (*root)->mode : m->root_mode;
	t->users = owners_copy(m->users, m->nusers);
	t->nusers = m->nusers;
	t->groups = owners_copy(m->groups, m->ngroups);
	t->ngroups = m->ngroups;
	return t;
}

struct restore_files {
	struct store_reader *r;
	size_t index;
	const struct manifest *m, *t;
	const char *sub, *dest;
	int destfd;
	int flags; /* treemeta's */
	size_t *files, nfiles;
	atomic_size_t next;
	atomic_int failed;
	pthread_mutex_t mu;
	char err[1024]; /* the first failure */
};

static int
restore_file(struct restore_files *rf, const struct ment *e, char *err,
    size_t errlen)
{
	const struct ment *orig;
	const char *base;
	char *full;
	int dfd, out, rc;

	if ((dfd = fs_open_parent(rf->destfd, e->path, &base)) < 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		return -1;
	}
	full = *rf->sub ? xasprintf("%s/%s", rf->sub, e->path) :
			  xstrdup(e->path);
	orig = manifest_find(rf->m, full);
	free(full);
	out = openat(dfd, base,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	close(dfd);
	if (out < 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		return -1;
	}
	rc = store_reader_copy(rf->r, rf->index, orig, out, err, errlen);
	if (close(out) != 0 && rc == 0) {
		snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
		    strerror(errno));
		rc = -1;
	}
	return rc;
}

static void *
restore_files_run(void *arg)
{
	struct restore_files *rf = arg;
	char err[1024];
	size_t i;

	while (!atomic_load(&rf->failed) &&
	    (i = atomic_fetch_add(&rf->next, 1)) < rf->nfiles) {
		err[0] = '\0';
		if (restore_file(rf, &rf->t->e[rf->files[i]], err,
			sizeof err) == 0)
			continue;
		pthread_mutex_lock(&rf->mu);
		if (!atomic_load(&rf->failed)) {
			snprintf(rf->err, sizeof rf->err, "%s",
			    err[0] ? err : "restore failed");
			atomic_store(&rf->failed, 1);
		}
		pthread_mutex_unlock(&rf->mu);
	}
	return NULL;
}

/* A single file or symlink goes to dest itself, where there is none. */
static int
restore_one(struct store_reader *r, size_t index, const struct manifest *t,
    const struct ment *root, const char *dest, int flags, char *err,
    size_t errlen)
{
	struct ment named = *root;
	struct manifest one = { .e = &named,
		.n = 1,
		.owners = t->owners,
		.users = t->users,
		.nusers = t->nusers,
		.groups = t->groups,
		.ngroups = t->ngroups };
	char *slash, *parent = xstrdup(dest);
	const char *base;
	int destfd, out, rc;

	if ((slash = strrchr(parent, '/')) != NULL)
		*(slash == parent ? slash + 1 : slash) = '\0';
	else
		strcpy(parent, ".");
	if (fs_exists(dest)) {
		snprintf(err, errlen,
		    "%s exists; restore writes a file only where there is none",
		    dest);
		free(parent);
		return -1;
	}
	destfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(parent);
	if (destfd < 0) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		return -1;
	}
	base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	if (root->type == MENT_LINK)
		rc = symlinkat(root->target, destfd, base);
	else {
		out = openat(destfd, base,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		rc = -1;
		if (out >= 0)
			rc = store_reader_copy(r, index, root, out, err,
			    errlen);
		if (rc == 0)
			rc = fsync(out);
		if (out >= 0)
			close(out);
	}
	if (rc != 0 && err[0] == '\0')
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
	if (rc == 0) {
		/* Its modes and mtime, under its new name: a copy of the
		 * entry, the manifest's stays as it is. */
		named.path = (char *)base;
		rc = treemeta_apply(destfd, &one, flags, err, errlen);
	}
	close(destfd);
	return rc;
}

/* dest: made if absent, refused if not empty; its fd. */
static int
open_dest(const char *dest, char *err, size_t errlen)
{
	size_t n = 0;
	DIR *d;

	if (mkdir(dest, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		return -1;
	}
	if ((d = opendir(dest)) == NULL) {
		snprintf(err, errlen, "%s: %s", dest, strerror(errno));
		return -1;
	}
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	if (n > 2) {
		snprintf(err, errlen,
		    "%s is not empty; restore writes into an absent or empty "
		    "directory",
		    dest);
		return -1;
	}
	return open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The directories and symlinks of t in destfd; the files' indexes in
 * rf->files. */
static int
make_dirs(struct restore_files *rf, const struct manifest *t, char *err,
    size_t errlen)
{
	const struct ment *e;
	const char *base;
	size_t i;
	int dfd, rc;

	rf->files = xcalloc(t->n ? t->n : 1, sizeof *rf->files);
	for (i = 0; i < t->n; i++) {
		e = &t->e[i];
		if (e->type == MENT_FILE) {
			rf->files[rf->nfiles++] = i;
			continue;
		}
		if ((dfd = fs_open_parent(rf->destfd, e->path, &base)) < 0) {
			snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
			    strerror(errno));
			return -1;
		}
		rc = e->type == MENT_DIR ? mkdirat(dfd, base, 0700) :
					   symlinkat(e->target, dfd, base);
		if (rc != 0)
			snprintf(err, errlen, "%s/%s: %s", rf->dest, e->path,
			    strerror(errno));
		close(dfd);
		if (rc != 0)
			return -1;
	}
	return 0;
}

static int
restore_tree(struct restore_files *rf, const struct ment *root, char *err,
    size_t errlen)
{
	pthread_t th[RESTORE_THREADS];
	struct timespec ts[2];
	size_t n;
	int rc;

	pthread_mutex_init(&rf->mu, NULL);
	for (n = 0; n + 1 < RESTORE_THREADS && rf->nfiles > 1; n++)
		if (pthread_create(&th[n], NULL, restore_files_run, rf) != 0)
			break;
	restore_files_run(rf);
	while (n-- > 0)
		pthread_join(th[n], NULL);
	pthread_mutex_destroy(&rf->mu);
	if (atomic_load(&rf->failed)) {
		snprintf(err, errlen, "%s", rf->err);
		return -1;
	}
	rc = treemeta_apply(rf->destfd, rf->t, rf->flags | TREEMETA_TOP, err,
	    errlen);
	if (rc == 0 && root != NULL) {
		ts[0].tv_sec = root->mtime_sec;
		ts[0].tv_nsec = root->mtime_nsec;
		ts[1] = ts[0];
		if (fchmod(rf->destfd, treemeta_mode(root, rf->flags)) != 0 ||
		    futimens(rf->destfd, ts) != 0) {
			snprintf(err, errlen, "%s: %s", rf->dest,
			    strerror(errno));
			rc = -1;
		}
	}
	/* One syncfs() makes every file and directory written durable, where
	 * an fsync() a file would cost a journal commit each. */
	if (rc == 0 && syncfs(rf->destfd) != 0) {
		snprintf(err, errlen, "%s: syncfs: %s", rf->dest,
		    strerror(errno));
		rc = -1;
	}
	return rc;
}

int
store_restore(const struct store *st, size_t index, const char *sub,
    const char *dest, int flags, char *err, size_t errlen)
{
	struct store_reader *r;
	const struct manifest *m;
	struct manifest *t = NULL;
	const struct ment *root = NULL;
	struct restore_files rf;
	size_t i;
	int rc = -1;

	err[0] = '\0';
	memset(&rf, 0, sizeof rf);
	rf.destfd = -1;
	if ((r = store_reader_new(st, err, errlen)) == NULL)
		return -1;
	if ((m = store_reader_manifest(r, index, err, errlen)) == NULL)
		goto out;
	if (sub == NULL)
		sub = "";
	t = subtree(m, sub, &root);
	if (*sub != '\0' && root == NULL) {
		snprintf(err, errlen, "version %s has no %s", st->ids[index],
		    sub);
		goto out;
	}
	if (root != NULL && root->type != MENT_DIR) {
		rc = restore_one(r, index, t, root, dest, flags, err, errlen);
		goto out;
	}
	if ((rf.destfd = open_dest(dest, err, errlen)) < 0)
		goto out;
	/* The threads read the manifests: all they need is loaded first (a
	 * file's history is looked up in every newer version's). */
	for (i = index + 1; i < st->n; i++)
		if (store_reader_manifest(r, i, err, errlen) == NULL)
			goto out;
	rf.r = r;
	rf.index = index;
	rf.m = m;
	rf.t = t;
	rf.sub = sub;
	rf.dest = dest;
	rf.flags = flags & (TREEMETA_OWNERS | TREEMETA_SPECIAL);
	if (make_dirs(&rf, t, err, errlen) == 0)
		rc = restore_tree(&rf, root, err, errlen);
out:
	if (rc != 0 && err[0] == '\0')
		snprintf(err, errlen, "restore failed");
	if (rf.destfd >= 0)
		close(rf.destfd);
	free(rf.files);
	manifest_free(t);
	store_reader_free(r);
	return rc;
}
