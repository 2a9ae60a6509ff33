// SPDX-License-Identifier: Apache-2.0
#include "qemu/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/macro.h"

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

struct child_args {
	const struct strvec *argv;
	const int *keep;
	size_t n;
	int (*setup)(void *);
	void *userdata;
};

_noreturn_ static void child(const struct child_args *a, int err_w, int report_w, pid_t parent)
{
	const int *keep = a->keep;
	size_t n = a->n;
	int e;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	(void)setpgid(0, 0);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(err_w, 2) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		int fl = fcntl(keep[i], F_GETFD);
		if (fl < 0 || fcntl(keep[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
			goto fail;
	}
	if (a->setup) {
		int r = a->setup(a->userdata);
		if (r < 0) {
			errno = -r;
			goto fail;
		}
	}
	execv(a->argv->v[0], a->argv->v);
fail:
	e = errno;
	(void)!write(report_w, &e, sizeof(e));
	_exit(127);
}

int qemu_process_spawn(const struct strvec *argv, const int *keep_fds, size_t n_keep_fds,
		       struct qemu_process *ret)
{
	return qemu_process_spawn_setup(argv, keep_fds, n_keep_fds, NULL, NULL, ret);
}

int qemu_process_spawn_setup(const struct strvec *argv, const int *keep_fds, size_t n_keep_fds,
			     int (*setup)(void *userdata), void *userdata, struct qemu_process *ret)
{
	const struct child_args args = {argv, keep_fds, n_keep_fds, setup, userdata};
	int errp[2], rep[2];
	if (pipe2(errp, O_CLOEXEC) < 0)
		return negerrno();
	if (pipe2(rep, O_CLOEXEC) < 0) {
		int r = negerrno();
		close(errp[0]);
		close(errp[1]);
		return r;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int r = negerrno();
		close(errp[0]);
		close(errp[1]);
		close(rep[0]);
		close(rep[1]);
		return r;
	}
	if (pid == 0)
		child(&args, errp[1], rep[1], parent);
	close(errp[1]);
	close(rep[1]);
	int e = 0;
	ssize_t k;
	do
		k = read(rep[0], &e, sizeof(e));
	while (k < 0 && errno == EINTR);
	close(rep[0]);
	if (k == (ssize_t)sizeof(e)) {
		close(errp[0]);
		(void)waitpid(pid, NULL, 0);
		return -e;
	}
	(void)fcntl(errp[0], F_SETFL, O_NONBLOCK);
	struct qemu_process p = {.pid = pid, .pidfd = pidfd_open_(pid), .stderr_fd = errp[0]};
	strbuf_init(&p.tail, 0);
	*ret = p;
	return 0;
}

int qemu_process_read_stderr(struct qemu_process *p)
{
	if (p->stderr_fd < 0)
		return -EPIPE;
	for (;;) {
		char buf[4096];
		ssize_t k = read(p->stderr_fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? 0 : negerrno();
		if (k == 0) {
			close(p->stderr_fd);
			p->stderr_fd = -1;
			return -EPIPE;
		}
		strbuf_putn(&p->tail, buf, (size_t)k);
		if (p->tail.len > 2 * QEMU_PROCESS_TAIL) {
			size_t drop = p->tail.len - QEMU_PROCESS_TAIL;
			memmove(p->tail.buf, p->tail.buf + drop, p->tail.len - drop);
			p->tail.len -= drop;
			p->tail.buf[p->tail.len] = '\0';
		}
	}
}

static void set_status(struct qemu_process *p, int st)
{
	p->exited = true;
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool qemu_process_reap(struct qemu_process *p)
{
	if (p->exited)
		return true;
	int st;
	pid_t r = waitpid(p->pid, &st, WNOHANG);
	if (r == p->pid)
		set_status(p, st);
	return p->exited;
}

void qemu_process_wait_or_kill(struct qemu_process *p, int timeout_ms)
{
	for (int waited = 0; !qemu_process_reap(p) && waited < timeout_ms; waited += 20) {
		if (p->pidfd >= 0) {
			struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
			(void)poll(&pf, 1, 20);
		} else {
			usleep(20000);
		}
	}
	if (!p->exited) {
		kill(p->pid, SIGKILL);
		int st;
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
		set_status(p, st);
	}
	while (qemu_process_read_stderr(p) == 0 && p->stderr_fd >= 0) {
		/* drain what is left; the pipe is at EOF once the child is gone */
		struct pollfd pf = {.fd = p->stderr_fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			break;
	}
}

void qemu_process_release(struct qemu_process *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p->stderr_fd >= 0)
		close(p->stderr_fd);
	p->pidfd = p->stderr_fd = -1;
	strbuf_release(&p->tail);
}

const char *qemu_process_tail(struct qemu_process *p)
{
	strbuf_rtrim(&p->tail);
	return p->tail.buf;
}
