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
    {"create", "vm", orchard_cmd_create_vm, "Create a VM"},
    {"create", "service-account", orchard_cmd_create_service_account,
     "Create a service account"},
    {"delete", "vm", orchard_cmd_delete_vm, "Delete a VM"},
    {"delete", "worker", orchard_cmd_delete_worker, "Delete a worker"},
    {"delete", "service-account", orchard_cmd_delete_service_account,
     "Delete a service account"},
    {"get", "vm", orchard_cmd_get_vm, "Retrieve a VM and it's fields"},
    {"get", "worker", orchard_cmd_get_worker, "Retrieve a worker and it's fields"},
    {"get", "service-account", orchard_cmd_get_service_account, "Retrieve a service account"},
    {"get", "cluster-settings", orchard_cmd_get_cluster_settings, "Retrieve cluster settings"},
    {"get", "bootstrap-token", orchard_cmd_get_bootstrap_token,
     "Retrieve a bootstrap token for the specified service account"},
    {"ip", "vm", orchard_cmd_ip_vm, "Retrieve a VM's IP address"},
    {"list", "vms", orchard_cmd_list_vms, "List VMs"},
    {"list", "workers", orchard_cmd_list_workers, "List workers"},
    {"list", "service-accounts", orchard_cmd_list_service_accounts, "List service accounts"},
    {"logs", "vm", orchard_cmd_logs_vm, "Retrieve VM logs"},
    {"pause", "worker", orchard_cmd_pause_worker, "Pause a worker"},
    {"port-forward", "vm", orchard_cmd_port_forward_vm, "Forward TCP port to the VM"},
    {"port-forward", "worker", orchard_cmd_port_forward_worker,
     "Forward TCP port to the worker"},
    {"resume", "worker", orchard_cmd_resume_worker, "Resume a worker"},
    {"set", "cluster-settings", orchard_cmd_set_cluster_settings, "Set cluster settings"},
    {"ssh", "vm", orchard_cmd_ssh_vm, "SSH into the VM"},
    {"context", "create", orchard_cmd_context_create, "Create a new context"},
    {"context", "default", orchard_cmd_context_default, "Set a default context"},
    {"context", "delete", orchard_cmd_context_delete, "Delete a context"},
    {"context", "list", orchard_cmd_context_list, "List contexts"},
    {"controller", "run", orchard_cmd_controller_run, "Run the controller"},
    {"dev", NULL, orchard_cmd_dev, "Run a controller, a worker and etcd for development"},
    {"worker", "run", orchard_cmd_worker_run, "Run a worker"},
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
