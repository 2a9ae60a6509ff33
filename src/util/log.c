// SPDX-License-Identifier: Apache-2.0
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level log_level = LOG_INFO;
static bool log_timestamps;

void log_set_timestamps(bool on)
{
	log_timestamps = on;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

void log_setup_from_env(void)
{
	static const char *const names[] = {"error", "warning", "notice", "info", "debug"};
	const char *e = getenv("TART_LOG_LEVEL");
	if (!e)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (streq(e, names[i]))
			log_level = (enum log_level)i;
}

static void log_vmsg(enum log_level level, int r, const char *fmt, va_list ap)
{
	char buf[4096];
	if (level > log_level)
		return;
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	/* Messages quote registry bodies, helper output and names from files: no terminal
	 * control sequence from them reaches the user's terminal. */
	for (char *p = buf; *p; p++)
		if ((*p > 0 && *p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p == 0x7f)
			*p = '?';
	char ts[40] = "";
	if (log_timestamps) {
		struct timespec now;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		size_t k = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + k, sizeof(ts) - k, ".%03ldZ ", now.tv_nsec / 1000000);
	}
	if (r < 0)
		fprintf(stderr, "%s%s: %s\n", ts, buf, strerror(-r));
	else
		fprintf(stderr, "%s%s\n", ts, buf);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

int log_msg_errno(enum log_level level, int r, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, r, fmt, ap);
	va_end(ap);
	errno = saved;
	return r;
}
