#include <stdarg.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "metrics.h"

void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	if (help != NULL)
		evbuffer_add_printf(b, "# HELP %s %s\n", name, help);
	evbuffer_add_printf(b, "# TYPE %s %s\n", name, type);
}

/* Label values: backslash, double quote and newline escaped. */
static void
labels(struct evbuffer *b, va_list ap)
{
	const char *k, *v, *p;
	int first = 1;

	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		evbuffer_add_printf(b, "%s%s=\"", first ? "{" : ",", k);
		for (p = v != NULL ? v : ""; *p != '\0'; p++) {
			if (*p == '\\' || *p == '"')
				evbuffer_add_printf(b, "\\%c", *p);
			else if (*p == '\n')
				evbuffer_add_printf(b, "\\n");
			else
				evbuffer_add(b, p, 1);
		}
		evbuffer_add(b, "\"", 1);
		first = 0;
	}
	if (!first)
		evbuffer_add(b, "}", 1);
}

/* name{labels} value */
static void
sample(struct evbuffer *b, const char *name, const char *value, va_list ap)
{
	evbuffer_add_printf(b, "%s", name);
	labels(b, ap);
	evbuffer_add_printf(b, " %s\n", value);
}

void
metrics_int(struct evbuffer *b, const char *name, int64_t v, ...)
{
	char value[32];
	va_list ap;

	snprintf(value, sizeof value, "%lld", (long long)v);
	va_start(ap, v);
	sample(b, name, value, ap);
	va_end(ap);
}

void
metrics_secs(struct evbuffer *b, const char *name, double v, ...)
{
	char value[32];
	va_list ap;

	snprintf(value, sizeof value, "%.3f", v);
	va_start(ap, v);
	sample(b, name, value, ap);
	va_end(ap);
}
