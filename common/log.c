/* Logging: stderr lines of the form "ROLE: LEVEL message".  libevent's and
 * librsync's own messages are routed here too. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <librsync.h>

#include "log.h"

static const char *log_name = "understudy";
static enum log_level log_max = LOG_LEVEL_INFO;

static void
log_event_cb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

static void
log_rsync_cb(rs_loglevel level, const char *msg)
{
	log_debug("librsync: %s", msg);
}

void
log_init(const char *role, enum log_level level)
{
	log_name = role;
	log_max = level;
	event_set_log_callback(log_event_cb);
	rs_trace_to(log_rsync_cb);
	rs_trace_set_level(level >= LOG_LEVEL_DEBUG ? RS_LOG_INFO : RS_LOG_ERR);
}

void
log_set_level(enum log_level level)
{
	log_max = level;
}

const char *
log_role(void)
{
	return log_name;
}

/* A log line is one line of text: control bytes from a peer, a request
 * or a hook's output (a newline, an escape sequence for the terminal)
 * are written as \xNN.  Returns the length written, at most outlen - 2,
 * leaving room for the newline. */
static int
escape_controls(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	unsigned char c;

	for (; *s != '\0' && n + 6 < outlen; s++) {
		c = (unsigned char)*s;
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			out[n++] = '\\';
			out[n++] = 'x';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else
			out[n++] = (char)c;
	}
	return (int)n;
}

void
log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	char line[4096], out[4096 + 64];
	int n, m;

	if (level > log_max)
		return;
	n = snprintf(line, sizeof line, "%s: ", log_name);
	if (level == LOG_LEVEL_DEBUG)
		n += snprintf(line + n, sizeof line - n, "debug: ");
	m = vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	if (errnum != 0) {
		m = snprintf(line + n, sizeof line - n, ": %s",
		    strerror(errnum));
		n += m;
		if (n > (int)sizeof line - 2)
			n = sizeof line - 2;
	}
	line[n] = '\0';
	n = escape_controls(line, out, sizeof out);
	out[n++] = '\n';
	(void)!write(STDERR_FILENO, out, n);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_WARN, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
