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

enum { ARG_PRUNE_LIMIT = CMD_OPT_OWN };

struct clone_opts {
	struct vm_pull_options pull;
	uint64_t prune_limit;
};

static int on_opt(int c, const char *arg, void *userdata)
{
	struct clone_opts *o = userdata;
	if (c == ARG_PRUNE_LIMIT)
		return cmd_parse_u64(&help, "--prune-limit", arg, 0, 1ULL << 40, &o->prune_limit);
	return cmd_pull_opt(&help, c, arg, &o->pull);
}

int cmd_clone(int argc, char **argv)
{
	static const struct option opts[] = {
		{"insecure", no_argument, NULL, CMD_OPT_INSECURE},
		{"concurrency", required_argument, NULL, CMD_OPT_CONCURRENCY},
		{"prune-limit", required_argument, NULL, ARG_PRUNE_LIMIT},
		{"deduplicate", no_argument, NULL, CMD_OPT_DEDUPLICATE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<source-name>", "<new-name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .longopts = opts,
					     .on_opt = on_opt,
					     .min_args = 2,
					     .max_args = 2,
					     .arg_names = names};
	struct clone_opts o = {.pull = {.concurrency = 4}, .prune_limit = 100};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	const char *src = argv[a], *dst = argv[a + 1];
	uint64_t prune_limit = o.prune_limit;
	int r;
	if (strchr(dst, '/'))
		return cmd_usage_error(&help, "<new-name> should be a local name");
	struct oci_ref ref = OCI_REF_INIT;
	bool remote = oci_ref_parse(src, &ref, NULL) == 0;
	if (remote) {
		bool cached = vm_cache_has(&ref);
		oci_ref_release(&ref);
		if (!cached) {
			r = vm_pull(src, &o.pull);
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
