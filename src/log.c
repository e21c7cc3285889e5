/* log: leveled, one-line log records to stderr, as logfmt or JSON. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

volatile int log_current_level = LOG_LEVEL_INFO;
static enum log_format log_current_format = LOG_FORMAT_LOGFMT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(enum log_level level, enum log_format format)
{
	log_current_level = level;
	log_current_format = format;
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

int log_format_parse(const char *name)
{
	if (strcmp(name, "logfmt") == 0)
		return LOG_FORMAT_LOGFMT;
	if (strcmp(name, "json") == 0)
		return LOG_FORMAT_JSON;
	return -1;
}

/*
 * Append msg to out, escaped for a double-quoted logfmt or JSON string.
 * Control characters become \n, \t or \u00XX so that a record stays on one
 * line whatever the message holds.
 */
static size_t escape_into(char *out, size_t size, size_t pos, const char *msg)
{
	for (const unsigned char *p = (const unsigned char *)msg;
	     *p && pos + 7 < size; p++) {
		switch (*p) {
		case '"':
			out[pos++] = '\\';
			out[pos++] = '"';
			break;
		case '\\':
			out[pos++] = '\\';
			out[pos++] = '\\';
			break;
		case '\n':
			out[pos++] = '\\';
			out[pos++] = 'n';
			break;
		case '\t':
			out[pos++] = '\\';
			out[pos++] = 't';
			break;
		default:
			if (*p < 0x20) {
				pos += (size_t)snprintf(out + pos, size - pos,
							"\\u%04x", *p);
			} else {
				out[pos++] = (char)*p;
			}
		}
	}
	return pos;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char msg[2048];
	char line[4608];
	char ts[40];
	struct timeval tv;
	struct tm tm;
	size_t pos;

	vsnprintf(msg, sizeof(msg), fmt, ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	pos = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + pos, sizeof(ts) - pos, ".%03dZ",
		 (int)(tv.tv_usec / 1000));

	if (log_current_format == LOG_FORMAT_JSON)
		pos = (size_t)snprintf(
		    line, sizeof(line),
		    "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
		    level_names[level]);
	else
		pos = (size_t)snprintf(line, sizeof(line),
				       "ts=%s level=%s msg=\"", ts,
				       level_names[level]);
	pos = escape_into(line, sizeof(line), pos, msg);
	if (log_current_format == LOG_FORMAT_JSON)
		pos +=
		    (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
	else
		pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"\n");

	/* One fwrite per record: records from threads do not interleave. */
	fwrite(line, 1, pos, stderr);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}
