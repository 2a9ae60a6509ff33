/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The host end of the guest agent inside `tart run` (docs/agent.md): control.sock in the VM
 * directory, and behind it whichever transport this host and guest have.
 *
 *   vsock   where /dev/vhost-vsock works: the VM gets vhost-vsock-pci with a CID claimed
 *           through the kernel (agent/vsock.h), and every control.sock connection is proxied
 *           byte for byte to a new vsock connection to guest port 8080, as Tart does. A
 *           connection the guest refuses (no agent on vsock) falls back to the serial path.
 *   serial  always: a virtio-serial port org.tart.agent.0 whose chardev is a listening socket
 *           that tart run connects to (<vm>/agent-serial.sock, mode 0600, removed at exit), so
 *           that it can reconnect to reset the agent's session (agent/grpc.h); tart run owns
 *           the one HTTP/2 connection over it and serves control.sock clients as streams of
 *           it (agent/mux.h).
 *   qga     always: a port org.qemu.guest_agent.0 for QEMU's guest agent, which answers when
 *           the Tart guest agent does not (agent/emul.h).
 *
 * Everything runs in one thread of its own with a poll loop; `tart run`'s main thread only
 * forwards QMP's VSERPORT_CHANGE events (the guest opened or closed a port). Logging: debug
 * level only, except for setup failures.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "qemu/argv.h"

#define AGENT_SERIAL_SOCKET "agent-serial.sock"

struct agent_host;

/*
 * Before QEMU starts: create the channels and fill their fields of spec (agent_fd, qga_fd,
 * and vsock_fd/vsock_cid where vsock works). The fds QEMU must inherit are listed by
 * agent_host_qemu_fds(). Logs and returns -errno on failure.
 */
int agent_host_prepare(const char *vm_dir, struct qemu_spec *spec, struct agent_host **ret);
size_t agent_host_qemu_fds(const struct agent_host *h, int *fds, size_t max);
/*
 * After QEMU is running: close QEMU's ends of the channels, bind control.sock (removing a
 * stale one) and start the thread. restored: the VM resumed from a saved state, so the
 * guest's ports may be open without any event saying so.
 */
int agent_host_start(struct agent_host *h, bool restored);
/*
 * Tart's end of QEMU's guest agent channel, for a caller that talks to the agent itself
 * before agent_host_start() (a resumed clone is individualized first, vm/resume.h); -1 once
 * the thread owns it.
 */
int agent_host_qga_fd(const struct agent_host *h);
/*
 * Whether QEMU's guest agent answers: its port is open and the last sync on it succeeded
 * (asked from tart run's main thread, e.g. before a suspend).
 */
bool agent_host_qga_ready(struct agent_host *h);
/* QMP event callback (struct qemu_qmp's on_event), userdata = the agent_host. */
void agent_host_qmp_event(const char *name, json_t *data, void *userdata);
/* Stop the thread, close every connection, remove control.sock and the serial socket. */
void agent_host_free(struct agent_host *h);
