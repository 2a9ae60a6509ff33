/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Command-line parsing for the `orchard` commands the way Orchard's cobra/pflag parse them:
 * long flags as --name value or --name=value, shorthands, boolean flags that take =false,
 * flags anywhere among the arguments, "--" ending them, pflag's messages ("unknown flag: --x",
 * "flag needs an argument: --x", `invalid argument "x" for "--cpu" flag: ...`) and cobra's
 * argument counts ("accepts 1 arg(s), received 0"). Orchard prints a failure's message alone
 * on stderr and exits 1; so do we.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/macro.h"
#include "util/strvec.h"

enum ocli_type {
	OCLI_BOOL,    /* bool * */
	OCLI_STRING,  /* const char ** (points into argv) */
	OCLI_U64,     /* uint64_t * */
	OCLI_SLICE,   /* struct strvec *: repeatable, comma-separated (pflag StringSlice) */
	OCLI_ARRAY,   /* struct strvec *: repeatable, taken whole (pflag StringArray) */
	OCLI_MAP,     /* json_t * object: repeatable k=v,k=v (pflag StringToString) */
	OCLI_MAP_U64, /* the same with unsigned integer values (Orchard's resources) */
};

struct ocli_flag {
	const char *name;
	char shorthand; /* 0: none */
	enum ocli_type type;
	void *target;
	const char *usage;
	const char *def; /* shown as "(default ...)" */
	bool hidden;
	bool *seen; /* set when the flag was given, may be NULL */
};

struct ocli_cmd {
	const char *path; /* "create vm" */
	const char *args; /* "NAME" */
	const char *short_help;
	const struct ocli_flag *flags; /* ends with {0} */
	int min_args, max_args;	       /* max -1: any */
};

/*
 * Parse argv (argv[0] is the command's own name). Returns 0 and the positional arguments in
 * *ret_args (pointers into argv), 1 when --help was printed, or -EINVAL after printing the
 * problem on stderr.
 */
int ocli_parse(const struct ocli_cmd *c, int argc, char **argv, struct strvec *ret_args);

/* Print an error message (Orchard: the message alone) and return 1. */
int ocli_fail(const char *fmt, ...) _printf_(1, 2);

struct orchard_client;
/* A client for the current context; prints the problem and returns < 0 on failure. */
int ocli_client(struct orchard_client **ret);
/*
 * Print an API failure (the client's message, or strerror) and return 1; for 404s a caller
 * may prefer its own words.
 */
int ocli_api_fail(int r, const char *err);
/* Read --startup-script's value: "@path" reads the file (1 MiB at most), else itself. */
int ocli_read_arg_file(const char *v, char **ret);

/* A JSON object's members as "key: value" lines ("" when empty); allocated. */
char *ocli_map_lines(const json_t *obj);
/* Print a two-column table (rows: n pairs of strings). */
void ocli_print_rows(const char *const *rows, size_t n);

/*
 * ocli_parse, then a client for the current context: 0 to go on, 1 when --help was printed
 * (exit 0), -1 after printing a problem (exit 1).
 */
int ocli_begin(const struct ocli_cmd *c, int argc, char **argv, struct strvec *args,
	       struct orchard_client **ret_client);
/* "<kind>/<escaped name>[/<suffix>]", allocated. */
char *ocli_path(const char *kind, const char *name, const char *suffix);
