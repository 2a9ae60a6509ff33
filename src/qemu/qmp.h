/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A small synchronous QMP client over a connected socket (our end of the socketpair whose
 * other end QEMU received as `-chardev socket,id=qmp,fd=N`, so no socket path exists and no
 * path length limit applies). One JSON object per line. Every wait has a deadline: a wedged
 * QEMU turns into -ETIMEDOUT, never a hang. Non-logging: errors come back as -errno plus, for
 * QMP errors, the "desc" text in ret_err.
 */

#include <jansson.h>
#include <stdbool.h>

#include "util/strbuf.h"

typedef void (*qemu_qmp_event_fn)(const char *name, json_t *data, void *userdata);

#define QEMU_QMP_MAX_WATCHERS 4

struct qemu_qmp {
	int fd;
	struct strbuf in; /* bytes received but not yet parsed */
	/* Events seen while waiting for replies, or read by qemu_qmp_poll_events(). */
	void (*on_event)(const char *name, json_t *data, void *userdata);
	void *userdata;
	/* More listeners, each with its own userdata: see qemu_qmp_watch(). */
	struct {
		qemu_qmp_event_fn fn;
		void *userdata;
	} watchers[QEMU_QMP_MAX_WATCHERS];
	size_t n_watchers;
};

/*
 * Add an event listener beside on_event, so that several modules follow one QEMU's events
 * (each gets every event, after on_event, in the order added). May be called before
 * qemu_qmp_open(); qemu_qmp_release() keeps the listeners. -ENOSPC when all slots are taken.
 */
int qemu_qmp_watch(struct qemu_qmp *q, qemu_qmp_event_fn fn, void *userdata);

/* Read the greeting and negotiate capabilities. Takes no ownership of fd. */
int qemu_qmp_open(struct qemu_qmp *q, int fd, int timeout_ms);
void qemu_qmp_release(struct qemu_qmp *q);

/*
 * Execute a command. args (may be NULL) is stolen. On success *ret_return (if given) holds the
 * "return" value (a new reference). On a QMP error returns -EREMOTEIO and *ret_err (if given)
 * the allocated error description. -EPIPE when QEMU closed the monitor.
 */
int qemu_qmp_call(struct qemu_qmp *q, const char *command, json_t *args, int timeout_ms,
		  json_t **ret_return, char **ret_err);

/* Pass fd to QEMU under name (QMP "getfd" with SCM_RIGHTS). */
int qemu_qmp_send_fd(struct qemu_qmp *q, const char *name, int fd, int timeout_ms, char **ret_err);

/* Read whatever is available without blocking and dispatch events. -EPIPE on EOF. */
int qemu_qmp_poll_events(struct qemu_qmp *q);
