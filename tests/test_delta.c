#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "delta.h"
#include "fsutil.h"
#include "hash.h"
#include "log.h"
#include "unit.h"

static char dir[4096];
/* Write len pseudo-random bytes (seeded) to fd. */
static void
put_random(int fd, size_t len, uint64_t seed)
{
	static unsigned char buf[1 << 16];
	size_t i, n;

	unit_rng = seed;
	while (len > 0) {
		n = len < sizeof buf ? len : sizeof buf;
		for (i = 0; i < n; i += 8) {
			uint64_t r = unit_rand();
			memcpy(buf + i, &r, n - i < 8 ? n - i : 8);
		}
		fs_write_all(fd, buf, n);
		len -= n;
	}
}

static int
openw(const char *name)
{
	char p[4300];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
}

static int
openr(const char *name)
{
	char p[4300];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, O_RDONLY);
}

static void
file_hash(const char *name, char hex[HASH_HEX_SIZE])
{
	int fd = openr(name);

	hash_fd(fd, hex);
	close(fd);
}

static off_t
fsize(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_size : -1;
}

/* The reverse delta derived from the forward one at dfd must turn new back
 * into old, and be no larger than old plus commands. */
static void
reverse_of(const char *what, int dfd)
{
	char err[512], a[HASH_HEX_SIZE], b[HASH_HEX_SIZE];
	int oldfd = openr("old"), newfd = openr("new"), rfd = openw("rdelta");
	int outfd = openw("back"), rc;

	lseek(dfd, 0, SEEK_SET);
	rc = delta_reverse(dfd, oldfd, fsize(oldfd), fsize(newfd),
	    delta_sink_fd, &rfd, err, sizeof err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "reverse \"%s\": %s\n", what, err);
	lseek(rfd, 0, SEEK_SET);
	rc = delta_patch_fd(newfd, rfd, delta_sink_fd, &outfd, err, sizeof err);
	CHECK(rc == 0);
	file_hash("old", a);
	file_hash("back", b);
	CHECK(strcmp(a, b) == 0);
	if (strcmp(a, b) != 0)
		fprintf(stderr, "reverse \"%s\" does not give old back\n",
		    what);
	CHECK(fsize(rfd) <= fsize(oldfd) + 64 + fsize(oldfd) / 8);
	close(oldfd);
	close(newfd);
	close(rfd);
	close(outfd);
}

/* sig(old) -> delta(new) -> patch(old) must give new; returns the delta's
 * size. */
static long
roundtrip_block(const char *what, size_t block)
{
	struct evbuffer *sig = evbuffer_new();
	char err[512], a[HASH_HEX_SIZE], b[HASH_HEX_SIZE];
	int oldfd = openr("old"), newfd = openr("new"), dfd = openw("delta");
	int outfd = openw("out"), rc;
	struct delta_patch *dp;
	struct stat st;
	unsigned char buf[7919];
	ssize_t n;
	size_t chunk = 1;

	rc = delta_signature(oldfd, block, delta_sink_evbuffer, sig, err,
	    sizeof err);
	CHECK(rc == 0);
	{
		/* Made in two halves by two threads, it is the same; and
		 * made on one thread whatever the size (the signatures the
		 * pull-backup makes ahead) too. */
		struct evbuffer *two = evbuffer_new(), *one = evbuffer_new();
		delta_split_min = 1;
		CHECK(delta_signature(oldfd, block, delta_sink_evbuffer, two,
			  err, sizeof err) == 0);
		CHECK(delta_signature_alone(oldfd, block, delta_sink_evbuffer,
			  one, err, sizeof err) == 0);
		delta_split_min = DELTA_SPLIT_MIN;
		CHECK(evbuffer_get_length(two) == evbuffer_get_length(sig) &&
		    memcmp(evbuffer_pullup(two, -1), evbuffer_pullup(sig, -1),
			evbuffer_get_length(sig)) == 0);
		CHECK(evbuffer_get_length(one) == evbuffer_get_length(sig) &&
		    memcmp(evbuffer_pullup(one, -1), evbuffer_pullup(sig, -1),
			evbuffer_get_length(sig)) == 0);
		evbuffer_free(two);
		evbuffer_free(one);
	}
	rc = delta_compute(evbuffer_pullup(sig, -1), evbuffer_get_length(sig),
	    newfd, delta_sink_fd, &dfd, err, sizeof err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", what, err);
	lseek(dfd, 0, SEEK_SET);
	/* Feed the patch in uneven pieces, as the network would. */
	dp = delta_patch_new(oldfd, delta_sink_fd, &outfd);
	while ((n = read(dfd, buf, chunk)) > 0) {
		CHECK(
		    delta_patch_feed(dp, buf, (size_t)n, err, sizeof err) == 0);
		chunk = chunk * 3 % sizeof buf + 1;
	}
	CHECK(delta_patch_finish(dp, err, sizeof err) == 0);
	delta_patch_free(dp);
	file_hash("new", a);
	file_hash("out", b);
	CHECK(strcmp(a, b) == 0);
	if (strcmp(a, b) != 0)
		fprintf(stderr, "round trip \"%s\" differs\n", what);
	reverse_of(what, dfd);
	fstat(dfd, &st);
	{
		/* In halves, by two threads: it patches to the same file, and
		 * where the halves meet costs at most a block's literal. */
		int d2 = openw("delta2"), spill = openw("spill");
		int o2 = openw("out2");
		struct stat st2;
		delta_split_min = 1;
		rc = delta_compute_fd(evbuffer_pullup(sig, -1),
		    evbuffer_get_length(sig), newfd, d2, spill, err,
		    sizeof err);
		delta_split_min = DELTA_SPLIT_MIN;
		CHECK(rc == 0);
		if (rc != 0)
			fprintf(stderr, "%s in halves: %s\n", what, err);
		lseek(d2, 0, SEEK_SET);
		CHECK(delta_patch_fd(oldfd, d2, delta_sink_fd, &o2, err,
			  sizeof err) == 0);
		file_hash("out2", b);
		CHECK(strcmp(a, b) == 0);
		fstat(d2, &st2);
		if (block == 0)
			block = delta_block_default(fsize(oldfd));
		CHECK(st2.st_size <= st.st_size + (off_t)block + 16);
		reverse_of(what, d2);
		close(d2);
		close(spill);
		close(o2);
	}
	close(oldfd);
	close(newfd);
	close(dfd);
	close(outfd);
	/* What crosses the wire: the signature and the delta. */
	st.st_size += (off_t)evbuffer_get_length(sig);
	evbuffer_free(sig);
	return (long)st.st_size;
}

static long
roundtrip(const char *what)
{
	return roundtrip_block(what, 0);
}

/* 4 MiB of 100-byte lines; every line whose number is picked by seed
 * (1 in 100) differs. */
static void
put_lines(const char *name, int seed)
{
	char line[101];
	int fd = openw(name), i;

	for (i = 0; i < 4 * 10486; i++) {
		snprintf(line, sizeof line, "%-99d\n",
		    (i * 7919) % 100003 +
			(seed != 0 && (i * 31 + seed) % 100 == 0 ? 1000000 :
								   0));
		fs_write_all(fd, line, 100);
	}
	close(fd);
}

/* Block sizes: the choice from a file's history. */
static void
blocks(void)
{
	size_t b, b0;
	long cold, warm;
	int ok = 1;

	CHECK(delta_block_default(256 << 20) == DELTA_BLOCK_COLD);
	/* Memory: never more than DELTA_MAX_BLOCKS blocks. */
	CHECK(delta_block_default(10ll << 30) == 65536);
	CHECK(delta_block_choose(10ll << 30, 65536, 0.9) >= 65536);
	CHECK(delta_block_choose(1ll << 40, 65536, 0.9) >= (1u << 22));
	CHECK(delta_block_choose(1ll << 30, 256, 0.0) >= 4096);
	CHECK(delta_block_default(10000) <= DELTA_BLOCK_COLD);
	CHECK(delta_block_default(10000) >= 128);
	/* 1% of 100-byte lines changed: 17% of 2 KiB blocks were dirty;
	 * 512 bytes costs least (literal data against signature). */
	CHECK(delta_block_choose(64 << 20, 2048, 0.17) == 512);
	CHECK(delta_block_choose(256 << 20, 2048, 0.17) == 1024);
	/* Rare changes: larger blocks. */
	CHECK(delta_block_choose(256 << 20, 2048, 0.001) > 2048);
	/* Every block dirty: smaller. */
	CHECK(delta_block_choose(256 << 20, 2048, 1.0) < 2048);
	CHECK(delta_block_choose(1 << 20, 65536, 0.0) == 65536);
	for (b0 = DELTA_BLOCK_MIN; b0 <= DELTA_BLOCK_MAX; b0 *= 2) {
		b = delta_block_choose(1 << 30, b0, 0.5);
		ok &= b >= DELTA_BLOCK_MIN && b <= DELTA_BLOCK_MAX &&
		    (b & (b - 1)) == 0;
	}
	CHECK(ok);

	/* On real data: the same scattered change again, with the block
	 * chosen from what the first delta saw, moves far fewer bytes. */
	put_lines("old", 0);
	put_lines("new", 1);
	cold = roundtrip_block("scattered, cold", 0);
	b = delta_block_choose(4 * 10486 * 100, DELTA_BLOCK_COLD,
	    (double)cold / (4 * 10486 * 100));
	warm = roundtrip_block("scattered, warm", b);
	fprintf(stderr,
	    "scattered 1%% change of 4 MiB: %ld bytes with %u byte blocks, %ld "
	    "with %zu\n",
	    cold, DELTA_BLOCK_COLD, warm, b);
	CHECK(b < DELTA_BLOCK_COLD);
	CHECK(warm * 2 < cold);
}

static void
pair(const char *oldtext, size_t oldlen, const char *newtext, size_t newlen,
    const char *what)
{
	int fd = openw("old");

	fs_write_all(fd, oldtext, oldlen);
	close(fd);
	fd = openw("new");
	fs_write_all(fd, newtext, newlen);
	close(fd);
	roundtrip(what);
}

int
main(int argc, char **argv)
{
	char err[512];
	int fd, big = argc > 1 && strcmp(argv[1], "--big") == 0;
	long dsize;

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());

	pair("", 0, "", 0, "empty to empty");
	pair("", 0, "x", 1, "empty to one byte");
	pair("x", 1, "", 0, "one byte to empty");
	pair("x", 1, "y", 1, "one byte changed");

	blocks();

	/* 1 MiB random, then appended, truncated, shifted. */
	fd = openw("old");
	put_random(fd, 1 << 20, 1);
	close(fd);
	fd = openw("new");
	put_random(fd, 1 << 20, 2);
	close(fd);
	roundtrip("unrelated random");
	fd = openw("new");
	put_random(fd, 1 << 20, 1);
	put_random(fd, 12345, 3);
	close(fd);
	dsize = roundtrip("appended");
	CHECK(dsize < 64 * 1024);
	fd = openw("new");
	put_random(fd, (1 << 20) - 100000, 1);
	close(fd);
	dsize = roundtrip("truncated");
	CHECK(dsize < 64 * 1024);
	fd = openw("new");
	fs_write_all(fd, "shifted by a few bytes", 22);
	put_random(fd, 1 << 20, 1);
	close(fd);
	dsize = roundtrip("shifted");
	CHECK(dsize < 64 * 1024);

	/* A corrupt or truncated delta is an error, never a wrong file. */
	{
		struct delta_patch *dp;
		int oldfd = openr("old"), outfd = openw("out");
		dp = delta_patch_new(oldfd, delta_sink_fd, &outfd);
		int rc = delta_patch_feed(dp, "\x72\x73\x02\x36garbage", 11,
		    err, sizeof err);
		if (rc == 0)
			rc = delta_patch_finish(dp, err, sizeof err);
		CHECK(rc != 0);
		delta_patch_free(dp);
		dp = delta_patch_new(oldfd, delta_sink_fd, &outfd);
		CHECK(delta_patch_feed(dp, "\x72\x73\x02\x36", 4, err,
			  sizeof err) == 0);
		CHECK(delta_patch_finish(dp, err, sizeof err) != 0);
		delta_patch_free(dp);
		close(oldfd);
		close(outfd);
	}
	/* A bad signature is refused. */
	fd = openr("new");
	CHECK(delta_compute("nonsense", 8, fd, delta_sink_fd, &fd, err,
		  sizeof err) != 0);
	CHECK_CONTAINS(err, "signature");
	close(fd);

	/* Over 100 MB, changed in the middle, shifted and appended. */
	if (big) {
		fd = openw("old");
		put_random(fd, 110u << 20, 7);
		close(fd);
		fd = openw("new");
		fs_write_all(fd, "inserted at the front", 21);
		put_random(fd, 50u << 20, 7);
		put_random(fd, 1u << 20, 8);
		put_random(fd, 60u << 20, 7);
		put_random(fd, 1u << 20, 9);
		close(fd);
		dsize = roundtrip("110 MB");
		fprintf(stderr, "110 MB file, 2 MB changed: delta %ld bytes\n",
		    dsize);
		CHECK(dsize < 8 << 20);
	}
	fs_rm_rf(dir);
	return unit_done();
}
