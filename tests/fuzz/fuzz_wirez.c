/* A compressed reply as any peer may send it (common/wirez.c): decoded
 * into a sink that takes at most 1 MiB, as a file's writer refuses more
 * than the manifest says; whatever the bytes, no more than that comes
 * out, and an error says why.  The same bytes as an Accept-Encoding
 * value. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wirez.h"

#define FUZZ_WIREZ_MAX (1 << 20)

static int
bounded_sink(void *arg, const void *p, size_t n)
{
	size_t *total = arg;

	(void)p;
	if (n > FUZZ_WIREZ_MAX - *total)
		return -1;
	*total += n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t total = 0, half = size / 2;
	struct wirez_dec *d = wirez_dec_new(bounded_sink, &total);
	char err[256], *s;
	int rc;

	if (d == NULL)
		return 0;
	err[0] = '\0';
	/* in two pieces: a frame split across reads */
	rc = wirez_dec_feed(d, data, half, err, sizeof err);
	if (rc == 0)
		rc = wirez_dec_feed(d, data + half, size - half, err,
		    sizeof err);
	if (rc == 0)
		rc = wirez_dec_finish(d, err, sizeof err);
	/* Never more out than the sink takes; a failure says why, unless
	 * it was the sink's refusal. */
	if (total > FUZZ_WIREZ_MAX ||
	    (rc != 0 && err[0] == '\0' && total < FUZZ_WIREZ_MAX / 2))
		abort();
	wirez_dec_free(d);
	if ((s = malloc(size + 1)) != NULL) {
		memcpy(s, data, size);
		s[size] = '\0';
		(void)wirez_accepted(s);
		free(s);
	}
	return 0;
}
