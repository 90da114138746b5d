/* The pull-backup's journal, read back at start-up from a disk that may
 * have been damaged (common/journal.c): what it takes names versions. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"
#include "timespec.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal j;

	if (journal_parse((const char *)data, size, &j) != 0)
		return 0;
	/* Never a path: only version ids, or none where none may be. */
	if ((j.a[0] != '\0' && !version_id_valid(j.a)) ||
	    (j.b[0] != '\0' && !version_id_valid(j.b)))
		abort();
	if (j.kind == JOURNAL_COMMIT ? j.b[0] == '\0' : j.a[0] == '\0')
		abort();
	return 0;
}
