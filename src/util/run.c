// SPDX-License-Identifier: Apache-2.0
#include "util/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"

extern char **environ;

int find_program(const char *name, char **ret_path)
{
	if (strchr(name, '/')) {
		if (access(name, X_OK) < 0)
			return negerrno();
		*ret_path = xstrdup(name);
		return 0;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	_cleanup_free_ char *copy = xstrdup(path);
	char *save = NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *p = path_join(dir, name);
		if (access(p, X_OK) == 0) {
			*ret_path = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

static void drain(int fd, struct strbuf *sb, bool *open_flag)
{
	char buf[8192];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			*open_flag = false;
		return;
	}
	if (strbuf_add(sb, buf, (size_t)n) < 0)
		return; /* over the cap: the rest is dropped on purpose */
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
}

/* write(2) on a pipe with SIGPIPE blocked for this thread, so EPIPE comes back as an error. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t block, old, pending;
	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	ssize_t n = write(fd, buf, len);
	int saved = errno;
	if (n < 0 && errno == EPIPE) {
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE)) {
			int sig;
			sigwait(&block, &sig);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return n;
}

int run_argv(const struct strvec *argv, struct strbuf *out, struct strbuf *err, int *ret_status)
{
	return run_argv_input(argv, NULL, 0, out, err, ret_status);
}

/*
 * Spawn prog. With in/out/err set, its stdin/stdout/stderr are pipes whose other ends are left
 * in pi[1]/po[0]/pe[0] (the pairs start as {-1, -1}); otherwise stdin is /dev/null and
 * stdout/stderr are ours. On failure every pipe is closed.
 */
static int spawn_piped(const char *prog, const struct strvec *argv, bool in, bool out, bool err,
		       int pi[2], int po[2], int pe[2], pid_t *ret_pid)
{
	if ((out && pipe2(po, O_CLOEXEC) < 0) || (err && pipe2(pe, O_CLOEXEC) < 0) ||
	    (in && pipe2(pi, O_CLOEXEC) < 0)) {
		int r = negerrno();
		close_pair(po);
		close_pair(pe);
		close_pair(pi);
		return r;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (in)
		posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	if (err)
		posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	int r = posix_spawn(ret_pid, prog, &fa, NULL, argv->v, environ);
	posix_spawn_file_actions_destroy(&fa);
	close_fd(&po[1]);
	close_fd(&pe[1]);
	close_fd(&pi[0]);
	if (r != 0) {
		close_pair(po);
		close_pair(pe);
		close_pair(pi);
		return -r;
	}
	return 0;
}

/* Write input to *in_fd and collect stdout/stderr until all of them are closed. */
static void pump(int out_fd, int err_fd, int *in_fd, const void *input, size_t input_len,
		 struct strbuf *out, struct strbuf *err)
{
	/* A child that exits without reading its stdin must not kill us with SIGPIPE. */
	if (*in_fd >= 0)
		fcntl(*in_fd, F_SETFL, O_NONBLOCK);
	size_t in_pos = 0;
	if (*in_fd >= 0 && input_len == 0)
		close_fd(in_fd);
	bool oo = out != NULL, eo = err != NULL;
	while (oo || eo || *in_fd >= 0) {
		struct pollfd pfd[3] = {{.fd = oo ? out_fd : -1, .events = POLLIN},
					{.fd = eo ? err_fd : -1, .events = POLLIN},
					{.fd = *in_fd, .events = POLLOUT}};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (oo && pfd[0].revents)
			drain(out_fd, out, &oo);
		if (eo && pfd[1].revents)
			drain(err_fd, err, &eo);
		if (*in_fd >= 0 && pfd[2].revents) {
			ssize_t n = write_nosigpipe(*in_fd, (const char *)input + in_pos,
						    input_len - in_pos);
			if (n > 0)
				in_pos += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_pos == input_len)
				close_fd(in_fd);
		}
	}
}

int run_argv_input(const struct strvec *argv, const void *input, size_t input_len,
		   struct strbuf *out, struct strbuf *err, int *ret_status)
{
	return run_argv_hooked(argv, input, input_len, out, err, NULL, NULL, ret_status);
}

int run_argv_hooked(const struct strvec *argv, const void *input, size_t input_len,
		    struct strbuf *out, struct strbuf *err, void (*on_pid)(pid_t pid, void *ud),
		    void *ud, int *ret_status)
{
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
	_cleanup_free_ char *prog = NULL;
	int r = find_program(argv->v[0], &prog);
	if (r < 0)
		return r;
	pid_t pid;
	r = spawn_piped(prog, argv, input != NULL, out != NULL, err != NULL, pi, po, pe, &pid);
	if (r < 0)
		return r;
	if (on_pid)
		on_pid(pid, ud);
	pump(po[0], pe[0], &pi[1], input, input_len, out, err);
	close_pair(po);
	close_pair(pe);
	close_pair(pi);
	if (on_pid) {
		siginfo_t si;
		while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
		on_pid(0, ud);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return negerrno();
	}
	if (ret_status)
		*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}
