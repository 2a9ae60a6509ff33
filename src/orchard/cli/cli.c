// SPDX-License-Identifier: Apache-2.0
#include "orchard/cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "orchard/api.h"
#include "orchard/client.h"
#include "orchard/config.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/parse.h"
#include "util/strbuf.h"

int ocli_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static const char *type_name(enum ocli_type t)
{
	switch (t) {
	case OCLI_STRING:
		return "string";
	case OCLI_U64:
		return "uint";
	case OCLI_SLICE:
		return "strings";
	case OCLI_ARRAY:
		return "stringArray";
	case OCLI_MAP:
	case OCLI_MAP_U64:
		return "stringToString";
	default:
		return "";
	}
}

static void print_help(const struct ocli_cmd *c)
{
	printf("%s\n\nUsage:\n  orchard %s%s%s [flags]\n\nFlags:\n", c->short_help, c->path,
	       c->args ? " " : "", c->args ? c->args : "");
	struct strvec left = STRVEC_INIT, right = STRVEC_INIT;
	size_t w = 0;
	for (const struct ocli_flag *f = c->flags; f && f->name; f++) {
		if (f->hidden)
			continue;
		char *l;
		if (f->shorthand)
			l = xasprintf("  -%c, --%s %s", f->shorthand, f->name, type_name(f->type));
		else
			l = xasprintf("      --%s %s", f->name, type_name(f->type));
		size_t n = strlen(l);
		while (n && l[n - 1] == ' ')
			l[--n] = 0;
		w = MAX(w, n);
		strvec_push(&left, l);
		free(l);
		if (f->def)
			strvec_pushf(&right, "%s (default %s)", f->usage, f->def);
		else
			strvec_push(&right, f->usage);
	}
	strvec_push(&left, "  -h, --help");
	strvec_pushf(&right, "help for %s",
		     strrchr(c->path, ' ') ? strrchr(c->path, ' ') + 1 : c->path);
	w = MAX(w, strlen("  -h, --help"));
	for (size_t i = 0; i < left.nr; i++)
		printf("%-*s   %s\n", (int)w, left.v[i], right.v[i]);
	strvec_clear(&left);
	strvec_clear(&right);
}

static int parse_bool(const char *v, bool *ret)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (streq(v, t[i])) {
			*ret = true;
			return 0;
		}
		if (streq(v, f[i])) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int apply(const struct ocli_flag *f, const char *shown, const char *v)
{
	if (f->seen)
		*f->seen = true;
	switch (f->type) {
	case OCLI_BOOL:
		if (parse_bool(v, f->target) < 0) {
			ocli_fail("invalid argument \"%s\" for \"%s\" flag: strconv.ParseBool: "
				  "parsing \"%s\": invalid syntax",
				  v, shown, v);
			return -EINVAL;
		}
		return 0;
	case OCLI_STRING:
		*(const char **)f->target = v;
		return 0;
	case OCLI_U64:
		if (parse_u64(v, UINT64_MAX, f->target) < 0) {
			ocli_fail("invalid argument \"%s\" for \"%s\" flag: strconv.ParseUint: "
				  "parsing \"%s\": invalid syntax",
				  v, shown, v);
			return -EINVAL;
		}
		return 0;
	case OCLI_SLICE: {
		_cleanup_free_ char *copy = xstrdup(v);
		char *save = NULL;
		if (!*v)
			return 0;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			strvec_push(f->target, t);
		return 0;
	}
	case OCLI_ARRAY:
		strvec_push(f->target, v);
		return 0;
	case OCLI_MAP:
	case OCLI_MAP_U64: {
		_cleanup_free_ char *err = NULL;
		if (orchard_kv_parse(v, f->type == OCLI_MAP_U64, f->target, &err) < 0) {
			ocli_fail("invalid argument \"%s\" for \"%s\" flag: %s", v, shown, err);
			return -EINVAL;
		}
		return 0;
	}
	}
	return -EINVAL;
}

static const struct ocli_flag *find_long(const struct ocli_cmd *c, const char *name, size_t n)
{
	for (const struct ocli_flag *f = c->flags; f && f->name; f++)
		if (strlen(f->name) == n && strncmp(f->name, name, n) == 0)
			return f;
	return NULL;
}

static const struct ocli_flag *find_short(const struct ocli_cmd *c, char ch)
{
	for (const struct ocli_flag *f = c->flags; f && f->name; f++)
		if (f->shorthand == ch)
			return f;
	return NULL;
}

int ocli_parse(const struct ocli_cmd *c, int argc, char **argv, struct strvec *ret_args)
{
	strvec_clear(ret_args);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "--")) {
			for (i++; i < argc; i++)
				strvec_push(ret_args, argv[i]);
			break;
		}
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t n = eq ? (size_t)(eq - name) : strlen(name);
			const struct ocli_flag *f = find_long(c, name, n);
			if (!f && n == 4 && strncmp(name, "help", 4) == 0) {
				print_help(c);
				return 1;
			}
			if (!f)
				return ocli_fail("unknown flag: --%.*s", (int)n, name), -EINVAL;
			_cleanup_free_ char *shown = xasprintf("--%s", f->name);
			const char *v = eq ? eq + 1 : NULL;
			if (!v && f->type == OCLI_BOOL)
				v = "true";
			if (!v) {
				if (i + 1 >= argc)
					return ocli_fail("flag needs an argument: --%s", f->name),
					       -EINVAL;
				v = argv[++i];
			}
			if (apply(f, shown, v) < 0)
				return -EINVAL;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			for (const char *p = a + 1; *p; p++) {
				const struct ocli_flag *f = find_short(c, *p);
				if (!f && *p == 'h') {
					print_help(c);
					return 1;
				}
				if (!f)
					return ocli_fail("unknown shorthand flag: '%c' in %s", *p,
							 a),
					       -EINVAL;
				char shown[8];
				snprintf(shown, sizeof(shown), "-%c", *p);
				const char *v = NULL;
				if (p[1] == '=')
					v = p + 2;
				else if (f->type != OCLI_BOOL && p[1])
					v = p + 1;
				else if (f->type == OCLI_BOOL)
					v = "true";
				else if (i + 1 < argc)
					v = argv[++i];
				else
					return ocli_fail("flag needs an argument: '%c' in -%c", *p,
							 *p),
					       -EINVAL;
				if (apply(f, shown, v) < 0)
					return -EINVAL;
				if (f->type != OCLI_BOOL || p[1] == '=')
					break;
			}
			continue;
		}
		strvec_push(ret_args, a);
	}
	int n = (int)ret_args->nr;
	if (c->min_args == c->max_args && n != c->min_args)
		return ocli_fail("accepts %d arg(s), received %d", c->min_args, n), -EINVAL;
	if (c->max_args < 0 && n < c->min_args)
		return ocli_fail("requires at least %d arg(s), only received %d", c->min_args, n),
		       -EINVAL;
	if (c->max_args >= 0 && (n < c->min_args || n > c->max_args))
		return ocli_fail("accepts between %d and %d arg(s), received %d", c->min_args,
				 c->max_args, n),
		       -EINVAL;
	return 0;
}

int ocli_client(struct orchard_client **ret)
{
	_cleanup_free_ char *err = NULL;
	int r = orchard_client_from_config(ret, &err);
	if (r < 0)
		ocli_fail("%s", err ? err : strerror(-r));
	return r;
}

int ocli_api_fail(int r, const char *err)
{
	return ocli_fail("%s", err ? err : strerror(-r));
}

int ocli_read_arg_file(const char *v, char **ret)
{
	if (v[0] != '@') {
		*ret = xstrdup(v);
		return 0;
	}
	struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(v + 1, 1 << 20, &sb);
	if (r < 0) {
		strbuf_release(&sb);
		return ocli_fail("open %s: %s", v + 1, strerror(-r)), r;
	}
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

char *ocli_map_lines(const json_t *obj)
{
	struct strbuf sb = STRBUF_INIT;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		if (sb.len)
			strbuf_putc(&sb, '\n');
		if (json_is_integer(v))
			strbuf_putf(&sb, "%s: %lld", k, (long long)json_integer_value(v));
		else
			strbuf_putf(&sb, "%s: %s", k, json_string_value(v) ?: "");
	}
	return strbuf_detach(&sb, NULL);
}

void ocli_print_rows(const char *const *rows, size_t n)
{
	struct strbuf out = STRBUF_INIT;
	orchard_table(rows, n, 2, &out);
	printf("%s\n", out.buf);
	strbuf_release(&out);
}

int ocli_begin(const struct ocli_cmd *c, int argc, char **argv, struct strvec *args,
	       struct orchard_client **ret_client)
{
	int r = ocli_parse(c, argc, argv, args);
	if (r != 0)
		return r > 0 ? 1 : -1;
	return ocli_client(ret_client) < 0 ? -1 : 0;
}

char *ocli_path(const char *kind, const char *name, const char *suffix)
{
	_cleanup_free_ char *esc = orchard_escape(name);
	return suffix ? xasprintf("%s/%s/%s", kind, esc, suffix) : xasprintf("%s/%s", kind, esc);
}
