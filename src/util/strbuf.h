/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"

/*
 * A growable byte buffer, after git's strbuf with curl's size cap.
 *
 * Invariants: `buf` is never NULL and always NUL-terminated (`buf[len] == 0`), so it can be
 * passed to printf; it may also hold binary data with embedded NULs. STRBUF_INIT allocates
 * nothing. A buffer with `cap` > 0 refuses to grow past `cap` bytes: the adders then return
 * -EFBIG and leave the buffer as it was. Use a cap for anything read from the network or disk.
 */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t cap;
};

extern char strbuf_slopbuf[];
#define STRBUF_INIT {.buf = strbuf_slopbuf, .len = 0, .alloc = 0, .cap = 0}

void strbuf_init(struct strbuf *sb, size_t cap);
/* Free the contents; the buffer is reusable afterwards (as after STRBUF_INIT, cap kept). */
void strbuf_release(struct strbuf *sb);
/* Return the string, owned by the caller, and reset the buffer. Never NULL. */
char *strbuf_detach(struct strbuf *sb, size_t *ret_len);
void strbuf_reset(struct strbuf *sb);

_warn_unused_ int strbuf_grow(struct strbuf *sb, size_t extra);
_warn_unused_ int strbuf_add(struct strbuf *sb, const void *data, size_t len);
_warn_unused_ int strbuf_addstr(struct strbuf *sb, const char *s);
_warn_unused_ int strbuf_addch(struct strbuf *sb, char c);
_warn_unused_ int strbuf_addf(struct strbuf *sb, const char *fmt, ...) _printf_(2, 3);
_warn_unused_ int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) _printf_(2, 0);
/* Remove trailing whitespace. */
void strbuf_rtrim(struct strbuf *sb);

static inline void strbuf_releasep(struct strbuf *sb)
{
	strbuf_release(sb);
}
#define _cleanup_strbuf_ _cleanup_(strbuf_releasep)

/* Adders for buffers without a cap: growth cannot fail except by OOM, which aborts. */
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putf(struct strbuf *sb, const char *fmt, ...) _printf_(2, 3);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_putn(struct strbuf *sb, const void *data, size_t len);
