// SPDX-License-Identifier: Apache-2.0
/*
 * NET_MODE_USER: QEMU user-mode networking (slirp) with a virtio-net NIC carrying the VM's MAC
 * and a forwarded loopback port to the guest's SSH. Needs no privileges and no helper process.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/user.h"
#include "util/log.h"
#include "util/macro.h"

/* A loopback TCP port that is free now (QEMU binds it moments later). */
static int free_loopback_port(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return negerrno();
	return ntohs(a.sin_port);
}

int net_user_attach(const struct net_options *opts, struct net_attachment *ret)
{
	int port = free_loopback_port();
	if (port < 0)
		return log_error_errno(port, "cannot find a free loopback port for SSH forwarding");
	struct net_attachment a = {.mode = NET_MODE_USER, .n_pass_fds = 0};
	strvec_init(&a.qemu_args);
	for (size_t i = 0; i < ARRAY_SIZE(a.pass_fds); i++)
		a.pass_fds[i] = -1;
	strvec_push(&a.qemu_args, "-netdev");
	strvec_pushf(&a.qemu_args, "user,id=n0,restrict=%s,hostfwd=tcp:127.0.0.1:%d-:22",
		     opts->user_restrict ? "on" : "off", port);
	strvec_push(&a.qemu_args, "-device");
	strvec_pushf(&a.qemu_args, "virtio-net-pci,netdev=n0,mac=%s", opts->mac);
	snprintf(a.info, sizeof(a.info), "ssh-port=%d", port);
	*ret = a;
	return 0;
}
