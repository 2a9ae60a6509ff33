/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The HTTP/2 multiplexer of `tart run` for a byte-stream transport to the guest agent (the
 * virtio-serial port org.tart.agent.0): a serial port carries one connection, so tart run owns
 * the single HTTP/2 client connection to the agent ("upstream") and serves every control.sock
 * client as an HTTP/2 server of its own ("downstream"). Each client stream becomes one stream
 * of the agent connection; request and response headers, DATA, trailers and RST_STREAM pass
 * through unchanged, so a gRPC client cannot tell this from talking to the agent directly.
 *
 * Memory is bounded by HTTP/2 flow control, not by the peers' manners: window updates are
 * manual (nghttp2's automatic ones are off), and bytes received on one side are acknowledged
 * (nghttp2_session_consume) only once the other side has taken them. A slow client therefore
 * stalls its stream at the agent, and a slow agent stalls the client, each within one window.
 *
 * The agent's port is reached through a chardev that tart run connects to (and reconnects to
 * for a reset, as agent/grpc.h's serial convention has it); QMP tells when the guest opens or
 * closes the port. Which agent answers a new stream: ours when its connection is up; while
 * its handshake is under way (bounded by AGENT_MUX_HANDSHAKE_USEC) the stream waits;
 * otherwise the local backend (QEMU's guest agent, agent/emul.c) if it is usable (it may take
 * its own bounded sync first); otherwise the stream ends with
 * gRPC status UNAVAILABLE, which `tart exec` reports as Tart does ("is the Tart Guest Agent
 * running?"). When the agent connection breaks, every stream on it ends with UNAVAILABLE and a
 * message saying so; nothing on the host waits forever for a dead guest.
 *
 * Driven by the caller's poll loop (agent/host.c). Non-logging except at debug level.
 */

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/time.h"

#define AGENT_MUX_HANDSHAKE_USEC (5 * 1000000ULL)
#define AGENT_MUX_MAX_CLIENTS 128

struct agent_mux;
struct agent_mux_stream;

struct agent_mux_ops {
	/*
	 * (Re)connect to the agent port's chardev: a new connected, non-blocking fd, or -errno.
	 * Closing the previous connection is the reset of the serial convention (agent/grpc.h):
	 * the agent drops that session and waits for a new preface.
	 */
	int (*connect)(void *connect_ud);
	void *connect_ud;

	/* The local backend (QEMU's guest agent, agent/emul.c); ready == NULL: none. */
	/* 1: serve now; 0: may become ready (wait); -1: cannot serve. */
	int (*ready)(void *ud);
	/* A stream for `path` ("/Agent/Exec"); returns its state, NULL when it answered already. */
	void *(*open)(void *ud, struct agent_mux_stream *s, const char *path);
	/* Request bytes (gRPC-framed, as received). */
	void (*data)(void *st, const uint8_t *data, size_t len);
	/* The client half-closed its side. */
	void (*end)(void *st);
	/* The response buffer has room again (see agent_mux_stream_room). */
	void (*pull)(void *st);
	/* The stream is gone (finished, or cancelled by the client): release st. */
	void (*close)(void *st);
	void *ud;
};

/* restored: the VM resumed from a saved state, so no event may ever say the port is open. */
struct agent_mux *agent_mux_new(const struct agent_mux_ops *ops, bool restored, usec_t now);
void agent_mux_free(struct agent_mux *m);

/*
 * QMP's VSERPORT_CHANGE for the agent's port: opened (an agent instance started: our queued
 * preface reaches it, the handshake deadline runs) or closed (the agent went away: every
 * stream on its connection ends with UNAVAILABLE).
 */
void agent_mux_port_changed(struct agent_mux *m, bool open, usec_t now);
/* The local backend's readiness may have changed: route waiting streams again. */
void agent_mux_local_changed(struct agent_mux *m, usec_t now);

/* Serve a control.sock client on fd (taken over). -EMFILE beyond AGENT_MUX_MAX_CLIENTS. */
int agent_mux_add_client(struct agent_mux *m, int fd);

/*
 * Poll integration: fill up to max entries (fd, events) and return the count; then hand the
 * same array back with revents to agent_mux_handle(). agent_mux_deadline() is the next time
 * agent_mux_handle() must run even without events (0: none).
 */
size_t agent_mux_poll_fill(struct agent_mux *m, struct pollfd *p, size_t max);
void agent_mux_handle(struct agent_mux *m, const struct pollfd *p, size_t n, usec_t now);
usec_t agent_mux_deadline(const struct agent_mux *m);

/* For the local backend. */
/* Bytes of response the stream can take now without growing past its window. */
size_t agent_mux_stream_room(const struct agent_mux_stream *s);
/* Queue response bytes (gRPC-framed); the response headers go out first, once. */
void agent_mux_stream_write(struct agent_mux_stream *s, const void *data, size_t len);
/* End the response with grpc-status/grpc-message trailers (message may be NULL). */
void agent_mux_stream_finish(struct agent_mux_stream *s, int grpc_status, const char *message);
