/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A client of QEMU's own guest agent (qemu-guest-agent, "qga"): JSON commands over the
 * virtio-serial port org.qemu.guest_agent.0, one response line each, strictly in order.
 * Driven by the caller's poll loop (agent/host.c): no thread, no blocking call. Non-logging.
 *
 * The stream is brought in sync the way qga documents: a 0xFF byte (qga flushes its parser),
 * then guest-sync-delimited with a fresh id; everything up to qga's own 0xFF sentinel and
 * every response before the one echoing that id is stale and dropped. That happens when the
 * port opens, and again after any timeout, so a restarted qga or a reply that arrives too late
 * never answers the wrong request.
 *
 * JSON is parsed by jansson; a line is capped (QGA_LINE_MAX), and base64 payloads through the
 * caps given to the helpers below.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"
#include "util/time.h"

/* qga captures at most 16 MiB per stream; base64 of two of them plus JSON fits. */
#define QGA_LINE_MAX (48u << 20)
#define QGA_SYNC_TIMEOUT_USEC (3 * 1000000ULL)
#define QGA_CALL_TIMEOUT_USEC (15 * 1000000ULL)

/*
 * Called once per call: r = 0 with the "return" value (borrowed), or r < 0: -EREMOTEIO with
 * qga's error description in err, -ETIMEDOUT, -ENOTCONN (the port closed, or no qga answered).
 */
typedef void (*agent_qga_cb)(int r, json_t *ret, const char *err, void *userdata);

enum agent_qga_state {
	QGA_DOWN,    /* the guest has not opened the port: nothing to talk to */
	QGA_SYNCING, /* sync sent, waiting for the echo */
	QGA_READY,
};

struct agent_qga_call;

struct agent_qga {
	int fd; /* our end of the port's socket; not owned */
	enum agent_qga_state state;
	bool port_known_open; /* QMP said the guest opened the port */
	uint64_t sync_id;
	bool seen_sentinel;
	usec_t deadline; /* of the sync or of the call in flight; 0 = none */
	struct strbuf in;
	struct strbuf out;
	size_t out_off;
	struct agent_qga_call *head, *tail; /* head is in flight once READY */
	bool head_sent;
};

void agent_qga_init(struct agent_qga *q, int fd);
/* Fails every pending call with -ENOTCONN. */
void agent_qga_release(struct agent_qga *q);

/*
 * The port's state from QMP's VSERPORT_CHANGE: open starts a sync, closed fails what is
 * pending.
 */
void agent_qga_port_changed(struct agent_qga *q, bool open, usec_t now);
/* No event tells the port's state (a restored VM): try a sync, given up after its timeout. */
void agent_qga_probe(struct agent_qga *q, usec_t now);
/* True when a sync is done or may still succeed (worth queueing a call). */
bool agent_qga_usable(const struct agent_qga *q);

/* Queue a command; args (may be NULL) is stolen. The callback runs from agent_qga_handle(). */
void agent_qga_call(struct agent_qga *q, const char *command, json_t *args, agent_qga_cb cb,
		    void *userdata, usec_t now);
/* Forget the callbacks registered with userdata (its owner is going away). */
void agent_qga_forget(struct agent_qga *q, void *userdata);

/* poll() events wanted on q->fd, and the time by which agent_qga_handle() must run (0: none). */
short agent_qga_events(const struct agent_qga *q);
usec_t agent_qga_deadline(const struct agent_qga *q);
/* Read/write what revents allow, fire timeouts, run callbacks. */
void agent_qga_handle(struct agent_qga *q, short revents, usec_t now);

/* Pure helpers, unit-tested. */

/* The first global-unicast IPv4 of guest-network-get-interfaces' reply, as Tart's agent picks. */
int agent_qga_pick_ipv4(const json_t *interfaces, char ret[16]);

/* guest-exec's arguments: path searched in PATH by qga, output captured, optional stdin. */
json_t *agent_qga_exec_args(const char *path, char *const *args, size_t n_args, const void *input,
			    size_t input_len);

struct agent_qga_exec_status {
	bool exited;
	int code;	 /* exit code; -1 when a signal ended it (as Tart's agent reports) */
	int signal;	 /* 0 unless a signal ended it */
	char *out, *err; /* decoded captured output (may be NULL) */
	size_t out_len, err_len;
	bool truncated; /* qga dropped output beyond its cap */
};
/* Decode guest-exec-status' reply; -EBADMSG when malformed. */
int agent_qga_exec_status_parse(const json_t *ret, struct agent_qga_exec_status *st);
void agent_qga_exec_status_release(struct agent_qga_exec_status *st);

/*
 * Blocking use, for a thread that has nothing else to wait for (tart run individualizes a
 * resumed clone before its agent thread starts, vm/resume.h). Each drives q by itself until
 * its answer or deadline (monotonic); a sync that nobody answers is tried again until then.
 */

/* Start talking on fd: q is initialized and a sync begins (the port is taken as open). */
void agent_qga_open_wait(struct agent_qga *q, int fd);
/*
 * One call and its answer (args borrowed, unlike agent_qga_call()): 0 with *ret (a new
 * reference; ret may be NULL); -EREMOTEIO with qga's description in *ret_err (allocated);
 * -ETIMEDOUT; -ENOTCONN.
 */
int agent_qga_call_wait(struct agent_qga *q, const char *command, json_t *args, usec_t deadline,
			json_t **ret, char **ret_err);
/*
 * guest-exec of path with args, output captured, then guest-exec-status until it ended: 0 with
 * *st filled (release it), or what agent_qga_call_wait() returns (-EBADMSG: a malformed status).
 */
int agent_qga_exec_wait(struct agent_qga *q, const char *path, char *const *args, size_t n_args,
			usec_t deadline, struct agent_qga_exec_status *st, char **ret_err);
