/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The QEMU command line, built from a plain description (struct qemu_spec) into an argv.
 * Pure: no I/O, no logging, so every device choice is unit-tested (tests/unit/test-qemu-argv.c).
 * Also the parsers of Tart's `--disk`, `--dir` and `--root-disk-opts` syntax, which only
 * split strings.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"
#include "util/strvec.h"

/* Tart's DiskOptions: caching automatic|cached|uncached, sync none|fsync|full. */
enum qemu_cache { QEMU_CACHE_AUTOMATIC, QEMU_CACHE_CACHED, QEMU_CACHE_UNCACHED };
enum qemu_sync { QEMU_SYNC_FULL, QEMU_SYNC_FSYNC, QEMU_SYNC_NONE };

struct qemu_disk_opts {
	bool readonly;
	enum qemu_cache cache;
	enum qemu_sync sync;
};

struct qemu_drive {
	const char *path;
	const char *format; /* "raw", "qcow2" */
	bool cdrom;	    /* attached read-only as a SCSI CD-ROM (installer ISOs) */
	struct qemu_disk_opts opts;
};

struct qemu_share {
	const char *tag;
	const char *socket_path; /* abstract socket name of virtiofsd's vhost-user socket */
};

enum qemu_serial {
	QEMU_SERIAL_FD,	  /* a connected socket that tart reads (the bounded serial log) */
	QEMU_SERIAL_PTY,  /* QEMU allocates a pty (--serial) */
	QEMU_SERIAL_TTY,  /* an existing terminal device (--serial-path to a tty) */
	QEMU_SERIAL_FILE, /* output appended to a file (--serial-path to a file) */
};

struct qemu_spec {
	const char *binary; /* qemu-system-x86_64 / qemu-system-aarch64 (full path) */
	const char *arch;   /* Tart's "amd64" | "arm64" */
	const char *accel;  /* "kvm" | "tcg" */
	bool nested;	    /* KVM only: expose virtualization extensions */
	uint64_t cpus;
	uint64_t memory_mib;

	/* UEFI boot: code image (read-only) + the VM's variable store. */
	const char *firmware_code;
	const char *firmware_vars;
	/* Direct kernel boot (takes precedence over firmware when set). */
	const char *kernel;
	const char *initrd;
	const char *cmdline;

	struct qemu_drive root;
	const struct qemu_drive *disks;
	size_t n_disks;
	const struct qemu_share *shares;
	size_t n_shares;

	int qmp_fd; /* connected socket for the QMP monitor */
	enum qemu_serial serial;
	int serial_fd;
	const char *serial_path;

	/*
	 * The screen: a window on the user's desktop (QEMU's GTK display, Debian's
	 * qemu-system-gui), VNC on 127.0.0.1 (display number = port - 5900; -1 = no VNC), both or
	 * neither. Either one brings the graphics card (display_width x display_height, 0 =
	 * 1024x768), a USB keyboard and a USB tablet, unless screen says otherwise; name (the
	 * VM's) titles the window "QEMU (NAME)" and the VNC desktop.
	 */
	bool window;
	const char *name;
	int vnc_display;
	uint64_t display_width, display_height;
	/*
	 * The screen devices apart from the window and VNC, for a saved state that holds them or
	 * not (vm/run.c): QEMU_SCREEN_ON also when headless, QEMU_SCREEN_OFF also beside VNC (a
	 * window without them is inconsistent).
	 */
	enum qemu_screen {
		QEMU_SCREEN_AUTO, /* with the window or VNC */
		QEMU_SCREEN_ON,
		QEMU_SCREEN_OFF,
	} screen;

	/*
	 * Restore a saved state: QEMU starts paused and waits (`-S -incoming defer`) until QMP's
	 * migrate-incoming hands it the stream, so tart can check the state against this QEMU
	 * first and verify the stream's digest before the guest runs (vm/resume.c).
	 */
	bool incoming;
	/*
	 * Guest agent channels (docs/agent.md), virtio-serial ports: QEMU_AGENT_PORT_NAME (Tart's
	 * agent, gRPC) on a LISTENING socket that QEMU accepts tart's connections on (tart resets
	 * the agent's session by reconnecting), QEMU_QGA_PORT_NAME (QEMU's guest agent) on a
	 * connected socket; -1 = no such port. vsock_fd >= 0: an open /dev/vhost-vsock whose guest
	 * CID vsock_cid the caller has already claimed (VHOST_VSOCK_SET_GUEST_CID), handed to
	 * vhost-vsock-pci.
	 */
	int agent_fd;
	int qga_fd;
	int vsock_fd;
	uint32_t vsock_cid;
	const struct strvec *net_args; /* from net_attach(), appended verbatim */
};

/* Port names inside the guest (/dev/virtio-ports/<name>) and their QEMU device ids. */
#define QEMU_AGENT_PORT_NAME "org.tart.agent.0"
#define QEMU_AGENT_PORT_ID "tartagent"
#define QEMU_QGA_PORT_NAME "org.qemu.guest_agent.0"
#define QEMU_QGA_PORT_ID "qga0"

void qemu_spec_init(struct qemu_spec *s);
/* Whether s gives the guest the screen devices (graphics card, USB tablet). */
bool qemu_spec_has_screen(const struct qemu_spec *s);
/* Build the argv (argv[0] = s->binary). -EINVAL when the spec is inconsistent. */
int qemu_argv_build(const struct qemu_spec *s, struct strvec *ret);

/*
 * The part of an argv that a saved state depends on (machine, CPU, memory, every device and
 * its options), one argument per line, without what differs between runs and clones of one VM
 * (file paths, fds, MAC, VM generation ID, the window or none and its title, VNC ports and
 * passwords, the kernel command line, host-side cache modes). Two runs whose canonical forms are equal can load each other's state.
 */
void qemu_argv_canonical(const struct strvec *argv, struct strbuf *out);

/* The QEMU binary name for a Tart arch and the Debian package that ships it. */
const char *qemu_binary_name(const char *arch);
const char *qemu_binary_package(const char *arch);

/*
 * Parse comma-separated disk options ("ro", "sync=none|fsync|full",
 * "caching=automatic|cached|uncached") into ret (pre-initialised by the caller with the
 * defaults). -EINVAL with an allocated message in ret_err.
 */
int qemu_disk_opts_parse(const char *s, struct qemu_disk_opts *ret, char **ret_err);
/* True when every comma-separated piece of s is a disk option (so it is the options suffix). */
bool qemu_disk_opts_is_options(const char *s);

/* `--disk PATH[:opts]`: split off the options suffix. ret_path is allocated. */
int qemu_disk_spec_parse(const char *spec, char **ret_path, struct qemu_disk_opts *ret_opts,
			 char **ret_err);

/* `--dir [NAME:]PATH[:ro,tag=TAG]` */
#define QEMU_DEFAULT_SHARE_TAG "com.apple.virtio-fs.automount"
struct qemu_dir_spec {
	char *name; /* NULL when unnamed */
	char *path;
	char *tag;
	bool readonly;
};
int qemu_dir_spec_parse(const char *spec, struct qemu_dir_spec *ret, char **ret_err);
void qemu_dir_spec_release(struct qemu_dir_spec *d);
