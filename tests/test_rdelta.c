/* Reverse deltas from forward ones (common/rdelta.c): forward deltas are
 * built here command by command, in every width librsync's format has,
 * copies in any order, overlapping and repeated, literal data between;
 * each must patch old into new, and its reverse new back into old.  Then
 * forward deltas that do not fit their files are refused. */
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
static int
openf(const char *name, int flags)
{
	char p[4300];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, flags | O_CLOEXEC, 0600);
}

static int
put_int(struct evbuffer *b, uint64_t v, int w)
{
	unsigned char x[8];
	int i;

	for (i = w - 1; i >= 0; i--, v >>= 8)
		x[i] = (unsigned char)v;
	return evbuffer_add(b, x, (size_t)w);
}

/* The smallest width index (0: 1 byte, 1: 2, 2: 4, 3: 8) for v, or wider
 * when force asks. */
static int
width_of(uint64_t v, int force)
{
	int w = v < 0x100 ? 0 : v < 0x10000 ? 1 : v < 0x100000000ull ? 2 : 3;

	return w > force ? w : force;
}

static uint64_t commands[256];

static void
copy_cmd(struct evbuffer *fwd, uint64_t off, uint64_t len, int force_off,
    int force_len)
{
	int wo = width_of(off, force_off), wl = width_of(len, force_len);
	unsigned char op = (unsigned char)(0x45 + wo * 4 + wl);

	commands[op]++;
	evbuffer_add(fwd, &op, 1);
	put_int(fwd, off, 1 << wo);
	put_int(fwd, len, 1 << wl);
}

static void
literal_cmd(struct evbuffer *fwd, const unsigned char *p, uint64_t len,
    int force)
{
	unsigned char op;
	int w;

	if (len <= 64 && !force) {
		op = (unsigned char)len;
		evbuffer_add(fwd, &op, 1);
	} else {
		w = width_of(len, force);
		op = (unsigned char)(0x41 + w);
		evbuffer_add(fwd, &op, 1);
		put_int(fwd, len, 1 << w);
	}
	commands[op]++;
	evbuffer_add(fwd, p, (size_t)len);
}

/* A new file made of pieces of old (any order, overlapping, repeated) and
 * fresh literal data, and the forward delta saying so. */
static void
make_pair(const unsigned char *old, size_t oldlen, struct evbuffer *newb,
    struct evbuffer *fwd, int pieces)
{
	unsigned char lit[300];
	uint64_t off, len;
	size_t i;
	int k;

	evbuffer_drain(newb, evbuffer_get_length(newb));
	evbuffer_drain(fwd, evbuffer_get_length(fwd));
	put_int(fwd, 0x72730236u, 4);
	for (k = 0; k < pieces; k++) {
		if (unit_rand() % 3 == 0 || oldlen == 0) {
			len = 1 + unit_rand() % sizeof lit;
			for (i = 0; i < len; i++)
				lit[i] = (unsigned char)unit_rand();
			literal_cmd(fwd, lit, len, (int)(unit_rand() % 5) - 1);
			evbuffer_add(newb, lit, len);
		} else {
			off = unit_rand() % oldlen;
			len = 1 + unit_rand() % (oldlen - off);
			if (len > 20000)
				len = 1 + len % 20000;
			copy_cmd(fwd, off, len, (int)(unit_rand() % 4),
			    (int)(unit_rand() % 4));
			evbuffer_add(newb, old + off, len);
		}
	}
	evbuffer_add(fwd, "", 1); /* END */
}

static void
write_file(const char *name, const void *p, size_t n)
{
	int fd = openf(name, O_WRONLY | O_CREAT | O_TRUNC);

	fs_write_all(fd, p, n);
	close(fd);
}

static int
same_file(const char *a, const char *b)
{
	char ha[HASH_HEX_SIZE], hb[HASH_HEX_SIZE];
	int fa = openf(a, O_RDONLY), fb = openf(b, O_RDONLY);

	hash_fd(fa, ha);
	hash_fd(fb, hb);
	close(fa);
	close(fb);
	return strcmp(ha, hb) == 0;
}

/* patch base with the delta in file delta into file out. */
static int
patch(const char *base, const char *delta, const char *out)
{
	char err[512];
	int bfd = openf(base, O_RDONLY), dfd = openf(delta, O_RDONLY);
	int ofd = openf(out, O_WRONLY | O_CREAT | O_TRUNC), rc;

	rc = delta_patch_fd(bfd, dfd, delta_sink_fd, &ofd, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "patch %s with %s: %s\n", base, delta, err);
	close(bfd);
	close(dfd);
	close(ofd);
	return rc;
}

static void
check_pair(const char *what, size_t oldlen, size_t newlen)
{
	char err[512];
	int fwd = openf("fwd", O_RDONLY), old = openf("old", O_RDONLY);
	int rev = openf("rev", O_WRONLY | O_CREAT | O_TRUNC), rc;

	CHECK(patch("old", "fwd", "new2") == 0 && same_file("new", "new2"));
	rc = delta_reverse(fwd, old, (int64_t)oldlen, (int64_t)newlen,
	    delta_sink_fd, &rev, err, sizeof err);
	CHECK(rc == 0);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", what, err);
	close(fwd);
	close(old);
	close(rev);
	CHECK(patch("new", "rev", "old2") == 0);
	CHECK(same_file("old", "old2"));
}

static void
crafted(void)
{
	static unsigned char old[200000];
	struct evbuffer *newb = evbuffer_new(), *fwd = evbuffer_new();
	size_t oldlen, i;
	int trial, op, missing = 0;

	for (trial = 0; trial < 300; trial++) {
		/* A tenth of them small. */
		if (trial % 10 == 0)
			oldlen = unit_rand() % 100;
		else
			oldlen = 1000 + unit_rand() % (sizeof old - 1000);
		for (i = 0; i < oldlen; i++)
			old[i] = (unsigned char)unit_rand();
		make_pair(old, oldlen, newb, fwd, 1 + (int)(unit_rand() % 40));
		write_file("old", old, oldlen);
		write_file("new", evbuffer_pullup(newb, -1),
		    evbuffer_get_length(newb));
		write_file("fwd", evbuffer_pullup(fwd, -1),
		    evbuffer_get_length(fwd));
		check_pair("crafted", oldlen, evbuffer_get_length(newb));
	}
	/* Every command width was tried. */
	for (op = 0x41; op <= 0x54; op++)
		missing += commands[op] == 0;
	CHECK(missing == 0);
	evbuffer_free(newb);
	evbuffer_free(fwd);
}

/* A forward delta that does not fit the files is refused. */
static void
refused(void)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *what;
	} bad[] = {
		{ "", 0, "empty" },
		{ "\x72\x73\x02\x37\x00", 5, "bad magic" },
		{ "\x72\x73\x02\x36", 4, "no end command" },
		{ "\x72\x73\x02\x36\x45\x00\x05\x00", 8, "copy past old" },
		{ "\x72\x73\x02\x36\x45\x00\x00\x00", 8, "empty copy" },
		{ "\x72\x73\x02\x36\x02"
		  "ab\x00",
		    8, "short of new" },
		{ "\x72\x73\x02\x36\x03"
		  "abc\x00x",
		    10, "trailing data" },
		{ "\x72\x73\x02\x36\x03"
		  "ab",
		    7, "truncated literal" },
		{ "\x72\x73\x02\x36\x45\x00", 6, "truncated copy" },
		{ "\x72\x73\x02\x36\x55\x00", 6, "unknown command" },
		{ "\x72\x73\x02\x36\x41\x09"
		  "abcdefghi\x00",
		    15, "literal past new" },
		{ "\x72\x73\x02\x36\x54\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00"
		  "\x00\x00\x00\x00\x00\x01\x00",
		    22, "copy offset overflows" },
	};
	char err[512];
	size_t i;
	int fd, oldfd, sinkfd, rc;

	write_file("old", "abcd", 4);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file("fwd", bad[i].bytes, bad[i].len);
		fd = openf("fwd", O_RDONLY);
		oldfd = openf("old", O_RDONLY);
		sinkfd = openf("rev", O_WRONLY | O_CREAT | O_TRUNC);
		err[0] = '\0';
		rc = delta_reverse(fd, oldfd, 4, 3, delta_sink_fd, &sinkfd, err,
		    sizeof err);
		CHECK(rc != 0 && err[0] != '\0');
		if (rc == 0)
			fprintf(stderr, "reverse accepted: %s\n", bad[i].what);
		close(fd);
		close(oldfd);
		close(sinkfd);
	}
	/* Sizes that do not fit the delta. */
	write_file("fwd", "\x72\x73\x02\x36\x45\x00\x04\x00", 8);
	fd = openf("fwd", O_RDONLY);
	oldfd = openf("old", O_RDONLY);
	sinkfd = openf("rev", O_WRONLY | O_CREAT | O_TRUNC);
	CHECK(delta_reverse(fd, oldfd, 4, 4, delta_sink_fd, &sinkfd, err,
		  sizeof err) == 0);
	lseek(fd, 0, SEEK_SET);
	CHECK(delta_reverse(fd, oldfd, 4, 5, delta_sink_fd, &sinkfd, err,
		  sizeof err) != 0);
	lseek(fd, 0, SEEK_SET);
	CHECK(delta_reverse(fd, oldfd, -1, 4, delta_sink_fd, &sinkfd, err,
		  sizeof err) != 0);
	close(fd);
	close(oldfd);
	close(sinkfd);
}

int
main(void)
{
	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	crafted();
	refused();
	fs_rm_rf(dir);
	return unit_done();
}
