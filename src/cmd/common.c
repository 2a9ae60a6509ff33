// SPDX-License-Identifier: Apache-2.0
#include "cmd/cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/parse.h"
#include "vm/dir.h"
#include "vm/pull.h"

int cmd_usage_error(const struct cmd_help *h, const char *fmt, ...)
{
	va_list ap;
	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: tart %s\n  See 'tart %s --help' for more information.\n", h->usage,
		h->name);
	return CMD_EUSAGE;
}

void cmd_print_help(const struct cmd_help *h)
{
	printf("OVERVIEW: %s\n\nUSAGE: tart %s\n\n%s", h->overview, h->usage, h->details);
}

void cmd_getopt_init(void)
{
	optind = 0;
	opterr = 0;
}

/*
 * getopt_long takes any unique prefix ("--form" for "--format"); swift-argument-parser does
 * not, and a script that works with us should work with Tart. The option just parsed is the
 * last argument consumed, or the one before when its value came separately. Returns the
 * option's text when it is only a prefix of o's name, NULL otherwise.
 */
static const char *long_name_abbreviated(const struct option *o, char **argv)
{
	int i = optind - 1;
	if (optarg && i >= 1 && optarg == argv[i])
		i--;
	if (i < 1 || !strneq(argv[i], "--", 2))
		return NULL;
	const char *name = argv[i] + 2;
	size_t n = strcspn(name, "=");
	return n == strlen(o->name) && strneq(name, o->name, n) ? NULL : argv[i];
}

int cmd_getopt(const struct cmd_help *h, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	int longidx = -1;
	int c = getopt_long(argc, argv, shortopts, longopts, &longidx);
	if (c == 'h') {
		cmd_print_help(h);
		return 'h';
	}
	if (c == '?') {
		const char *arg = argv[optind - 1];
		/* optopt also carries the value of a long option that lacks its value */
		if (optopt && !strneq(arg, "--", 2))
			/* a known short option without its value, or an unknown short option */
			return cmd_usage_error(h, strchr(shortopts, optopt) ? "Missing value for '-%c'"
									    : "Unknown option '-%c'",
					       optopt);
		for (const struct option *o = longopts; o->name; o++) {
			size_t n = strlen(o->name);
			if (strneq(arg + 2, o->name, n) && (arg[2 + n] == 0 || arg[2 + n] == '=')) {
				if (o->has_arg == no_argument)
					return cmd_usage_error(h, "'--%s' takes no value", o->name);
				return cmd_usage_error(h, "Missing value for '--%s <%s>'", o->name, o->name);
			}
		}
		return cmd_usage_error(h, "Unknown option '%s'", arg);
	}
	if (c == ':')
		return cmd_usage_error(h, "Missing value for '%s'", argv[optind - 1]);
	const char *abbrev = longidx >= 0 ? long_name_abbreviated(&longopts[longidx], argv) : NULL;
	if (abbrev)
		return cmd_usage_error(h, "Unknown option '%s'", abbrev);
	/*
	 * A value given as the next argument that looks like an option ("--net-bridged --accel=x")
	 * means the option's own value is missing: swift-argument-parser refuses it, and taking
	 * it would turn a typo into a bridge named "--accel=x". "--opt=-x" stays possible.
	 */
	if (optarg && optarg == argv[optind - 1] && optarg[0] == '-' && optarg[1]) {
		if (longidx >= 0)
			return cmd_usage_error(h, "Missing value for '--%s <%s>'",
					       longopts[longidx].name, longopts[longidx].name);
		return cmd_usage_error(h, "Missing value for '-%c'", c);
	}
	return c;
}

int cmd_parse(const struct cmd_spec *spec, int argc, char **argv, void *userdata)
{
	static const struct option help_only[] = {{"help", no_argument, NULL, 'h'}, {0}};
	const struct option *longopts = spec->longopts ? spec->longopts : help_only;
	int c, r;
	cmd_getopt_init();
	while ((c = cmd_getopt(spec->help, argc, argv, spec->shortopts ? spec->shortopts : "h",
			       longopts)) != -1) {
		if (c == 'h')
			return 0;
		if (c < 0)
			return c;
		r = spec->on_opt ? spec->on_opt(c, optarg, userdata) : CMD_EUSAGE;
		if (r < 0)
			return r;
	}
	r = cmd_need_args(spec->help, argc - optind, spec->min_args, spec->max_args, argv + optind,
			  spec->arg_names);
	return r < 0 ? r : optind;
}

int cmd_need_args(const struct cmd_help *h, int nargs, int min, int max, char **args,
		  const char *const *names)
{
	if (nargs < min)
		return cmd_usage_error(h, "Missing expected argument '%s'", names[nargs]);
	if (max >= 0 && nargs > max)
		return cmd_usage_error(h, "Unexpected argument '%s'", args[max]);
	return 0;
}

int cmd_parse_format(const struct cmd_help *h, const char *value, bool *ret_json)
{
	if (!streq(value, "json") && !streq(value, "text"))
		return cmd_usage_error(h,
				       "The value '%s' is invalid for '--format <format>'. Please "
				       "provide one of 'text' and 'json'.",
				       value);
	*ret_json = streq(value, "json");
	return 0;
}

int cmd_parse_u64(const struct cmd_help *h, const char *flag, const char *value, uint64_t min,
		  uint64_t max, uint64_t *ret)
{
	uint64_t v;
	if (parse_u64(value, max, &v) < 0 || v < min)
		return cmd_usage_error(h, "The value '%s' is invalid for '%s' (expected %llu-%llu)",
				       value, flag, (unsigned long long)min, (unsigned long long)max);
	*ret = v;
	return 0;
}

int cmd_parse_concurrency(const struct cmd_help *h, const char *value, uint64_t *ret)
{
	uint64_t v = 0;
	int r = cmd_parse_u64(h, "--concurrency", value, 0, 64, &v);
	if (r < 0)
		return r;
	if (v < 1) /* Tart's ValidationError */
		return cmd_usage_error(h, "network concurrency cannot be less than 1");
	*ret = v;
	return 0;
}

int cmd_open_local_vm_pid(const char *name, struct vm_dir *ret, pid_t *ret_pid)
{
	int r = vm_dir_open_local(name, ret);
	if (r < 0)
		return r;
	*ret_pid = vm_dir_running_pid(ret);
	return 0;
}

int cmd_pull_opt(const struct cmd_help *h, int c, const char *arg, struct vm_pull_options *o)
{
	uint64_t conc;
	int r;
	switch (c) {
	case CMD_OPT_INSECURE:
		o->insecure = true;
		return 0;
	case CMD_OPT_DEDUPLICATE:
		return 0;
	case CMD_OPT_CONCURRENCY:
		r = cmd_parse_concurrency(h, arg, &conc);
		if (r < 0)
			return r;
		o->concurrency = (unsigned)conc;
		return 0;
	default:
		return CMD_EUSAGE;
	}
}
