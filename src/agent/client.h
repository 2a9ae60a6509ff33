/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The gRPC client of the guest agent through a running VM's control.sock: `tart exec` and
 * `tart ip --resolver agent` (Tart's Exec.swift and AgentResolver.swift).
 *
 * Bounded waits: the agent must show it is there (HTTP/2 SETTINGS through control.sock, and
 * for a serial guest tart run answers UNAVAILABLE at once when no agent is up) within
 * AGENT_CONNECT_TIMEOUT_MS, else Tart's "Failed to connect to the VM using its control socket:
 * ..., is the Tart Guest Agent running?". After that, as in Tart, no overall timeout: a
 * command may run for days. A connection that breaks, a malformed or oversized message, a
 * stream that ends without an exit code: each is an error message and exit status 1.
 *
 * Memory is bounded in both directions: standard input is read only while less than
 * AGENT_GRPC_OUTQ_HIGH bytes wait for the agent's window; output is acknowledged to the agent
 * (stream window) only once written to our stdout/stderr.
 */

#include <stdbool.h>
#include <stddef.h>

#define AGENT_CONNECT_TIMEOUT_MS 10000
#define AGENT_RESOLVE_TIMEOUT_MS 3000

struct agent_exec_options {
	const char *vm_dir;
	char *const *argv; /* the command and its arguments */
	size_t argc;
	bool interactive; /* -i: stream our stdin, then an empty chunk as EOF */
	bool tty;	  /* -t: a remote pty; ours in raw mode while it runs */
};

/*
 * Run the command and relay its I/O. Returns the command's exit code as the process must exit
 * (0-255: the guest's code modulo 256, so -1 for a signal becomes 255), or -errno after
 * logging (1 for the caller). A SIGINT/SIGTERM/SIGHUP/SIGQUIT, or EPIPE on our stdout, cancels
 * the call (the agent kills the command's process group), restores the terminal and ends this
 * process by that signal, as a local command would.
 */
int agent_exec(const struct agent_exec_options *o);

/*
 * /Agent/ResolveIP within timeout_ms. 0 and the address; -ENOENT when no agent answers or it
 * knows no address (the caller retries); -EBADMSG for a malformed answer. Non-logging.
 */
int agent_resolve_ip(const char *vm_dir, int timeout_ms, char ret[16]);
