// SPDX-License-Identifier: Apache-2.0
#include "util/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/macro.h"

int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -ERANGE;
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	bool neg = s && *s == '-';
	uint64_t u;
	int r = parse_u64(neg ? s + 1 : s, (uint64_t)INT64_MAX + (neg ? 1 : 0), &u);
	if (r < 0)
		return r;
	int64_t v = neg ? (int64_t)(0 - u) : (int64_t)u;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_display(const char *s, uint64_t *ret_w, uint64_t *ret_h, char ret_unit[3])
{
	char w[32], h[32];
	const char *x = strchr(s, 'x');
	if (!x || (size_t)(x - s) >= sizeof(w))
		return -EINVAL;
	memcpy(w, s, (size_t)(x - s));
	w[x - s] = 0;
	size_t hl = strlen(x + 1);
	const char *unit = "";
	if (hl >= 2 && (streq(x + 1 + hl - 2, "px") || streq(x + 1 + hl - 2, "pt"))) {
		unit = x + 1 + hl - 2;
		hl -= 2;
	}
	if (hl >= sizeof(h))
		return -EINVAL;
	memcpy(h, x + 1, hl);
	h[hl] = 0;
	uint64_t wv, hv;
	if (parse_u64(w, 65535, &wv) < 0 || parse_u64(h, 65535, &hv) < 0)
		return -EINVAL;
	*ret_w = wv;
	*ret_h = hv;
	snprintf(ret_unit, 3, "%s", unit);
	return 0;
}

void format_bytes_decimal(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"bytes", "KB", "MB", "GB", "TB", "PB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1000.0 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1000.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu bytes", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}
