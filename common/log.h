/* One logging family for every role: the role's name on each line, one
 * write(2) per line so lines from worker threads never interleave. */
#ifndef UNDERSTUDY_LOG_H
#define UNDERSTUDY_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

void log_init(const char *role, enum log_level level);
void log_set_level(enum log_level level);
const char *log_role(void);
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_vmsg(enum log_level, int errnum, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

#define log_debugf(fmt, ...) log_debug("%s: " fmt, __func__, ##__VA_ARGS__)

#endif
