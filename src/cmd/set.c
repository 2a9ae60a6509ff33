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

enum {
	ARG_CPU = 0x100,
	ARG_MEMORY,
	ARG_DISPLAY,
	ARG_REFIT,
	ARG_NO_REFIT,
	ARG_RANDOM_MAC,
	ARG_RANDOM_SERIAL,
	ARG_DISK,
	ARG_DISK_SIZE,
};

struct set_opts {
	uint64_t cpu, memory_mib, disk_gb;
	bool have_cpu, have_memory, have_disk_size, random_mac;
	const char *display, *disk;
	int refit;
};

/* --memory floor for every guest, where Tart checks Virtualization.framework's minimum */
#define SET_MIN_MEMORY (128ULL << 20)

/* Tart's LessThanMinimalResourcesError: a runtime error (exit 1), not a usage error. */
static int check_resources(const struct vm_config *c, const struct set_opts *o)
{
	bool darwin = streq(c->os, "darwin");
	uint64_t min_cpu = darwin && c->cpu_count_min > 1 ? c->cpu_count_min : 1;
	uint64_t min_mem = darwin && c->memory_size_min > SET_MIN_MEMORY ? c->memory_size_min
									 : SET_MIN_MEMORY;
	if (o->have_cpu && o->cpu < min_cpu) {
		log_error("Error: LessThanMinimalResourcesError: VM should have %llu CPU cores at "
			  "minimum (requested %llu)",
			  (unsigned long long)min_cpu, (unsigned long long)o->cpu);
		return -EINVAL;
	}
	if (o->have_memory && o->memory_mib << 20 < min_mem) {
		log_error("Error: LessThanMinimalResourcesError: VM should have %llu bytes of memory "
			  "at minimum (requested %llu)",
			  (unsigned long long)min_mem, (unsigned long long)(o->memory_mib << 20));
		return -EINVAL;
	}
	return 0;
}

static void apply_opts(struct vm_config *c, const struct set_opts *o)
{
	if (o->have_cpu)
		c->cpu_count = o->cpu;
	if (o->have_memory)
		c->memory_size = o->memory_mib << 20;
	if (o->display) {
		uint64_t w, h;
		char unit[3];
		(void)parse_display(o->display, &w, &h, unit); /* validated while parsing flags */
		if (w > 0)
			c->display_width = w;
		if (h > 0)
			c->display_height = h;
		snprintf(c->display_unit, sizeof(c->display_unit), "%s", unit);
	}
	if (o->refit >= 0)
		c->display_refit = o->refit;
	if (o->random_mac)
		vm_mac_random(c->mac);
}

/* Load config.json, check and apply the changes, write it back atomically. */
static int update_config(const struct vm_dir *d, const struct set_opts *o)
{
	_cleanup_free_ char *cp = vm_dir_file(d, VM_CONFIG_FILE);
	struct vm_config c;
	int r = vm_dir_load_config(d, &c);
	if (r < 0)
		return r;
	r = check_resources(&c, o);
	if (r == 0) {
		apply_opts(&c, o);
		r = vm_config_save(&c, cp);
		if (r < 0)
			log_error_errno(r, "cannot write '%s'", cp);
	}
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

static int set_opt(int c, const char *arg, void *userdata)
{
	struct set_opts *o = userdata;
	uint64_t w, h;
	char unit[3];
	switch (c) {
	case ARG_CPU:
		o->have_cpu = true;
		return cmd_parse_u64(&help, "--cpu", arg, 0, UINT16_MAX, &o->cpu);
	case ARG_MEMORY:
		o->have_memory = true;
		return cmd_parse_u64(&help, "--memory", arg, 0, UINT64_MAX >> 20, &o->memory_mib);
	case ARG_DISPLAY:
		if (parse_display(arg, &w, &h, unit) < 0)
			return cmd_usage_error(&help, "The value '%s' is invalid for '--display' "
						      "(expected WIDTHxHEIGHT[px|pt])",
					       arg);
		o->display = arg;
		return 0;
	case ARG_REFIT:
	case ARG_NO_REFIT:
		o->refit = c == ARG_REFIT;
		return 0;
	case ARG_RANDOM_MAC:
		o->random_mac = true;
		return 0;
	case ARG_RANDOM_SERIAL:
		return 0; /* macOS guests only */
	case ARG_DISK:
		o->disk = arg;
		return 0;
	case ARG_DISK_SIZE:
		o->have_disk_size = true;
		return cmd_parse_u64(&help, "--disk-size", arg, 0, UINT16_MAX, &o->disk_gb);
	default:
		return CMD_EUSAGE;
	}
}

int cmd_set(int argc, char **argv)
{
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
	static const struct cmd_spec spec = {.help = &help, .longopts = opts, .on_opt = set_opt,
					     .min_args = 1, .max_args = 1, .arg_names = names};
	struct set_opts o = {.refit = -1};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;

	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_dir_open_local(argv[a], &d);
	if (r < 0)
		return r;
	if (vm_dir_running_pid(&d) > 0) {
		/* config.json carries the run lock: replacing it would hide the running VM. */
		log_error("VM \"%s\" is running", d.name);
		return -EBUSY;
	}
	/* A missing --disk file is not a missing VM: exit 1, not 2. */
	if (o.disk && (r = replace_disk(&d, o.disk)) < 0)
		return r == -ENOENT ? -EINVAL : r;
	if (o.have_disk_size && (r = vm_disk_grow(&d, o.disk_gb * 1000000000ULL)) < 0)
		return r;
	return update_config(&d, &o);
}
