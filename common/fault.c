/* The fault points (fault.h); compiled only where meson's fault_points
 * option has them. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"

static atomic_int fault_hits;

void
fault_point(const char *name)
{
	const char *want = getenv("UNDERSTUDY_FAULT");
	size_t n = strlen(name);
	long nth = 1;

	if (want == NULL || strncmp(want, name, n) != 0)
		return;
	if (want[n] == ':')
		nth = strtol(want + n + 1, NULL, 10);
	else if (want[n] != '\0')
		return;
	if (atomic_fetch_add(&fault_hits, 1) + 1 < nth)
		return;
	log_warnx("fault point %s: dying now", name);
	_exit(86);
}

int
fault_enospc(const char *point)
{
	const char *want = getenv("UNDERSTUDY_FAULT");

	if (want == NULL || strncmp(want, "enospc:", 7) != 0 ||
	    strcmp(want + 7, point) != 0)
		return 0;
	errno = ENOSPC;
	return 1;
}

int
fault_deadline(int secs)
{
	const char *want = getenv("UNDERSTUDY_FAULT");
	long s;

	if (want == NULL || strncmp(want, "deadline:", 9) != 0 ||
	    (s = strtol(want + 9, NULL, 10)) <= 0 || s > secs)
		return secs;
	return (int)s;
}
