/* Time specifications: ages ("1h30m"), schedules (an interval, a cron
 * line, or "off"), ISO 8601 times, version ids, and the TIME argument of the
 * archive verbs. */
#ifndef UNDERSTUDY_TIMESPEC_H
#define UNDERSTUDY_TIMESPEC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "20261121T194108.123Z": sortable as text, the export time in UTC. */
#define VERSION_ID_LEN 20
#define VERSION_ID_SIZE (VERSION_ID_LEN + 1)

int age_parse(const char *s, int64_t *secs);

enum schedule_kind {
	SCHEDULE_OFF,
	SCHEDULE_INTERVAL,
	SCHEDULE_CRON
};

struct schedule {
	enum schedule_kind kind;
	int64_t interval;          /* seconds */
	uint64_t minute;           /* bit per allowed value */
	uint32_t hour, dom, month; /* month bits 1..12, dom 1..31 */
	uint8_t dow;               /* 0..6, Sunday 0 */
	int dom_any, dow_any;
};

int schedule_parse(const char *s, struct schedule *, char *err, size_t errlen);
/* The first firing strictly after t, or -1 for "off". */
time_t schedule_next(const struct schedule *, time_t t);

/* Milliseconds of the monotonic clock: for intervals, never dates. */
int64_t time_mono_ms(void);

void time_format_iso(time_t t, char *buf, size_t len);
int time_parse_iso(const char *s, time_t *out);

void version_id_make(int64_t ms, char out[VERSION_ID_SIZE]);
int version_id_valid(const char *s);
int64_t version_id_ms(const char *id);
void version_id_iso(const char *id, char *buf, size_t len);

/* Resolve a TIME argument against version ids sorted oldest first.  Sets
 * *index; on error writes a one-line reason. */
int time_resolve(const char *spec, char *const *ids, size_t n, time_t now,
    size_t *index, char *err, size_t errlen);

#endif
