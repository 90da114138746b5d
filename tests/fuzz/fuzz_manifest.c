/* The manifest parser (the wire, the archive); a manifest it accepts must
 * write back to text that parses to the same entries. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "manifest.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL, *m2 = NULL;
	struct evbuffer *b;
	char err[512];
	size_t i;

	if (manifest_parse((const char *)data, size, &m, err, sizeof err) != 0)
		return 0;
	b = evbuffer_new();
	manifest_write(m, b);
	if (manifest_parse((const char *)evbuffer_pullup(b, -1),
		evbuffer_get_length(b), &m2, err, sizeof err) != 0)
		abort();
	if (m2->n != m->n || m2->owners != m->owners)
		abort();
	for (i = 0; i < m->n; i++)
		if (!manifest_same(&m->e[i], &m2->e[i]) ||
		    strcmp(m->e[i].path, m2->e[i].path) != 0)
			abort();
	manifest_free(m2);
	manifest_free(m);
	evbuffer_free(b);
	return 0;
}
