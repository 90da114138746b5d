/* A request's head as the gate reads it from any peer, before
 * authentication (common/gate.c): whole or not, refused or not, what it
 * finds stays inside the bytes given. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gate.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_head h;
	char *buf = malloc(size + 1);
	int r;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	r = gate_head_parse(buf, size, &h);
	if (r == 1) {
		if (h.len == 0 || h.len > size || h.length < 0)
			abort();
		if (h.target < buf || h.target + h.target_len > buf + h.len)
			abort();
		if (h.auth != NULL &&
		    (h.auth < buf || h.auth + h.auth_len > buf + h.len))
			abort();
	} else if (r == -1 && (h.status < 400 || h.status > 599))
		abort();
	free(buf);
	return 0;
}
