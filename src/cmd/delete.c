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
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 1, .max_args = -1, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	/* In order; the first failure stops, as in Tart. */
	int r;
	for (int i = a; i < argc; i++) {
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
