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
	static const char *const names[] = {"<path>", "<name>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 2, .max_args = 2, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	const char *path = argv[a], *name = argv[a + 1];
	if (strchr(name, '/'))
		return cmd_usage_error(&help, "%s should be a local name", name);
	log_info("importing...");
	int r = vm_import(path, name);
	return r < 0 ? r : 0;
}
