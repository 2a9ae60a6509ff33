// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "qemu/firmware.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"
#include "vm/ops.h"
#include "vm/prune.h"
#include "vm/pull.h"
#include "vm/storage.h"

static const struct cmd_help help = {
	.name = "clone",
	.overview = "Clone a VM",
	.usage = "clone <source-name> <new-name> [--insecure] [--concurrency <concurrency>] "
		 "[--prune-limit <n>]",
	.details =
		"Creates a local virtual machine by cloning either a remote or another local "
		"virtual machine.\n\n"
		"ARGUMENTS:\n"
		"  <source-name>           source VM name\n"
		"  <new-name>              new VM name\n\n"
		"OPTIONS:\n"
		"  --insecure              connect to the OCI registry via insecure HTTP protocol\n"
		"  --concurrency <concurrency>\n"
		"                          network concurrency to use when pulling a remote VM from "
		"the OCI-compatible registry (default: 4)\n"
		"  --prune-limit <n>       maximum GiB automatic pruning may free for this clone "
		"(default: 100)\n"
		"  -h, --help              Show help information.\n",
};

/* A pulled image made by Tart on macOS boots here only with the firmware's own variables. */
static int fresh_nvram(const char *name)
{
	struct vm_dir d;
	int r = vm_dir_open_local(name, &d);
	if (r < 0)
		return r;
	struct vm_config c;
	r = vm_dir_load_config(&d, &c);
	_cleanup_free_ char *kernel = vm_dir_file(&d, VM_KERNEL_FILE);
	bool direct = fs_exists(kernel);
	vm_dir_release(&d);
	if (r < 0)
		return r;
	struct qemu_firmware fw = {0};
	if (!direct && qemu_firmware_find(c.arch, &fw) == 0)
		r = vm_nvram_reset_if_foreign(name, fw.vars);
	qemu_firmware_release(&fw);
	vm_config_release(&c);
	return r < 0 ? r : 0;
}

int cmd_clone(int argc, char **argv)
{
	enum { ARG_INSECURE = 0x100, ARG_CONCURRENCY, ARG_PRUNE_LIMIT, ARG_DEDUP };
	static const struct option opts[] = {
		{"insecure", no_argument, NULL, ARG_INSECURE},
		{"concurrency", required_argument, NULL, ARG_CONCURRENCY},
		{"prune-limit", required_argument, NULL, ARG_PRUNE_LIMIT},
		{"deduplicate", no_argument, NULL, ARG_DEDUP},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<source-name>", "<new-name>"};
	uint64_t concurrency = 4, prune_limit = 100;
	bool insecure = false;
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_INSECURE:
			insecure = true;
			break;
		case ARG_DEDUP:
			break;
		case ARG_CONCURRENCY:
			if (cmd_parse_u64(&help, "--concurrency", optarg, 0, 64, &concurrency) < 0)
				return CMD_EUSAGE;
			if (concurrency < 1) /* Tart's ValidationError */
				return cmd_usage_error(&help, "network concurrency cannot be less than 1");
			break;
		case ARG_PRUNE_LIMIT:
			if (cmd_parse_u64(&help, "--prune-limit", optarg, 0, 1ULL << 40, &prune_limit) < 0)
				return CMD_EUSAGE;
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 2, 2, argv + optind, names);
	if (r < 0)
		return r;
	const char *src = argv[optind], *dst = argv[optind + 1];
	if (strchr(dst, '/'))
		return cmd_usage_error(&help, "<new-name> should be a local name");
	struct oci_ref ref = OCI_REF_INIT;
	bool remote = oci_ref_parse(src, &ref, NULL) == 0;
	if (remote) {
		bool cached = vm_cache_has(&ref);
		oci_ref_release(&ref);
		if (!cached) {
			struct vm_pull_options po = {.insecure = insecure,
						     .concurrency = (unsigned)concurrency};
			r = vm_pull(src, &po);
			if (r < 0)
				return r;
		}
	}
	struct vm_dir d;
	r = vm_storage_open(src, &d);
	if (r < 0)
		return r;
	r = vm_clone(&d, dst);
	if (r >= 0 && remote)
		r = fresh_nvram(dst);
	if (r >= 0) {
		/*
		 * As Tart: make room for the clone's sparse disk to fill up, at most prune-limit
		 * GiB, never deleting the source. The clone itself has succeeded either way.
		 */
		uint64_t ap = 0, al = 0;
		(void)vm_dir_sizes(&d, &ap, &al);
		uint64_t want = ap > al ? ap - al : 0;
		if (want > prune_limit * 1024 * 1024 * 1024)
			want = prune_limit * 1024 * 1024 * 1024;
		if (want > 0)
			(void)vm_prune_auto(want, d.path);
	}
	vm_dir_release(&d);
	return r < 0 ? r : 0;
}
