/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Orchard's worker reconciliation table (internal/worker/fsm.go): what to do with a VM given
 * its status at the controller (remote) and on this worker (local), either possibly absent.
 */

enum orchard_vm_status {
	VM_STATUS_NONE = 0, /* absent */
	VM_STATUS_PENDING,
	VM_STATUS_RUNNING,
	VM_STATUS_FAILED,
};

enum orchard_action {
	ACTION_IGNORE,
	ACTION_CREATE,
	ACTION_MONITOR_PENDING,
	ACTION_REPORT_RUNNING,
	ACTION_MONITOR_RUNNING,
	ACTION_STOP,
	ACTION_FAIL,
	ACTION_LOST_TRACK,
	ACTION_IMPOSSIBLE,
	ACTION_DELETE,
};

enum orchard_action orchard_fsm_action(enum orchard_vm_status remote, enum orchard_vm_status local);
const char *orchard_action_name(enum orchard_action a);
/* "pending" | "running" | "failed" -> status; anything else (or NULL) -> VM_STATUS_NONE */
enum orchard_vm_status orchard_vm_status_parse(const char *s);
const char *orchard_vm_status_name(enum orchard_vm_status s);
