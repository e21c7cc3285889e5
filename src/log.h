/* log: leveled, one-line log records to stderr, as logfmt or JSON. */
#ifndef TICKETD_LOG_H
#define TICKETD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

enum log_format {
	LOG_FORMAT_LOGFMT = 0,
	LOG_FORMAT_JSON = 1,
};

/* Read by the macros below so that a disabled level costs one compare. */
extern volatile int log_current_level;

void log_init(enum log_level level, enum log_format format);

/* Parse "error", "warn", "info", "debug"; -1 on anything else. */
int log_level_parse(const char *name);
/* Parse "logfmt", "json"; -1 on anything else. */
int log_format_parse(const char *name);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_at(level, ...)                                                     \
	do {                                                                   \
		if (log_current_level >= (level))                              \
			log_write((level), __VA_ARGS__);                       \
	} while (0)

#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
