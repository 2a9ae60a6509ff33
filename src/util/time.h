/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

usec_t now_realtime_usec(void);
usec_t now_monotonic_usec(void);
/* "2026-02-23T17:55:36Z" */
void format_iso8601_utc(time_t t, char *buf, size_t len);
/* Parse "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" into seconds since the epoch. */
int parse_iso8601(const char *s, time_t *ret);
/*
 * Foundation's full relative time, as Tart's `list` shows it: "5 minutes ago", "in 2 hours",
 * "in 0 seconds"; calendar units in local time (see time.c for the rounding rules).
 */
void format_relative(time_t then, time_t now, char *buf, size_t len);
/* Sleep for usec, resuming after signals unless interrupted is requested. */
void sleep_usec(usec_t usec);
