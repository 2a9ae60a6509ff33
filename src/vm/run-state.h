/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * run.json in a VM directory: what a running `tart run` exposes to other commands (`tart ip`,
 * tests, tooling). Written atomically once QEMU is up, removed when the run ends. A file left
 * by a SIGKILLed run is stale: it counts only while `pid` still holds the config.json lock
 * (compare with vm_dir_running_pid()).
 */

#include <sys/types.h>

#include "vm/dir.h"

#define VM_RUN_STATE_FILE "run.json"

struct vm_run_state {
	pid_t pid; /* the `tart run` process (holder of the config.json lock) */
	pid_t qemu_pid;
	char accel[8];	    /* "kvm" | "tcg" */
	char net_mode[16];  /* net_mode_to_string() */
	char net_info[256]; /* net_attachment.info, e.g. "ssh-port=2222" */
	char vnc_url[160];  /* "" without --vnc */
	char serial[128];   /* pty path with --serial, else the serial log path */
	/* Failed suspend requests, so `tart suspend` can tell failure from "still saving". */
	unsigned suspend_failures;
	char suspend_error[256];
};

int vm_run_state_write(const struct vm_dir *d, const struct vm_run_state *s);
/* -ENOENT when absent; -EBADMSG when malformed. */
int vm_run_state_read(const struct vm_dir *d, struct vm_run_state *ret);
void vm_run_state_remove(const struct vm_dir *d);
