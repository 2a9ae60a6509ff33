// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>

#include "cmd/cmd.h"
#include "oci/ref.h"
#include "vm/ops.h"
#include "vm/storage.h"

static const struct cmd_help help = {
	.name = "delete",
	.overview = "Delete a VM",
	.usage = "delete <name> ...",
	.details = "ARGUMENTS:\n"
		   "  <name>                  VM name(s): local names or cached remote names\n\n"
		   "OPTIONS:\n"
		   "  -h, --help              Show help information.\n",
};

int cmd_delete(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	static const char *const names[] = {"<name>"};
	int c;
	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		if (c == 'h')
			return 0;
		return c < 0 ? c : CMD_EUSAGE;
	}
	int r = cmd_need_args(&help, argc - optind, 1, -1, argv + optind, names);
	if (r < 0)
		return r;
	/* In order; the first failure stops, as in Tart. */
	for (int i = optind; i < argc; i++) {
		struct oci_ref ref = OCI_REF_INIT;
		if (oci_ref_parse(argv[i], &ref, NULL) == 0) {
			r = vm_cache_delete(&ref);
			oci_ref_release(&ref);
		} else {
			r = vm_delete_local(argv[i]);
		}
		if (r < 0)
			return r;
	}
	return 0;
}
