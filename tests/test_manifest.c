#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fsutil.h"
#include "log.h"
#include "manifest.h"
#include "treemeta.h"
#include "unit.h"

static char dir[4096];

static void
mk(const char *rel, const char *content)
{
	char p[4300];

	snprintf(p, sizeof p, "%s/%s", dir, rel);
	unit_write(p, content);
}

static void
expect_bad(const char *text, const char *why)
{
	struct manifest *m = NULL;
	char err[512];

	err[0] = '\0';
	CHECK(manifest_parse(text, strlen(text), &m, err, sizeof err) != 0);
	CHECK(m == NULL);
	CHECK_CONTAINS(err, why);
}

#define HEAD "understudy-manifest 1\nsource db\nversion 20261121T194108.123Z\n"
#define SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA2 "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

/* What manifest_diff reported, one "how path" a line. */
static char diffs[1024];

static void
note_diff(void *arg, const struct ment *o, const struct ment *n)
{
	size_t len = strlen(diffs);

	(void)arg;
	snprintf(diffs + len, sizeof diffs - len, "%c %s\n",
	    o == NULL     ? '+' :
		n == NULL ? '-' :
			    '~',
	    o ? o->path : n->path);
}

/* The import hook's lists come from this: every path that is not the
 * same entry in both, in path order, and nothing else. */
static void
test_diff(void)
{
	static const char old[] = HEAD
	    "entries 7\nF 0644 1 1.000000000 " SHA
	    " a\nF 0644 1 1.000000000 " SHA
	    " b\nL 0777 1 1.000000000 - c x\nD 0755 0 1.000000000 - d\nF 0644 "
	    "1 1.000000000 " SHA " m\nF 0644 1 1.000000000 " SHA
	    " t\nL 0777 1 1.000000000 - u x\nend\n";
	static const char new[] = HEAD
	    "entries 7\nF 0644 1 1.000000000 " SHA
	    " a\nF 0644 1 1.000000000 " SHA2
	    " b\nD 0755 0 1.000000000 - c\nF 0644 1 1.000000000 " SHA
	    " e\nF 0600 1 1.000000000 " SHA " m\nF 0644 1 1.000000001 " SHA
	    " t\nL 0777 1 1.000000000 - u y\nend\n";
	struct manifest *a = NULL, *b = NULL;
	char err[512];

	CHECK(manifest_parse(old, strlen(old), &a, err, sizeof err) == 0);
	CHECK(manifest_parse(new, strlen(new), &b, err, sizeof err) == 0);
	if (a == NULL || b == NULL)
		return;
	diffs[0] = '\0';
	manifest_diff(a, b, note_diff, NULL);
	CHECK_STR(diffs, "~ b\n~ c\n- d\n+ e\n~ m\n~ t\n~ u\n");
	diffs[0] = '\0';
	manifest_diff(a, a, note_diff, NULL);
	CHECK_STR(diffs, "");
	diffs[0] = '\0';
	manifest_diff(b, a, note_diff, NULL);
	CHECK_STR(diffs, "~ b\n~ c\n+ d\n- e\n~ m\n~ t\n~ u\n");
	manifest_free(a);
	manifest_free(b);
}

static void
write_dated(const char *path, const char *content, time_t when)
{
	struct timespec ts[2] = { { when, 0 }, { when, 0 } };

	unit_write(path, content);
	CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

static int64_t
scan_hashed(const char *d, const char *cache, struct manifest **m)
{
	char err[512];
	int64_t hashed = -1;

	*m = NULL;
	CHECK(manifest_scan_cached(d, "db", "20261121T194108.123Z", cache, m,
		  &hashed, err, sizeof err) == 0);
	return hashed;
}

/* The hash cache: a file whose inode, size and mtime did not change is
 * not hashed again; a new file that got a deleted one's inode number,
 * with the same size and mtime (a copy with mtimes kept), is. */
static void
test_hash_cache(void)
{
	char d[4200], f[4300], cache[4300];
	struct manifest *m;
	struct stat st;
	time_t old = time(NULL) - 3600;
	ino_t ino;
	int tries;

	snprintf(d, sizeof d, "%s/cached", dir);
	CHECK(mkdir(d, 0700) == 0);
	snprintf(f, sizeof f, "%s/f", d);
	snprintf(cache, sizeof cache, "%s/hash-cache", dir);
	write_dated(f, "aaaa", old);
	CHECK(scan_hashed(d, cache, &m) == 1);
	manifest_free(m);
	CHECK(scan_hashed(d, cache, &m) == 0);
	CHECK(m != NULL && m->n == 1 &&
	    strcmp(m->e[0].sha,
		"61be55a8e2f6b4e172338bddf184d6dbee29c98853e0a0485ecee7f27b9af0"
		"b4") == 0);
	manifest_free(m);
	/* f deleted, and a new file of the same size and mtime given its
	 * inode number: its birth time tells it from f. */
	CHECK(stat(f, &st) == 0);
	ino = st.st_ino;
	/* Files are made until one gets the inode number f had (the others
	 * take the free numbers before it), then it becomes f. */
	CHECK(unlink(f) == 0);
	for (tries = 0; tries < 200; tries++) {
		char g[4400];
		snprintf(g, sizeof g, "%s/g%d", dir, tries);
		write_dated(g, "bbbb", old);
		CHECK(stat(g, &st) == 0);
		if (st.st_ino == ino) {
			CHECK(rename(g, f) == 0);
			break;
		}
	}
	if (st.st_ino != ino) {
		fprintf(stderr,
		    "note: the filesystem gave no inode number again; the "
		    "reuse case is not checked here\n");
		return;
	}
	CHECK(scan_hashed(d, cache, &m) == 1);
	CHECK(m != NULL && m->n == 1 &&
	    strcmp(m->e[0].sha,
		"81cc5b17018674b401b42f35ba07bb79e211239c23bffe658da1577e3e6468"
		"77") == 0);
	manifest_free(m);
}

/* Owners: parsed, refused when malformed, and applied by name as root. */
static void
test_owners(void)
{
	const char *text = HEAD
	    "owners 4242:4343 0751\nuser 4242 nobody\nuser 4300 "
	    "no-such-user-here\ngroup 4343 nogroup\nentries 3\n"
	    "D 0755 4242:4343 0 1.000000000 - d\n"
	    "F 0640 4300:4343 0 2.000000000 " SHA " d/f\n"
	    "L 0777 12345:4343 1 3.000000000 - l x\nend\n";
	struct manifest *m = NULL, *m2 = NULL;
	struct evbuffer *b = evbuffer_new();
	struct passwd *pw = getpwnam("nobody");
	struct group *gr = getgrnam("nogroup");
	struct stat st;
	char err[512], p[4400], d[4200];
	int fd;

	CHECK(manifest_parse(text, strlen(text), &m, err, sizeof err) == 0);
	if (m == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(m->owners && m->root_uid == 4242 && m->root_gid == 4343 &&
	    m->root_mode == 0751);
	CHECK(m->nusers == 2 && m->ngroups == 1);
	CHECK(m->e[1].uid == 4300 && m->e[1].gid == 4343);
	manifest_write(m, b);
	evbuffer_add(b, "", 1);
	CHECK_STR((const char *)evbuffer_pullup(b, -1), text);
	/* An owner change is a change. */
	CHECK(manifest_parse(text, strlen(text), &m2, err, sizeof err) == 0);
	if (m2 != NULL) {
		m2->e[1].uid = 4242;
		CHECK(!manifest_same(&m->e[1], &m2->e[1]));
		manifest_free(m2);
	}

	/* Applied as root: nobody by name, an unknown name or a nameless
	 * id as the id itself; the top directory's mode and owners. */
	snprintf(d, sizeof d, "%s/owned", dir);
	CHECK(mkdir(d, 0700) == 0);
	snprintf(p, sizeof p, "%s/d", d);
	CHECK(mkdir(p, 0700) == 0);
	snprintf(p, sizeof p, "%s/d/f", d);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof p, "%s/l", d);
	CHECK(symlink("x", p) == 0);
	fd = open(d, O_RDONLY | O_DIRECTORY);
	CHECK(treemeta_apply(fd, m, TREEMETA_OWNERS | TREEMETA_TOP, err,
		  sizeof err) == 0);
	close(fd);
	if (getuid() == 0 && pw != NULL && gr != NULL) {
		snprintf(p, sizeof p, "%s/d", d);
		CHECK(stat(p, &st) == 0 && st.st_uid == pw->pw_uid &&
		    st.st_gid == gr->gr_gid && (st.st_mode & 07777) == 0755);
		snprintf(p, sizeof p, "%s/d/f", d);
		CHECK(stat(p, &st) == 0 && st.st_uid == 4300 &&
		    (st.st_mode & 07777) == 0640);
		snprintf(p, sizeof p, "%s/l", d);
		CHECK(lstat(p, &st) == 0 && st.st_uid == 12345);
		CHECK(stat(d, &st) == 0 && st.st_uid == pw->pw_uid &&
		    (st.st_mode & 07777) == 0751);
	}
	manifest_free(m);
	evbuffer_free(b);

	expect_bad(HEAD "owners 1:2 0755\nentries 1\n"
			"F 0644 0 1.000000000 " SHA " a\nend\n",
	    "wrong number of fields");
	expect_bad(HEAD "owners 1:2 0755\nentries 1\n"
			"F 0644 1:x 0 1.000000000 " SHA " a\nend\n",
	    "bad owners");
	expect_bad(HEAD "owners 1:4294967295 0755\nentries 0\nend\n",
	    "bad owners of the top");
	expect_bad(HEAD "owners 1:2 9755\nentries 0\nend\n", "bad mode of");
	expect_bad(HEAD "owners 1:2 0755\nuser 5 a\nuser 5 b\nentries "
			"0\nend\n",
	    "not increasing");
	expect_bad(HEAD "owners 1:2 0755\nuser 5 -a\nentries 0\nend\n",
	    "bad name");
	expect_bad(HEAD "owners 1:2 0755\nuser 5 "
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nentries 0\nend\n",
	    "bad name");
	expect_bad(HEAD "user 5 a\nentries 0\nend\n", "expected \"entries");
	expect_bad(HEAD "owners 1:2 0755\ngroup 5 a\nuser 6 b\nentries "
			"0\nend\n",
	    "expected \"entries");
	expect_bad(HEAD "owners 1:2 0755\ngeneration 2\nentries 0\nend\n",
	    "expected \"entries");
	expect_bad(HEAD "entries 1\nF 0644 1:2 0 1.000000000 " SHA " a\nend\n",
	    "wrong number of fields");
}

int
main(void)
{
	struct manifest *m = NULL, *m2 = NULL;
	const struct ment *e;
	struct evbuffer *b = evbuffer_new(), *sig = evbuffer_new();
	char err[512], p[4300];
	size_t i;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	mk("a.txt", "hello\n");
	mk("empty", "");
	snprintf(p, sizeof p, "%s/sub", dir);
	mkdir(p, 0750);
	snprintf(p, sizeof p, "%s/sub/deeper", dir);
	mkdir(p, 0700);
	mk("sub/deeper/x", "x");
	mk("with space %25 and\nnewline", "odd");
	mk("caf\xc3\xa9", "utf8");
	snprintf(p, sizeof p, "%s/link", dir);
	CHECK(symlink("a.txt", p) == 0);
	snprintf(p, sizeof p, "%s/dangling", dir);
	CHECK(symlink("/nowhere/at all", p) == 0);
	snprintf(p, sizeof p, "%s/a.txt", dir);
	chmod(p, 0640);

	CHECK(manifest_scan(dir, "db", "20261121T194108.123Z", &m, err,
		  sizeof err) == 0);
	if (m == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	CHECK(m->n == 9);
	CHECK(m->files == 5);
	CHECK(m->bytes == 6 + 0 + 1 + 3 + 4);
	for (i = 1; i < m->n; i++)
		CHECK(strcmp(m->e[i - 1].path, m->e[i].path) < 0);
	e = manifest_find(m, "a.txt");
	CHECK(e != NULL && e->type == MENT_FILE && e->mode == 0640 &&
	    e->size == 6);
	CHECK(e != NULL &&
	    strcmp(e->sha,
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be"
		"03") == 0);
	e = manifest_find(m, "empty");
	CHECK(e != NULL && strcmp(e->sha, SHA) == 0 && e->size == 0);
	e = manifest_find(m, "sub");
	CHECK(e != NULL && e->type == MENT_DIR && e->mode == 0750);
	e = manifest_find(m, "link");
	CHECK(e != NULL && e->type == MENT_LINK &&
	    strcmp(e->target, "a.txt") == 0);
	e = manifest_find(m, "dangling");
	CHECK(e != NULL && e->type == MENT_LINK &&
	    strcmp(e->target, "/nowhere/at all") == 0);
	CHECK(manifest_find(m, "sub/deeper/x") != NULL);
	CHECK(manifest_find(m, "nope") == NULL);

	/* Text form round trip. */
	manifest_write(m, b);
	CHECK(manifest_parse((const char *)evbuffer_pullup(b, -1),
		  evbuffer_get_length(b), &m2, err, sizeof err) == 0);
	CHECK(m2 != NULL && m2->n == m->n);
	for (i = 0; m2 != NULL && i < m->n; i++) {
		CHECK_STR(m2->e[i].path, m->e[i].path);
		CHECK(m2->e[i].type == m->e[i].type);
		CHECK(m2->e[i].mode == m->e[i].mode);
		CHECK(m2->e[i].size == m->e[i].size);
		CHECK(m2->e[i].mtime_sec == m->e[i].mtime_sec);
		CHECK(m2->e[i].mtime_nsec == m->e[i].mtime_nsec);
		CHECK_STR(m2->e[i].sha, m->e[i].sha);
		CHECK(m2->e[i].uid == m->e[i].uid);
		CHECK(m2->e[i].gid == m->e[i].gid);
		if (m->e[i].type == MENT_LINK)
			CHECK_STR(m2->e[i].target, m->e[i].target);
	}
	CHECK(m2 != NULL && strcmp(m2->version, "20261121T194108.123Z") == 0);
	/* Owners: the scan's, the top directory's, the names of the ids. */
	CHECK(m->owners && m2 != NULL && m2->owners);
	CHECK(m2 != NULL && m2->root_uid == getuid() &&
	    m2->root_gid == getgid() && m2->root_mode == 0700);
	CHECK(
	    m2 != NULL && m2->nusers == m->nusers && m2->ngroups == m->ngroups);
	e = manifest_find(m, "a.txt");
	CHECK(e != NULL && e->uid == getuid() && e->gid == getgid());
	if (getuid() == 0)
		CHECK(m->nusers == 1 && strcmp(m->users[0].name, "root") == 0);
	test_owners();

	/* backup.signature, as sha256sum prints it. */
	manifest_signature(m, sig, 0);
	evbuffer_add(sig, "", 1);
	CHECK_CONTAINS((const char *)evbuffer_pullup(sig, -1),
	    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  "
	    "./a.txt\n");
	CHECK_CONTAINS((const char *)evbuffer_pullup(sig, -1),
	    "  ./with space %25 and\\nnewline\n");
	{
		/* Its first line only. */
		struct evbuffer *one = evbuffer_new();
		manifest_signature(m, one, 1);
		CHECK(evbuffer_get_length(one) == 64 + 2 + 2 + 5 + 1);
		evbuffer_free(one);
	}

	test_diff();
	test_hash_cache();

	/* The parser refuses what it must. */
	expect_bad("nonsense\n", "not an understudy manifest");
	expect_bad(HEAD "entries 0\n", "truncated");
	expect_bad(HEAD "entries 0\nend\nextra\n", "data after");
	/* Counts and sums from the wire are bounded. */
	expect_bad(HEAD "entries 99999999\nend\n", "more than the");
	expect_bad(HEAD "entries 3\nF 0644 4611686018427387903 1.000000000 " SHA
			" a\nF 0644 4611686018427387903 1.000000000 " SHA
			" b\nF 0644 4611686018427387903 1.000000000 " SHA
			" c\nend\n",
	    "past 2^63");
	expect_bad(HEAD "entries 0\nend", "no newline");
	expect_bad(HEAD "entries 2\nF 0644 0 1.000000000 " SHA " a\nend\n",
	    "header says 2");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA " ../a\nend\n",
	    "path refused");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA " /etc/x\nend\n",
	    "absolute");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA " a%00b\nend\n",
	    "encoding");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA " a/./b\nend\n",
	    "path refused");
	expect_bad(HEAD "entries 2\nF 0644 0 1.000000000 " SHA
			" b\nF 0644 0 1.000000000 " SHA " a\nend\n",
	    "not sorted");
	expect_bad(HEAD "entries 2\nF 0644 0 1.000000000 " SHA
			" a\nF 0644 0 1.000000000 " SHA " a\nend\n",
	    "repeated");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA " d/a\nend\n",
	    "not a directory");
	expect_bad(HEAD
	    "entries 2\nL 0777 1 1.000000000 - d x\nF 0644 0 1.000000000 " SHA
	    " d/a\nend\n",
	    "not a directory");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 XYZ a\nend\n",
	    "SHA-256");
	expect_bad(HEAD "entries 1\nF 9644 0 1.000000000 " SHA " a\nend\n",
	    "mode");
	expect_bad(HEAD "entries 1\nF 0644 -1 1.000000000 " SHA " a\nend\n",
	    "size");
	expect_bad(HEAD "entries 1\nF 0644 0 1.0 " SHA " a\nend\n", "mtime");
	expect_bad(HEAD "entries 1\nD 0755 0 1.000000000 " SHA " a\nend\n",
	    "only files");
	expect_bad(HEAD "entries 1\nL 0777 5 1.000000000 - a xy\nend\n",
	    "symlink size");
	expect_bad(HEAD "entries 1\nQ 0644 0 1.000000000 - a\nend\n",
	    "unknown entry type");
	expect_bad(HEAD "entries 1\nF 0644 0 1.000000000 " SHA
			" a extra\nend\n",
	    "wrong number of fields");
	{
		char nul[] = HEAD "entries 0\nend\n";
		nul[3] = '\0';
		struct manifest *mm = NULL;
		CHECK(manifest_parse(nul, sizeof nul - 1, &mm, err,
			  sizeof err) != 0);
		CHECK_CONTAINS(err, "NUL");
	}

	/* Special files are refused with the path named. */
	snprintf(p, sizeof p, "%s/fifo", dir);
	CHECK(mkfifo(p, 0600) == 0);
	manifest_free(m2);
	m2 = NULL;
	CHECK(manifest_scan(dir, "db", "20261121T194108.123Z", &m2, err,
		  sizeof err) != 0);
	CHECK_CONTAINS(err, "fifo: unsupported file type");

	manifest_free(m);
	evbuffer_free(b);
	evbuffer_free(sig);
	fs_rm_rf(dir);
	return unit_done();
}
