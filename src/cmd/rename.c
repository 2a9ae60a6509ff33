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
	static const char *const names[] = {"<name>", "<new-name>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 2, .max_args = 2, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	const char *name = argv[a], *new_name = argv[a + 1];
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
	int r = vm_rename_local(name, new_name);
	return r < 0 ? r : 0;
}
