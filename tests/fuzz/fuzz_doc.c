/* The document parser: JSON bodies from the wire and state files, YAML
 * configs. */
#include "doc.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct doc *d = NULL;
	char err[512];

	if (doc_parse((const char *)data, size, &d, err, sizeof err) == 0)
		doc_free(d);
	return 0;
}
