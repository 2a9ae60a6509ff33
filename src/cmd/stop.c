// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/time.h"
#include "vm/dir.h"

static const struct cmd_help help = {
    .name = "stop",
    .overview = "Stop a VM",
    .usage = "stop <name> [--timeout <timeout>]",
    .details = "ARGUMENTS:\n"
	       "  <name>                  VM name\n\n"
	       "OPTIONS:\n"
	       "  -t, --timeout <timeout> Seconds to wait for a graceful guest shutdown before\n"
	       "                          the VM is stopped forcefully (default: 30)\n"
	       "  -h, --help              Show help information.\n",
};

/* Poll every 100 ms until nobody holds the run lock; true when released in time. */
static bool wait_released(const struct vm_dir *d, usec_t timeout)
{
	usec_t deadline = now_monotonic_usec() + timeout;
	while (vm_dir_running_pid(d) > 0) {
		if (now_monotonic_usec() >= deadline)
			return false;
		sleep_usec(100000);
	}
	return true;
}

static int on_opt(int c, const char *arg, void *userdata)
{
	uint64_t *timeout = userdata;
	if (c == 't')
		return cmd_parse_u64(&help, "--timeout", arg, 0, 86400 * 365, timeout);
	return CMD_EUSAGE;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .shortopts = "ht:",
					     .longopts = opts,
					     .on_opt = on_opt,
					     .min_args = 1,
					     .max_args = 1,
					     .arg_names = names};
	uint64_t timeout = 30;
	int a = cmd_parse(&spec, argc, argv, &timeout);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	_cleanup_vm_dir_ struct vm_dir d = {0};
	pid_t pid;
	int r = cmd_open_local_vm_pid(name, &d, &pid);
	if (r < 0)
		return r;
	if (pid <= 0) {
		_cleanup_free_ char *st = vm_dir_file(&d, VM_STATE_FILE);
		if (fs_exists(st)) {
			/* A suspended VM: stopping it discards the saved state. */
			if (unlink(st) < 0)
				return log_error_errno(negerrno(), "cannot delete '%s'", st);
			return 0;
		}
		log_error("VM \"%s\" is not running", name);
		return -ESRCH;
	}
	/* The timeout travels with the signal so `run` can force the stop just before we would. */
	union sigval v = {.sival_int = timeout > 1000000 ? 1000000000 : (int)(timeout * 1000)};
	if (sigqueue(pid, SIGINT, v) < 0 && errno != ESRCH)
		return log_error_errno(negerrno(),
				       "cannot signal the \"tart run\" process of VM "
				       "\"%s\"",
				       name);
	if (wait_released(&d, timeout * 1000000))
		return 0;
	pid = vm_dir_running_pid(&d);
	if (pid > 0 && kill(pid, SIGKILL) < 0 && errno != ESRCH) {
		log_error("failed to forcefully terminate the VM \"%s\": %s", name,
			  strerror(errno));
		return -errno;
	}
	/* QEMU dies with its parent (PDEATHSIG): the lock goes within moments. */
	(void)wait_released(&d, 5000000);
	return 0;
}
