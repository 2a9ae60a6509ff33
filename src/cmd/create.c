// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cmd/cmd.h"
#include "qemu/firmware.h"
#include "util/log.h"
#include "vm/config.h"
#include "vm/ops.h"

static const struct cmd_help help = {
	.name = "create",
	.overview = "Create a VM",
	.usage = "create <name> [--from-ipsw <from-ipsw>] [--linux] [--disk-size <disk-size>] "
		 "[--disk-format <disk-format>]",
	.details = "ARGUMENTS:\n"
		   "  <name>                  VM name\n\n"
		   "OPTIONS:\n"
		   "  --from-ipsw <from-ipsw> create a macOS VM from an IPSW (needs Apple hardware:\n"
		   "                          not supported on Linux)\n"
		   "  --linux                 create a Linux VM\n"
		   "  --disk-size <disk-size> Disk size in GB (default: 50)\n"
		   "  --disk-format <disk-format>\n"
		   "                          Disk image format: raw (asif needs macOS 26) (default: raw)\n"
		   "  -h, --help              Show help information.\n",
};

/* --disk-format: case-insensitive like Tart's; ASIF is a macOS 26 container. */
static int check_disk_format(const char *value)
{
	if (strcasecmp(value, "raw") == 0)
		return 0;
	if (strcasecmp(value, "asif") == 0)
		return cmd_usage_error(&help, "Disk format 'asif' is not supported on this system.");
	return cmd_usage_error(&help,
			       "The value '%s' is invalid for '--disk-format <disk-format>'. Please "
			       "provide one of 'raw' and 'asif'.",
			       value);
}

enum { ARG_FROM_IPSW = 0x100, ARG_LINUX, ARG_DISK_SIZE, ARG_DISK_FORMAT };

struct create_opts {
	bool linux_vm, ipsw;
	uint64_t disk_gb;
};

static int create_opt(int c, const char *arg, void *userdata)
{
	struct create_opts *o = userdata;
	switch (c) {
	case ARG_FROM_IPSW:
		o->ipsw = true;
		return 0;
	case ARG_LINUX:
		o->linux_vm = true;
		return 0;
	case ARG_DISK_SIZE:
		return cmd_parse_u64(&help, "--disk-size", arg, 1, 65535, &o->disk_gb);
	case ARG_DISK_FORMAT:
		return check_disk_format(arg);
	default:
		return CMD_EUSAGE;
	}
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{"from-ipsw", required_argument, NULL, ARG_FROM_IPSW},
		{"linux", no_argument, NULL, ARG_LINUX},
		{"disk-size", required_argument, NULL, ARG_DISK_SIZE},
		{"disk-format", required_argument, NULL, ARG_DISK_FORMAT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {.help = &help, .longopts = opts, .on_opt = create_opt,
					     .min_args = 1, .max_args = 1, .arg_names = names};
	struct create_opts o = {.disk_gb = 50};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	/* Tart's validation on hosts without macOS guest support (Intel Macs) */
	if (o.ipsw)
		return cmd_usage_error(&help, "Only Linux VMs are supported on this host: macOS "
					      "guests (--from-ipsw) need Apple hardware");
	if (!o.linux_vm)
		return cmd_usage_error(&help, "Please specify either a --from-ipsw or --linux option!");

	struct qemu_firmware fw = {0};
	int r = qemu_firmware_find(vm_host_arch(), &fw);
	if (r < 0) {
		log_error("cannot find the UEFI firmware for %s: install the Debian package '%s'",
			  vm_host_arch(), qemu_firmware_package(vm_host_arch()));
		return r;
	}
	r = vm_create_linux(argv[a], o.disk_gb * 1000000000ULL, fw.vars);
	qemu_firmware_release(&fw);
	return r < 0 ? r : 0;
}
