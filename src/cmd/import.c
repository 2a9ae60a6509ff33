// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/log.h"
#include "vm/archive.h"

static const struct cmd_help help = {
    .name = "import",
    .overview = "Import VM from a compressed .tvm file",
    .usage = "import <path> <name>",
    .details = "Imports an archive written by `tart export` (an OCI image-layout tar; "
	       "`skopeo copy docker://... oci-archive:<path>` produces one too).\n\n"
	       "ARGUMENTS:\n"
	       "  <path>                  Path to a file created with \"tart export\".\n"
	       "  <name>                  Destination VM name.\n\n"
	       "OPTIONS:\n"
	       "  -h, --help              Show help information.\n",
};

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<path>", "<name>"};
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
	const char *path = argv[optind], *name = argv[optind + 1];
	if (strchr(name, '/'))
		return cmd_usage_error(&help, "%s should be a local name", name);
	log_info("importing...");
	r = vm_import(path, name);
	return r < 0 ? r : 0;
}
