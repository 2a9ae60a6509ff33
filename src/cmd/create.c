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

int cmd_create(int argc, char **argv)
{
	enum { ARG_FROM_IPSW = 0x100, ARG_LINUX, ARG_DISK_SIZE, ARG_DISK_FORMAT };
	static const struct option opts[] = {
		{"from-ipsw", required_argument, NULL, ARG_FROM_IPSW},
		{"linux", no_argument, NULL, ARG_LINUX},
		{"disk-size", required_argument, NULL, ARG_DISK_SIZE},
		{"disk-format", required_argument, NULL, ARG_DISK_FORMAT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<name>"};
	bool linux_vm = false, ipsw = false;
	uint64_t disk_gb = 50;
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_FROM_IPSW:
			ipsw = true;
			break;
		case ARG_LINUX:
			linux_vm = true;
			break;
		case ARG_DISK_SIZE:
			if (cmd_parse_u64(&help, "--disk-size", optarg, 1, 65535, &disk_gb) < 0)
				return CMD_EUSAGE;
			break;
		case ARG_DISK_FORMAT:
			if (check_disk_format(optarg) < 0)
				return CMD_EUSAGE;
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;
	/* Tart's validation on hosts without macOS guest support (Intel Macs) */
	if (ipsw)
		return cmd_usage_error(&help, "Only Linux VMs are supported on this host: macOS "
					      "guests (--from-ipsw) need Apple hardware");
	if (!linux_vm)
		return cmd_usage_error(&help, "Please specify either a --from-ipsw or --linux option!");

	struct qemu_firmware fw = {0};
	r = qemu_firmware_find(vm_host_arch(), &fw);
	if (r < 0) {
		log_error("cannot find the UEFI firmware for %s: install the Debian package '%s'",
			  vm_host_arch(), qemu_firmware_package(vm_host_arch()));
		return r;
	}
	r = vm_create_linux(argv[optind], disk_gb * 1000000000ULL, fw.vars);
	qemu_firmware_release(&fw);
	return r < 0 ? r : 0;
}
