#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "hashsink.h"
#include "manifest.h"

void
hashsink_init(struct hashsink *s, int fd, int64_t limit)
{
	memset(s, 0, sizeof *s);
	s->fd = fd;
	s->limit = limit;
	hash_init(&s->h);
	s->open = 1;
}

int
hashsink_write(void *arg, const void *p, size_t n)
{
	struct hashsink *s = arg;

	if (s->limit >= 0 && s->n + (int64_t)n > s->limit) {
		s->overflow = 1;
		errno = EFBIG;
		return -1;
	}
	hash_update(&s->h, p, n);
	s->n += (int64_t)n;
	return s->fd >= 0 ? fs_write_all(s->fd, p, n) : 0;
}

int
hashsink_read(struct hashsink *s, int fd)
{
	static __thread char buf[1 << 17];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : 0;
		if (hashsink_write(s, buf, (size_t)n) != 0)
			return -1;
	}
}

void
hashsink_abort(struct hashsink *s)
{
	if (s->open)
		hash_abort(&s->h);
	s->open = 0;
}

int
hashsink_check(struct hashsink *s, const struct ment *e, char *err,
    size_t errlen)
{
	char hex[HASH_HEX_SIZE];

	hash_final(&s->h, hex);
	s->open = 0;
	if (s->n == e->size && strcmp(hex, e->sha) == 0)
		return 0;
	snprintf(err, errlen,
	    "%lld bytes with SHA-256 %.12s...; the manifest says %lld bytes, "
	    "%.12s...",
	    (long long)s->n, hex, (long long)e->size, e->sha);
	return -1;
}

int
hashsink_fd_matches(int fd, const struct ment *e)
{
	struct hashsink s;
	char err[160];

	hashsink_init(&s, -1, e->size);
	if (hashsink_read(&s, fd) != 0) {
		hashsink_abort(&s);
		return 0;
	}
	return hashsink_check(&s, e, err, sizeof err) == 0;
}
