/* A small harness for the C unit tests: CHECK keeps going and counts, the
 * program exits non-zero if anything failed.  Independent of assert(), so
 * release builds test the same. */
#ifndef UNDERSTUDY_UNIT_H
#define UNDERSTUDY_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failed, unit_checked;

#define CHECK(cond) \
	do { \
		unit_checked++; \
		if (!(cond)) { \
			unit_failed++; \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			    __LINE__, #cond); \
		} \
	} while (0)
#define CHECK_STR(a, b) \
	do { \
		const char *a_ = (a), *b_ = (b); \
		unit_checked++; \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) { \
			unit_failed++; \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, \
			    __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		} \
	} while (0)
#define CHECK_CONTAINS(hay, needle) \
	do { \
		const char *h_ = (hay); \
		unit_checked++; \
		if (h_ == NULL || strstr(h_, (needle)) == NULL) { \
			unit_failed++; \
			fprintf(stderr, \
			    "%s:%d: \"%s\" does not contain " \
			    "\"%s\"\n", \
			    __FILE__, __LINE__, h_ ? h_ : "(null)", (needle)); \
		} \
	} while (0)

static inline int
unit_done(void)
{
	fprintf(stderr, "%d checks, %d failed\n", unit_checked, unit_failed);
	return unit_failed ? 1 : 0;
}

/* A fresh temporary directory for the test, removed by the caller. */
static inline char *
unit_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	static char path[4096];

	snprintf(path, sizeof path, "%s/understudy-unit.XXXXXX",
	    base ? base : "/tmp");
	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	return path;
}

/* Pseudo-random numbers (xorshift), the same every run for a seed. */
static uint64_t unit_rng = 88172645463325252ull;

static inline uint64_t
unit_rand(void)
{
	unit_rng ^= unit_rng << 13;
	unit_rng ^= unit_rng >> 7;
	unit_rng ^= unit_rng << 17;
	return unit_rng;
}

static inline void
unit_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

#endif
