// SPDX-License-Identifier: Apache-2.0
#include "orchard/api.h"

#include <errno.h>
#include <string.h>

#include "orchard/resource.h"
#include "util/alloc.h"
#include "util/parse.h"

time_t orchard_json_time(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	int64_t ns;
	if (!s || orchard_time_parse(s, &ns) < 0 || ns <= 0)
		return 0;
	return (time_t)(ns / 1000000000);
}

void orchard_reltime(time_t then, time_t now, char *buf, size_t len)
{
	/*
	 * go-humanize's defaultMagnitudes (Day 24 h, Week 7 d, Month 30 d, Year 12 months):
	 * below `below` seconds the text is `fixed`, or the count of `div` units and `unit`.
	 */
	static const struct {
		int64_t below;
		const char *fixed;
		int64_t div;
		const char *unit;
	} mags[] = {
	    {1, "now", 0, NULL},
	    {2, "1 second", 0, NULL},
	    {60, NULL, 1, "seconds"},
	    {120, "1 minute", 0, NULL},
	    {3600, NULL, 60, "minutes"},
	    {7200, "1 hour", 0, NULL},
	    {86400, NULL, 3600, "hours"},
	    {2 * 86400, "1 day", 0, NULL},
	    {7 * 86400, NULL, 86400, "days"},
	    {14 * 86400, "1 week", 0, NULL},
	    {30 * 86400, NULL, 7 * 86400, "weeks"},
	    {60 * 86400, "1 month", 0, NULL},
	    {360 * 86400LL, NULL, 30 * 86400, "months"},
	    {540 * 86400LL, "1 year", 0, NULL},
	    {720 * 86400LL, "2 years", 0, NULL},
	    {37 * 360 * 86400LL, NULL, 360 * 86400LL, "years"},
	    {INT64_MAX, "a long while", 0, NULL},
	};
	const char *label = "ago";
	int64_t diff = (int64_t)now - (int64_t)then;
	if (diff < 0) {
		label = "in the future";
		diff = -diff;
	}
	for (size_t i = 0; i < ARRAY_SIZE(mags); i++) {
		if (diff >= mags[i].below)
			continue;
		if (i == 0)
			snprintf(buf, len, "now");
		else if (mags[i].fixed)
			snprintf(buf, len, "%s %s", mags[i].fixed, label);
		else
			snprintf(buf, len, "%lld %s %s", (long long)(diff / mags[i].div),
				 mags[i].unit, label);
		return;
	}
}

char *orchard_odn_of(const json_t *vm)
{
	return orchard_local_name(orchard_str(vm, "name"), orchard_str(vm, "uid"),
				  orchard_u64(vm, "restart_count"));
}

int orchard_kv_parse(const char *s, bool u64, json_t *obj, char **ret_error)
{
	if (!*s)
		return 0;
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq) {
			*ret_error = xasprintf("\"%s\" must be formatted as key=value", s);
			return -EINVAL;
		}
		*eq = 0;
		const char *v = eq + 1;
		if (!u64) {
			json_object_set_new(obj, kv, json_string(v));
			continue;
		}
		uint64_t n;
		if (parse_u64(v, INT64_MAX, &n) < 0) {
			*ret_error =
			    xasprintf("resource values should be 64-bit unsigned integers: "
				      "strconv.ParseUint: parsing \"%s\": invalid syntax",
				      v);
			return -EINVAL;
		}
		json_object_set_new(obj, kv, json_integer((json_int_t)n));
	}
	return 0;
}

const char *orchard_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

uint64_t orchard_u64(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

bool orchard_bool(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

bool orchard_condition_set(json_t *vm, const char *type, bool state)
{
	const char *st = state ? "true" : "false";
	json_t *arr = json_object_get(vm, "conditions");
	if (!json_is_array(arr)) {
		arr = json_array();
		json_object_set_new(vm, "conditions", arr);
	}
	size_t i;
	json_t *c;
	json_array_foreach(arr, i, c)
	{
		if (!streq(orchard_str(c, "type"), type))
			continue;
		if (streq(orchard_str(c, "state"), st))
			return false;
		json_object_set_new(c, "state", json_string(st));
		return true;
	}
	json_array_append_new(arr, json_pack("{s:s,s:s}", "type", type, "state", st));
	return true;
}

int orchard_condition_get(const json_t *vm, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(vm, "conditions"), i, c)
	{
		if (streq(orchard_str(c, "type"), type))
			return streq(orchard_str(c, "state"), "true");
	}
	return -1;
}

/* Display width: UTF-8 code points (continuation bytes do not count). */
static size_t width(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

static size_t line_count(const char *s)
{
	size_t n = 1;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The idx-th line of s (pointer and length), or NULL past the end. */
static const char *nth_line(const char *s, size_t idx, size_t *ret_len)
{
	for (size_t i = 0; i < idx; i++) {
		s = strchr(s, '\n');
		if (!s)
			return NULL;
		s++;
	}
	*ret_len = strcspn(s, "\n");
	return s;
}

void orchard_table(const char *const *cells, size_t rows, size_t ncols, struct strbuf *out)
{
	_cleanup_free_ size_t *w = xcalloc(ncols ? ncols : 1, sizeof(*w));
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < ncols; c++) {
			const char *s = cells[r * ncols + c];
			size_t n = line_count(s), l;
			for (size_t i = 0; i < n; i++) {
				const char *p = nth_line(s, i, &l);
				w[c] = MAX(w[c], width(p, l));
			}
		}
	for (size_t r = 0; r < rows; r++) {
		size_t lines = 1;
		for (size_t c = 0; c < ncols; c++)
			lines = MAX(lines, line_count(cells[r * ncols + c]));
		for (size_t i = 0; i < lines; i++) {
			if (r || i)
				strbuf_putc(out, '\n');
			for (size_t c = 0; c < ncols; c++) {
				size_t l = 0;
				const char *p = nth_line(cells[r * ncols + c], i, &l);
				if (c)
					strbuf_putc(out, '\t');
				if (p)
					strbuf_putn(out, p, l);
				for (size_t k = p ? width(p, l) : 0; k < w[c]; k++)
					strbuf_putc(out, ' ');
			}
		}
	}
}
