/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Commands the agent runs for /Agent/Exec. Each runs in its own session and process group
 * (setsid), on a pty when asked for one, under the login environment of the agent's user
 * (HOME, USER, LOGNAME, SHELL from /etc/passwd, a fixed PATH, cwd = HOME). Everything is
 * non-blocking and driven by the agent's loop; memory is bounded both ways:
 *   - stdin: the caller queues what arrived (exec_stdin) and gives the peer window back only
 *     when exec_stdin_pending() dropped to 0 (the sink's stdin_drained callback);
 *   - output: the child's stdout/stderr (or the pty) is read only while sink->can_write().
 * The exec reports `done` once the process exited and its output was read to the end
 * (for a pty: what was readable when the process exited), with the exit code (the exit
 * status, or AGENT_EXIT_SIGNALED for a signal). exec_detach() kills the process group with
 * SIGKILL when it still runs; the object is freed once the process is reaped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "util/strbuf.h"

struct exec;

struct exec_params {
	const char *name;
	char **args;
	size_t nargs;
	bool interactive;
	bool tty;
	uint32_t rows, cols;
};

struct exec_sink {
	bool (*can_write)(void *ctx);
	/* fd 1 or 2 */
	int (*write)(void *ctx, int fd, const void *data, size_t len);
	void (*stdin_drained)(void *ctx);
	void (*done)(void *ctx, int code);
	void *ctx;
};

/* Set up once: the loop and the "user environment" (from getuid()). */
void exec_setup(struct loop *l);
/* Start a command. On failure a message for the client goes to err and -errno returns
 * (-ENOENT: no such program, -EACCES: not executable, ...). */
int exec_start(const struct exec_params *p, const struct exec_sink *sink, struct exec **ret,
	       struct strbuf *err);
/* Queue stdin bytes (ignored after EOF or when not interactive). */
int exec_stdin(struct exec *e, const void *data, size_t len);
/* EOF after the queued bytes: close the pipe, or write ^D on a pty (as tart-guest-agent). */
void exec_stdin_eof(struct exec *e);
size_t exec_stdin_pending(const struct exec *e);
int exec_resize(struct exec *e, uint32_t rows, uint32_t cols);
/* The call is gone: no more callbacks. With kill_group, SIGKILL the command's process group
 * (a client that vanished); without, leave whatever the command left running alone (after
 * `done`, as ssh does). Frees e once its process is reaped. */
void exec_detach(struct exec *e, bool kill_group);
/* SIGCHLD: reap every exited child. */
void exec_reap(void);
/* Kill every command's process group (agent shutdown). */
void exec_kill_all(void);
