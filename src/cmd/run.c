// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "util/alloc.h"
#include "net/net.h"
#include "util/log.h"
#include "util/strvec.h"
#include "vm/run.h"

static const struct cmd_help help = {
    .name = "run",
    .overview = "Run a VM",
    .usage = "run <name> [--no-graphics] [--graphics] [--serial] "
	     "[--serial-path <serial-path>] "
	     "[--vnc] [--disk <disk> ...] [--dir <dir> ...] [--nested] "
	     "[--root-disk-opts <opts>] [--accel <accel>] [--net-bridged <interface> ...] "
	     "[--net-softnet] [--net-softnet-allow <cidrs>] [--net-softnet-block <cidrs>] "
	     "[--net-softnet-expose <specs>] [--net-host]",
    .details =
	"ARGUMENTS:\n"
	"  <name>                  VM name\n\n"
	"OPTIONS:\n"
	"  --no-graphics           Don't open the window with the VM's screen (it opens by\n"
	"                          default when DISPLAY or WAYLAND_DISPLAY names a display\n"
	"                          and QEMU's GTK display, package qemu-system-gui, exists)\n"
	"  --graphics              Open the window even with --vnc; without a display it is\n"
	"                          an error. A suspended VM resumes with the screen it was\n"
	"                          saved with: saved headless, it resumes without a window\n"
	"  --serial                Attach the serial console to a new PTY and print its path\n"
	"  --serial-path <path>    Attach the serial console to an existing PTY or file\n"
	"  --vnc                   Start a VNC server on 127.0.0.1 (random port and password)\n"
	"                          and print its URL; it replaces the window unless --graphics\n"
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
	"                          Networking modes (see docs/network.md);\n"
	"                          --net-bridged=list lists the bridges and the interfaces\n"
	"                          that could join one\n"
	"  --suspendable           Accepted for Tart compatibility and ignored: 'tart suspend'\n"
	"                          works for every Linux VM without it\n"
	"  --no-audio, --no-clipboard, --recovery, --capture-system-keys, --no-trackpad,\n"
	"  --no-pointer, --no-keyboard, --rosetta <tag>\n"
	"                          macOS-only: accepted and ignored with a notice\n"
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
	ARG_SUSPENDABLE,
	/* macOS-only flags: one value each, so that the notice names the flag given */
	ARG_MACOS_FIRST,
	ARG_NO_AUDIO = ARG_MACOS_FIRST,
	ARG_NO_CLIPBOARD,
	ARG_RECOVERY,
	ARG_CAPTURE_SYSTEM_KEYS,
	ARG_NO_TRACKPAD,
	ARG_NO_POINTER,
	ARG_NO_KEYBOARD,
	ARG_ROSETTA,
	ARG_MACOS_LAST = ARG_ROSETTA,
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
    /* suspend works without it here: accepted silently (Orchard passes it) */
    {"suspendable", no_argument, NULL, ARG_SUSPENDABLE},
    /* macOS-only flags: accepted, ignored with a notice naming them. */
    {"no-audio", no_argument, NULL, ARG_NO_AUDIO},
    {"no-clipboard", no_argument, NULL, ARG_NO_CLIPBOARD},
    {"recovery", no_argument, NULL, ARG_RECOVERY},
    {"capture-system-keys", no_argument, NULL, ARG_CAPTURE_SYSTEM_KEYS},
    {"no-trackpad", no_argument, NULL, ARG_NO_TRACKPAD},
    {"no-pointer", no_argument, NULL, ARG_NO_POINTER},
    {"no-keyboard", no_argument, NULL, ARG_NO_KEYBOARD},
    {"rosetta", required_argument, NULL, ARG_ROSETTA},
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

struct run_opts {
	struct vm_run_options o;
	char **disks, **dirs;
	bool graphics, no_graphics, softnet, host;
};

static int on_opt(int c, const char *arg, void *userdata)
{
	struct run_opts *o = userdata;
	switch (c) {
	case ARG_NO_GRAPHICS:
		o->no_graphics = true;
		return 0;
	case ARG_GRAPHICS:
		o->graphics = true;
		return 0;
	case ARG_SERIAL:
		o->o.serial_pty = true;
		return 0;
	case ARG_SERIAL_PATH:
		o->o.serial_path = arg;
		return 0;
	case ARG_VNC:
	case ARG_VNC_EXPERIMENTAL:
		o->o.vnc = true;
		return 0;
	case ARG_DISK: /* arg is an element of argv, which is not const */
		o->disks[o->o.n_disks++] = (char *)arg;
		return 0;
	case ARG_DIR:
		o->dirs[o->o.n_dirs++] = (char *)arg;
		return 0;
	case ARG_NESTED:
		o->o.nested = true;
		return 0;
	case ARG_ROOT_DISK_OPTS: {
		_cleanup_free_ char *err = NULL;
		if (qemu_disk_opts_parse(arg, &o->o.root_opts, &err) < 0)
			return cmd_usage_error(&help, "%s", err);
		return 0;
	}
	case ARG_ACCEL:
		if (!streq(arg, "auto") && !streq(arg, "kvm") && !streq(arg, "tcg"))
			return cmd_usage_error(&help, "The value '%s' is invalid for '--accel'",
					       arg);
		o->o.accel = arg;
		return 0;
	case ARG_NET_BRIDGED:
		o->o.net.mode = NET_MODE_BRIDGED;
		o->o.net.bridge = arg;
		return 0;
	case ARG_NET_SOFTNET:
		o->softnet = true;
		return 0;
	case ARG_NET_SOFTNET_ALLOW:
		o->softnet = true;
		o->o.net.softnet_allow = arg;
		return 0;
	case ARG_NET_SOFTNET_BLOCK:
		o->softnet = true;
		o->o.net.softnet_block = arg;
		return 0;
	case ARG_NET_SOFTNET_EXPOSE:
		o->softnet = true;
		o->o.net.softnet_expose = arg;
		return 0;
	case ARG_NET_HOST:
		o->host = true;
		return 0;
	case ARG_SUSPENDABLE:
		return 0;
	default:
		if (c >= ARG_MACOS_FIRST && c <= ARG_MACOS_LAST) {
			log_notice("ignoring --%s: it only applies to macOS hosts or guests",
				   opt_name(c));
			return 0;
		}
		return CMD_EUSAGE;
	}
}

/* --net-bridged=list: what Tart lists (its error lists them), one a line on stdout. */
static int list_bridgeable(void)
{
	_cleanup_strvec_ struct strvec bridges = STRVEC_INIT, ethernet = STRVEC_INIT;
	int r = net_bridgeable_list(&bridges, &ethernet);
	if (r < 0)
		return log_error_errno(r, "cannot list the network interfaces");
	for (size_t i = 0; i < bridges.nr; i++)
		printf("%s\n", bridges.v[i]);
	for (size_t i = 0; i < ethernet.nr; i++)
		printf("%s (not a bridge yet: 'ip link add br0 type bridge' and 'ip link set %s "
		       "master br0' put it in one)\n",
		       ethernet.v[i], ethernet.v[i]);
	if (!bridges.nr && !ethernet.nr)
		log_notice("no bridges and no Ethernet interfaces that could join one");
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .longopts = opts,
					     .on_opt = on_opt,
					     .min_args = 0, /* --net-bridged=list needs no VM */
					     .max_args = 1,
					     .arg_names = names};
	struct run_opts ro = {0};
	vm_run_options_init(&ro.o);
	_cleanup_free_ char **disks = ro.disks = xcalloc((size_t)argc + 1, sizeof(char *));
	_cleanup_free_ char **dirs = ro.dirs = xcalloc((size_t)argc + 1, sizeof(char *));
	int a = cmd_parse(&spec, argc, argv, &ro);
	if (a <= 0)
		return a;
	struct vm_run_options *o = &ro.o;
	if (o->net.mode == NET_MODE_BRIDGED && streq(o->net.bridge, "list"))
		return list_bridgeable();
	int k = cmd_need_args(&help, argc - a, 1, 1, argv + a, names);
	if (k < 0)
		return k;
	if (ro.graphics && ro.no_graphics)
		return cmd_usage_error(&help,
				       "--graphics and --no-graphics are mutually exclusive");
	o->graphics = ro.graphics      ? VM_GRAPHICS_ON
		      : ro.no_graphics ? VM_GRAPHICS_OFF
				       : VM_GRAPHICS_AUTO;
	if ((o->net.mode == NET_MODE_BRIDGED) + ro.softnet + ro.host > 1)
		return cmd_usage_error(&help, "--net-bridged, --net-softnet and --net-host are "
					      "mutually exclusive");
	if (ro.softnet)
		o->net.mode = NET_MODE_SOFTNET;
	if (ro.host)
		o->net.mode = NET_MODE_HOST;
	if (o->serial_pty && o->serial_path)
		return cmd_usage_error(&help, "--serial and --serial-path are mutually exclusive");
	o->disks = disks;
	o->dirs = dirs;
	return vm_run(argv[a], o);
}
