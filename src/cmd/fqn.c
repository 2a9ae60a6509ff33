// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd/cmd.h"
#include "oci/ref.h"
#include "util/log.h"
#include "vm/storage.h"

static const struct cmd_help help = {
	.name = "fqn",
	.overview = "Get a fully-qualified VM name",
	.usage = "fqn <name>",
	.details = "Prints host/namespace@sha256:<digest> for a cached remote name (resolving its "
		   "tag), and local names as they are.\n\n"
		   "ARGUMENTS:\n"
		   "  <name>                  VM name\n\n"
		   "OPTIONS:\n"
		   "  -h, --help              Show help information.\n",
};

int cmd_fqn(int argc, char **argv)
{
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 1, .max_args = 1, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	int r = 0;
	struct oci_ref ref = OCI_REF_INIT;
	if (oci_ref_parse(name, &ref, NULL) < 0) {
		printf("%s\n", name);
		return 0;
	}
	char *fqn = NULL;
	/* As Tart: a digest reference is fully qualified already, cached or not. */
	if (ref.digest)
		fqn = oci_ref_to_string(&ref);
	else
		r = vm_cache_fqn(&ref, &fqn);
	oci_ref_release(&ref);
	if (r < 0) {
		/* Tart resolves the path without checking it exists: a missing tag is this error too */
		log_error("OCI storage error: %s is not a digest and doesn't point to a digest", name);
		return -EINVAL;
	}
	printf("%s\n", fqn);
	free(fqn);
	return 0;
}
