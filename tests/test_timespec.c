#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "timespec.h"
#include "unit.h"

static time_t
iso(const char *s)
{
	time_t t = 0;

	CHECK(time_parse_iso(s, &t) == 0);
	return t;
}

static char at_err[512];

/* The index TIME spec resolves to among the first n of three versions, at
 * 2026-11-21, or -1 with the reason in at_err. */
static long
at(const char *spec, size_t n)
{
	static char *ids[] = { "20261101T000000.000Z", "20261110T120000.000Z",
		"20261120T080000.500Z" };
	size_t idx;

	if (time_resolve(spec, ids, n, iso("2026-11-21T00:00:00Z"), &idx,
		at_err, sizeof at_err) != 0)
		return -1;
	return (long)idx;
}

int
main(void)
{
	struct schedule sc;
	char err[512], buf[64], id[VERSION_ID_SIZE];
	int64_t secs;
	time_t now = iso("2026-11-21T00:00:00Z");

	log_init("test", LOG_LEVEL_WARN);
	CHECK(age_parse("90m", &secs) == 0 && secs == 5400);
	CHECK(age_parse("1h30m", &secs) == 0 && secs == 5400);
	CHECK(age_parse("3D", &secs) == 0 && secs == 3 * 86400);
	CHECK(age_parse("2W", &secs) == 0 && secs == 14 * 86400);
	CHECK(age_parse("1Y", &secs) == 0 && secs == 365 * 86400);
	CHECK(age_parse("10s", &secs) == 0 && secs == 10);
	CHECK(age_parse("", &secs) != 0);
	CHECK(age_parse("5", &secs) != 0);
	CHECK(age_parse("5x", &secs) != 0);
	CHECK(age_parse("-5m", &secs) != 0);
	CHECK(age_parse("h", &secs) != 0);
	CHECK(age_parse("99999999999999Y", &secs) != 0);

	CHECK(schedule_parse("off", &sc, err, sizeof err) == 0 &&
	    sc.kind == SCHEDULE_OFF);
	CHECK(schedule_next(&sc, now) == -1);
	CHECK(schedule_parse("1h", &sc, err, sizeof err) == 0 &&
	    sc.kind == SCHEDULE_INTERVAL);
	CHECK(schedule_next(&sc, now) == now + 3600);
	CHECK(schedule_parse("15 3 * * *", &sc, err, sizeof err) == 0);
	CHECK(schedule_next(&sc, now) == iso("2026-11-21T03:15:00Z"));
	CHECK(schedule_next(&sc, iso("2026-11-21T03:15:00Z")) ==
	    iso("2026-11-22T03:15:00Z"));
	CHECK(schedule_parse("*/20 * * * *", &sc, err, sizeof err) == 0);
	CHECK(schedule_next(&sc, iso("2026-11-21T10:05:00Z")) ==
	    iso("2026-11-21T10:20:00Z"));
	CHECK(schedule_parse("0 12 * * 1-5", &sc, err, sizeof err) == 0);
	/* 2026-11-21 is a Saturday: the next weekday noon is Monday. */
	CHECK(schedule_next(&sc, now) == iso("2026-11-23T12:00:00Z"));
	CHECK(schedule_parse("0 0 29 2 *", &sc, err, sizeof err) == 0);
	CHECK(schedule_next(&sc, now) == iso("2028-02-29T00:00:00Z"));
	CHECK(schedule_parse("0,30 8-9 1 1,7 7", &sc, err, sizeof err) == 0);
	/* A line that can never fire is refused, and says why. */
	CHECK(schedule_parse("0 0 31 2 *", &sc, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "never fires");
	CHECK(schedule_parse("0 0 30,31 2,4 *", &sc, err, sizeof err) == 0);
	CHECK(schedule_parse("0 0 31 2 1", &sc, err, sizeof err) == 0);
	CHECK(schedule_parse("61 * * * *", &sc, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "cron");
	CHECK(schedule_parse("* * * *", &sc, err, sizeof err) != 0);
	CHECK(schedule_parse("sometimes", &sc, err, sizeof err) != 0);
	CHECK(schedule_parse("5-1 * * * *", &sc, err, sizeof err) != 0);
	CHECK(schedule_parse("*/0 * * * *", &sc, err, sizeof err) != 0);

	CHECK(iso("2026-11-21") == now);
	CHECK(iso("2026-11-21T19:41:08Z") == now + 19 * 3600 + 41 * 60 + 8);
	CHECK(
	    iso("2026-11-21T20:41:08+01:00") == now + 19 * 3600 + 41 * 60 + 8);
	{
		time_t t;
		CHECK(time_parse_iso("2026-13-01", &t) != 0);
		CHECK(time_parse_iso("2026-11-21T25:00:00Z", &t) != 0);
		CHECK(time_parse_iso("2026-11-21Tjunk", &t) != 0);
		CHECK(time_parse_iso("2026-11-21T10:00:00Zx", &t) != 0);
	}
	time_format_iso(now, buf, sizeof buf);
	CHECK_STR(buf, "2026-11-21T00:00:00Z");

	version_id_make((int64_t)now * 1000 + 123, id);
	CHECK_STR(id, "20261121T000000.123Z");
	CHECK(version_id_valid(id));
	CHECK(version_id_ms(id) == (int64_t)now * 1000 + 123);
	CHECK(!version_id_valid("20261121T000000.123"));
	CHECK(!version_id_valid("2026112xT000000.123Z"));
	CHECK(!version_id_valid("../../etc/passwd"));

	/* TIME against three versions. */
	CHECK(at("now", 3) == 2);
	CHECK(at("0B", 3) == 2);
	CHECK(at("2B", 3) == 0);
	CHECK(at("3B", 3) == -1);
	CHECK(at("20261110T120000.000Z", 3) == 1);
	CHECK(at("20261110T120000.001Z", 3) == -1);
	/* Between two versions means the older one. */
	CHECK(at("2026-11-15", 3) == 1);
	CHECK(at("2026-11-20T08:00:00Z", 3) == 2);
	CHECK(at("2026-11-20T07:59:59Z", 3) == 1);
	CHECK(at("3D", 3) == 1);
	CHECK(at("12h", 3) == 2);
	CHECK(at("2026-10-01", 3) == -1);
	CHECK_CONTAINS(at_err,
	    "before the oldest version, 20261101T000000.000Z");
	CHECK(at("yesterday", 3) == -1);
	CHECK_CONTAINS(at_err, "is not a TIME");
	CHECK(at("now", 0) == -1);
	return unit_done();
}
