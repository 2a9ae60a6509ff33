// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "qemu/img.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/parse.h"
#include "vm/dir.h"
#include "vm/disk.h"

static const struct cmd_help help = {
	.name = "set",
	.overview = "Modify VM's configuration",
	.usage = "set <name> [--cpu <cpu>] [--memory <memory>] [--display <display>] "
		 "[--display-refit] [--no-display-refit] [--random-mac] [--random-serial] "
		 "[--disk <disk>] [--disk-size <disk-size>]",
	.details = "ARGUMENTS:\n"
		   "  <name>                  VM name\n\n"
		   "OPTIONS:\n"
		   "  --cpu <cpu>             Number of VM CPUs\n"
		   "  --memory <memory>       VM memory size in megabytes\n"
		   "  --display <display>     VM display resolution in a format of WIDTHxHEIGHT[px|pt]\n"
		   "  --display-refit/--no-display-refit\n"
		   "                          Whether to automatically reconfigure the display size\n"
		   "  --random-mac            Generate a new random MAC address for the VM.\n"
		   "  --random-serial         Generate a new random serial number (macOS only, no-op)\n"
		   "  --disk <disk>           Replace the VM's disk with a raw or qcow2 image (qcow2 "
		   "is converted to raw)\n"
		   "  --disk-size <disk-size> Resize the VMs disk to the specified size in GB (grow "
		   "only)\n"
		   "  -h, --help              Show help information.\n",
};

struct set_opts {
	uint64_t cpu, memory_mib, disk_gb;
	bool have_cpu, have_memory, have_disk_size, random_mac;
	const char *display, *disk;
	int refit;
};

static int apply_config(const struct vm_dir *d, const struct set_opts *o)
{
	_cleanup_free_ char *cp = vm_dir_file(d, VM_CONFIG_FILE);
	struct vm_config c;
	int r = vm_dir_load_config(d, &c);
	if (r < 0)
		return r;
	if (o->have_cpu) {
		if (o->cpu < c.cpu_count_min && streq(c.os, "darwin")) {
			log_error("LessThanMinimalResourcesError: VM should have %llu CPU cores at "
				  "minimum (requested %llu)",
				  (unsigned long long)c.cpu_count_min, (unsigned long long)o->cpu);
			r = -EINVAL;
			goto out;
		}
		c.cpu_count = o->cpu;
	}
	if (o->have_memory) {
		uint64_t bytes = o->memory_mib * 1024 * 1024;
		if (bytes < c.memory_size_min && streq(c.os, "darwin")) {
			log_error("LessThanMinimalResourcesError: VM should have %llu bytes of memory "
				  "at minimum (requested %llu)",
				  (unsigned long long)c.memory_size_min, (unsigned long long)bytes);
			r = -EINVAL;
			goto out;
		}
		c.memory_size = bytes;
	}
	if (o->display) {
		uint64_t w, h;
		char unit[3];
		(void)parse_display(o->display, &w, &h, unit); /* validated while parsing flags */
		if (w > 0)
			c.display_width = w;
		if (h > 0)
			c.display_height = h;
		snprintf(c.display_unit, sizeof(c.display_unit), "%s", unit);
	}
	if (o->refit >= 0)
		c.display_refit = o->refit;
	if (o->random_mac)
		vm_mac_random(c.mac);
	r = vm_config_save(&c, cp);
	if (r < 0)
		log_error_errno(r, "cannot write '%s'", cp);
out:
	vm_config_release(&c);
	return r;
}

/* Stage the new disk in tmp/ (copy, or convert qcow2 to raw), then swap it in atomically. */
static int replace_disk(const struct vm_dir *d, const char *path)
{
	enum qemu_img_format fmt;
	int r = qemu_img_detect(path, &fmt);
	if (r < 0)
		return r;
	if (fmt == QEMU_IMG_ISO) {
		log_error("'%s' is an ISO image: attach it with 'tart run --disk' instead", path);
		return -EINVAL;
	}
	_cleanup_free_ char *staged = NULL;
	_cleanup_close_ int lock = vm_disk_stage(&staged);
	if (lock < 0)
		return lock;
	if (fmt == QEMU_IMG_QCOW2) {
		r = qemu_img_convert_raw(path, staged);
	} else {
		_cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC);
		_cleanup_close_ int out = open(staged, O_WRONLY | O_TRUNC | O_CLOEXEC);
		r = (in < 0 || out < 0) ? negerrno() : fs_copy_fd(in, out, NULL);
		if (r < 0)
			log_error_errno(r, "cannot copy '%s'", path);
	}
	if (r == 0)
		r = vm_disk_install(d, staged);
	if (r < 0)
		(void)unlink(staged);
	return r;
}

int cmd_set(int argc, char **argv)
{
	enum { ARG_CPU = 0x100, ARG_MEMORY, ARG_DISPLAY, ARG_REFIT, ARG_NO_REFIT, ARG_RANDOM_MAC,
	       ARG_RANDOM_SERIAL, ARG_DISK, ARG_DISK_SIZE };
	static const struct option opts[] = {
		{"cpu", required_argument, NULL, ARG_CPU},
		{"memory", required_argument, NULL, ARG_MEMORY},
		{"display", required_argument, NULL, ARG_DISPLAY},
		{"display-refit", no_argument, NULL, ARG_REFIT},
		{"no-display-refit", no_argument, NULL, ARG_NO_REFIT},
		{"random-mac", no_argument, NULL, ARG_RANDOM_MAC},
		{"random-serial", no_argument, NULL, ARG_RANDOM_SERIAL},
		{"disk", required_argument, NULL, ARG_DISK},
		{"disk-size", required_argument, NULL, ARG_DISK_SIZE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<name>"};
	struct set_opts o = {.refit = -1};
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		uint64_t w, h;
		char unit[3];
		switch (c) {
		case 'h':
			return 0;
		case ARG_CPU:
			if (cmd_parse_u64(&help, "--cpu", optarg, 1, 1024, &o.cpu) < 0)
				return CMD_EUSAGE;
			o.have_cpu = true;
			break;
		case ARG_MEMORY:
			if (cmd_parse_u64(&help, "--memory", optarg, 1, 1ULL << 32, &o.memory_mib) < 0)
				return CMD_EUSAGE;
			o.have_memory = true;
			break;
		case ARG_DISPLAY:
			if (parse_display(optarg, &w, &h, unit) < 0)
				return cmd_usage_error(&help, "The value '%s' is invalid for '--display' "
							      "(expected WIDTHxHEIGHT[px|pt])",
						       optarg);
			o.display = optarg;
			break;
		case ARG_REFIT:
		case ARG_NO_REFIT:
			o.refit = c == ARG_REFIT;
			break;
		case ARG_RANDOM_MAC:
			o.random_mac = true;
			break;
		case ARG_RANDOM_SERIAL:
			break; /* macOS guests only */
		case ARG_DISK:
			o.disk = optarg;
			break;
		case ARG_DISK_SIZE:
			if (cmd_parse_u64(&help, "--disk-size", optarg, 1, 65535, &o.disk_gb) < 0)
				return CMD_EUSAGE;
			o.have_disk_size = true;
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;

	_cleanup_vm_dir_ struct vm_dir d = {0};
	r = vm_dir_open_local(argv[optind], &d);
	if (r < 0)
		return r;
	if (vm_dir_running_pid(&d) > 0) {
		/* config.json carries the run lock: replacing it would hide the running VM. */
		log_error("VM \"%s\" is running", d.name);
		return -EBUSY;
	}
	if (o.disk && (r = replace_disk(&d, o.disk)) < 0)
		return r;
	if (o.have_disk_size && (r = vm_disk_grow(&d, o.disk_gb * 1000000000ULL)) < 0)
		return r;
	return apply_config(&d, &o);
}
