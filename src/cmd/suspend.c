// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/time.h"
#include "vm/dir.h"
#include "vm/run-state.h"

static const struct cmd_help help = {
    .name = "suspend",
    .overview = "Suspend a VM",
    .usage = "suspend <name>",
    .details = "  The whole VM (memory and devices) is saved to state.vzvmsave and the VM stops;\n"
	       "  `tart run` resumes it where it was. `tart push` carries the saved state, so that\n"
	       "  clones of the image resume instead of booting (docs/run.md).\n\n"
	       "ARGUMENTS:\n"
	       "  <name>                  VM name\n\n"
	       "OPTIONS:\n"
	       "  -h, --help              Show help information.\n",
};

/* Saving the state of a large guest takes a while; don't wait forever for a wedged run. */
#define SUSPEND_WAIT_USEC (600ULL * 1000000)

int cmd_suspend(int argc, char **argv)
{
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 1, .max_args = 1, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	_cleanup_vm_dir_ struct vm_dir d = {0};
	pid_t pid;
	int r = cmd_open_local_vm_pid(name, &d, &pid);
	if (r < 0)
		return r;
	if (pid <= 0) {
		/* Tart's doubly wrapped message, kept verbatim. */
		log_error("VM \"VM \"%s\" is not running\" is not running", name);
		return -ESRCH;
	}
	struct vm_run_state before = {0};
	(void)vm_run_state_read(&d, &before);
	if (kill(pid, SIGUSR1) < 0) {
		log_error(
		    "Failed to suspend the VM: failed to send SIGUSR1 signal to the \"tart run\" "
		    "process running VM \"%s\"",
		    name);
		return -errno;
	}
	/* Unlike Tart, wait until `run` has saved the state and exited, so scripts can go on. */
	usec_t deadline = now_monotonic_usec() + SUSPEND_WAIT_USEC;
	while (vm_dir_running_pid(&d) > 0 && now_monotonic_usec() < deadline) {
		struct vm_run_state now;
		if (vm_run_state_read(&d, &now) == 0 && now.pid == before.pid &&
		    now.suspend_failures > before.suspend_failures) {
			log_error("Failed to suspend the VM: %s", now.suspend_error);
			return -EIO;
		}
		sleep_usec(100000);
	}
	if (vm_dir_state(&d) != VM_STATE_SUSPENDED) {
		log_error("Failed to suspend the VM \"%s\": no saved state was written (see the "
			  "output of its \"tart run\")",
			  name);
		return -EIO;
	}
	return 0;
}
