/* TIME and AGE specs, schedules, ISO times and version ids: from the
 * command line, configs and the wire.  The first byte picks the parser. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "timespec.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *ids[] = { "20261121T194108.123Z", "20261122T000000.000Z",
		"20261124T120000.500Z" };
	struct schedule sch;
	char *s, err[512], buf[64];
	int64_t secs;
	size_t index;
	time_t t;

	if (size == 0)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 5) {
	case 0:
		(void)age_parse(s, &secs);
		break;
	case 1:
		(void)schedule_parse(s, &sch, err, sizeof err);
		break;
	case 2:
		(void)time_parse_iso(s, &t);
		break;
	case 3:
		if (version_id_valid(s)) {
			(void)version_id_ms(s);
			version_id_iso(s, buf, sizeof buf);
		}
		break;
	default:
		(void)time_resolve(s, ids, 3, 1795680000, &index, err,
		    sizeof err);
		break;
	}
	free(s);
	return 0;
}
