// SPDX-License-Identifier: Apache-2.0
#include <errno.h>

#include "agent/client.h"
#include "cmd/cmd.h"
#include "util/log.h"
#include "vm/dir.h"

static const struct cmd_help help = {
    .name = "exec",
    .overview =
	"Execute a command in a running VM\n\n"
	"Requires Tart Guest Agent running in a guest VM.\n\n"
	"Note that all non-vanilla Cirrus Labs VM images already have the Tart Guest "
	"Agent installed.\n"
	"tart for Linux reaches the agent over virtio-vsock where the host has it, else "
	"over a\nvirtio-serial port; a guest with QEMU's guest agent (qemu-guest-agent) "
	"instead runs\nnon-interactive commands through it (no -t, stdin up to 8 MiB, output "
	"when the command ends).",
    .usage = "exec [-i] [-t] <name> <command> ...",
    .details =
	"ARGUMENTS:\n"
	"  <name>                  VM name\n"
	"  <command>               Command to execute (everything after <name>, as is)\n\n"
	"OPTIONS:\n"
	"  -i                      Attach host's standard input to a remote command\n"
	"  -t                      Allocate a remote pseudo-terminal (PTY)\n"
	"  -h, --help              Show help information.\n\n"
	"EXIT STATUS:\n"
	"  the command's own (a command killed by a signal: 255); 2 when the VM does not exist\n"
	"  or is not running; 1 when the agent cannot be reached (within 10 seconds) or the\n"
	"  connection breaks. Ctrl-C (SIGINT), SIGTERM, SIGHUP and a closed standard output end\n"
	"  the remote command too, and tart exec dies by that signal, as ssh's command would.\n",
};

struct exec_opts {
	bool interactive, tty;
};

static int exec_opt(int c, const char *arg, void *userdata)
{
	(void)arg;
	struct exec_opts *o = userdata;
	if (c == 'i')
		o->interactive = true;
	else if (c == 't')
		o->tty = true;
	else
		return CMD_EUSAGE;
	return 0;
}

int cmd_exec(int argc, char **argv)
{
	static const char *const names[] = {"<name>", "<command> ..."};
	/* "+": options end at <name>; what follows belongs to the command (Tart's passthrough) */
	static const struct cmd_spec spec = {.help = &help,
					     .shortopts = "+hit",
					     .on_opt = exec_opt,
					     .min_args = 2,
					     .max_args = -1,
					     .arg_names = names};
	struct exec_opts o = {0};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_dir_open_local(name, &d);
	if (r < 0)
		return r;
	if (vm_dir_state(&d) != VM_STATE_RUNNING) {
		log_error("VM \"%s\" is not running", name);
		return -ESRCH;
	}
	struct agent_exec_options eo = {.vm_dir = d.path,
					.argv = argv + a + 1,
					.argc = (size_t)(argc - a - 1),
					.interactive = o.interactive,
					.tty = o.tty};
	return agent_exec(&eo);
}
