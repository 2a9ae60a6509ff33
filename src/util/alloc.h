/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "util/macro.h"

/*
 * Allocation helpers that abort with a message on out-of-memory. Small allocations are not
 * checked anywhere else: a CLI that cannot allocate a few bytes has nothing sensible left to do.
 */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
/* align is a power of two, a multiple of sizeof(void *); release with free() */
void *xmalloc_aligned(size_t align, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);
