/* The Prometheus text format (version 0.0.4) for /metrics: a family's
 * HELP and TYPE lines once, then its samples together, label values
 * escaped.  A role writes each family once, with a sample per source. */
#ifndef UNDERSTUDY_METRICS_H
#define UNDERSTUDY_METRICS_H

#include <stdint.h>

struct evbuffer;

/* type: "gauge" or "counter"; help may be NULL. */
void metrics_family(struct evbuffer *, const char *name, const char *type,
    const char *help);
/* name{label="value",...} v, the labels given as NULL-terminated pairs. */
void metrics_int(struct evbuffer *, const char *name, int64_t v, ...)
    __attribute__((sentinel));
/* The same with v in seconds, to the millisecond. */
void metrics_secs(struct evbuffer *, const char *name, double v, ...)
    __attribute__((sentinel));

#endif
