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
    .details = "ARGUMENTS:\n"
	       "  <name>                  VM name\n\n"
	       "OPTIONS:\n"
	       "  -h, --help              Show help information.\n",
};

/* Saving the state of a large guest takes a while; don't wait forever for a wedged run. */
#define SUSPEND_WAIT_USEC (600ULL * 1000000)

int cmd_suspend(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<name>"};
	int c;
	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		if (c == 'h')
			return 0;
		return c < 0 ? c : CMD_EUSAGE;
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;
	const char *name = argv[optind];
	_cleanup_vm_dir_ struct vm_dir d = {0};
	r = vm_dir_open_local(name, &d);
	if (r < 0)
		return r;
	pid_t pid = vm_dir_running_pid(&d);
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
