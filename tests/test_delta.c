#include <arpa/inet.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <librsync.h>

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

/* What librsync's own delta of new against the signature sig of old
 * would weigh: the yardstick for ours. */
static long
librsync_delta_size(struct evbuffer *sig)
{
	char p[4300];
	rs_signature_t *sums = NULL;
	FILE *sf, *nf, *df;
	long n = -1;

	snprintf(p, sizeof p, "%s/sig", dir);
	sf = fopen(p, "w+");
	fwrite(evbuffer_pullup(sig, -1), 1, evbuffer_get_length(sig), sf);
	rewind(sf);
	snprintf(p, sizeof p, "%s/new", dir);
	nf = fopen(p, "r");
	snprintf(p, sizeof p, "%s/rsdelta", dir);
	df = fopen(p, "w+");
	if (rs_loadsig_file(sf, &sums, NULL) == RS_DONE &&
	    rs_build_hash_table(sums) == RS_DONE &&
	    rs_delta_file(sums, nf, df, NULL) == RS_DONE) {
		fflush(df);
		n = ftell(df);
	}
	if (sums != NULL)
		rs_free_sumset(sums);
	fclose(sf);
	fclose(nf);
	fclose(df);
	return n;
}

/* sig(old) -> delta(new) -> patch(old) must give new; returns the delta's
 * size.  The delta is made by ours (common/fdelta.c), not librsync, and
 * is no larger than librsync's own (a block's worth where matches
 * differ). */
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
	long theirs;

	if (block == 0)
		block = delta_block_default(fsize(oldfd));
	rc = delta_signature(oldfd, block, delta_sink_evbuffer, sig, err,
	    sizeof err);
	CHECK(rc == 0);
	{
		/* Of the kind fdelta_run() does (0 bytes of the file). */
		struct evbuffer *none = evbuffer_new();
		lseek(newfd, 0, SEEK_END);
		CHECK(fdelta_run(evbuffer_pullup(sig, -1),
			  evbuffer_get_length(sig), newfd, delta_sink_evbuffer,
			  none, err, sizeof err) == 0);
		lseek(newfd, 0, SEEK_SET);
		evbuffer_free(none);
	}
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
	theirs = librsync_delta_size(sig);
	CHECK(theirs > 0 && st.st_size <= theirs + (off_t)block + 64);
	if (st.st_size > theirs + (off_t)block + 64)
		fprintf(stderr,
		    "\"%s\" (block %zu): delta of %lld bytes, "
		    "librsync's %ld\n",
		    what, block, (long long)st.st_size, theirs);
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

/* The size of the last delta roundtrip_block() made. */
static long
delta_size(void)
{
	int fd = openr("delta");
	long n = (long)fsize(fd);

	close(fd);
	return n;
}

/* A signature by hand: magic, block, strong length, then n entries whose
 * weak sums are all weak and whose strong sums differ. */
static void
hostile_sig(struct evbuffer *sig, uint32_t magic, uint32_t block,
    uint32_t strong, size_t n, uint32_t weak)
{
	unsigned char e[4 + 64];
	uint32_t head[3] = { htonl(magic), htonl(block), htonl(strong) };
	size_t i;

	evbuffer_add(sig, head, sizeof head);
	memset(e, 0, sizeof e);
	for (i = 0; i < n; i++) {
		e[0] = (unsigned char)(weak >> 24);
		e[1] = (unsigned char)(weak >> 16);
		e[2] = (unsigned char)(weak >> 8);
		e[3] = (unsigned char)weak;
		memcpy(e + 4, &i, sizeof i);
		evbuffer_add(sig, e, 4 + strong);
	}
}

/* A file of size zeros against a signature of n blocks of block bytes
 * whose weak sums all match the zeros' (RabinKarp of block zero bytes:
 * RK_MULT^block) and whose strong sums do not: the delta ends, all
 * literal, and patches back to the file. */
static void
hostile_zeros(off_t size, uint32_t block, size_t n)
{
	struct evbuffer *sig = evbuffer_new();
	char err[512];
	uint32_t w = 1, k;
	int fd, dfd, ofd, outfd;

	for (k = 0; k < block; k++)
		w *= 0x08104225u;
	fd = openw("new");
	CHECK(ftruncate(fd, size) == 0);
	close(fd);
	fd = openr("new");
	dfd = openw("delta");
	hostile_sig(sig, DELTA_SIG_MAGIC_RK_BLAKE2, block, 8, n, w);
	CHECK(fdelta_run(evbuffer_pullup(sig, -1), evbuffer_get_length(sig), fd,
		  delta_sink_fd, &dfd, err, sizeof err) == 0);
	CHECK(fsize(dfd) >= size);
	ofd = openw("old");
	outfd = openw("out");
	lseek(dfd, 0, SEEK_SET);
	CHECK(delta_patch_fd(ofd, dfd, delta_sink_fd, &outfd, err,
		  sizeof err) == 0);
	CHECK(fsize(outfd) == size);
	evbuffer_free(sig);
	close(fd);
	close(dfd);
	close(ofd);
	close(outfd);
}

static void
fdelta_cases(void)
{
	static const size_t bl[] = { 1, 7, 256, 1024, 4096 };
	struct evbuffer *sig;
	char err[512];
	size_t i;
	long n;
	int fd, rc;

	for (i = 0; i < sizeof bl / sizeof bl[0]; i++) {
		/* 200 KB, not a whole number of blocks: the last one is
		 * short. */
		fd = openw("old");
		put_random(fd, 200003, 11);
		close(fd);
		fd = openw("new");
		put_random(fd, 200003, 11);
		close(fd);
		/* Unchanged: one copy, the short last block included. */
		roundtrip_block("unchanged", bl[i]);
		n = delta_size();
		CHECK(n <= 4 + 17 + 1);
		/* Edited inside, a stretch cut out, one put in, the end
		 * cut short. */
		fd = openw("new");
		put_random(fd, 50000, 11);
		put_random(fd, 333, 12);
		close(fd);
		fd = openr("old");
		{
			static char buf[200003];
			char np[4300];
			int nfd;

			snprintf(np, sizeof np, "%s/new", dir);
			nfd = open(np, O_WRONLY | O_APPEND);

			CHECK(pread(fd, buf, sizeof buf, 0) == 200003);
			buf[120000] ^= 1;
			fs_write_all(nfd, buf + 50333, 70000);
			fs_write_all(nfd, "put in", 6);
			fs_write_all(nfd, buf + 130000, 60000);
			close(nfd);
		}
		close(fd);
		roundtrip_block("edited", bl[i]);
		n = delta_size();
		CHECK(bl[i] < 256 || n < 333 + 6 + 3 * (long)bl[i] + 256);
		if (bl[i] >= 256 && n >= 333 + 6 + 3 * (long)bl[i] + 256)
			fprintf(stderr, "edited, block %zu: delta %ld\n", bl[i],
			    n);
	}
	/* Equal blocks (zeros) and a file that grew: copies of the first. */
	fd = openw("old");
	CHECK(ftruncate(fd, 1 << 20) == 0);
	close(fd);
	fd = openw("new");
	CHECK(ftruncate(fd, 3 << 20) == 0);
	close(fd);
	roundtrip_block("zeros", 1024);
	n = delta_size();
	CHECK(n < 3 * 1024 * 8);
	/* Empty files either side. */
	fd = openw("old");
	close(fd);
	fd = openw("new");
	put_random(fd, 5000, 13);
	close(fd);
	roundtrip_block("from empty", 256);
	fd = openw("old");
	put_random(fd, 5000, 13);
	close(fd);
	fd = openw("new");
	close(fd);
	roundtrip_block("to empty", 256);

	/* Signatures from a peer that lies. */
	fd = openr("new");
	sig = evbuffer_new();
	hostile_sig(sig, DELTA_SIG_MAGIC_RK_BLAKE2, 1024, 8, 3, 1);
	evbuffer_add(sig, "12345", 5); /* entries no longer whole */
	rc = fdelta_run(evbuffer_pullup(sig, -1), evbuffer_get_length(sig), fd,
	    delta_sink_fd, &fd, err, sizeof err);
	CHECK(rc == -1);
	evbuffer_free(sig);
	sig = evbuffer_new();
	hostile_sig(sig, DELTA_SIG_MAGIC_RK_BLAKE2, 0, 8, 3, 1);
	CHECK(fdelta_run(evbuffer_pullup(sig, -1), evbuffer_get_length(sig), fd,
		  delta_sink_fd, &fd, err, sizeof err) == -1);
	CHECK_CONTAINS(err, "block of 0 bytes");
	evbuffer_free(sig);
	sig = evbuffer_new();
	hostile_sig(sig, DELTA_SIG_MAGIC_RK_BLAKE2, 1024, 33, 3, 1);
	CHECK(fdelta_run(evbuffer_pullup(sig, -1), evbuffer_get_length(sig), fd,
		  delta_sink_fd, &fd, err, sizeof err) == -1);
	evbuffer_free(sig);
	/* Another kind (librsync's older rollsum one) is librsync's. */
	sig = evbuffer_new();
	hostile_sig(sig, 0x72730137u, 1024, 8, 3, 1);
	CHECK(fdelta_run(evbuffer_pullup(sig, -1), evbuffer_get_length(sig), fd,
		  delta_sink_fd, &fd, err, sizeof err) == 1);
	evbuffer_free(sig);
	close(fd);
	/* 2^18 blocks whose weak sums all equal the file's every window
	 * (zeros: RabinKarp of 256 zero bytes): the table's probes are
	 * bounded, so this ends at once, all literal, and patches. */
	hostile_zeros(1 << 20, 256, DELTA_MAX_BLOCKS);
	/* The same with blocks of 1 MiB over 8 MiB of zeros: a strong sum
	 * of a MiB at every byte, but for the budget on those made in vain
	 * (without it, hours). */
	hostile_zeros(8 << 20, 1 << 20, 64);
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
	fdelta_cases();

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
