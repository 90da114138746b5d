#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "unit.h"

int
main(void)
{
	char dir[4096], out[4200], p[4400], longp[5000];
	int root, fd;

	log_init("test", LOG_LEVEL_WARN);
	CHECK(path_check("a") == NULL);
	CHECK(path_check("a/b/c.txt") == NULL);
	CHECK(path_check("..a/b..") == NULL);
	CHECK(path_check(".hidden") == NULL);
	CHECK(path_check("") != NULL);
	CHECK(path_check("/etc/passwd") != NULL);
	CHECK(path_check("..") != NULL);
	CHECK(path_check("a/../b") != NULL);
	CHECK(path_check("a/./b") != NULL);
	CHECK(path_check("a//b") != NULL);
	CHECK(path_check("a/") != NULL);
	CHECK(path_check("./a") != NULL);
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	CHECK(path_check(longp) != NULL);
	memset(longp, 'a', 300);
	longp[300] = '\0';
	CHECK(path_check(longp) != NULL);

	/* Opening beneath a root never follows a symlink out of it. */
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	snprintf(out, sizeof out, "%s/outside", dir);
	mkdir(out, 0700);
	snprintf(p, sizeof p, "%s/secret", out);
	unit_write(p, "secret");
	snprintf(p, sizeof p, "%s/root", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/root/sub", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/root/sub/ok", dir);
	unit_write(p, "ok");
	snprintf(p, sizeof p, "%s/root/escape", dir);
	CHECK(symlink(out, p) == 0);
	snprintf(p, sizeof p, "%s/root/file-link", dir);
	CHECK(symlink("../outside/secret", p) == 0);
	snprintf(p, sizeof p, "%s/root", dir);
	root = open(p, O_RDONLY | O_DIRECTORY);

	fd = fs_open_beneath(root, "sub/ok", O_RDONLY, 0);
	CHECK(fd >= 0);
	close(fd);
	errno = 0;
	fd = fs_open_beneath(root, "escape/secret", O_RDONLY, 0);
	CHECK(fd < 0 && (errno == ELOOP || errno == ENOTDIR));
	fd = fs_open_beneath(root, "file-link", O_RDONLY, 0);
	CHECK(fd < 0 && errno == ELOOP);
	/* Writing through a symlink is refused too. */
	fd = fs_open_beneath(root, "escape/new", O_WRONLY | O_CREAT, 0600);
	CHECK(fd < 0);
	snprintf(p, sizeof p, "%s/new", out);
	CHECK(access(p, F_OK) != 0);
	fd = fs_open_beneath(root, "file-link", O_WRONLY | O_TRUNC, 0);
	CHECK(fd < 0);
	fd = fs_open_beneath(root, "../outside/secret", O_RDONLY, 0);
	CHECK(fd < 0 && errno == EINVAL);
	fd = fs_open_beneath(root, "/etc/passwd", O_RDONLY, 0);
	CHECK(fd < 0 && errno == EINVAL);
	close(root);
	snprintf(p, sizeof p, "%s/secret", out);
	{
		char *buf;
		size_t len;
		CHECK(fs_read_file(p, 100, &buf, &len) == 0 && len == 6 &&
		    memcmp(buf, "secret", 6) == 0);
		free(buf);
	}
	/* A copy with a flusher: the content whole, and the writeback of
	 * every byte started (in steps, and the rest at the end). */
	{
		struct fs_flusher *fl = fs_flusher_new();
		static char buf[1 << 20];
		int in, cp, i, same = 1;
		int64_t started;

		snprintf(p, sizeof p, "%s/big", dir);
		CHECK((in = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
		for (i = 0; i < 20; i++) {
			memset(buf, 'a' + i, sizeof buf);
			CHECK(fs_write_all(in, buf, sizeof buf - i) == 0);
		}
		CHECK(lseek(in, 0, SEEK_SET) == 0);
		snprintf(p, sizeof p, "%s/big.copy", dir);
		CHECK((cp = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
		CHECK(fs_copy_fd(in, cp, fl) == 0);
		started = fs_flusher_free(fl);
		CHECK(started == 20 * (int64_t)sizeof buf - 190);
		CHECK(lseek(cp, 0, SEEK_SET) == 0);
		for (i = 0; i < 20 && same; i++) {
			size_t want = sizeof buf - (size_t)i;
			char c = (char)('a' + i);
			same = read(cp, buf, want) == (ssize_t)want &&
			    buf[0] == c && buf[want - 1] == c;
		}
		CHECK(same && read(cp, buf, 1) == 0);
		/* fs_same_bytes: equal, one byte apart (past its first
		 * buffer), one shorter. */
		CHECK(
		    lseek(in, 0, SEEK_SET) == 0 && lseek(cp, 0, SEEK_SET) == 0);
		CHECK(fs_same_bytes(in, cp) == 1);
		CHECK(pwrite(cp, "z", 1, 5 << 20) == 1);
		CHECK(
		    lseek(in, 0, SEEK_SET) == 0 && lseek(cp, 0, SEEK_SET) == 0);
		CHECK(fs_same_bytes(in, cp) == 0);
		CHECK(pwrite(cp, "f", 1, 5 << 20) == 1 &&
		    ftruncate(cp, 20 * (off_t)sizeof buf - 191) == 0);
		CHECK(
		    lseek(in, 0, SEEK_SET) == 0 && lseek(cp, 0, SEEK_SET) == 0);
		CHECK(fs_same_bytes(in, cp) == 0);
		CHECK(
		    lseek(in, 0, SEEK_SET) == 0 && lseek(cp, 0, SEEK_SET) == 0);
		CHECK(fs_same_bytes(cp, in) == 0);
		close(in);
		close(cp);
		/* Without one, the same copy, nothing started. */
		CHECK(fs_flusher_free(NULL) == 0);
	}
	{
		/* A walk's parents: kept open while paths share one, never
		 * through a symlink, never for a bad path. */
		struct fs_parent c = FS_PARENT_INIT;
		const char *base = NULL;
		struct stat a, b;
		int d1, d2, d3, other;

		snprintf(p, sizeof p, "%s/root", dir);
		root = open(p, O_RDONLY | O_DIRECTORY);
		d1 = fs_parent_open(&c, root, "sub/ok", &base);
		CHECK(d1 >= 0 && strcmp(base, "ok") == 0);
		CHECK(fstat(d1, &a) == 0);
		d2 = fs_parent_open(&c, root, "sub/other", &base);
		CHECK(d2 == d1 && strcmp(base, "other") == 0);
		d3 = fs_parent_open(&c, root, "top", &base);
		CHECK(d3 >= 0 && strcmp(base, "top") == 0);
		CHECK(fstat(d3, &b) == 0 && b.st_ino != a.st_ino);
		CHECK(fs_parent_open(&c, root, "sub/../sub/ok", &base) < 0 &&
		    errno == EINVAL);
		CHECK(fs_parent_open(&c, root, "sub/x/..", &base) < 0);
		CHECK(fs_parent_open(&c, root, "escape/secret", &base) < 0);
		d1 = fs_parent_open(&c, root, "sub/ok", &base);
		CHECK(d1 >= 0 && fs_parent_open(&c, root, "sub/..", &base) < 0);
		/* Beneath another root, the same path is that root's. */
		snprintf(p, sizeof p, "%s/root/sub", dir);
		other = open(p, O_RDONLY | O_DIRECTORY);
		CHECK(
		    fstat(fs_parent_open(&c, root, "sub/ok", &base), &a) == 0);
		CHECK(fs_parent_open(&c, other, "sub/ok", &base) < 0 &&
		    errno == ENOENT);
		close(other);
		fs_parent_close(&c);
		CHECK(c.fd == -1);
		close(root);
	}
	fs_rm_rf(dir);
	CHECK(access(dir, F_OK) != 0);
	return unit_done();
}
