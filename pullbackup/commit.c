/* A commit of the store (store.h): the new version's tree is made in
 * staging/ (by the sync, outside the store), then, under the exclusive
 * lock: the increments that turn it back into the old newest version, the
 * new version's manifest, then the journal, "commit OLD NEW", the point of
 * no return.  Rolling forward renames the new version and the old one's
 * increments into place, moves current/ to trash/ and staging/ to
 * current/, and writes HEAD.  Every step is skipped when already done, so
 * recovery at start-up finishes a commit cut short anywhere after the
 * journal, and removes what one cut short before it left. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fault.h"
#include "fsutil.h"
#include "journal.h"
#include "hash.h"
#include "log.h"
#include "manifest.h"
#include "store.h"
#include "sync.h"
#include "timespec.h"
#include "xmalloc.h"

#define STAGING "staging"
#define DELTAS "deltas"

void
store_begin(struct store *st, struct store_txn *t)
{
	t->st = st;
	t->pre = NULL;
	t->staging = xasprintf("%s/%s", st->dir, STAGING);
	t->deltas = xasprintf("%s/%s", st->dir, DELTAS);
}

static void
txn_end(struct store_txn *t)
{
	store_prebuild_stop(t);
	free(t->staging);
	free(t->deltas);
	t->staging = t->deltas = NULL;
}

void
store_abort(struct store_txn *t, int drop)
{
	if (drop && t->staging != NULL)
		sync_staging_drop(t->staging);
	txn_end(t);
}

struct prebuild {
	struct store *st;
	const struct manifest *old_m, *m;
	pthread_t t;
	int joined;
	int rc;
	char err[512];
	int lockfd; /* held shared while an increment is written */
	pthread_mutex_t mu;
	pthread_cond_t more;
	size_t staged; /* of m's entries */
	int stop;
};

/* The shared lock, if it is not held: without waiting. */
static int
prebuild_lock(struct prebuild *p, char *err, size_t errlen)
{
	if (p->lockfd >= 0)
		return 0;
	p->lockfd = openat(p->st->dfd, "lock", O_RDONLY | O_CLOEXEC);
	if (p->lockfd < 0 || flock(p->lockfd, LOCK_SH | LOCK_NB) != 0) {
		snprintf(err, errlen, "%s/lock: %s", p->st->dir,
		    strerror(errno));
		if (p->lockfd >= 0)
			close(p->lockfd);
		p->lockfd = -1;
		return -1;
	}
	return 0;
}

/* increment_build()'s ready: wait, without the lock, until ne is staged;
 * then hold the shared lock while its increment is written.  The lock is
 * not waited for, so that nothing waits on this thread while it holds it
 * (the commit joins it before taking the exclusive lock, and builds the
 * increments itself if need be): a prune or a repair (another process,
 * the exclusive lock) removes an increment.tmp as an unfinished one
 * before the first file or between two, never while one is written, and
 * the files after find it gone. */
static int
prebuild_ready(void *arg, const struct ment *ne, char *err, size_t errlen)
{
	struct prebuild *p = arg;
	size_t want = (size_t)(ne - p->m->e) + 1;
	int stop;

	pthread_mutex_lock(&p->mu);
	if (p->staged < want && p->lockfd >= 0) {
		close(p->lockfd); /* and the lock with it */
		p->lockfd = -1;
	}
	while (p->staged < want && !p->stop)
		pthread_cond_wait(&p->more, &p->mu);
	stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	if (stop) {
		snprintf(err, errlen, "stopped: the pull did not finish");
		return -1;
	}
	return prebuild_lock(p, err, errlen);
}

static void *
prebuild_run(void *arg)
{
	struct prebuild *p = arg;
	int curfd, stgfd;

	curfd = openat(p->st->dfd, "current",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	stgfd = openat(p->st->dfd, STAGING, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (curfd < 0 || stgfd < 0) {
		snprintf(p->err, sizeof p->err, "%s: current/ or staging/: %s",
		    p->st->dir, strerror(errno));
		p->rc = -1;
	} else if (prebuild_lock(p, p->err, sizeof p->err) != 0)
		p->rc = -1; /* (increment.tmp is made under it) */
	else
		p->rc = increment_build(p->st, p->old_m, p->m, curfd, stgfd,
		    prebuild_ready, p, p->err, sizeof p->err);
	if (curfd >= 0)
		close(curfd);
	if (stgfd >= 0)
		close(stgfd);
	if (p->lockfd >= 0)
		close(p->lockfd);
	p->lockfd = -1;
	return NULL;
}

void
store_prebuild(struct store_txn *t, const struct manifest *old_m,
    const struct manifest *m, size_t staged)
{
	struct prebuild *p;

	store_prebuild_stop(t);
	if (old_m == NULL)
		return;
	p = xcalloc(1, sizeof *p);
	p->st = t->st;
	p->old_m = old_m;
	p->m = m;
	p->staged = staged;
	p->lockfd = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->more, NULL);
	if (pthread_create(&p->t, NULL, prebuild_run, p) != 0) {
		pthread_cond_destroy(&p->more);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return;
	}
	t->pre = p;
}

/* More of m staged; or (stop) never more. */
static void
prebuild_tell(struct store_txn *t, size_t staged, int stop)
{
	struct prebuild *p = t->pre;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	if (staged > p->staged)
		p->staged = staged;
	p->stop |= stop;
	pthread_cond_signal(&p->more);
	pthread_mutex_unlock(&p->mu);
}

void
store_prebuild_staged(struct store_txn *t, size_t staged)
{
	prebuild_tell(t, staged, 0);
}

/* Wait for the thread, if it is not done yet: before the exclusive lock,
 * which its shared one would hold up. */
static void
prebuild_wait(struct store_txn *t)
{
	if (t->pre != NULL && !t->pre->joined) {
		pthread_join(t->pre->t, NULL);
		t->pre->joined = 1;
	}
}

/* End it: 0 when it built old's increments for new, complete and on
 * disk, and they are still there (called under the exclusive lock: a
 * prune that removed them as unfinished has finished); else what it
 * wrote is removed. */
static int
prebuild_take(struct store_txn *t, const char *old, const char *new)
{
	struct prebuild *p = t->pre;
	char *inc;
	int rc;

	if (p == NULL)
		return -1;
	prebuild_wait(t);
	inc = store_vpath(t->st, p->old_m->version, "increment.tmp");
	rc = p->rc == 0 && old != NULL && strcmp(p->old_m->version, old) == 0 &&
		strcmp(p->m->version, new) == 0 &&
		fs_exists_at(t->st->dfd, inc) ?
	    0 :
	    -1;
	if (rc != 0)
		fs_rm_rf_at(t->st->dfd, inc);
	free(inc);
	if (p->rc != 0)
		log_debug("increments built ahead: %s; building them again",
		    p->err);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->mu);
	free(p);
	t->pre = NULL;
	return rc;
}

void
store_prebuild_stop(struct store_txn *t)
{
	prebuild_tell(t, 0, 1);
	prebuild_take(t, NULL, "");
}

/* Where a commit of version new puts the tree it replaces: garbage from
 * the moment it is there (staging/ is complete), removed by whoever
 * commits, later, or at start-up with the rest of trash/. */
static char *
replaced_name(const char *new)
{
	return xasprintf("trash/before.%s", new);
}

/* Rename from to to when from is there still. */
static int
rename_pending(int dfd, const char *from, const char *to)
{
	if (!fs_exists_at(dfd, from))
		return 0;
	return renameat(dfd, from, dfd, to);
}

/* Finish a commit whose journal is on disk.  Leaves the tree it replaced
 * in trash/. */
static int
roll_forward(struct store *st, const char *old, const char *new, char *err,
    size_t errlen)
{
	char *tmp = xasprintf("versions/%s.tmp", new), *dst = NULL;
	char *trash = replaced_name(new), line[64];
	int rc = -1;

	dst = store_vpath(st, new, "");
	if (rename_pending(st->dfd, tmp, dst) != 0)
		goto fail;
	fault_point("commit-version-renamed");
	if (*old != '\0') {
		free(tmp);
		free(dst);
		tmp = store_vpath(st, old, "increment.tmp");
		dst = store_vpath(st, old, "increment");
		if (rename_pending(st->dfd, tmp, dst) != 0)
			goto fail;
	}
	if (fs_exists_at(st->dfd, STAGING)) {
		if (fs_exists_at(st->dfd, "current") &&
		    (fs_rm_rf_at(st->dfd, trash) != 0 ||
			renameat(st->dfd, "current", st->dfd, trash) != 0))
			goto fail;
		fault_point("commit-current-moved");
		if (renameat(st->dfd, STAGING, st->dfd, "current") != 0)
			goto fail;
	}
	if (fsync(st->dfd) != 0)
		goto fail;
	snprintf(line, sizeof line, "%s\n", new);
	if (fs_write_atomic_at(st->dfd, "HEAD", line, strlen(line)) != 0)
		goto fail;
	fault_point("commit-head-written");
	unlinkat(st->dfd, STAGING SYNC_MARKER_SUFFIX, 0);
	unlinkat(st->dfd, "journal", 0);
	fsync(st->dfd);
	rc = 0;
fail:
	if (rc != 0)
		snprintf(err, errlen, "%s: finishing the commit of %s: %s",
		    st->dir, new, strerror(errno));
	free(tmp);
	free(dst);
	free(trash);
	return rc;
}

/* Everything in the directory name that matches keep() not, removed;
 * note says what that was. */
static void
sweep(struct store *st, const char *name,
    int (*keep)(const char *, const char *), const char *head)
{
	const char *note = "removed an unfinished version";
	struct dirent *de;
	char *p;
	DIR *d;
	int fd;

	if (strcmp(name, "trash") == 0)
		note = "finished an interrupted removal";
	fd = openat(st->dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || keep(de->d_name, head))
			continue;
		p = xasprintf("%s/%s", name, de->d_name);
		fs_rm_rf_at(st->dfd, p);
		free(p);
		store_note(st, note);
	}
	closedir(d);
}

static int
version_kept(const char *name, const char *head)
{
	return version_id_valid(name) && strcmp(name, head) <= 0;
}

static int
nothing_kept(const char *name, const char *head)
{
	(void)name;
	(void)head;
	return 0;
}

/* Remove what a step that never reached its journal left behind. */
static void
clean_leftovers(struct store *st)
{
	char head[64], *inc;
	size_t i;

	store_read_head(st, head, sizeof head);
	sweep(st, "versions", version_kept, head);
	if (store_load_ids(st, NULL, 0) == 0)
		for (i = 0; i < st->n; i++) {
			inc = store_vpath(st, st->ids[i], "increment.tmp");
			if (fs_exists_at(st->dfd, inc)) {
				store_note(st, "removed unfinished increments");
				fs_rm_rf_at(st->dfd, inc);
			}
			free(inc);
		}
	sweep(st, "trash", nothing_kept, head);
	if (fs_exists_at(st->dfd, "rollback")) {
		store_note(st, "removed an unfinished forget");
		fs_rm_rf_at(st->dfd, "rollback");
	}
	fs_rm_rf_at(st->dfd, "tmp");
	mkdirat(st->dfd, "tmp", 0700);
}

/* Finish what the journal says was under way: a commit, or a forget
 * (forget.c). */
static int
recover_journal(struct store *st, const char *buf, size_t len, char *err,
    size_t errlen)
{
	struct journal j;
	char note[128];

	if (journal_parse(buf, len, &j) != 0) {
		snprintf(err, errlen,
		    "%s/journal: damaged journal (not \"commit OLD NEW\" nor "
		    "\"forget NEWEST PREVIOUS\"); move it aside after "
		    "checking the archive by hand",
		    st->dir);
		return -1;
	}
	if (j.kind == JOURNAL_FORGET) {
		if (forget_roll_forward(st, j.a, j.b, err, errlen) != 0)
			return -1;
		snprintf(note, sizeof note,
		    "finished the interrupted forgetting of %s", j.a);
	} else {
		if (roll_forward(st, j.a, j.b, err, errlen) != 0)
			return -1;
		snprintf(note, sizeof note,
		    "finished the interrupted commit of %s", j.b);
	}
	store_note(st, note);
	return 0;
}

int
commit_recover(struct store *st, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	if (fs_read_file_at(st->dfd, "journal", 1024, &buf, &len) == 0) {
		rc = recover_journal(st, buf, len, err, errlen);
		free(buf);
		if (rc != 0)
			return -1;
	}
	clean_leftovers(st);
	return 0;
}

/* Each manifest has its SHA-256 beside it, so that a damaged manifest is
 * found rather than trusted. */
static int
save_manifest(struct store *st, const struct manifest *m, const char *dir)
{
	struct evbuffer *b = evbuffer_new();
	char hex[HASH_HEX_SIZE + 1], *p;
	struct hash h;
	int rc;

	manifest_write(m, b);
	p = xasprintf("%s/manifest", dir);
	rc = fs_write_renamed_at(st->dfd, p, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	free(p);
	if (rc == 0) {
		hash_init(&h);
		hash_update(&h, evbuffer_pullup(b, -1), evbuffer_get_length(b));
		hash_final(&h, hex);
		strcat(hex, "\n");
		p = xasprintf("%s/manifest.sha256", dir);
		rc = fs_write_atomic_at(st->dfd, p, hex, strlen(hex));
		free(p);
	}
	evbuffer_free(b);
	return rc;
}

/* Everything up to the journal: the increments and the new manifest. */
static int
prepare(struct store_txn *t, const struct manifest *m, char *err, size_t errlen)
{
	struct store *st = t->st;
	const char *old = store_head(st);
	struct manifest *old_m = NULL;
	char *vdir = NULL;
	int curfd = -1, stgfd = -1, rc = -1;

	if (old != NULL) {
		if (store_manifest(st, st->n - 1, &old_m, err, errlen) != 0)
			return -1;
		curfd = openat(st->dfd, "current",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		stgfd = openat(st->dfd, STAGING,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (curfd < 0 || stgfd < 0) {
			snprintf(err, errlen,
			    "%s: current/ or staging/ missing: %s", st->dir,
			    strerror(errno));
			goto out;
		}
		if (prebuild_take(t, old, m->version) != 0 &&
		    increment_build(st, old_m, m, curfd, stgfd, NULL, NULL, err,
			errlen))
			goto out;
		fault_point("commit-increments-built");
	}
	vdir = xasprintf("versions/%s.tmp", m->version);
	if (fs_rm_rf_at(st->dfd, vdir) != 0 ||
	    mkdirat(st->dfd, vdir, 0700) != 0 ||
	    save_manifest(st, m, vdir) != 0) {
		snprintf(err, errlen, "%s/%s: %s", st->dir, vdir,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(vdir);
	if (curfd >= 0)
		close(curfd);
	if (stgfd >= 0)
		close(stgfd);
	manifest_free(old_m);
	return rc;
}

static int
commit_locked(struct store_txn *t, const struct manifest *m, char **replaced,
    char *err, size_t errlen)
{
	struct store *st = t->st;
	const char *old = store_head(st);
	char line[128], *trash;
	int fd;

	if (old != NULL && strcmp(m->version, old) <= 0) {
		snprintf(err, errlen,
		    "version %s is not newer than the archive's newest, %s",
		    m->version, old);
		return -1;
	}
	if (prepare(t, m, err, errlen) != 0)
		return -1;
	if ((fd = openat(st->dfd, "versions",
		 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	/* The commit point of no return: from here recovery rolls forward. */
	snprintf(line, sizeof line, "commit %s %s\n", old ? old : "-",
	    m->version);
	if (fs_write_atomic_at(st->dfd, "journal", line, strlen(line)) != 0) {
		snprintf(err, errlen, "%s/journal: %s", st->dir,
		    strerror(errno));
		return -1;
	}
	fault_point("commit-journal-written");
	if (roll_forward(st, old ? old : "", m->version, err, errlen) != 0)
		return -1;
	trash = replaced_name(m->version);
	if (fs_exists_at(st->dfd, trash)) {
		if (replaced != NULL)
			*replaced = xasprintf("%s/%s", st->dir, trash);
		else
			fs_rm_rf_at(st->dfd, trash);
	}
	free(trash);
	return store_load_ids(st, err, errlen);
}

int
store_commit(struct store_txn *t, const struct manifest *m, char **replaced,
    char *err, size_t errlen)
{
	struct store *st = t->st;
	int rc;

	if (replaced != NULL)
		*replaced = NULL;
	/* Everything is staged by now.  Readers (restore, verify, export)
	 * see the archive before or after the commit, never during it. */
	prebuild_tell(t, m->n, 0);
	prebuild_wait(t);
	if (st->mode == STORE_DAEMON && store_lock(st, 1, err, errlen) != 0)
		return -1;
	rc = commit_locked(t, m, replaced, err, errlen);
	if (st->mode == STORE_DAEMON)
		store_unlock(st);
	if (rc == 0)
		txn_end(t);
	return rc;
}
