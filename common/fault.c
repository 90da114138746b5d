/* The fault points (fault.h); compiled only where meson's fault_points
 * option has them. */
#include <errno.h>
#include <fcntl.h>
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

/* hold:NAME: at the first pass through NAME, the file named by
 * UNDERSTUDY_FAULT_HOLD is made, and the thread waits for it to go (the
 * test does something to the world meanwhile: fills a disk). */
static void
fault_hold(const char *name)
{
	static atomic_int held;
	const char *path = getenv("UNDERSTUDY_FAULT_HOLD");
	char arg[64];
	int fd;

	if (path == NULL || fault_item("hold", arg, sizeof arg) == NULL ||
	    strcmp(arg, name) != 0 || atomic_exchange(&held, 1) != 0)
		return;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_warn("fault point %s: %s", name, path);
		return;
	}
	close(fd);
	log_warnx("fault point %s: held until %s is removed", name, path);
	while (access(path, F_OK) == 0)
		usleep(50000);
}

void
fault_point(const char *name)
{
	char arg[32];
	long nth = 1;

	fault_hold(name);
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
