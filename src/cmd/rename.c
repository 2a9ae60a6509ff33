// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "vm/ops.h"

static const struct cmd_help help = {
	.name = "rename",
	.overview = "Rename a local VM",
	.usage = "rename <name> <new-name>",
	.details = "ARGUMENTS:\n"
		   "  <name>                  VM name\n"
		   "  <new-name>              New VM name\n\n"
		   "OPTIONS:\n"
		   "  -h, --help              Show help information.\n",
};

int cmd_rename(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	static const char *const names[] = {"<name>", "<new-name>"};
	int c;
	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		if (c == 'h')
			return 0;
		return c < 0 ? c : CMD_EUSAGE;
	}
	int r = cmd_need_args(&help, argc - optind, 2, 2, argv + optind, names);
	if (r < 0)
		return r;
	const char *name = argv[optind], *new_name = argv[optind + 1];
	/* Tart's checks, in its order, all ValidationErrors (exit 64) */
	if (strchr(new_name, '/'))
		return cmd_usage_error(&help, "<new-name> should be a local name");
	if (vm_name_validate(name, NULL) < 0 || !vm_local_exists(name))
		return cmd_usage_error(&help, "failed to rename a non-existent local VM: %s", name);
	if (vm_name_validate(new_name, NULL) == 0 && vm_local_exists(new_name))
		return cmd_usage_error(&help,
				       "failed to rename VM %s, target VM %s already exists, delete it "
				       "first!",
				       name, new_name);
	r = vm_rename_local(name, new_name);
	return r < 0 ? r : 0;
}
