/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One HTTP/2 server connection of the agent (libnghttp2's server session) serving the
 * `Agent` service: /Agent/Exec and /Agent/ResolveIP. Transport-free: the owner feeds the
 * bytes it read (session_recv) and writes what session_send hands out, so the same code
 * serves vsock, the virtio-serial port, Unix sockets and the fuzzer.
 *
 * Freeing a session kills the process group of every command it started that still runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"

struct agent_session;

struct session_config {
	/* Fuzzing: Exec answers exit 0 without running anything. */
	bool dry_run;
	/* A call whose first request message has not arrived after this long ends with
	 * DEADLINE_EXCEEDED (0 = never). */
	uint32_t first_message_timeout_ms;
};

/* -ENOMEM, or an nghttp2 setup failure mapped to -EIO. */
int session_new(struct loop *l, const struct session_config *cfg, struct agent_session **ret);
/* Feed received bytes. Returns 0, or -EPROTO when the peer broke HTTP/2 (the session then
 * has a GOAWAY to send, if any, and is done). */
int session_recv(struct agent_session *s, const uint8_t *data, size_t len);
/* The next bytes to write, valid until the next session_* call (write them or copy them
 * before), 0 when there are none. Output is staged from nghttp2 at most 256 KiB ahead. */
ssize_t session_send(struct agent_session *s, const uint8_t **ret_data);
/* Neither side has anything more to say: close the transport. */
bool session_done(struct agent_session *s);
/* Still reading: no protocol error, no GOAWAY exchanged that ended it. */
bool session_alive(struct agent_session *s);
/* The peer sent GOAWAY. */
bool session_goaway_received(struct agent_session *s);
/* Queue a GOAWAY (e.g. at shutdown); the session is done once it is sent. */
void session_terminate(struct agent_session *s);
void session_free(struct agent_session *s);
