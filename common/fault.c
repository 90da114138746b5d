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

/* The item of UNDERSTUDY_FAULT (items separated by commas) that is name,
 * or starts with name and a colon: what follows the colon ("" when none),
 * or NULL. */
static const char *
fault_item(const char *name, char *buf, size_t len)
{
	const char *want = getenv("UNDERSTUDY_FAULT"), *p, *end;
	size_t n = strlen(name), l;

	if (want == NULL)
		return NULL;
	for (p = want; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		l = (size_t)(end - p);
		if (l < n || strncmp(p, name, n) != 0 ||
		    (l > n && p[n] != ':') || l - n >= len)
			continue;
		if (l == n)
			buf[0] = '\0';
		else {
			memcpy(buf, p + n + 1, l - n - 1);
			buf[l - n - 1] = '\0';
		}
		return buf;
	}
	return NULL;
}

void
fault_point(const char *name)
{
	char arg[32];
	long nth = 1;

	if (fault_item(name, arg, sizeof arg) == NULL)
		return;
	if (arg[0] != '\0')
		nth = strtol(arg, NULL, 10);
	if (atomic_fetch_add(&fault_hits, 1) + 1 < nth)
		return;
	log_warnx("fault point %s: dying now", name);
	_exit(86);
}

int
fault_enospc(const char *point)
{
	char arg[64];

	if (fault_item("enospc", arg, sizeof arg) == NULL ||
	    strcmp(arg, point) != 0)
		return 0;
	errno = ENOSPC;
	return 1;
}

int
fault_timeout(int secs)
{
	char arg[32];
	long s;

	if (fault_item("timeout", arg, sizeof arg) == NULL ||
	    (s = strtol(arg, NULL, 10)) <= 0 || s > secs)
		return secs;
	return (int)s;
}
