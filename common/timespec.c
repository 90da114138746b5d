#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timespec.h"

int
age_parse(const char *s, int64_t *secs)
{
	int64_t total = 0, n, unit;
	const char *p = s;
	char *end;

	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p))
			return -1;
		errno = 0;
		n = strtoll(p, &end, 10);
		if (errno != 0 || n < 0 || n > 1000000000)
			return -1;
		switch (*end) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'D':
			unit = 86400;
			break;
		case 'W':
			unit = 7 * 86400;
			break;
		case 'M':
			unit = 30 * 86400;
			break;
		case 'Y':
			unit = 365 * 86400;
			break;
		default:
			return -1;
		}
		if (n > INT64_MAX / unit / 4)
			return -1;
		total += n * unit;
		p = end + 1;
	}
	*secs = total;
	return 0;
}

/* One cron field: "*", "N", "A-B", lists and "/step". */
static int
cron_field(const char *f, int lo, int hi, uint64_t *bits, int *any)
{
	char buf[128], *item, *save = NULL, *dash, *slash, *end;
	long a, b, step;

	if (strlen(f) >= sizeof buf)
		return -1;
	strcpy(buf, f);
	*bits = 0;
	*any = strcmp(f, "*") == 0;
	for (item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		step = 1;
		if ((slash = strchr(item, '/')) != NULL) {
			*slash++ = '\0';
			step = strtol(slash, &end, 10);
			if (*slash == '\0' || *end != '\0' || step < 1 ||
			    step > hi)
				return -1;
		}
		if (strcmp(item, "*") == 0) {
			a = lo;
			b = hi;
		} else {
			if (!isdigit((unsigned char)*item))
				return -1;
			a = strtol(item, &end, 10);
			if ((dash = strchr(item, '-')) != NULL && end == dash) {
				if (!isdigit((unsigned char)dash[1]))
					return -1;
				b = strtol(dash + 1, &end, 10);
			} else
				b = slash != NULL ? hi : a;
			if (*end != '\0')
				return -1;
		}
		if (a < lo || b > hi || a > b)
			return -1;
		for (; a <= b; a += step)
			*bits |= (uint64_t)1 << a;
	}
	return *bits == 0 ? -1 : 0;
}

/* Whether a cron line has a day at all.  With both the day of the month
 * and of the week given, either will do, and every month has every
 * weekday; with the day of the week "*", some allowed day of the month
 * must exist in some allowed month ("0 0 31 2 *" never fires). */
static int
cron_can_fire(const struct schedule *sc)
{
	static const int days[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
		30, 31 };
	int m, d;

	if (sc->dom_any || !sc->dow_any)
		return 1;
	for (m = 1; m <= 12; m++)
		for (d = 1; (sc->month >> m & 1) && d <= days[m]; d++)
			if (sc->dom >> d & 1)
				return 1;
	return 0;
}

int
schedule_parse(const char *s, struct schedule *sc, char *err, size_t errlen)
{
	char buf[256], *f[6], *save = NULL;
	int nf = 0, any;
	uint64_t bits;

	memset(sc, 0, sizeof *sc);
	if (strcmp(s, "off") == 0) {
		sc->kind = SCHEDULE_OFF;
		return 0;
	}
	if (age_parse(s, &sc->interval) == 0) {
		if (sc->interval < 1) {
			snprintf(err, errlen,
			    "the interval must be at least 1s");
			return -1;
		}
		sc->kind = SCHEDULE_INTERVAL;
		return 0;
	}
	if (strlen(s) >= sizeof buf)
		goto bad;
	strcpy(buf, s);
	for (char *t = strtok_r(buf, " \t", &save); t != NULL;
	     t = strtok_r(NULL, " \t", &save)) {
		if (nf == 5)
			goto bad;
		f[nf++] = t;
	}
	if (nf != 5)
		goto bad;
	sc->kind = SCHEDULE_CRON;
	if (cron_field(f[0], 0, 59, &sc->minute, &any) != 0)
		goto badfield;
	if (cron_field(f[1], 0, 23, &bits, &any) != 0)
		goto badfield;
	sc->hour = (uint32_t)bits;
	if (cron_field(f[2], 1, 31, &bits, &sc->dom_any) != 0)
		goto badfield;
	sc->dom = (uint32_t)bits;
	if (cron_field(f[3], 1, 12, &bits, &any) != 0)
		goto badfield;
	sc->month = (uint32_t)bits;
	if (cron_field(f[4], 0, 7, &bits, &sc->dow_any) != 0)
		goto badfield;
	if (bits & (1u << 7))
		bits |= 1; /* 7 is Sunday too */
	sc->dow = (uint8_t)(bits & 0x7f);
	if (!cron_can_fire(sc)) {
		snprintf(err, errlen,
		    "cron line \"%s\" never fires: none of "
		    "its months has those days",
		    s);
		return -1;
	}
	return 0;
badfield:
	snprintf(err, errlen, "bad field in cron line \"%s\"", s);
	return -1;
bad:
	snprintf(err, errlen,
	    "\"%s\" is neither an interval (like 1h, 30m, 1D), a cron line "
	    "(\"15 3 * * *\") nor \"off\"",
	    s);
	return -1;
}

time_t
schedule_next(const struct schedule *sc, time_t t)
{
	struct tm tm;
	time_t c;
	int dom_ok, dow_ok, i;

	switch (sc->kind) {
	case SCHEDULE_OFF:
		return -1;
	case SCHEDULE_INTERVAL:
		return t + sc->interval;
	case SCHEDULE_CRON:
		break;
	}
	/* Cron lines are read in UTC; step minute by minute for at most
	 * five years, which also covers "29 2 29 2 *". */
	c = t - t % 60 + 60;
	for (i = 0; i < 5 * 366 * 24 * 60; i++, c += 60) {
		gmtime_r(&c, &tm);
		if (!(sc->month & (1u << (tm.tm_mon + 1))))
			continue;
		dom_ok = (sc->dom >> tm.tm_mday) & 1;
		dow_ok = (sc->dow >> tm.tm_wday) & 1;
		if (sc->dom_any || sc->dow_any) {
			if (!(dom_ok && dow_ok))
				continue;
		} else if (!(dom_ok || dow_ok))
			continue;
		if (!((sc->hour >> tm.tm_hour) & 1))
			continue;
		if (!((sc->minute >> tm.tm_min) & 1))
			continue;
		return c;
	}
	return -1;
}

void
time_format_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
time_parse_iso(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, oh, om, sign;
	size_t len = strlen(s);
	const char *p;
	time_t t;

	if (len < 10 || digits(s, 4, &y) || s[4] != '-' ||
	    digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d))
		return -1;
	p = s + 10;
	if (*p == 'T' || *p == ' ') {
		if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' ||
		    digits(p + 4, 2, &mi) || p[6] != ':' ||
		    digits(p + 7, 2, &sec))
			return -1;
		p += 9;
	}
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	t = timegm(&tm);
	if (*p == 'Z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (strlen(p) != 6 || digits(p + 1, 2, &oh) || p[3] != ':' ||
		    digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		t -= sign * (oh * 3600 + om * 60);
		p += 6;
	}
	if (*p != '\0')
		return -1;
	*out = t;
	return 0;
}

void
version_id_make(int64_t ms, char out[VERSION_ID_SIZE])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	char buf[64];

	snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d.%03dZ",
	    (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	memcpy(out, buf, VERSION_ID_SIZE - 1);
	out[VERSION_ID_SIZE - 1] = '\0';
}

int64_t
version_id_ms(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, ms;

	if (strlen(s) != VERSION_ID_LEN || digits(s, 4, &y) ||
	    digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) || s[8] != 'T' ||
	    digits(s + 9, 2, &h) || digits(s + 11, 2, &mi) ||
	    digits(s + 13, 2, &sec) || s[15] != '.' || digits(s + 16, 3, &ms) ||
	    s[19] != 'Z')
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

int
version_id_valid(const char *s)
{
	return version_id_ms(s) >= 0;
}

void
version_id_iso(const char *id, char *buf, size_t len)
{
	int64_t ms = version_id_ms(id);

	time_format_iso(ms < 0 ? 0 : (time_t)(ms / 1000), buf, len);
}

int
time_resolve(const char *spec, char *const *ids, size_t n, time_t now,
    size_t *index, char *err, size_t errlen)
{
	int64_t age, back, limit_ms;
	time_t t;
	char *end, iso[32];
	size_t i;

	if (n == 0) {
		snprintf(err, errlen, "the archive holds no version");
		return -1;
	}
	if (strcmp(spec, "now") == 0) {
		*index = n - 1;
		return 0;
	}
	if (version_id_valid(spec)) {
		for (i = 0; i < n; i++) {
			if (strcmp(ids[i], spec) == 0) {
				*index = i;
				return 0;
			}
		}
		snprintf(err, errlen,
		    "no version with id %s (see the list verb)", spec);
		return -1;
	}
	if (spec[0] != '\0' && spec[strlen(spec) - 1] == 'B' &&
	    isdigit((unsigned char)spec[0])) {
		errno = 0;
		back = strtoll(spec, &end, 10);
		if (errno == 0 && end[0] == 'B' && end[1] == '\0') {
			if (back < 0 || (uint64_t)back >= n) {
				snprintf(err, errlen,
				    "%s: the archive holds only %zu "
				    "version(s), 0B to %zuB",
				    spec, n, n - 1);
				return -1;
			}
			*index = n - 1 - (size_t)back;
			return 0;
		}
	}
	if (time_parse_iso(spec, &t) == 0)
		limit_ms = (int64_t)t * 1000 + 999;
	else if (age_parse(spec, &age) == 0)
		/* An age older than the epoch matches no version (found by
		 * fuzzing: the product overflowed). */
		limit_ms = age > (int64_t)now ?
		    -1 :
		    ((int64_t)now - age) * 1000 + 999;
	else {
		snprintf(err, errlen,
		    "\"%s\" is not a TIME: use now, a version id, NB, an ISO "
		    "8601 date or date-time, or an age like 90m, 3D, 2W",
		    spec);
		return -1;
	}
	for (i = n; i-- > 0;) {
		if (version_id_ms(ids[i]) <= limit_ms) {
			*index = i;
			return 0;
		}
	}
	version_id_iso(ids[0], iso, sizeof iso);
	snprintf(err, errlen, "%s is before the oldest version, %s (%s)", spec,
	    ids[0], iso);
	return -1;
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
