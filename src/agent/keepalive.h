/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * HTTP/2 PING keepalive of a connection to the guest agent, so that an agent (or a whole guest)
 * that stops answering while a call is open ends that call instead of leaving it hanging: after
 * an interval without a byte from the peer a PING goes out, and when another interval passes
 * still without a byte the peer counts as gone. A live agent answers PINGs even while a command
 * runs silently for days or its stream's window is full, so only a dead one is caught. The
 * interval is AGENT_KEEPALIVE_DEFAULT_SEC, or TART_AGENT_KEEPALIVE (seconds, 1-3600).
 */

#include <stdbool.h>

#include "util/time.h"

#define AGENT_KEEPALIVE_DEFAULT_SEC 30

struct agent_keepalive {
	usec_t interval;
	usec_t last_rx; /* when the peer last sent anything */
	usec_t ping_at; /* when our unanswered PING went out; 0: none */
};

enum agent_keepalive_action { AGENT_KEEPALIVE_NONE, AGENT_KEEPALIVE_PING, AGENT_KEEPALIVE_DEAD };

void agent_keepalive_init(struct agent_keepalive *k, usec_t now);
/* Bytes arrived from the peer. */
void agent_keepalive_rx(struct agent_keepalive *k, usec_t now);
/* What to do now; *ret_next (if given) is when to ask again. */
enum agent_keepalive_action agent_keepalive_check(struct agent_keepalive *k, usec_t now,
						  usec_t *ret_next);
