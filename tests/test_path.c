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
	fs_rm_rf(dir);
	CHECK(access(dir, F_OK) != 0);
	return unit_done();
}
