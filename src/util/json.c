// SPDX-License-Identifier: Apache-2.0
#include "util/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

static void dump_string(const char *s, size_t len, struct strbuf *sb)
{
	strbuf_putc(sb, '"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"':
			strbuf_puts(sb, "\\\"");
			break;
		case '\\':
			strbuf_puts(sb, "\\\\");
			break;
		case '/':
			strbuf_puts(sb, "\\/");
			break;
		case '\n':
			strbuf_puts(sb, "\\n");
			break;
		case '\r':
			strbuf_puts(sb, "\\r");
			break;
		case '\t':
			strbuf_puts(sb, "\\t");
			break;
		case '\b':
			strbuf_puts(sb, "\\b");
			break;
		case '\f':
			strbuf_puts(sb, "\\f");
			break;
		default:
			if (c < 0x20)
				strbuf_putf(sb, "\\u%04x", c);
			else
				strbuf_putc(sb, (char)c);
		}
	}
	strbuf_putc(sb, '"');
}

static void indent(struct strbuf *sb, unsigned flags, int depth)
{
	if (!(flags & JSON_SWIFT_PRETTY))
		return;
	strbuf_putc(sb, '\n');
	for (int i = 0; i < depth; i++)
		strbuf_puts(sb, "  ");
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void dump(const json_t *j, unsigned flags, int depth, struct strbuf *sb);

/* Keys in insertion order, as Swift's encoder writes them, or sorted on request. */
static void dump_object(const json_t *j, unsigned flags, int depth, struct strbuf *sb)
{
	size_t n = json_object_size(j), i = 0;
	if (n == 0) {
		strbuf_puts(sb, "{}");
		return;
	}
	const char **keys = xcalloc(n, sizeof(char *));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v) keys[i++] = k;
	if (flags & JSON_SWIFT_SORTED)
		qsort(keys, n, sizeof(char *), cmp_keys);
	strbuf_putc(sb, '{');
	for (i = 0; i < n; i++) {
		if (i)
			strbuf_putc(sb, ',');
		indent(sb, flags, depth + 1);
		dump_string(keys[i], strlen(keys[i]), sb);
		strbuf_puts(sb, (flags & JSON_SWIFT_PRETTY) ? " : " : ":");
		dump(json_object_get(j, keys[i]), flags, depth + 1, sb);
	}
	free(keys);
	indent(sb, flags, depth);
	strbuf_putc(sb, '}');
}

static void dump_array(const json_t *j, unsigned flags, int depth, struct strbuf *sb)
{
	size_t n = json_array_size(j);
	if (n == 0) {
		strbuf_puts(sb, "[]");
		return;
	}
	strbuf_putc(sb, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_putc(sb, ',');
		indent(sb, flags, depth + 1);
		dump(json_array_get(j, i), flags, depth + 1, sb);
	}
	indent(sb, flags, depth);
	strbuf_putc(sb, ']');
}

static void dump(const json_t *j, unsigned flags, int depth, struct strbuf *sb)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		dump_object(j, flags, depth, sb);
		return;
	case JSON_ARRAY:
		dump_array(j, flags, depth, sb);
		return;
	case JSON_STRING:
		dump_string(json_string_value(j), json_string_length(j), sb);
		return;
	case JSON_INTEGER:
		strbuf_putf(sb, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		return;
	case JSON_REAL: {
		char *s = json_dumps(j, JSON_ENCODE_ANY);
		strbuf_puts(sb, s ? s : "0");
		free(s);
		return;
	}
	case JSON_TRUE:
		strbuf_puts(sb, "true");
		return;
	case JSON_FALSE:
		strbuf_puts(sb, "false");
		return;
	case JSON_NULL:
	default:
		strbuf_puts(sb, "null");
		return;
	}
}

void json_dump_swift(const json_t *j, unsigned flags, struct strbuf *sb)
{
	dump(j, flags, 0, sb);
}

int json_parse_buf(const char *buf, size_t len, json_t **ret)
{
	json_error_t err;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return -EBADMSG;
	*ret = j;
	return 0;
}

int json_get_string(const json_t *obj, const char *key, const char **ret)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return -ENOENT;
	if (!json_is_string(v))
		return -EBADMSG;
	*ret = json_string_value(v);
	return 0;
}

int json_get_u64(const json_t *obj, const char *key, uint64_t *ret)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return -ENOENT;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EBADMSG;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		/* Below 2^63: every value we read is written back as a JSON integer (int64). */
		if (d < 0 || d >= 9223372036854775808.0 || d != (double)(uint64_t)d)
			return -EBADMSG;
		*ret = (uint64_t)d;
		return 0;
	}
	return -EBADMSG;
}

int json_get_bool(const json_t *obj, const char *key, bool *ret)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return -ENOENT;
	if (!json_is_boolean(v))
		return -EBADMSG;
	*ret = json_is_true(v);
	return 0;
}
