/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Child processes that must not outlive tart (QEMU, virtiofsd): spawned from an argv with no
 * shell, in their own process group (a terminal's Ctrl-C reaches tart only, which then stops
 * the guest properly), with PR_SET_PDEATHSIG=SIGKILL plus a parent check that closes the race
 * with our own death before prctl. stdin/stdout are /dev/null; stderr goes to a pipe whose
 * last bytes are kept for error messages. Non-logging.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "util/strbuf.h"
#include "util/strvec.h"

#define QEMU_PROCESS_TAIL 4096

struct qemu_process {
	pid_t pid;
	int pidfd;     /* readable when the process exits */
	int stderr_fd; /* read end, non-blocking; -1 after EOF */
	struct strbuf tail;
	bool exited;
	int status; /* exit code, or 128+signal */
};

/*
 * Start argv; keep_fds are inherited under the same numbers (everything else is closed on
 * exec). Returns -errno when the program cannot be executed (ENOENT: not installed).
 */
int qemu_process_spawn(const struct strvec *argv, const int *keep_fds, size_t n_keep_fds,
		       struct qemu_process *ret);
/*
 * The same, running setup(userdata) in the child just before exec (e.g. to build a private
 * mount namespace); a negative return aborts the spawn with that -errno. setup must be
 * async-signal-safe enough for a forked child: no locks, no allocation.
 */
int qemu_process_spawn_setup(const struct strvec *argv, const int *keep_fds, size_t n_keep_fds,
			     int (*setup)(void *userdata), void *userdata,
			     struct qemu_process *ret);
/* Drain available stderr into the tail; returns -EPIPE at EOF. */
int qemu_process_read_stderr(struct qemu_process *p);
/* Reap if exited (non-blocking); true when it has exited. */
bool qemu_process_reap(struct qemu_process *p);
/* Wait up to timeout_ms for exit; SIGKILL and reap after that. */
void qemu_process_wait_or_kill(struct qemu_process *p, int timeout_ms);
void qemu_process_release(struct qemu_process *p);
/* The captured stderr tail, trimmed, possibly "" (never NULL). */
const char *qemu_process_tail(struct qemu_process *p);
