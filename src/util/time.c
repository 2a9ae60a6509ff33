// SPDX-License-Identifier: Apache-2.0
#include "util/time.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util/macro.h"

usec_t now_realtime_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (usec_t)ts.tv_sec * 1000000 + (usec_t)ts.tv_nsec / 1000;
}

usec_t now_monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * 1000000 + (usec_t)ts.tv_nsec / 1000;
}

void format_iso8601_utc(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int parse_iso8601(const char *s, time_t *ret)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	long off = 0;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int hh, mm;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return -EINVAL;
		off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret = t - off;
	return 0;
}

void format_relative(time_t then, time_t now, char *buf, size_t len)
{
	static const struct {
		const char *name;
		long secs;
	} units[] = {
		{"year", 365L * 86400}, {"month", 30L * 86400}, {"week", 7L * 86400},
		{"day", 86400},         {"hour", 3600},         {"minute", 60},
		{"second", 1},
	};
	long d = (long)(now - then);
	bool past = d > 0;
	long a = past ? d : -d;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		long n = a / units[i].secs;
		if (n == 0 && units[i].secs != 1)
			continue;
		if (past)
			snprintf(buf, len, "%ld %s%s ago", n, units[i].name, n == 1 ? "" : "s");
		else
			snprintf(buf, len, "in %ld %s%s", n, units[i].name, n == 1 ? "" : "s");
		return;
	}
}

void sleep_usec(usec_t usec)
{
	struct timespec ts = {.tv_sec = (time_t)(usec / 1000000),
			      .tv_nsec = (long)(usec % 1000000) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
