/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

#include "util/macro.h"

/*
 * Diagnostics go to stderr, never stdout. Messages follow git's style: lower-case start, no
 * final period, the subject in quotes. The _errno variants append ": <strerror(-r)>" and return
 * r, so a failure is logged and propagated in one statement:
 *     return log_error_errno(r, "cannot open '%s'", path);
 * util/ and http/ never log; the layers above log a failure once, where the context is.
 * Control characters other than tab and line breaks (ESC above all) print as '?'.
 */
enum log_level { LOG_ERR = 0, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* Prefix every message with the UTC time (daemons: the worker). */
void log_set_timestamps(bool on);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Read TART_LOG_LEVEL (error|warning|notice|info|debug) once at start. */
void log_setup_from_env(void);

void log_msg(enum log_level level, const char *fmt, ...) _printf_(2, 3);
int log_msg_errno(enum log_level level, int r, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_error_errno(r, ...) log_msg_errno(LOG_ERR, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_msg_errno(LOG_WARNING, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_msg_errno(LOG_DEBUG, (r), __VA_ARGS__)
