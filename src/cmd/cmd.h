/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Adding a command:
 *  1. write src/cmd/<name>.c with `int cmd_<name>(int argc, char **argv)`: a `struct cmd_help`,
 *     a static option table and `struct cmd_spec` for cmd_parse() (options go to a small
 *     on_opt callback filling the command's option struct), argument checks, one call into
 *     vm/, oci/, qemu/ or net/, and the printing of the result;
 *  2. declare it below and add it to the table in src/main.c;
 *  3. add the file to src/cmd/meson.build, and tests under tests/.
 *
 * Return values: >= 0 is the process exit code (`exec` passes the guest's through); a negative
 * errno is mapped by main.c to Tart's exit codes: -ENOENT ("VM does not exist"), -ESRCH ("not
 * running") and -EALREADY ("already running") exit 2, CMD_EUSAGE exits 64, anything else 1.
 * Whatever failed has been logged already, by the layer that had the context.
 */

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/macro.h"

#define CMD_EUSAGE (-10064)

struct cmd_help {
	const char *name;     /* "create" */
	const char *overview; /* one line */
	const char *usage;    /* "create <name> [--linux] [--disk-size <disk-size>]" */
	const char *details;  /* ARGUMENTS:/OPTIONS: sections, ending with a newline */
};

/* Print "Error: <msg>", the usage line and a pointer to --help on stderr; returns CMD_EUSAGE. */
int cmd_usage_error(const struct cmd_help *h, const char *fmt, ...) _printf_(2, 3);
/* Print the whole help on stdout. */
void cmd_print_help(const struct cmd_help *h);

/*
 * Run getopt_long with our conventions: "-h"/"--help" print help (returns 'h'), an unknown
 * option or a missing value is a usage error (returns CMD_EUSAGE after printing). Otherwise
 * returns getopt_long's value (-1 at the end). Call with optind = 0 reset by cmd_getopt_init.
 */
void cmd_getopt_init(void);
int cmd_getopt(const struct cmd_help *h, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* What a command accepts, for cmd_parse(). */
struct cmd_spec {
	const struct cmd_help *help;
	const char *shortopts;	       /* NULL: "h" */
	const struct option *longopts; /* NULL: --help only; else it must list {"help", ..., 'h'} */
	/* Called for every other option with its value (or NULL); < 0 stops parsing. */
	int (*on_opt)(int c, const char *arg, void *userdata);
	int min_args, max_args;	      /* positional arguments; max_args -1: no limit */
	const char *const *arg_names; /* "<name>", ... for the messages */
};

/*
 * The whole of a command's argument parsing: cmd_getopt_init, the cmd_getopt loop, the
 * positional count. Returns the index in argv of the first positional argument (>= 1) when
 * the command goes on, 0 when --help was printed (the command exits 0), or < 0: a usage
 * error (printed, CMD_EUSAGE) or whatever on_opt returned. So a command starts with
 *     int a = cmd_parse(&spec, argc, argv, &opts);
 *     if (a <= 0)
 *             return a;
 */
int cmd_parse(const struct cmd_spec *spec, int argc, char **argv, void *userdata);

/* Check the positional count: names are the argument names for the messages ("<name>"). */
int cmd_need_args(const struct cmd_help *h, int nargs, int min, int max, char **args,
		  const char *const *names);

/* --format text|json (Tart's message otherwise); *ret_json set on success. */
int cmd_parse_format(const struct cmd_help *h, const char *value, bool *ret_json);

/* Parse an unsigned flag value with a range; usage error naming the flag otherwise. */
int cmd_parse_u64(const struct cmd_help *h, const char *flag, const char *value, uint64_t min,
		  uint64_t max, uint64_t *ret);

/* Option values of the flags pull and clone share; a command's own start at CMD_OPT_OWN. */
enum { CMD_OPT_INSECURE = 0x100, CMD_OPT_CONCURRENCY, CMD_OPT_DEDUPLICATE, CMD_OPT_OWN };
struct vm_pull_options;
/* --insecure, --concurrency, --deduplicate (accepted, no effect) into o; CMD_EUSAGE for others. */
int cmd_pull_opt(const struct cmd_help *h, int c, const char *arg, struct vm_pull_options *o);

/* --concurrency: 1-64 with Tart's message for 0; *ret set on success. */
int cmd_parse_concurrency(const struct cmd_help *h, const char *value, uint64_t *ret);

struct vm_dir;
/*
 * Open the local VM `name` (vm_dir_open_local: logged, -ENOENT when absent) and find the pid of
 * the `tart run` running it: *ret_pid is 0 when it does not run. For stop and suspend.
 */
int cmd_open_local_vm_pid(const char *name, struct vm_dir *ret, pid_t *ret_pid);

/* Write stdout data and check for errors at exit (done by main). */

int cmd_create(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_set(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_ip(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_rename(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_fqn(int argc, char **argv);
int cmd_suspend(int argc, char **argv);
