// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cmd/cmd.h"
#include "util/log.h"
#include "util/macro.h"
#include "vm/home.h"

#ifndef TART_VERSION
#define TART_VERSION "SNAPSHOT"
#endif

enum cmd_flags {
	CMD_HIDDEN = 1 << 0,
	CMD_NO_TMP_GC = 1 << 1, /* pull and clone skip the tmp/ garbage collection, as in Tart */
};

struct cmd_entry {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	unsigned flags;
};

/* Tart's order of subcommands in the help. */
static const struct cmd_entry commands[] = {
    {"create", cmd_create, "Create a VM", 0},
    {"clone", cmd_clone, "Clone a VM", CMD_NO_TMP_GC},
    {"run", cmd_run, "Run a VM", 0},
    {"set", cmd_set, "Modify VM's configuration", 0},
    {"get", cmd_get, "Get a VM's configuration", 0},
    {"list", cmd_list, "List created VMs", 0},
    {"login", cmd_login, "Login to a registry", 0},
    {"logout", cmd_logout, "Logout from a registry", 0},
    {"ip", cmd_ip, "Get VM's IP address", 0},
    {"exec", cmd_exec, "Execute a command in a running VM", 0},
    {"pull", cmd_pull, "Pull a VM from a registry", CMD_NO_TMP_GC},
    {"push", cmd_push, "Push a VM to a registry", 0},
    {"import", cmd_import, "Import VM from a compressed .tvm file", 0},
    {"export", cmd_export, "Export VM to a compressed .tvm file", 0},
    {"prune", cmd_prune, "Prune OCI and IPSW caches or local VMs", 0},
    {"rename", cmd_rename, "Rename a local VM", 0},
    {"stop", cmd_stop, "Stop a VM", 0},
    {"delete", cmd_delete, "Delete a VM", 0},
    {"fqn", cmd_fqn, "Get a fully-qualified VM name", CMD_HIDDEN},
    {"suspend", cmd_suspend, "Suspend a VM", 0},
};

static void print_help(void)
{
	printf("OVERVIEW: tart for Linux: run and distribute virtual machines with QEMU\n\n"
	       "USAGE: tart <subcommand>\n\n"
	       "OPTIONS:\n"
	       "  --version               Show the version.\n"
	       "  -h, --help              Show help information.\n\n"
	       "SUBCOMMANDS:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!(commands[i].flags & CMD_HIDDEN))
			printf("  %-24s%s\n", commands[i].name, commands[i].summary);
	printf("\n  See 'tart help <subcommand>' for detailed help.\n");
}

static const struct cmd_entry *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (streq(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int exit_code(int r)
{
	if (r >= 0)
		return r;
	switch (r) {
	case CMD_EUSAGE:
		return 64;
	case -ENOENT:
	case -ESRCH:
	case -EALREADY:
		return 2;
	default:
		return 1;
	}
}

/* Flush stdout and turn a write error (ENOSPC, EIO) into a failure, as git does. */
static int finish_stdout(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE) {
			log_error_errno(negerrno(), "cannot write to standard output");
			return code ? code : 1;
		}
	}
	return code;
}

/*
 * prune and the cache GC hold a lock fd per candidate entry: lift the soft limit on open files
 * to the hard one, as many servers do, so a large cache does not run into 1024.
 */
static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Buffers of 128 KiB and more (transfer buffers, libcurl's per-request ones) are mmapped and
 * go back to the system when freed. glibc's default threshold grows to the largest buffer
 * freed, and then every thread's arena keeps megabytes of freed buffers: a push's peak RSS grew
 * with the number of chunks (65 MB for 16 chunks, 71 MB for 40, instead of 39 MB).
 */
static void bound_heap(void)
{
	(void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	raise_nofile_limit();
	bound_heap();
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_setup_from_env();

	if (argc < 2) {
		print_help();
		return finish_stdout(0);
	}
	if (streq(argv[1], "--version")) {
		printf("%s\n", TART_VERSION);
		return finish_stdout(0);
	}
	if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
		print_help();
		return finish_stdout(0);
	}
	if (streq(argv[1], "help")) {
		if (argc < 3) {
			print_help();
			return finish_stdout(0);
		}
		const struct cmd_entry *c = find_command(argv[2]);
		if (!c) {
			fprintf(stderr, "Error: Unknown subcommand '%s'\n", argv[2]);
			return 64;
		}
		char *hargv[] = {argv[2], (char *)"--help", NULL};
		return finish_stdout(exit_code(c->fn(2, hargv)));
	}
	const struct cmd_entry *c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr,
			"Error: Unknown subcommand '%s'\n"
			"Usage: tart <subcommand>\n  See 'tart --help' for more information.\n",
			argv[1]);
		return 64;
	}
	bool wants_help = false;
	for (int i = 2; i < argc && !streq(argv[i], "--"); i++)
		wants_help = wants_help || streq(argv[i], "--help") || streq(argv[i], "-h");
	int r = home_init();
	if (r < 0 && !wants_help)
		return 1;
	if (r >= 0 && !wants_help && !(c->flags & CMD_NO_TMP_GC))
		home_gc_tmp();
	return finish_stdout(exit_code(c->fn(argc - 1, argv + 1)));
}
