// SPDX-License-Identifier: Apache-2.0
#include "agent/emul.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.pb-c.h"
#include "agent/grpc.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"

enum emul_kind { EMUL_EXEC, EMUL_RESOLVE_IP };

struct emul_stream {
	struct agent_emul *e;
	struct emul_stream *next;
	struct agent_mux_stream *s; /* NULL once the mux closed the stream */
	enum emul_kind kind;
	struct agent_grpc_reader rd;
	bool done; /* the response is complete (or failed) */
	bool busy; /* a qga call with this stream as userdata is pending */
	bool got_command;
	ExecRequest *cmd; /* the command message, kept until guest-exec */
	struct strbuf in; /* collected stdin */
	bool started;
	int64_t pid;
	usec_t next_poll, interval;
	bool exited;
	struct agent_qga_exec_status st;
	size_t out_off, err_off;
};

struct agent_emul {
	struct agent_qga *qga;
	struct emul_stream *streams;
};

static void stream_unlink_free(struct emul_stream *x)
{
	struct emul_stream **pp = &x->e->streams;
	while (*pp && *pp != x)
		pp = &(*pp)->next;
	if (*pp)
		*pp = x->next;
	agent_qga_forget(x->e->qga, x);
	agent_grpc_reader_release(&x->rd);
	if (x->cmd)
		exec_request__free_unpacked(x->cmd, NULL);
	strbuf_release(&x->in);
	agent_qga_exec_status_release(&x->st);
	free(x);
}

static void finish(struct emul_stream *x, int code, const char *msg)
{
	x->done = true;
	if (x->s)
		agent_mux_stream_finish(x->s, code, msg);
}

static void write_framed(struct emul_stream *x, struct strbuf *sb)
{
	if (x->s)
		agent_mux_stream_write(x->s, sb->buf, sb->len);
	strbuf_reset(sb);
}

/* Hand out the captured output as the room of the stream allows, then the exit code. */
static void pump(struct emul_stream *x)
{
	if (!x->exited || x->done || !x->s)
		return;
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	for (;;) {
		size_t room = agent_mux_stream_room(x->s);
		if (room < AGENT_GRPC_CHUNK + 64)
			return;
		if (x->out_off < x->st.out_len) {
			size_t k = MIN((size_t)AGENT_GRPC_CHUNK, x->st.out_len - x->out_off);
			(void)agent_grpc_pack_output(&sb, 1, x->st.out + x->out_off, k);
			x->out_off += k;
		} else if (x->err_off < x->st.err_len) {
			size_t k = MIN((size_t)AGENT_GRPC_CHUNK, x->st.err_len - x->err_off);
			(void)agent_grpc_pack_output(&sb, 2, x->st.err + x->err_off, k);
			x->err_off += k;
		} else {
			if (x->st.truncated) {
				static const char note[] = "tart: output beyond 16 MiB was dropped "
							   "by QEMU's guest agent\n";
				(void)agent_grpc_pack_output(&sb, 2, note, sizeof(note) - 1);
			}
			(void)agent_grpc_pack_exit(&sb, x->st.code);
			write_framed(x, &sb);
			finish(x, AGENT_GRPC_OK, NULL);
			return;
		}
		write_framed(x, &sb);
	}
}

static void on_status(int r, json_t *ret, const char *err, void *ud)
{
	struct emul_stream *x = ud;
	x->busy = false;
	if (r < 0) {
		_cleanup_free_ char *m =
		    xasprintf("QEMU's guest agent failed while the command ran: %s",
			      err ? err : strerror(-r));
		finish(x, AGENT_GRPC_UNAVAILABLE, m);
		return;
	}
	if (agent_qga_exec_status_parse(ret, &x->st) < 0) {
		finish(x, AGENT_GRPC_INTERNAL, "QEMU's guest agent sent a malformed exec status");
		return;
	}
	if (!x->st.exited) {
		x->interval = MIN(x->interval * 2, EMUL_POLL_MAX_USEC);
		x->next_poll = now_monotonic_usec() + x->interval;
		return;
	}
	x->exited = true;
	pump(x);
}

static void on_exec_started(int r, json_t *ret, const char *err, void *ud)
{
	struct emul_stream *x = ud;
	x->busy = false;
	const json_t *pid = json_object_get(ret, "pid");
	if (r == -EREMOTEIO) {
		/* e.g. the program does not exist: like Go's exec error, status UNKNOWN */
		finish(x, AGENT_GRPC_UNKNOWN, err);
		return;
	}
	if (r < 0 || !json_is_integer(pid)) {
		finish(x, AGENT_GRPC_UNAVAILABLE, "QEMU's guest agent did not start the command");
		return;
	}
	x->pid = json_integer_value(pid);
	x->started = true;
	x->interval = EMUL_POLL_FIRST_USEC;
	x->next_poll = now_monotonic_usec() + x->interval;
}

static void start_exec(struct emul_stream *x)
{
	if (x->busy || x->started || x->done)
		return;
	const ExecRequest__Command *c = x->cmd->command;
	json_t *args = agent_qga_exec_args(c->name, c->args, c->n_args,
					   c->interactive ? x->in.buf : NULL, x->in.len);
	strbuf_release(&x->in);
	x->busy = true;
	x->started = true; /* no second start while guest-exec is on its way */
	/* may call back at once (qga went away): on_exec_started handles that */
	agent_qga_call(x->e->qga, "guest-exec", args, on_exec_started, x, now_monotonic_usec());
}

static void on_interfaces(int r, json_t *ret, const char *err, void *ud)
{
	struct emul_stream *x = ud;
	x->busy = false;
	char ip[16];
	if (r < 0) {
		_cleanup_free_ char *m = xasprintf(
		    "QEMU's guest agent did not list the interfaces: %s", err ? err : strerror(-r));
		finish(x, AGENT_GRPC_UNAVAILABLE, m);
		return;
	}
	if (agent_qga_pick_ipv4(ret, ip) < 0) {
		finish(x, AGENT_GRPC_UNKNOWN, "cannot resolve VM's IP address");
		return;
	}
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	(void)agent_grpc_pack_resolve_ip_response(&sb, ip);
	write_framed(x, &sb);
	finish(x, AGENT_GRPC_OK, NULL);
}

static void on_exec_message(struct emul_stream *x, const uint8_t *msg, size_t len)
{
	ExecRequest *req = NULL;
	if (agent_grpc_unpack_exec_request(msg, len, &req) < 0) {
		finish(x, AGENT_GRPC_INVALID_ARGUMENT, "malformed ExecRequest");
		return;
	}
	if (!x->got_command) {
		if (req->type_case != EXEC_REQUEST__TYPE_COMMAND) {
			exec_request__free_unpacked(req, NULL);
			finish(x, AGENT_GRPC_INVALID_ARGUMENT,
			       "first exec request should describe a command to execute");
			return;
		}
		x->got_command = true;
		x->cmd = req;
		if (req->command->tty) {
			finish(x, AGENT_GRPC_UNIMPLEMENTED,
			       "this VM runs QEMU's guest agent (qemu-guest-agent), which cannot "
			       "allocate a terminal (-t): install the Tart Guest Agent in the VM");
			return;
		}
		if (!req->command->interactive)
			start_exec(x);
		return;
	}
	if (req->type_case == EXEC_REQUEST__TYPE_STANDARD_INPUT && x->cmd->command->interactive &&
	    !x->started) {
		const ProtobufCBinaryData *d = &req->standard_input->data;
		if (d->len == 0) {
			start_exec(x);
		} else if (x->in.len + d->len > EMUL_STDIN_MAX) {
			finish(
			    x, AGENT_GRPC_RESOURCE_EXHAUSTED,
			    "QEMU's guest agent (qemu-guest-agent) takes at most 8 MiB of standard "
			    "input, given all at once: install the Tart Guest Agent in the VM to "
			    "stream more");
		} else {
			strbuf_putn(&x->in, d->data, d->len);
		}
	}
	exec_request__free_unpacked(req, NULL);
}

static void em_data(void *st, const uint8_t *data, size_t len)
{
	struct emul_stream *x = st;
	if (x->done)
		return;
	int k = agent_grpc_reader_feed(&x->rd, data, len);
	const uint8_t *msg;
	size_t n;
	while (k >= 0 && !x->done && (k = agent_grpc_reader_next(&x->rd, &msg, &n)) > 0) {
		if (x->kind == EMUL_EXEC) {
			on_exec_message(x, msg, n);
		} else if (!x->busy && !x->started) {
			x->started = x->busy = true;
			agent_qga_call(x->e->qga, "guest-network-get-interfaces", NULL,
				       on_interfaces, x, now_monotonic_usec());
		}
	}
	if (k < 0 && !x->done)
		finish(x, AGENT_GRPC_RESOURCE_EXHAUSTED, "gRPC message too large or compressed");
}

static void em_end(void *st)
{
	struct emul_stream *x = st;
	if (x->done || x->started)
		return;
	if (x->kind == EMUL_EXEC && x->got_command)
		start_exec(x); /* the client half-closed instead of sending the EOF chunk */
	else if (x->kind == EMUL_EXEC)
		finish(x, AGENT_GRPC_INVALID_ARGUMENT, "the call ended before its command");
	else
		finish(x, AGENT_GRPC_INVALID_ARGUMENT, "the call ended before its request");
}

static void em_pull(void *st)
{
	pump(st);
}

static void em_close(void *st)
{
	struct emul_stream *x = st;
	x->s = NULL;
	if (x->started && x->pid > 0 && !x->exited) {
		/* qga cannot signal a command; a kill in the guest is the best it offers */
		char pid[32];
		snprintf(pid, sizeof(pid), "%lld", (long long)x->pid);
		char *args[] = {(char *)"-KILL", pid};
		agent_qga_call(x->e->qga, "guest-exec",
			       agent_qga_exec_args("kill", args, 2, NULL, 0), NULL, NULL,
			       now_monotonic_usec());
	}
	stream_unlink_free(x);
}

static int em_ready(void *ud)
{
	struct agent_emul *e = ud;
	switch (e->qga->state) {
	case QGA_READY:
		return 1;
	case QGA_SYNCING:
		return 0;
	default:
		return -1;
	}
}

static void *em_open(void *ud, struct agent_mux_stream *s, const char *path)
{
	struct agent_emul *e = ud;
	enum emul_kind kind;
	if (streq(path, AGENT_GRPC_PATH_EXEC)) {
		kind = EMUL_EXEC;
	} else if (streq(path, AGENT_GRPC_PATH_RESOLVE_IP)) {
		kind = EMUL_RESOLVE_IP;
	} else {
		agent_mux_stream_finish(s, AGENT_GRPC_UNIMPLEMENTED, "unknown method");
		return NULL;
	}
	log_debug("agent: %s answered through QEMU's guest agent", path);
	struct emul_stream *x = xcalloc(1, sizeof(*x));
	x->e = e;
	x->s = s;
	x->kind = kind;
	agent_grpc_reader_init(&x->rd, 0);
	strbuf_init(&x->in, 0);
	x->next = e->streams;
	e->streams = x;
	return x;
}

struct agent_emul *agent_emul_new(struct agent_qga *qga)
{
	struct agent_emul *e = xcalloc(1, sizeof(*e));
	e->qga = qga;
	return e;
}

void agent_emul_free(struct agent_emul *e)
{
	if (!e)
		return;
	while (e->streams)
		stream_unlink_free(e->streams);
	free(e);
}

void agent_emul_fill_ops(struct agent_emul *e, struct agent_mux_ops *ops)
{
	ops->ready = em_ready;
	ops->open = em_open;
	ops->data = em_data;
	ops->end = em_end;
	ops->pull = em_pull;
	ops->close = em_close;
	ops->ud = e;
}

usec_t agent_emul_deadline(const struct agent_emul *e)
{
	usec_t d = 0;
	for (const struct emul_stream *x = e->streams; x; x = x->next)
		if (x->started && x->pid > 0 && !x->exited && !x->busy && !x->done &&
		    (!d || x->next_poll < d))
			d = x->next_poll;
	return d;
}

void agent_emul_tick(struct agent_emul *e, usec_t now)
{
	for (struct emul_stream *x = e->streams; x; x = x->next) {
		if (!x->started || x->pid <= 0 || x->exited || x->busy || x->done ||
		    now < x->next_poll)
			continue;
		x->busy = true;
		agent_qga_call(e->qga, "guest-exec-status",
			       json_pack("{s:I}", "pid", (json_int_t)x->pid), on_status, x, now);
	}
}
