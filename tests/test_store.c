/* The store (pullbackup/store.h) on its own: commits of changing trees,
 * every version restored bit for bit (content, modes, mtimes, symlinks),
 * retention, a crash at each fault point of a commit followed by recovery,
 * an aborted transaction, and increments built ahead of the commit (or
 * ahead, then stopped). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "fsutil.h"
#include "log.h"
#include "manifest.h"
#include "timespec.h"
#include "understudy-config.h"
#include "unit.h"

static char dir[4096], adir[4200], stg_check[8192];
static struct manifest *saved[16];
static char ids[16][VERSION_ID_SIZE];
static int nsaved;

static void
put(const char *root, const char *rel, const char *text)
{
	char p[8192];

	snprintf(p, sizeof p, "%s/%s", root, rel);
	unit_write(p, text);
}

static void
sub(const char *root, const char *rel)
{
	char p[8192];

	snprintf(p, sizeof p, "%s/%s", root, rel);
	mkdir(p, 0755);
}

/* Make staging hold version v of a tree that changes in every way. */
static void
make_tree(const char *root, int v)
{
	char p[8192], big[70000];
	int i;

	fs_rm_rf(root);
	mkdir(root, 0755);
	put(root, "constant", "never changes\n");
	snprintf(big, sizeof big, "version %d\n", v);
	for (i = strlen(big); i < (int)sizeof big - 1; i++)
		big[i] = (char)('a' + (i * 7 + (i > 30000 ? v : 0)) % 26);
	big[sizeof big - 1] = '\0';
	put(root, "big", big);
	if (v % 2 == 0)
		put(root, "even-only", "I come and go\n");
	sub(root, v < 2 ? "dir-a" : "dir-b");
	put(root, v < 2 ? "dir-a/inner" : "dir-b/inner", "moved around\n");
	if (v == 1)
		put(root, "empty", "");
	/* Two files that swap contents every version, and one renamed. */
	put(root, "swap-a", v % 2 ? "the second content\n" : "the first one\n");
	put(root, "swap-b", v % 2 ? "the first one\n" : "the second content\n");
	snprintf(p, sizeof p, "blob-%d", v / 2);
	for (i = 0; i < (int)sizeof big - 1; i++)
		big[i] = (char)('A' + (i * 13) % 26);
	put(root, p, big);
	snprintf(p, sizeof p, "%s/link", root);
	symlink(v % 2 ? "constant" : "big", p);
	if (v == 2) {
		/* A file that becomes a directory, and back. */
		sub(root, "shape");
		put(root, "shape/x", "x");
	} else
		put(root, "shape", "a file");
	snprintf(p, sizeof p, "%s/constant", root);
	chmod(p, v == 3 ? 0600 : 0644);
	/* Fixed mtimes, so the same tree can be made again for comparison. */
	{
		struct manifest *m;
		struct timespec ts[2];
		char err[512];
		size_t k;
		CHECK(manifest_scan(root, "db", "20000101T000000.000Z", &m, err,
			  sizeof err) == 0);
		for (k = m->n; k-- > 0;) {
			snprintf(p, sizeof p, "%s/%s", root, m->e[k].path);
			ts[0].tv_sec = 1700000000 + v * 100 + (long)k;
			ts[0].tv_nsec = 123456789;
			ts[1] = ts[0];
			utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
		}
		manifest_free(m);
	}
}

static int
same(const struct manifest *a, const struct manifest *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		const struct ment *x = &a->e[i], *y = &b->e[i];
		if (strcmp(x->path, y->path) != 0 || x->type != y->type ||
		    x->mode != y->mode || x->size != y->size ||
		    x->mtime_sec != y->mtime_sec ||
		    x->mtime_nsec != y->mtime_nsec ||
		    strcmp(x->sha, y->sha) != 0 ||
		    (x->type == MENT_LINK && strcmp(x->target, y->target))) {
			fprintf(stderr, "entry %s differs\n", x->path);
			return 0;
		}
	}
	return 1;
}

/* How commit_tree() builds the increments: in the commit, ahead
 * (store_prebuild()), or ahead then stopped (what a pull that fails after
 * its files are in does), the commit building them. */
static enum {
	PRE_NONE,
	PRE_AHEAD,
	PRE_STOPPED
} prebuild;

/* Commit version v of the tree made by make_tree() in a transaction's
 * staging tree: 0, or -1 (the transaction aborted) with the reason. */
static int
commit_tree(struct store *a, int v, int64_t ms, struct manifest **mp, char *err,
    size_t errlen)
{
	struct store_txn t;
	struct manifest *old_m = NULL;
	char id[VERSION_ID_SIZE], *inc;
	int rc;

	store_begin(a, &t);
	make_tree(t.staging, v);
	version_id_make(ms, id);
	CHECK(manifest_scan(t.staging, "db", id, mp, err, errlen) == 0);
	if (prebuild != PRE_NONE && a->n > 0) {
		CHECK(store_manifest(a, a->n - 1, &old_m, err, errlen) == 0);
		/* nothing staged yet, as far as it knows: the commit says
		 * when (or the stop) */
		store_prebuild(&t, old_m, *mp, 0);
	}
	if (prebuild == PRE_STOPPED && old_m != NULL) {
		store_prebuild_stop(&t);
		inc = store_vpath(a, old_m->version, "increment.tmp");
		CHECK(!fs_exists_at(a->dfd, inc));
		free(inc);
	}
	if ((rc = store_commit(&t, *mp, NULL, err, errlen)) != 0)
		store_abort(&t, 1);
	manifest_free(old_m);
	return rc;
}

static void
commit_version(struct store *a, int v)
{
	char err[1024];
	struct manifest *m;

	version_id_make(1700000000000LL + v * 1000, ids[v]);
	CHECK(commit_tree(a, v, 1700000000000LL + v * 1000, &m, err,
		  sizeof err) == 0);
	saved[v] = m;
	nsaved = v + 1;
}

/* One file or symlink of version index, restored to a path of its own:
 * its content (or target), mode and mtime.  It crashed once, freeing the
 * entry's path it had renamed. */
static void
restore_one(const struct store *a, size_t index, const char *path, int v)
{
	char out[8192], err[1024], sub[256];
	const struct ment *want = manifest_find(saved[v], path), *got;
	struct manifest *m;

	snprintf(out, sizeof out, "%s/one", dir);
	snprintf(sub, sizeof sub, "%s", path);
	CHECK(store_restore(a, index, sub, out, 0, err, sizeof err) == 0);
	CHECK(store_restore(a, index, sub, out, 0, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "exists");
	CHECK(
	    manifest_scan(dir, "db", a->ids[index], &m, err, sizeof err) == 0);
	got = manifest_find(m, "one");
	CHECK(got != NULL && want != NULL && got->type == want->type &&
	    got->size == want->size && got->mtime_sec == want->mtime_sec);
	if (got != NULL && want != NULL && want->type == MENT_LINK)
		CHECK_STR(got->target, want->target);
	else if (got != NULL && want != NULL)
		CHECK(strcmp(got->sha, want->sha) == 0 &&
		    got->mode == want->mode);
	manifest_free(m);
	unlink(out);
}

static void
check_all(const struct store *a, const char *what)
{
	char out[8192], err[1024];
	struct manifest *m;
	size_t i;
	int v;

	for (i = 0; i < a->n; i++) {
		for (v = 0; v < nsaved; v++)
			if (strcmp(ids[v], a->ids[i]) == 0)
				break;
		CHECK(v < nsaved);
		if (v == nsaved) {
			fprintf(stderr, "%s: version %s not saved\n", what,
			    a->ids[i]);
			continue;
		}
		snprintf(out, sizeof out, "%s/restore-%s-%zu", dir, what, i);
		err[0] = '\0';
		CHECK(store_restore(a, i, NULL, out, 0, err, sizeof err) == 0);
		if (err[0])
			fprintf(stderr, "%s: restore %zu: %s\n", what, i, err);
		CHECK(manifest_scan(out, "db", a->ids[i], &m, err,
			  sizeof err) == 0);
		CHECK(same(m, saved[v]));
		manifest_free(m);
		fs_rm_rf(out);
		restore_one(a, i, "constant", v);
		restore_one(a, i, "link", v);
	}
}

#if UNDERSTUDY_FAULTS
/* A crash at each point of a commit, and of a prune. */
static void
crashes(void)
{
	static const char *const points[] = { "commit-increments-built",
		"commit-journal-written", "commit-version-renamed",
		"commit-current-moved", "commit-head-written", NULL };
	struct store *a;
	char err[1024], **gone;
	size_t ngone;
	int v, k, status;
	pid_t pid;

	/* A crash at each point of a commit: the archive comes back with the
	 * old version or the new one complete, never anything between. */
	for (k = 0; points[k] != NULL; k++) {
		CHECK(store_open(adir, "db", STORE_DAEMON, &a, err,
			  sizeof err) == 0);
		v = nsaved;
		if ((pid = fork()) == 0) {
			setenv("UNDERSTUDY_FAULT", points[k], 1);
			commit_version(a, v);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 86);
		store_close(a);
		/* The child's manifest is made again here for comparison. */
		{
			char stg[8192];
			snprintf(stg, sizeof stg, "%s/db/staging.check", adir);
			make_tree(stg, v);
			version_id_make(1700000000000LL + v * 1000, ids[v]);
			CHECK(manifest_scan(stg, "db", ids[v], &saved[v], err,
				  sizeof err) == 0);
			fs_rm_rf(stg);
			nsaved = v + 1;
		}
		CHECK(store_open(adir, "db", STORE_DAEMON, &a, err,
			  sizeof err) == 0);
		if (strcmp(points[k], "commit-increments-built") == 0) {
			CHECK(strcmp(store_head(a), ids[v]) != 0);
			CHECK(a->recovered != NULL);
			/* Commit it again, for real. */
			manifest_free(saved[v]);
			commit_version(a, v);
		} else {
			CHECK_STR(store_head(a), ids[v]);
			CHECK(a->recovered != NULL);
			CHECK_CONTAINS(a->recovered,
			    "finished the interrupted");
		}
		check_all(a, points[k]);
		store_close(a);
	}
	/* An interrupted prune. */
	CHECK(store_open(adir, "db", STORE_DAEMON, &a, err, sizeof err) == 0);
	if ((pid = fork()) == 0) {
		setenv("UNDERSTUDY_FAULT", "prune-version-moved", 1);
		store_prune(a, 2, -1, 0, &gone, &ngone, err, sizeof err);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 86);
	store_close(a);
	CHECK(store_open(adir, "db", STORE_DAEMON, &a, err, sizeof err) == 0);
	CHECK(a->recovered != NULL);
	check_all(a, "after-prune-crash");
	store_close(a);
}
#else
static void
crashes(void)
{
}
#endif

/* Forgetting the newest version: the one before is the newest again,
 * whole; only the newest can go; the daemon must be stopped; a crash at
 * each point comes back with one or the other; down to an empty archive,
 * which takes commits again. */
static void
forgets(void)
{
#if UNDERSTUDY_FAULTS
	static const char *const points[] = { "forget-rollback-made",
		"forget-journal-written", "forget-current-moved",
		"forget-head-written", NULL };
	int k, status;
	pid_t pid;
#endif
	struct store *a, *d;
	char err[1024], head[VERSION_ID_SIZE];
	int v;

	v = nsaved;
	CHECK(v + 2 < 16);
	CHECK(store_open(adir, "db", STORE_DAEMON, &d, err, sizeof err) == 0);
	commit_version(d, v);
	commit_version(d, v + 1);
	CHECK(store_open(adir, "db", STORE_ALONE, &a, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "stop it first");
	store_close(d);
	CHECK(store_open(adir, "db", STORE_ALONE, &a, err, sizeof err) == 0);
	CHECK(a->n >= 3);
	CHECK(store_forget(a, a->ids[a->n - 2], err, sizeof err) != 0);
	CHECK_CONTAINS(err, "only the newest version");
	CHECK(store_forget(a, ids[v + 1], err, sizeof err) == 0);
	CHECK_STR(store_head(a), ids[v]);
	check_all(a, "forget");
	store_close(a);
#if UNDERSTUDY_FAULTS
	for (k = 0; points[k] != NULL; k++) {
		CHECK(store_open(adir, "db", STORE_ALONE, &a, err,
			  sizeof err) == 0);
		snprintf(head, sizeof head, "%s", store_head(a));
		if ((pid = fork()) == 0) {
			setenv("UNDERSTUDY_FAULT", points[k], 1);
			store_forget(a, head, err, sizeof err);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 86);
		store_close(a);
		CHECK(store_open(adir, "db", STORE_ALONE, &a, err,
			  sizeof err) == 0);
		CHECK(a->recovered != NULL);
		if (k == 0)
			CHECK_STR(store_head(a), head);
		else {
			CHECK(strcmp(store_head(a), head) < 0);
			CHECK_CONTAINS(a->recovered,
			    "finished the interrupted forgetting");
		}
		check_all(a, points[k]);
		store_close(a);
	}
#endif
	/* Down to nothing, then a commit again. */
	CHECK(store_open(adir, "db", STORE_ALONE, &a, err, sizeof err) == 0);
	while (a->n > 0) {
		snprintf(head, sizeof head, "%s", store_head(a));
		CHECK(store_forget(a, head, err, sizeof err) == 0);
		if (a->n > 0)
			CHECK(strcmp(store_head(a), head) < 0);
	}
	CHECK(store_head(a) == NULL);
	CHECK(!fs_exists_at(a->dfd, "current"));
	store_close(a);
	CHECK(store_open(adir, "db", STORE_DAEMON, &d, err, sizeof err) == 0);
	commit_version(d, v + 2);
	CHECK_STR(store_head(d), ids[v + 2]);
	check_all(d, "after-forgetting-all");
	store_close(d);
}

/* increment_compression: zstd from version 1 on, in an archive whose
 * first increment is gzip: each version is built in the form asked at its
 * commit, and the reader takes both. */
static void
zstd_increments(void)
{
	char zdir[4400], p[8800], err[1024];
	struct store *z;
	char *inc;
	int v, was = nsaved;

	snprintf(zdir, sizeof zdir, "%s/archive-zstd", dir);
	CHECK(store_open(zdir, "db", STORE_DAEMON, &z, err, sizeof err) == 0);
	for (v = 0; v < 4; v++) {
		manifest_free(saved[v]);
		z->zstd_increments = v >= 2;
		commit_version(z, v);
	}
	/* version 0's increment was written at version 1's commit (gzip),
	 * version 1's at version 2's (zstd) */
	inc = store_vpath(z, ids[0], "increment");
	snprintf(p, sizeof p, "%s/%s/%s.from.%s.rdelta.gz", z->dir, inc,
	    manifest_find(saved[0], "big")->sha,
	    manifest_find(saved[1], "big")->sha);
	CHECK(fs_exists(p));
	free(inc);
	inc = store_vpath(z, ids[1], "increment");
	snprintf(p, sizeof p, "%s/%s/%s.from.%s.rdelta.zst", z->dir, inc,
	    manifest_find(saved[1], "big")->sha,
	    manifest_find(saved[2], "big")->sha);
	CHECK(fs_exists(p));
	p[strlen(p) - 3] = '\0';
	strcat(p, "gz");
	CHECK(!fs_exists(p));
	free(inc);
	check_all(z, "zstd");
	store_close(z);
	nsaved = was; /* versions 0-3 are made the same every time */
}

int
main(void)
{
	struct store *a;
	char err[1024], **gone;
	size_t ngone, i;
	int v, rc;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	snprintf(adir, sizeof adir, "%s/archive", dir);
	CHECK(store_open(adir, "db", STORE_DAEMON, &a, err, sizeof err) == 0);
	CHECK(a->n == 0 && store_head(a) == NULL);
	for (v = 0; v < 4; v++) {
		prebuild = v == 2 ? PRE_STOPPED : v % 2 ? PRE_AHEAD : PRE_NONE;
		commit_version(a, v);
		CHECK(a->n == (size_t)v + 1);
		CHECK_STR(store_head(a), ids[v]);
		check_all(a, "commit");
	}
	prebuild = PRE_NONE;
	/* Contents the next version has at another path take no increment:
	 * in version 1, the swapped files, the renamed blob and dir-a/inner
	 * have none; big (changed in place) has its reverse delta. */
	{
		char *inc = store_vpath(a, ids[1], "increment"), p[8800];
		const char *moved[] = { "swap-a", "swap-b", "blob-0",
			"dir-a/inner" };
		size_t k;
		DIR *d;
		struct dirent *de;

		snprintf(p, sizeof p, "%s/%s", a->dir, inc);
		CHECK((d = opendir(p)) != NULL);
		while (d != NULL && (de = readdir(d)) != NULL)
			for (k = 0; k < sizeof moved / sizeof moved[0]; k++)
				CHECK(
				    strncmp(de->d_name,
					manifest_find(saved[1], moved[k])->sha,
					HASH_HEX_LEN) != 0);
		if (d != NULL)
			closedir(d);
		snprintf(p, sizeof p, "%s/%s/%s.from.%s.rdelta.gz", a->dir, inc,
		    manifest_find(saved[1], "big")->sha,
		    manifest_find(saved[2], "big")->sha);
		CHECK(fs_exists(p));
		free(inc);
	}
	/* An older or equal version is refused, and an aborted transaction
	 * leaves nothing behind. */
	{
		struct manifest *m;
		CHECK(commit_tree(a, 1, 1700000000000LL + 1000, &m, err,
			  sizeof err) != 0);
		CHECK_CONTAINS(err, "not newer");
		manifest_free(m);
		CHECK(a->n == 4);
		CHECK_STR(store_head(a), ids[3]);
		snprintf(stg_check, sizeof stg_check, "%s/staging", a->dir);
		CHECK(!fs_exists(stg_check));
		check_all(a, "refused");
	}

	/* Two writers are refused. */
	{
		struct store *b = NULL;
		CHECK(store_open(adir, "db", STORE_DAEMON, &b, err,
			  sizeof err) != 0);
		CHECK_CONTAINS(err, "another pull-backup daemon");
	}

	/* Retention: never the newest, oldest first, the rest restorable. */
	CHECK(store_prune(a, 2, -1, 1, &gone, &ngone, err, sizeof err) == 0);
	CHECK(ngone == 2 && a->n == 4);
	for (i = 0; i < ngone; i++)
		free(gone[i]);
	free(gone);
	CHECK(store_prune(a, 3, -1, 0, &gone, &ngone, err, sizeof err) == 0);
	CHECK(ngone == 1 && strcmp(gone[0], ids[0]) == 0 && a->n == 3);
	for (i = 0; i < ngone; i++)
		free(gone[i]);
	free(gone);
	check_all(a, "prune");
	/* Everything older than a second: all but the newest. */
	CHECK(store_prune(a, 0, 1, 0, &gone, &ngone, err, sizeof err) == 0);
	CHECK(ngone == 2 && a->n == 1);
	for (i = 0; i < ngone; i++)
		free(gone[i]);
	free(gone);
	check_all(a, "prune-age");
	store_close(a);

	crashes();
	forgets();
	zstd_increments();

	/* Retention edge cases, on a fresh archive whose versions have
	 * chosen times: two hours ago, thirty minutes ago, tomorrow. */
	{
		char adir2[4400];
		struct store *b;
		struct manifest *m;
		int64_t now_ms = (int64_t)time(NULL) * 1000;
		int64_t when[3] = { now_ms - 7200000, now_ms - 1800000,
			now_ms + 86400000 };
		char vid[3][VERSION_ID_SIZE];

		snprintf(adir2, sizeof adir2, "%s/archive2", dir);
		CHECK(store_open(adir2, "db", STORE_DAEMON, &b, err,
			  sizeof err) == 0);
		for (v = 0; v < 3; v++) {
			version_id_make(when[v], vid[v]);
			rc = commit_tree(b, v, when[v], &m, err, sizeof err);
			CHECK(rc == 0);
			manifest_free(m);
		}
		/* Older than an hour: only the one two hours old; the version
		 * from tomorrow is no reason for the others to go. */
		CHECK(store_prune(b, 0, 3600, 1, &gone, &ngone, err,
			  sizeof err) == 0);
		CHECK(ngone == 1 && strcmp(gone[0], vid[0]) == 0);
		for (i = 0; i < ngone; i++)
			free(gone[i]);
		free(gone);
		/* Everything older than the limit: all but the newest. */
		CHECK(store_prune(b, 0, 60, 1, &gone, &ngone, err,
			  sizeof err) == 0);
		CHECK(ngone == 2);
		for (i = 0; i < ngone; i++)
			free(gone[i]);
		free(gone);
		/* keep_last is a floor: with both rules, a version goes only
		 * when both let it go. */
		CHECK(store_prune(b, 3, 3600, 1, &gone, &ngone, err,
			  sizeof err) == 0);
		CHECK(ngone == 0);
		free(gone);
		CHECK(store_prune(b, 2, 60, 1, &gone, &ngone, err,
			  sizeof err) == 0);
		CHECK(ngone == 1 && strcmp(gone[0], vid[0]) == 0);
		free(gone[0]);
		free(gone);
		/* Older than 0 s is a rule, not no rule: all but the newest. */
		CHECK(store_prune(b, 0, 0, 1, &gone, &ngone, err, sizeof err) ==
		    0);
		CHECK(ngone == 2);
		for (i = 0; i < ngone; i++)
			free(gone[i]);
		free(gone);
		/* No rule at all: nothing. */
		CHECK(store_prune(b, 0, -1, 1, &gone, &ngone, err,
			  sizeof err) == 0);
		CHECK(ngone == 0);
		free(gone);
		/* keep_last 1: the newest alone stays, even from the future. */
		rc = store_prune(b, 1, -1, 0, &gone, &ngone, err, sizeof err);
		CHECK(rc == 0);
		CHECK(ngone == 2 && b->n == 1 &&
		    strcmp(store_head(b), vid[2]) == 0);
		for (i = 0; i < ngone; i++)
			free(gone[i]);
		free(gone);
		/* Nothing goes when only the newest is left. */
		rc = store_prune(b, 1, 1, 0, &gone, &ngone, err, sizeof err);
		CHECK(rc == 0);
		CHECK(ngone == 0 && b->n == 1);
		free(gone);
		store_close(b);
	}

	/* A reader sees the same. */
	CHECK(store_open(adir, "db", STORE_READ, &a, err, sizeof err) == 0);
	check_all(a, "reader");
	store_close(a);
	CHECK(store_open(adir, "nope", STORE_READ, &a, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "no archive for source \"nope\"");

	for (v = 0; v < nsaved; v++)
		manifest_free(saved[v]);
	fs_rm_rf(dir);
	return unit_done();
}
