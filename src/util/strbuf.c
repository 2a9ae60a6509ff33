// SPDX-License-Identifier: Apache-2.0
#include "util/strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

char strbuf_slopbuf[1];

void strbuf_init(struct strbuf *sb, size_t cap)
{
	*sb = (struct strbuf)STRBUF_INIT;
	sb->cap = cap;
}

void strbuf_release(struct strbuf *sb)
{
	size_t cap = sb->cap;
	if (sb->alloc)
		free(sb->buf);
	strbuf_init(sb, cap);
}

char *strbuf_detach(struct strbuf *sb, size_t *ret_len)
{
	char *r;
	if (ret_len)
		*ret_len = sb->len;
	r = sb->alloc ? sb->buf : xstrdup("");
	sb->buf = strbuf_slopbuf;
	sb->len = sb->alloc = 0;
	return r;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->alloc)
		sb->buf[0] = 0;
}

int strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need;
	if (__builtin_add_overflow(sb->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
		return -EFBIG;
	if (sb->cap && need - 1 > sb->cap)
		return -EFBIG;
	if (need <= sb->alloc)
		return 0;
	size_t n = sb->alloc ? sb->alloc : 64;
	while (n < need)
		n = n < (SIZE_MAX / 2) ? n * 2 : need;
	if (!sb->alloc) {
		sb->buf = xmalloc(n);
		sb->buf[0] = 0;
	} else {
		sb->buf = xrealloc(sb->buf, n);
	}
	sb->alloc = n;
	return 0;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	int r = strbuf_grow(sb, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = 0;
	return 0;
}

int strbuf_addstr(struct strbuf *sb, const char *s)
{
	return strbuf_add(sb, s, strlen(s));
}

int strbuf_addch(struct strbuf *sb, char c)
{
	return strbuf_add(sb, &c, 1);
}

int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	int r = strbuf_grow(sb, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
	return r;
}

void strbuf_rtrim(struct strbuf *sb)
{
	while (sb->len > 0 && isspace((unsigned char)sb->buf[sb->len - 1]))
		sb->len--;
	if (sb->alloc)
		sb->buf[sb->len] = 0;
}

static void must(int r)
{
	if (r < 0) {
		fputs("strbuf: growth past its cap in an uncapped adder\n", stderr);
		abort();
	}
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
	must(strbuf_addstr(sb, s));
}

void strbuf_putc(struct strbuf *sb, char c)
{
	must(strbuf_addch(sb, c));
}

void strbuf_putn(struct strbuf *sb, const void *data, size_t len)
{
	must(strbuf_add(sb, data, len));
}

void strbuf_putf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	must(strbuf_vaddf(sb, fmt, ap));
	va_end(ap);
}
