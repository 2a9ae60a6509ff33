/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * virtio-vsock on the host: claiming a guest CID for a VM and connecting to a port in it.
 * Non-logging.
 *
 * A CID is claimed by setting it on an open /dev/vhost-vsock (VHOST_VSOCK_SET_GUEST_CID), the
 * very fd QEMU then receives as vhost-vsock-pci's vhostfd: the kernel refuses a CID another
 * open vhost-vsock holds (EADDRINUSE), so two VMs started at once can never share one, and
 * the claim ends with the fd (QEMU's exit) with nothing to clean up. QEMU sets the same CID
 * again on that fd, which the kernel accepts for the holder itself.
 */

#include <stdint.h>

#define AGENT_VSOCK_DEVICE "/dev/vhost-vsock"

/*
 * Open /dev/vhost-vsock and claim a free CID, trying random ones. -ENOENT/-EACCES/-ENODEV
 * when the host has no working vhost-vsock (the caller falls back to virtio-serial).
 */
int agent_vsock_claim(int *ret_fd, uint32_t *ret_cid);

/*
 * Start a non-blocking connection to cid:port: the fd (close-on-exec, non-blocking) whose
 * POLLOUT means the connection finished; then agent_socket_connect_result() says how. A guest
 * with no listener on the port refuses at once (-ECONNRESET or -ECONNREFUSED).
 */
int agent_vsock_connect_start(uint32_t cid, uint32_t port);
/* 0 when the connection on fd completed, -errno when it failed. */
int agent_socket_connect_result(int fd);
