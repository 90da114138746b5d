/* A request's URI: the route and query parser every daemon runs on what
 * an unauthenticated client sends. */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "fuzz.h"
#include "proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evhttp_uri *u;
	struct proto_req pr;
	char *s, why[512];

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	u = evhttp_uri_parse_with_flags(s, EVHTTP_URI_NONCONFORMANT);
	if (u != NULL) {
		memset(&pr, 0, sizeof pr);
		(void)proto_parse(u, &pr, why, sizeof why);
		proto_req_clear(&pr);
		evhttp_uri_free(u);
	}
	free(s);
	return 0;
}
