// SPDX-License-Identifier: Apache-2.0
#include "util/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

int run_argv(const struct strvec *argv, struct strbuf *out, struct strbuf *err, int *ret_status)
{
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	_cleanup_free_ char *prog = NULL;
	int r = find_program(argv->v[0], &prog);
	if (r < 0)
		return r;
	if ((out && pipe2(po, O_CLOEXEC) < 0) || (err && pipe2(pe, O_CLOEXEC) < 0))
		return negerrno();
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	if (err)
		posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	pid_t pid;
	r = posix_spawn(&pid, prog, &fa, NULL, argv->v, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (po[1] >= 0)
		close(po[1]);
	if (pe[1] >= 0)
		close(pe[1]);
	if (r != 0) {
		if (po[0] >= 0)
			close(po[0]);
		if (pe[0] >= 0)
			close(pe[0]);
		return -r;
	}
	bool oo = out != NULL, eo = err != NULL;
	while (oo || eo) {
		struct pollfd pfd[2] = {{.fd = oo ? po[0] : -1, .events = POLLIN},
					{.fd = eo ? pe[0] : -1, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (oo && pfd[0].revents)
			drain(po[0], out, &oo);
		if (eo && pfd[1].revents)
			drain(pe[0], err, &eo);
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return negerrno();
	}
	if (ret_status)
		*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}
