// SPDX-License-Identifier: Apache-2.0
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "orchard/cmd/cmd.h"
#include "util/log.h"
#include "util/macro.h"

struct orchard_cmd_entry {
	const char *group; /* first word */
	const char *sub;   /* second word, NULL for one-word commands */
	int (*fn)(int argc, char **argv);
	const char *summary;
};

/* Orchard's order: resources first, then administrative tasks. */
static const struct orchard_cmd_entry commands[] = {
    {"controller", "run", orchard_cmd_controller_run, "Run the controller"},
};

static void print_help(const char *group)
{
	if (group)
		printf("Usage:\n  orchard %s [command]\n\nAvailable Commands:\n", group);
	else
		printf("Orchard: a controller, workers and a CLI for fleets of tart VMs\n\n"
		       "Usage:\n  orchard [command]\n\nAvailable Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct orchard_cmd_entry *c = &commands[i];
		if (group && !streq(group, c->group))
			continue;
		char name[64];
		snprintf(name, sizeof(name), "%s%s%s", c->group, c->sub ? " " : "",
			 c->sub ? c->sub : "");
		printf("  %-28s%s\n", name, c->summary);
	}
	printf(
	    "\nFlags:\n  -h, --help      help for orchard\n  -v, --version   version for "
	    "orchard\n\nUse \"orchard [command] --help\" for more information about a command.\n");
}

static bool group_exists(const char *group)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (streq(commands[i].group, group))
			return true;
	return false;
}

static int exit_code(int r)
{
	return r >= 0 ? r : 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_setup_from_env();

	if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") ||
	    streq(argv[1], "help")) {
		print_help(NULL);
		return 0;
	}
	if (streq(argv[1], "--version") || streq(argv[1], "-v")) {
		printf("orchard version %s-%s\n", ORCHARD_VERSION, ORCHARD_COMMIT);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct orchard_cmd_entry *c = &commands[i];
		if (!streq(c->group, argv[1]))
			continue;
		if (!c->sub)
			return exit_code(c->fn(argc - 1, argv + 1));
		if (argc >= 3 && streq(c->sub, argv[2]))
			return exit_code(c->fn(argc - 2, argv + 2));
	}
	if (group_exists(argv[1])) {
		if (argc >= 3 && !streq(argv[2], "--help") && !streq(argv[2], "-h")) {
			fprintf(stderr, "Error: unknown command \"%s\" for \"orchard %s\"\n",
				argv[2], argv[1]);
			return 1;
		}
		print_help(argv[1]);
		return argc >= 3 ? 0 : 1;
	}
	fprintf(stderr,
		"Error: unknown command \"%s\" for \"orchard\"\nRun 'orchard --help' for usage.\n",
		argv[1]);
	return 1;
}
