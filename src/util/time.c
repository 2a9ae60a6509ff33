// SPDX-License-Identifier: Apache-2.0
#include "util/time.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * Relative time as Foundation formats it (.full units, numeric): the calendar difference in
 * local time, years down to seconds, and its largest non-zero unit. Hours, minutes and
 * seconds round on the next smaller unit (1 h 40 min is "2 hours"); days and larger count
 * calendar boundaries, by measuring from the end (for the past) or start (for the future) of
 * now's unit: 20:00 two days back, seen at 09:00, is "2 days ago" though only 37 hours passed.
 */
enum cal_unit { U_YEAR, U_MONTH, U_WEEK, U_DAY, U_HOUR, U_MINUTE, U_SECOND, U_COUNT };

static const char *const cal_unit_names[U_COUNT] = {"year", "month",  "week",  "day",
						   "hour", "minute", "second"};
/* Rough lengths, only to start the exact search near the answer. */
static const long cal_unit_approx[U_COUNT] = {31556952, 2629746, 604800, 86400, 3600, 60, 1};

static int days_in_month(int year, int mon)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y = year + 1900;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return mon == 1 && leap ? 29 : dim[mon];
}

static time_t cal_add(time_t t, enum cal_unit u, long n)
{
	if (u >= U_HOUR)
		return t + n * cal_unit_approx[u];
	struct tm tm;
	localtime_r(&t, &tm);
	if (u == U_YEAR || u == U_MONTH) {
		long m = tm.tm_year * 12L + tm.tm_mon + (u == U_YEAR ? 12 * n : n);
		tm.tm_year = (int)(m >= 0 ? m / 12 : (m - 11) / 12);
		tm.tm_mon = (int)(m - tm.tm_year * 12L);
		/* Jan 31 + 1 month is Feb 28/29, as Calendar does, not Mar 3 */
		if (tm.tm_mday > days_in_month(tm.tm_year, tm.tm_mon))
			tm.tm_mday = days_in_month(tm.tm_year, tm.tm_mon);
	} else {
		tm.tm_mday += (int)((u == U_WEEK ? 7 : 1) * n);
	}
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* Whole units from *cur towards `to` without passing it (signed); advances *cur. */
static long cal_count(time_t *cur, time_t to, enum cal_unit u)
{
	long s = to >= *cur ? 1 : -1;
	long n = (long)((to - *cur) * s / cal_unit_approx[u]);
	while (n > 0 && (cal_add(*cur, u, s * n) - to) * s > 0)
		n--;
	while ((cal_add(*cur, u, s * (n + 1)) - to) * s <= 0)
		n++;
	*cur = cal_add(*cur, u, s * n);
	return s * n;
}

static void cal_diff(time_t from, time_t to, long ret[U_COUNT])
{
	/* Under 23 hours no calendar day can pass (DST days are 23 h): skip mktime, which is slow. */
	long d = (long)(to - from);
	if (labs(d) < 23 * 3600) {
		for (int u = 0; u < U_COUNT; u++) {
			ret[u] = u < U_HOUR ? 0 : d / cal_unit_approx[u];
			d -= ret[u] * cal_unit_approx[u];
		}
		return;
	}
	for (int u = 0; u < U_COUNT; u++)
		ret[u] = cal_count(&from, to, (enum cal_unit)u);
}

static int first_nonzero(const long v[U_COUNT], int after)
{
	for (int u = after + 1; u < U_COUNT; u++)
		if (v[u] != 0)
			return u;
	return -1;
}

/* Start of the year/month/week (Sunday)/day holding t, in local time. */
static time_t cal_start(time_t t, enum cal_unit u)
{
	struct tm tm;
	localtime_r(&t, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (u == U_WEEK)
		tm.tm_mday -= tm.tm_wday;
	if (u <= U_MONTH)
		tm.tm_mday = 1;
	if (u == U_YEAR)
		tm.tm_mon = 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

void format_relative(time_t then, time_t now, char *buf, size_t len)
{
	long v[U_COUNT];
	cal_diff(now, then, v);
	int u = first_nonzero(v, -1);
	long n = 0;
	if (u < 0) {
		u = U_SECOND;
	} else if (u >= U_HOUR) {
		int next = first_nonzero(v, u);
		n = v[u];
		if (next >= 0 && labs(v[next]) * 2 >= 60)
			n += v[next] > 0 ? 1 : -1;
	} else {
		/* aligned: count from the end of now's unit for the past, its start for the future */
		time_t ref = cal_start(now, (enum cal_unit)u);
		if (then < now)
			ref = cal_add(ref, (enum cal_unit)u, 1) - 1;
		long w[U_COUNT];
		cal_diff(ref, then, w);
		int a = first_nonzero(w, -1);
		if (a >= 0)
			u = a;
		n = a >= 0 ? w[a] : v[u];
	}
	long abs_n = labs(n);
	const char *plural = abs_n == 1 ? "" : "s";
	if (n < 0)
		snprintf(buf, len, "%ld %s%s ago", abs_n, cal_unit_names[u], plural);
	else
		snprintf(buf, len, "in %ld %s%s", abs_n, cal_unit_names[u], plural);
}

void sleep_usec(usec_t usec)
{
	struct timespec ts = {.tv_sec = (time_t)(usec / 1000000),
			      .tv_nsec = (long)(usec % 1000000) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
