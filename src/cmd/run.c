// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/log.h"
#include "vm/run.h"

static const struct cmd_help help = {
    .name = "run",
    .overview = "Run a VM",
    .usage = "run <name> [--no-graphics] [--serial] [--serial-path <serial-path>] "
	     "[--vnc] [--disk <disk> ...] [--dir <dir> ...] [--nested] "
	     "[--root-disk-opts <opts>] [--accel <accel>] [--net-bridged <interface> ...] "
	     "[--net-softnet] [--net-softnet-allow <cidrs>] [--net-softnet-block <cidrs>] "
	     "[--net-softnet-expose <specs>] [--net-host]",
    .details =
	"ARGUMENTS:\n"
	"  <name>                  VM name\n\n"
	"OPTIONS:\n"
	"  --no-graphics           Don't open a display (the default: this tart has no UI)\n"
	"  --serial                Attach the serial console to a new PTY and print its path\n"
	"  --serial-path <path>    Attach the serial console to an existing PTY or file\n"
	"  --vnc                   Start a VNC server on 127.0.0.1 (random port and password)\n"
	"  --disk <path[:options]> Additional disk: raw or qcow2 image, or an .iso attached\n"
	"                          as a CD-ROM. Options: ro, sync=none|fsync|full,\n"
	"                          caching=automatic|cached|uncached (repeatable)\n"
	"  --dir <[name:]path[:options]>\n"
	"                          Share a directory through virtiofs. Options: ro,\n"
	"                          tag=<tag> (default com.apple.virtio-fs.automount)\n"
	"  --nested                Expose hardware virtualization to the guest (KVM only)\n"
	"  --root-disk-opts <opts> Root disk options: sync=none|fsync|full,\n"
	"                          caching=automatic|cached|uncached\n"
	"  --accel <accel>         auto, kvm or tcg (default: $TART_ACCEL, else auto:\n"
	"                          KVM when a test guest proves it works, else TCG)\n"
	"  --net-bridged <interface>, --net-softnet, --net-softnet-allow <cidrs>,\n"
	"  --net-softnet-block <cidrs>, --net-softnet-expose <specs>, --net-host\n"
	"                          Networking modes (see docs/networking.md)\n"
	"  -h, --help              Show help information.\n",
};

enum {
	ARG_NO_GRAPHICS = 0x100,
	ARG_GRAPHICS,
	ARG_SERIAL,
	ARG_SERIAL_PATH,
	ARG_VNC,
	ARG_VNC_EXPERIMENTAL,
	ARG_DISK,
	ARG_DIR,
	ARG_NESTED,
	ARG_ROOT_DISK_OPTS,
	ARG_ACCEL,
	ARG_NET_BRIDGED,
	ARG_NET_SOFTNET,
	ARG_NET_SOFTNET_ALLOW,
	ARG_NET_SOFTNET_BLOCK,
	ARG_NET_SOFTNET_EXPOSE,
	ARG_NET_HOST,
	ARG_MACOS_ONLY,
	ARG_MACOS_ONLY_VALUE,
};

static const struct option opts[] = {
    {"no-graphics", no_argument, NULL, ARG_NO_GRAPHICS},
    {"graphics", no_argument, NULL, ARG_GRAPHICS},
    {"serial", no_argument, NULL, ARG_SERIAL},
    {"serial-path", required_argument, NULL, ARG_SERIAL_PATH},
    {"vnc", no_argument, NULL, ARG_VNC},
    {"vnc-experimental", no_argument, NULL, ARG_VNC_EXPERIMENTAL},
    {"disk", required_argument, NULL, ARG_DISK},
    {"dir", required_argument, NULL, ARG_DIR},
    {"nested", no_argument, NULL, ARG_NESTED},
    {"root-disk-opts", required_argument, NULL, ARG_ROOT_DISK_OPTS},
    {"accel", required_argument, NULL, ARG_ACCEL},
    {"net-bridged", required_argument, NULL, ARG_NET_BRIDGED},
    {"net-softnet", no_argument, NULL, ARG_NET_SOFTNET},
    {"net-softnet-allow", required_argument, NULL, ARG_NET_SOFTNET_ALLOW},
    {"net-softnet-block", required_argument, NULL, ARG_NET_SOFTNET_BLOCK},
    {"net-softnet-expose", required_argument, NULL, ARG_NET_SOFTNET_EXPOSE},
    {"net-host", no_argument, NULL, ARG_NET_HOST},
    /* macOS-only flags: accepted, ignored with a notice. */
    {"no-audio", no_argument, NULL, ARG_MACOS_ONLY},
    {"no-clipboard", no_argument, NULL, ARG_MACOS_ONLY},
    {"recovery", no_argument, NULL, ARG_MACOS_ONLY},
    {"suspendable", no_argument, NULL, ARG_MACOS_ONLY},
    {"capture-system-keys", no_argument, NULL, ARG_MACOS_ONLY},
    {"no-trackpad", no_argument, NULL, ARG_MACOS_ONLY},
    {"no-pointer", no_argument, NULL, ARG_MACOS_ONLY},
    {"no-keyboard", no_argument, NULL, ARG_MACOS_ONLY},
    {"rosetta", required_argument, NULL, ARG_MACOS_ONLY_VALUE},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* Flag name of the current long option, for messages. */
static const char *opt_name(int c)
{
	for (size_t i = 0; opts[i].name; i++)
		if (opts[i].val == c)
			return opts[i].name;
	return "?";
}

int cmd_run(int argc, char **argv)
{
	static const char *const names[] = {"<name>"};
	struct vm_run_options o;
	vm_run_options_init(&o);
	_cleanup_free_ char **disks = xcalloc((size_t)argc + 1, sizeof(char *));
	_cleanup_free_ char **dirs = xcalloc((size_t)argc + 1, sizeof(char *));
	bool graphics = false, no_graphics = false, softnet = false, host = false;
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_NO_GRAPHICS:
			no_graphics = true;
			break;
		case ARG_GRAPHICS:
			graphics = true;
			break;
		case ARG_SERIAL:
			o.serial_pty = true;
			break;
		case ARG_SERIAL_PATH:
			o.serial_path = optarg;
			break;
		case ARG_VNC:
		case ARG_VNC_EXPERIMENTAL:
			o.vnc = true;
			break;
		case ARG_DISK:
			disks[o.n_disks++] = optarg;
			break;
		case ARG_DIR:
			dirs[o.n_dirs++] = optarg;
			break;
		case ARG_NESTED:
			o.nested = true;
			break;
		case ARG_ROOT_DISK_OPTS: {
			_cleanup_free_ char *err = NULL;
			if (qemu_disk_opts_parse(optarg, &o.root_opts, &err) < 0)
				return cmd_usage_error(&help, "%s", err);
			break;
		}
		case ARG_ACCEL:
			if (!streq(optarg, "auto") && !streq(optarg, "kvm") &&
			    !streq(optarg, "tcg"))
				return cmd_usage_error(
				    &help, "The value '%s' is invalid for '--accel'", optarg);
			o.accel = optarg;
			break;
		case ARG_NET_BRIDGED:
			o.net.mode = NET_MODE_BRIDGED;
			o.net.bridge = optarg;
			break;
		case ARG_NET_SOFTNET:
			softnet = true;
			break;
		case ARG_NET_SOFTNET_ALLOW:
			softnet = true;
			o.net.softnet_allow = optarg;
			break;
		case ARG_NET_SOFTNET_BLOCK:
			softnet = true;
			o.net.softnet_block = optarg;
			break;
		case ARG_NET_SOFTNET_EXPOSE:
			softnet = true;
			o.net.softnet_expose = optarg;
			break;
		case ARG_NET_HOST:
			host = true;
			break;
		case ARG_MACOS_ONLY:
		case ARG_MACOS_ONLY_VALUE:
			log_notice("ignoring --%s: it only applies to macOS hosts or guests",
				   opt_name(c));
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;
	if (graphics && no_graphics)
		return cmd_usage_error(&help,
				       "--graphics and --no-graphics are mutually exclusive");
	if (graphics && !o.vnc)
		log_notice("this tart has no window: use --vnc to see the display");
	if ((o.net.mode == NET_MODE_BRIDGED) + softnet + host > 1)
		return cmd_usage_error(&help, "--net-bridged, --net-softnet and --net-host are "
					      "mutually exclusive");
	if (softnet)
		o.net.mode = NET_MODE_SOFTNET;
	if (host)
		o.net.mode = NET_MODE_HOST;
	if (o.serial_pty && o.serial_path)
		return cmd_usage_error(&help, "--serial and --serial-path are mutually exclusive");
	o.disks = disks;
	o.dirs = dirs;
	return vm_run(argv[optind], &o);
}
