// SPDX-License-Identifier: Apache-2.0
#include "agent/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/macro.h"

/*
 * The VM directory (O_PATH, returned in *ret_dir) and the address of its control.sock through
 * it: short whatever the directory's path.
 */
static int control_addr(const char *vm_dir, int *ret_dir, struct sockaddr_un *ret)
{
	int dir = open(vm_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return negerrno();
	*ret = (struct sockaddr_un){.sun_family = AF_UNIX};
	int n = snprintf(ret->sun_path, sizeof(ret->sun_path), "/proc/self/fd/%d/%s", dir,
			 AGENT_CONTROL_SOCKET);
	if (n <= 0 || (size_t)n >= sizeof(ret->sun_path)) {
		close(dir);
		return -ENAMETOOLONG;
	}
	*ret_dir = dir;
	return 0;
}

int agent_control_listen(const char *vm_dir)
{
	_cleanup_close_ int dir = -1;
	struct sockaddr_un sa;
	int r = control_addr(vm_dir, &dir, &sa);
	if (r < 0)
		return r;
	if (unlinkat(dir, AGENT_CONTROL_SOCKET, 0) < 0 && errno != ENOENT)
		return negerrno();
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		return negerrno();
	return TAKE_FD(fd);
}

int agent_control_connect(const char *vm_dir)
{
	_cleanup_close_ int dir = -1;
	struct sockaddr_un sa;
	int r = control_addr(vm_dir, &dir, &sa);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	int k;
	do
		k = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return negerrno();
	return TAKE_FD(fd);
}
