/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * control.sock, the Unix socket in a VM directory through which `tart exec`, `tart ip
 * --resolver agent` and any gRPC client reach the guest agent of a running VM (Tart's
 * ControlSocket). Both ends address it by its name relative to the VM directory, as Tart does,
 * because an absolute path can exceed sun_path (108 bytes here, 104 on macOS): through
 * /proc/self/fd/<dirfd>/control.sock, which needs no chdir and so is safe in a process that
 * has threads. Non-logging.
 */

#define AGENT_CONTROL_SOCKET "control.sock"

/*
 * Remove a stale control.sock (Tart deletes it on every run) and listen on a new one.
 * Returns the listening fd (non-blocking, close-on-exec).
 */
int agent_control_listen(const char *vm_dir);
/*
 * Connect to vm_dir/control.sock. Returns the connected fd (blocking, close-on-exec);
 * -ENOENT when there is no socket, -ECONNREFUSED when nobody listens on it.
 */
int agent_control_connect(const char *vm_dir);
