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

int cmd_pull(int argc, char **argv)
{
	enum { ARG_INSECURE = 0x100, ARG_CONCURRENCY, ARG_DEDUP };
	static const struct option opts[] = {
	    {"insecure", no_argument, NULL, ARG_INSECURE},
	    {"concurrency", required_argument, NULL, ARG_CONCURRENCY},
	    {"deduplicate", no_argument, NULL, ARG_DEDUP},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<remote-name>"};
	struct vm_pull_options o = {.concurrency = 4};
	uint64_t conc = 4;
	int c;
	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_INSECURE:
			o.insecure = true;
			break;
		case ARG_DEDUP:
			break;
		case ARG_CONCURRENCY:
			if (cmd_parse_u64(&help, "--concurrency", optarg, 0, 64, &conc) < 0)
				return CMD_EUSAGE;
			if (conc == 0)
				return cmd_usage_error(&help, "network concurrency cannot be less than 1");
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;
	const char *name = argv[optind];
	o.concurrency = (unsigned)conc;
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
