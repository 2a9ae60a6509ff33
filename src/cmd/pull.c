// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "oci/ref.h"
#include "util/log.h"
#include "vm/ops.h"
#include "vm/pull.h"

static const struct cmd_help help = {
    .name = "pull",
    .overview = "Pull a VM from a registry",
    .usage = "pull <remote-name> [--insecure] [--concurrency <concurrency>]",
    .details = "Pulls a virtual machine from a remote OCI-compatible registry. Supports "
	       "authorization via Keychain (see \"tart login --help\"),\n"
	       "Docker credential helpers defined in ~/.docker/config.json or via "
	       "TART_REGISTRY_USERNAME/TART_REGISTRY_PASSWORD environment variables.\n\n"
	       "By default, Tart checks for a local VM with the same name and skips the pull "
	       "if it exists.\n\n"
	       "ARGUMENTS:\n"
	       "  <remote-name>           remote VM name\n\n"
	       "OPTIONS:\n"
	       "  --insecure              connect to the OCI registry via insecure HTTP protocol\n"
	       "  --concurrency <concurrency>\n"
	       "                          network concurrency to use when pulling a remote VM from "
	       "the OCI-compatible registry (default: 4)\n"
	       "  -h, --help              Show help information.\n",
};

static int on_opt(int c, const char *arg, void *userdata)
{
	return cmd_pull_opt(&help, c, arg, userdata);
}

int cmd_pull(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"insecure", no_argument, NULL, CMD_OPT_INSECURE},
	    {"concurrency", required_argument, NULL, CMD_OPT_CONCURRENCY},
	    {"deduplicate", no_argument, NULL, CMD_OPT_DEDUPLICATE},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<remote-name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .longopts = opts,
					     .on_opt = on_opt,
					     .min_args = 1,
					     .max_args = 1,
					     .arg_names = names};
	struct vm_pull_options o = {.concurrency = 4};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	if (!oci_ref_is_remote(name) && vm_local_exists(name) > 0) {
		log_info("\"%s\" is a local image, nothing to pull here!", name);
		return 0;
	}
	struct oci_ref ref = OCI_REF_INIT;
	_cleanup_free_ char *err = NULL;
	if (oci_ref_parse(name, &ref, &err) < 0) {
		log_error("failed to parse remote name: %s", err);
		return -EINVAL;
	}
	_cleanup_free_ char *disp = oci_ref_to_string(&ref);
	oci_ref_release(&ref);
	log_info("pulling %s...", disp);
	return vm_pull(name, &o);
}
