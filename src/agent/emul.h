/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The Agent service answered by tart run itself through QEMU's guest agent (qemu-guest-agent,
 * agent/qga.h), for guests that have it and not the Tart guest agent: the local backend of
 * agent/mux.h, so a control.sock client still speaks plain gRPC.
 *
 *   /Agent/ResolveIP  guest-network-get-interfaces, the first global-unicast IPv4
 *   /Agent/Exec       guest-exec with captured output, then guest-exec-status polled
 *                     (EMUL_POLL_FIRST_USEC growing to EMUL_POLL_MAX_USEC) until it exits
 *
 * What qga cannot do, and the answer instead:
 *   - a terminal (-t): UNIMPLEMENTED with a message naming the Tart guest agent;
 *   - streaming: output arrives when the command has exited, at most 16 MiB per stream (qga's
 *     cap; beyond it a note on standard error says output was cut); stdin (-i) is collected
 *     first, at most EMUL_STDIN_MAX bytes (RESOURCE_EXHAUSTED beyond), and handed to
 *     guest-exec as input-data;
 *   - a client that goes away cannot kill the command through qga itself: a `kill -KILL <pid>`
 *     is started in the guest, best effort;
 *   - commands run as qga's user (root) with qga's environment, not a login environment.
 */

#include <stdbool.h>

#include "agent/mux.h"
#include "agent/qga.h"
#include "util/time.h"

#define EMUL_STDIN_MAX (8u << 20)
#define EMUL_POLL_FIRST_USEC (20 * 1000ULL)
#define EMUL_POLL_MAX_USEC (500 * 1000ULL)

struct agent_emul;

struct agent_emul *agent_emul_new(struct agent_qga *qga);
void agent_emul_free(struct agent_emul *e);
/* The local-backend half of the mux's ops (connect is the caller's), ud = e. */
void agent_emul_fill_ops(struct agent_emul *e, struct agent_mux_ops *ops);
/* Status polls due: the next time agent_emul_tick() must run (0: none), and the tick. */
usec_t agent_emul_deadline(const struct agent_emul *e);
void agent_emul_tick(struct agent_emul *e, usec_t now);
