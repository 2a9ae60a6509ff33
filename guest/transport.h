/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Where the agent's sessions come from.
 *
 * Listeners (AF_VSOCK port 8080, Unix sockets): every accepted connection is its own HTTP/2
 * session; closing it ends the session and kills its commands.
 *
 * The serial link: ONE byte stream carrying one HTTP/2 session at a time (the reset
 * convention of src/agent/grpc.h and docs/agent.md). States:
 *   DISCONNECTED  no host on the other end: nothing is read or written; a virtio port is
 *                 re-checked on SIGIO and every 250 ms (it reports POLLHUP until the host
 *                 connects, so it is not polled meanwhile);
 *   SYNC          host connected, bytes are discarded until the HTTP/2 client preface;
 *   ACTIVE        a session runs. read() == 0 (host gone) -> DISCONNECTED; a protocol error
 *                 or the host's GOAWAY -> SYNC. Either way the session and its commands die.
 * Two backends: a character device (the virtio port, opened once, reopened if it vanishes)
 * and --serial-listen PATH, a Unix socket accepting one connection at a time that behaves
 * like QEMU's chardev server in front of the port (for tests of both sides without a VM).
 */

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "session.h"

struct transport_config {
	struct session_config session;
	bool vsock;
	const char *serial_device; /* NULL: none */
	const char *serial_listen; /* NULL: none */
	const char *listen_unix;   /* NULL: none */
};

int transport_start(struct loop *l, const struct transport_config *cfg);
/* SIGIO arrived: re-check the serial port at once. */
void transport_poke(void);
/* Shutdown: GOAWAY to every session (best effort), close everything. */
void transport_stop(void);
