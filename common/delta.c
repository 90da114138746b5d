#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <librsync.h>

#include "delta.h"
#include "fsutil.h"
#include "xmalloc.h"

#define DELTA_BUF (64 * 1024)

struct pump {
	rs_job_t *job;
	delta_sink sink;
	void *arg;
	char out[DELTA_BUF];
	int done;
};

/* Run the job over one input block (eof when no more will come); hands all
 * output to the sink.  Returns 0 while the job wants more, 1 when done,
 * -1 on error. */
static int
pump_run(struct pump *p, const void *in, size_t n, int eof, char *err,
    size_t errlen)
{
	rs_buffers_t b;
	rs_result r;
	size_t produced, before_in;

	memset(&b, 0, sizeof b);
	b.next_in = (char *)(uintptr_t)in;
	b.avail_in = n;
	b.eof_in = eof;
	for (;;) {
		if (p->done) {
			if (b.avail_in > 0) {
				snprintf(err, errlen,
				    "trailing data after the end of the "
				    "librsync stream");
				return -1;
			}
			return 1;
		}
		b.next_out = p->out;
		b.avail_out = sizeof p->out;
		before_in = b.avail_in;
		r = rs_job_iter(p->job, &b);
		produced = sizeof p->out - b.avail_out;
		if (produced > 0 && p->sink(p->arg, p->out, produced) != 0) {
			snprintf(err, errlen, "writing output: %s",
			    strerror(errno));
			return -1;
		}
		if (r == RS_DONE) {
			p->done = 1;
			continue;
		}
		if (r != RS_BLOCKED) {
			snprintf(err, errlen, "librsync: %s%s", rs_strerror(r),
			    eof ? " (stream truncated or corrupt)" : "");
			return -1;
		}
		if (produced == 0 && b.avail_in == before_in) {
			if (eof) {
				snprintf(err, errlen,
				    "librsync stream truncated");
				return -1;
			}
			return 0;
		}
	}
}

/* Run the job over fd's content: from its offset to the end of the file
 * (off -1: read(), a pipe will do), or len bytes from off (pread: the
 * fd's offset stays). */
static int
pump_in(struct pump *p, int fd, int64_t off, int64_t len, char *err,
    size_t errlen)
{
	char *buf = xmalloc(DELTA_BUF);
	ssize_t n;
	size_t want;
	int rc = 0;

	for (;;) {
		want = len >= 0 && len < DELTA_BUF ? (size_t)len : DELTA_BUF;
		if (want == 0)
			n = 0;
		else if (off < 0)
			n = read(fd, buf, want);
		else
			n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (n == 0 && len > 0) {
			snprintf(err, errlen, "the file shrank while read");
			rc = -1;
			break;
		}
		if (off >= 0)
			off += n;
		if (len > 0)
			len -= n;
		rc = pump_run(p, buf, (size_t)n, n == 0, err, errlen);
		if (rc < 0 || n == 0)
			break;
	}
	free(buf);
	if (rc == 0 && !p->done) {
		snprintf(err, errlen, "librsync job did not finish");
		rc = -1;
	}
	return rc < 0 ? -1 : 0;
}

/* With nothing known of a file's changes: librsync's choice (about the
 * square root of the size), but at most DELTA_BLOCK_COLD.  The root suits
 * a file changed in one place; a dump changes in many, and a 16 KiB block
 * of a 256 MiB dump is then almost always dirty. */
/* The smallest block that keeps the signature within DELTA_MAX_BLOCKS. */
static size_t
delta_block_floor(int64_t size)
{
	size_t b = DELTA_BLOCK_MIN;

	while (size > 0 && (uint64_t)size / b > DELTA_MAX_BLOCKS)
		b *= 2;
	return b;
}

size_t
delta_block_default(int64_t size)
{
	rs_magic_number magic = 0;
	size_t block_len = 0, strong_len = 0, floor = delta_block_floor(size);

	if (rs_sig_args(size, &magic, &block_len, &strong_len) != RS_DONE ||
	    block_len > DELTA_BLOCK_COLD)
		block_len = DELTA_BLOCK_COLD;
	return block_len < floor ? floor : block_len;
}

/* Bytes a delta costs with blocks of b for a file of size bytes, each byte
 * changed with probability rate: the dirty blocks go as literal data, and
 * every block costs its signature entry and a copy command. */
static double
delta_cost(double size, double rate, double b)
{
	return size * (1.0 - exp(-rate * b)) + size / b * DELTA_BLOCK_OVERHEAD;
}

size_t
delta_block_choose(int64_t size, size_t prev_block, double prev_literal)
{
	size_t floor = delta_block_floor(size), b, best = 0;
	double rate, best_cost = 0, c;

	if (prev_block == 0)
		return delta_block_default(size);
	if (floor >= DELTA_BLOCK_MAX)
		return floor;
	/* No literal data at all: the blocks may grow. */
	if (prev_literal <= 0)
		b = prev_block < DELTA_BLOCK_MAX ? prev_block * 2 :
						   DELTA_BLOCK_MAX;
	else {
		/* The share of dirty blocks seen, 1 - exp(-rate * block):
		 * the rate of change per byte.  All dirty says only that the
		 * blocks were too large: assume most of them were. */
		if (prev_literal >= 0.999)
			prev_literal = 0.95;
		rate = -log(1.0 - prev_literal) / (double)prev_block;
		for (b = floor; b <= DELTA_BLOCK_MAX; b *= 2) {
			c = delta_cost((double)size, rate, (double)b);
			if (best == 0 || c < best_cost) {
				best = b;
				best_cost = c;
			}
		}
		b = best;
	}
	return b < floor ? floor : b;
}

int64_t delta_split_min = DELTA_SPLIT_MIN;

/* librsync's signature header: magic, block length, strong sum length. */
#define SIG_HEADER 12

/* The signature of len bytes of a file from off. */
struct sig_part {
	int fd;
	int64_t off, len;
	size_t block_len, strong_len;
	rs_magic_number magic;
	delta_sink sink;
	void *arg;
	int rc;
	char err[256];
};

static void
sig_part_run(struct sig_part *s)
{
	struct pump *p = xcalloc(1, sizeof *p);

	p->job = rs_sig_begin(s->block_len, s->strong_len, s->magic);
	p->sink = s->sink;
	p->arg = s->arg;
	s->rc = pump_in(p, s->fd, s->off, s->len, s->err, sizeof s->err);
	rs_job_free(p->job);
	free(p);
}

static void *
sig_part_thread(void *arg)
{
	sig_part_run(arg);
	return NULL;
}

static int
signature(int fd, size_t block_len, int halves, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	struct sig_part a, b;
	struct stat st;
	struct evbuffer *second = NULL;
	rs_magic_number magic = 0;
	/* The shortest strong sum that keeps chance collisions negligible
	 * for this size: every patched file is checked against its SHA-256
	 * anyway, and one that fails is fetched whole. */
	size_t strong_len = (size_t)-1;
	rs_result rs;
	pthread_t t;
	int64_t half;
	size_t n;

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "stat: %s", strerror(errno));
		return -1;
	}
	if (block_len == 0)
		block_len = delta_block_default(st.st_size);
	rs = rs_sig_args(st.st_size, &magic, &block_len, &strong_len);
	if (rs != RS_DONE) {
		snprintf(err, errlen,
		    "librsync refused the signature arguments");
		return -1;
	}
	memset(&a, 0, sizeof a);
	a.fd = fd;
	a.len = st.st_size;
	a.block_len = block_len;
	a.strong_len = strong_len;
	a.magic = magic;
	a.sink = sink;
	a.arg = arg;
	/* A large file's signature is made in two halves at once, one per
	 * core: a signature is its blocks' sums in order, so the second
	 * half's, without its header, follows the first's.  The halves meet
	 * on a block boundary. */
	half = st.st_size / 2 / (int64_t)block_len * (int64_t)block_len;
	if (!halves || st.st_size < delta_split_min || half == 0) {
		sig_part_run(&a);
		if (a.rc != 0)
			snprintf(err, errlen, "%s", a.err);
		return a.rc;
	}
	b = a;
	b.off = half;
	b.len = st.st_size - half;
	b.sink = delta_sink_evbuffer;
	b.arg = second = evbuffer_new();
	a.len = half;
	if (pthread_create(&t, NULL, sig_part_thread, &b) != 0) {
		b.rc = -1;
		snprintf(b.err, sizeof b.err, "no thread: %s", strerror(errno));
		sig_part_run(&a);
	} else {
		sig_part_run(&a);
		pthread_join(t, NULL);
	}
	n = evbuffer_get_length(second);
	if (a.rc != 0 || b.rc != 0) {
		snprintf(err, errlen, "%s", a.rc != 0 ? a.err : b.err);
		a.rc = -1;
	} else if (n < SIG_HEADER) {
		snprintf(err, errlen, "signature of the second half: %zu bytes",
		    n);
		a.rc = -1;
	} else if (sink(arg, evbuffer_pullup(second, -1) + SIG_HEADER,
		       n - SIG_HEADER) != 0) {
		snprintf(err, errlen, "writing output: %s", strerror(errno));
		a.rc = -1;
	}
	evbuffer_free(second);
	return a.rc;
}

int
delta_signature(int fd, size_t block_len, delta_sink sink, void *arg, char *err,
    size_t errlen)
{
	return signature(fd, block_len, 1, sink, arg, err, errlen);
}

int
delta_signature_alone(int fd, size_t block_len, delta_sink sink, void *arg,
    char *err, size_t errlen)
{
	return signature(fd, block_len, 0, sink, arg, err, errlen);
}

/* Load a signature and index it for a delta job. */
static rs_signature_t *
sig_load(const void *sig, size_t siglen, char *err, size_t errlen)
{
	rs_signature_t *sums = NULL;
	rs_buffers_t b;
	rs_job_t *job;
	rs_result r;

	if (siglen > DELTA_MAX_SIGNATURE) {
		snprintf(err, errlen, "signature larger than %u bytes",
		    DELTA_MAX_SIGNATURE);
		return NULL;
	}
	job = rs_loadsig_begin(&sums);
	memset(&b, 0, sizeof b);
	b.next_in = (char *)(uintptr_t)sig;
	b.avail_in = siglen;
	b.eof_in = 1;
	r = rs_job_iter(job, &b);
	rs_job_free(job);
	if (r != RS_DONE || b.avail_in != 0) {
		snprintf(err, errlen, "bad signature: %s",
		    r != RS_DONE ? rs_strerror(r) : "trailing data");
		if (sums != NULL)
			rs_free_sumset(sums);
		return NULL;
	}
	if ((r = rs_build_hash_table(sums)) != RS_DONE) {
		snprintf(err, errlen, "signature: %s", rs_strerror(r));
		rs_free_sumset(sums);
		return NULL;
	}
	return sums;
}

int
delta_compute(const void *sig, size_t siglen, int fd, delta_sink sink,
    void *arg, char *err, size_t errlen)
{
	rs_signature_t *sums;
	struct pump *p;
	int rc;

	rc = fdelta_run(sig, siglen, fd, sink, arg, err, errlen);
	if (rc <= 0)
		return rc;
	if ((sums = sig_load(sig, siglen, err, errlen)) == NULL)
		return -1;
	p = xcalloc(1, sizeof *p);
	p->job = rs_delta_begin(sums);
	p->sink = sink;
	p->arg = arg;
	rc = pump_in(p, fd, -1, -1, err, errlen);
	rs_job_free(p->job);
	free(p);
	rs_free_sumset(sums);
	return rc;
}

int
delta_copy_range(int fd, uint64_t off, uint64_t len, void *buf, size_t buflen,
    delta_sink sink, void *arg)
{
	ssize_t n;

	while (len > 0) {
		n = pread(fd, buf, len < buflen ? (size_t)len : buflen,
		    (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			return -1;
		}
		if (sink(arg, buf, (size_t)n) != 0)
			return -2;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

struct delta_patch {
	struct pump pump;
	int basefd;
	char *copybuf;
	size_t copycap;
};

static rs_result
patch_copy_cb(void *opaque, rs_long_t pos, size_t *len, void **buf)
{
	struct delta_patch *dp = opaque;
	ssize_t n;

	if (pos < 0)
		return RS_CORRUPT;
	if (*len > dp->copycap) {
		free(dp->copybuf);
		dp->copycap = *len;
		dp->copybuf = xmalloc(dp->copycap);
	}
	do
		n = pread(dp->basefd, dp->copybuf, *len, pos);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return RS_IO_ERROR;
	if (n == 0)
		return RS_INPUT_ENDED;
	*len = (size_t)n;
	*buf = dp->copybuf;
	return RS_DONE;
}

struct delta_patch *
delta_patch_new(int basefd, delta_sink sink, void *arg)
{
	struct delta_patch *dp = xcalloc(1, sizeof *dp);

	dp->basefd = basefd;
	dp->pump.sink = sink;
	dp->pump.arg = arg;
	dp->pump.job = rs_patch_begin(patch_copy_cb, dp);
	return dp;
}

int
delta_patch_feed(struct delta_patch *dp, const void *p, size_t n, char *err,
    size_t errlen)
{
	if (n == 0)
		return 0;
	return pump_run(&dp->pump, p, n, 0, err, errlen) < 0 ? -1 : 0;
}

int
delta_patch_finish(struct delta_patch *dp, char *err, size_t errlen)
{
	return pump_run(&dp->pump, NULL, 0, 1, err, errlen) == 1 ? 0 : -1;
}

void
delta_patch_free(struct delta_patch *dp)
{
	if (dp == NULL)
		return;
	rs_job_free(dp->pump.job);
	free(dp->copybuf);
	free(dp);
}

int
delta_patch_fd(int basefd, int deltafd, delta_sink sink, void *arg, char *err,
    size_t errlen)
{
	struct delta_patch *dp = delta_patch_new(basefd, sink, arg);
	int rc = pump_in(&dp->pump, deltafd, -1, -1, err, errlen);

	delta_patch_free(dp);
	return rc;
}

int
delta_sink_fd(void *arg, const void *p, size_t n)
{
	return fs_write_all(*(int *)arg, p, n);
}

int
delta_sink_evbuffer(void *arg, const void *p, size_t n)
{
	return evbuffer_add(arg, p, n);
}
