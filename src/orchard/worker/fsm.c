// SPDX-License-Identifier: Apache-2.0
#include "orchard/worker/fsm.h"

#include <string.h>

#include "util/macro.h"

enum orchard_action orchard_fsm_action(enum orchard_vm_status remote, enum orchard_vm_status local)
{
	/* [remote][local], in the order none, pending, running, failed */
	static const enum orchard_action table[4][4] = {
	    [VM_STATUS_NONE] = {ACTION_IGNORE, ACTION_DELETE, ACTION_DELETE, ACTION_DELETE},
	    [VM_STATUS_PENDING] = {ACTION_CREATE, ACTION_MONITOR_PENDING, ACTION_REPORT_RUNNING,
				   ACTION_FAIL},
	    [VM_STATUS_RUNNING] = {ACTION_LOST_TRACK, ACTION_IMPOSSIBLE, ACTION_MONITOR_RUNNING,
				   ACTION_FAIL},
	    [VM_STATUS_FAILED] = {ACTION_IGNORE, ACTION_STOP, ACTION_STOP, ACTION_IGNORE},
	};
	if ((unsigned)remote > VM_STATUS_FAILED || (unsigned)local > VM_STATUS_FAILED)
		return ACTION_IGNORE;
	return table[remote][local];
}

const char *orchard_action_name(enum orchard_action a)
{
	static const char *const names[] = {
	    [ACTION_IGNORE] = "ignore",
	    [ACTION_CREATE] = "create",
	    [ACTION_MONITOR_PENDING] = "monitor-pending",
	    [ACTION_REPORT_RUNNING] = "report-running",
	    [ACTION_MONITOR_RUNNING] = "monitor-running",
	    [ACTION_STOP] = "stop",
	    [ACTION_FAIL] = "fail",
	    [ACTION_LOST_TRACK] = "lost-track",
	    [ACTION_IMPOSSIBLE] = "impossible",
	    [ACTION_DELETE] = "delete",
	};
	return (unsigned)a < ARRAY_SIZE(names) ? names[a] : "?";
}

enum orchard_vm_status orchard_vm_status_parse(const char *s)
{
	if (!s)
		return VM_STATUS_NONE;
	if (streq(s, "pending"))
		return VM_STATUS_PENDING;
	if (streq(s, "running"))
		return VM_STATUS_RUNNING;
	if (streq(s, "failed"))
		return VM_STATUS_FAILED;
	return VM_STATUS_NONE;
}

const char *orchard_vm_status_name(enum orchard_vm_status s)
{
	switch (s) {
	case VM_STATUS_PENDING:
		return "pending";
	case VM_STATUS_RUNNING:
		return "running";
	case VM_STATUS_FAILED:
		return "failed";
	default:
		return "none";
	}
}
