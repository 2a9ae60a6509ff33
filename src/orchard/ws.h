/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * WebSocket client connections to an Orchard controller (libwebsockets): the worker's watch
 * channel and dial-back port-forwards, the CLI's port-forward and ssh. Each connection has its
 * own small lws context and is driven by the thread that calls recv or bridge, so one slow peer
 * never holds up another. Same TLS pinning and Basic auth as the REST client. Pings from the
 * controller are answered by lws; a connection silent for 75 s is pinged and then dropped.
 * Nothing here logs.
 */

#include <stdbool.h>
#include <stddef.h>

#include "orchard/client.h"
#include "util/strbuf.h"

struct orchard_ws;

/*
 * Upgrade GET <url>/v1/<path>?<query> to a WebSocket, waiting at most timeout_s for it.
 * On an HTTP answer other than 101, *ret_status (may be NULL) gets its status and the return is
 * client.h's mapping of it (404 -> -ENOENT, ...); on a transport failure -ECONNREFUSED or
 * -ECONNRESET or -ETIMEDOUT. ret_error (may be NULL) gets a message.
 */
int orchard_ws_open(struct orchard_client *c, const char *path, const char *query, long timeout_s,
		    struct orchard_ws **ret, long *ret_status, char **ret_error);

/*
 * Wait for the next whole message (text or binary, at most 1 MiB) and put its payload in msg
 * (replacing what was there). -ECONNRESET once the connection is closed, -EINTR after
 * orchard_ws_interrupt().
 */
int orchard_ws_recv(struct orchard_ws *ws, struct strbuf *msg);

/*
 * Proxy bytes until either side ends: what is read from in_fd goes out as binary messages,
 * the payload of every message received is written to out_fd. End of in_fd closes the
 * WebSocket (after what was read has been sent); a closed WebSocket ends the bridge. The fds
 * are not closed. Returns 0 or -EINTR after orchard_ws_interrupt().
 */
int orchard_ws_bridge(struct orchard_ws *ws, int in_fd, int out_fd);

/* Make recv/bridge in another thread return -EINTR soon. Thread-safe. */
void orchard_ws_interrupt(struct orchard_ws *ws);

void orchard_ws_close(struct orchard_ws *ws);
DEFINE_CLEANUP_FUNC(struct orchard_ws *, orchard_ws_close, orchard_ws_closep)
#define _cleanup_orchard_ws_ _cleanup_(orchard_ws_closep)
