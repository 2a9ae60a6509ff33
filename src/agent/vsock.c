// SPDX-License-Identifier: Apache-2.0
#include "agent/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/vm_sockets.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/macro.h"

#define CLAIM_ATTEMPTS 64

int agent_vsock_claim(int *ret_fd, uint32_t *ret_cid)
{
	_cleanup_close_ int fd = open(AGENT_VSOCK_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	for (int i = 0; i < CLAIM_ATTEMPTS; i++) {
		uint32_t r;
		if (fs_random_bytes(&r, sizeof(r)) < 0)
			return -EIO;
		/* 3 .. 2^32-2: below 3 are reserved, 2^32-1 is VMADDR_CID_ANY. */
		uint64_t cid = 3 + (uint64_t)r % (UINT32_MAX - 3);
		if (ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, &cid) == 0) {
			*ret_fd = TAKE_FD(fd);
			*ret_cid = (uint32_t)cid;
			return 0;
		}
		if (errno != EADDRINUSE)
			return negerrno();
	}
	return -EADDRINUSE;
}

int agent_vsock_connect_start(uint32_t cid, uint32_t port)
{
	_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return negerrno();
	return TAKE_FD(fd);
}

int agent_socket_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return negerrno();
	return err ? -err : 0;
}
