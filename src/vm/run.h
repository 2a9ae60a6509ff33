/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `tart run`: the foreground owner of a VM. Takes the config.json run lock, starts QEMU (no
 * shell in between; QEMU dies with us), supervises it and stops it cleanly:
 *   SIGINT/SIGTERM  ACPI power-off request, then a hard quit after a grace period (the grace
 *                   comes with the signal from `tart stop` via sigqueue, else
 *                   VM_RUN_DEFAULT_GRACE_MS); a second signal quits at once
 *   SIGUSR1         suspend: pause, save the whole VM state to state.vzvmsave, quit
 *   SIGUSR2         ask the guest to shut down, nothing more
 * Returns the process exit code (0: the guest powered off or was stopped on request; 1: QEMU
 * failed, its stderr tail logged) or -errno for errors before QEMU ran (-EALREADY when the VM
 * is already running, -ENOENT when it does not exist).
 */

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"
#include "qemu/argv.h"
#include "vm/window.h"

#define VM_RUN_DEFAULT_GRACE_MS 10000
#define VM_SERIAL_LOG_FILE "serial.log"
#define VM_SERIAL_LOG_MAX (1u << 20)

struct vm_run_options {
	const char *accel;	   /* "auto" | "kvm" | "tcg"; NULL: $TART_ACCEL, else "auto" */
	enum vm_graphics graphics; /* the window: --graphics, --no-graphics or neither */
	bool vnc;
	bool serial_pty;
	const char *serial_path;
	char **disks; /* raw --disk values */
	size_t n_disks;
	char **dirs; /* raw --dir values */
	size_t n_dirs;
	bool nested;
	struct qemu_disk_opts root_opts;
	struct net_options net; /* mode and softnet/bridge values; name/dir/mac are filled in */
};

void vm_run_options_init(struct vm_run_options *o);
int vm_run(const char *name, const struct vm_run_options *o);
