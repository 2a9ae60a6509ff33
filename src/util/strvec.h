/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

#include "util/macro.h"

/*
 * A NULL-terminated array of owned strings, for building argv. `v` is never NULL and
 * `v[nr] == NULL` always holds, so `v` can be handed to execv directly.
 */
struct strvec {
	char **v;
	size_t nr;
	size_t alloc;
};

extern char *strvec_empty[];
#define STRVEC_INIT {.v = strvec_empty, .nr = 0, .alloc = 0}

void strvec_init(struct strvec *sv);
/* Append a copy of s. */
void strvec_push(struct strvec *sv, const char *s);
void strvec_pushf(struct strvec *sv, const char *fmt, ...) _printf_(2, 3);
/* Append several strings; the list ends with NULL. */
void strvec_pushl(struct strvec *sv, ...) __attribute__((sentinel));
void strvec_clear(struct strvec *sv);
/* Join with a separator into a newly allocated string. */
char *strvec_join(const struct strvec *sv, const char *sep);

static inline void strvec_clearp(struct strvec *sv)
{
	strvec_clear(sv);
}
#define _cleanup_strvec_ _cleanup_(strvec_clearp)
