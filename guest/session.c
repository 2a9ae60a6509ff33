// SPDX-License-Identifier: Apache-2.0
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "agent/agent.pb-c.h"
#include "agent/grpc.h"
#include "exec.h"
#include "resolve.h"
#include "util/alloc.h"
#include "util/log.h"

/* Output staged ahead of the transport, at most (plus one nghttp2 chunk). */
#define STAGE_CAP (256u << 10)

enum call_kind { CALL_UNKNOWN, CALL_EXEC, CALL_RESOLVE_IP };

struct call {
	struct agent_session *s;
	struct call *next;
	int32_t id;
	enum call_kind kind;
	struct agent_grpc_meta meta;
	struct agent_grpc_reader reader;
	struct agent_grpc_outq outq;
	struct loop_watch timer;
	struct exec *exec;
	uint32_t unacked; /* stream bytes received and not yet given back */
	unsigned nmsg;
	bool responded;	 /* response HEADERS submitted */
	bool finished;	 /* our side ended (trailers queued or sent) */
	bool remote_eof; /* the client half-closed */
};

struct agent_session {
	nghttp2_session *h2;
	struct loop *loop;
	struct session_config cfg;
	struct call *calls;
	struct strbuf scratch;
	struct strbuf outbox; /* output staged from nghttp2, see stage() */
	bool handed;	      /* outbox was handed out by session_send */
	bool goaway_received;
	bool broken; /* a connection error: no more input is read */
};

/* ---- responding ---- */

static void respond(struct call *c)
{
	struct agent_grpc_nv h;
	nghttp2_data_provider dp = {.source.ptr = &c->outq, .read_callback = agent_grpc_outq_read};

	if (c->responded)
		return;
	c->responded = true;
	agent_grpc_nv_response(&h);
	if (nghttp2_submit_response(c->s->h2, c->id, h.nv, h.n, &dp) != 0)
		log_debug("stream %d: cannot submit the response", c->id);
	agent_grpc_nv_release(&h);
}

/* End our side of the call with a status. Before any message: one Trailers-Only HEADERS. */
static void finish(struct call *c, int code, const char *message)
{
	if (c->finished)
		return;
	c->finished = true;
	if (code != AGENT_GRPC_OK)
		log_debug("stream %d: %s: %s", c->id, agent_grpc_code_name(code),
			  message ? message : "");
	if (!c->responded && agent_grpc_outq_pending(&c->outq) == 0) {
		struct agent_grpc_nv h;
		c->responded = true;
		agent_grpc_nv_trailers_only(&h, code, message);
		nghttp2_submit_response(c->s->h2, c->id, h.nv, h.n, NULL);
		agent_grpc_nv_release(&h);
		return;
	}
	respond(c);
	agent_grpc_outq_finish(&c->outq, true, code, message);
	agent_grpc_outq_kick(&c->outq, c->s->h2, c->id);
}

/* Fail the call: a command it started is killed. */
static void fail(struct call *c, int code, const char *message)
{
	if (c->exec) {
		exec_detach(c->exec, true);
		c->exec = NULL;
	}
	loop_set_timer(&c->timer, 0, NULL);
	finish(c, code, message);
}

static int queue(struct call *c, struct strbuf *msg)
{
	int r;
	respond(c);
	r = agent_grpc_outq_add(&c->outq, msg->buf, msg->len);
	strbuf_reset(msg);
	if (r < 0)
		return r;
	agent_grpc_outq_kick(&c->outq, c->s->h2, c->id);
	return 0;
}

/* Give the stream's window back for everything received. */
static void ack(struct call *c)
{
	if (!c->unacked)
		return;
	nghttp2_session_consume_stream(c->s->h2, c->id, c->unacked);
	c->unacked = 0;
}

/* ---- exec sink ---- */

static bool sink_can_write(void *ctx)
{
	struct call *c = ctx;
	return !c->finished && agent_grpc_outq_pending(&c->outq) < AGENT_GRPC_OUTQ_HIGH;
}

static int sink_write(void *ctx, int fd, const void *data, size_t len)
{
	struct call *c = ctx;
	int r = agent_grpc_pack_output(&c->s->scratch, fd, data, len);
	return r < 0 ? r : queue(c, &c->s->scratch);
}

static void sink_stdin_drained(void *ctx)
{
	ack(ctx);
}

static void sink_done(void *ctx, int code)
{
	struct call *c = ctx;
	/* The process is reaped and its output read: nothing left to kill. */
	exec_detach(c->exec, false);
	c->exec = NULL;
	if (agent_grpc_pack_exit(&c->s->scratch, code) < 0 || queue(c, &c->s->scratch) < 0) {
		finish(c, AGENT_GRPC_INTERNAL, "cannot queue the exit code");
		return;
	}
	finish(c, AGENT_GRPC_OK, NULL);
	ack(c);
}

/* ---- methods ---- */

static void exec_first(struct call *c, ExecRequest *req)
{
	static const struct exec_sink sink_ops = {.can_write = sink_can_write,
						  .write = sink_write,
						  .stdin_drained = sink_stdin_drained,
						  .done = sink_done};
	struct exec_sink sink = sink_ops;
	struct strbuf err = STRBUF_INIT;
	const ExecRequest__Command *cmd = req->command;
	int r;

	if (req->type_case != EXEC_REQUEST__TYPE_COMMAND) {
		fail(c, AGENT_GRPC_INVALID_ARGUMENT,
		     "first exec request should describe a command to execute");
		return;
	}
	if (c->s->cfg.dry_run) {
		if (agent_grpc_pack_exit(&c->s->scratch, 0) == 0 && queue(c, &c->s->scratch) == 0)
			finish(c, AGENT_GRPC_OK, NULL);
		return;
	}
	struct exec_params p = {
	    .name = cmd->name,
	    .args = cmd->args,
	    .nargs = cmd->n_args,
	    .interactive = cmd->interactive,
	    .tty = cmd->tty,
	    .rows = cmd->terminal_size ? cmd->terminal_size->rows : 0,
	    .cols = cmd->terminal_size ? cmd->terminal_size->cols : 0,
	};
	sink.ctx = c;
	r = exec_start(&p, &sink, &c->exec, &err);
	if (r < 0) {
		fail(c,
		     r == -ENOENT   ? AGENT_GRPC_NOT_FOUND
		     : r == -EACCES ? AGENT_GRPC_PERMISSION_DENIED
				    : AGENT_GRPC_UNKNOWN,
		     err.buf);
		c->exec = NULL;
	}
	strbuf_release(&err);
}

static void exec_message(struct call *c, const uint8_t *msg, size_t len)
{
	ExecRequest *req;

	if (agent_grpc_unpack_exec_request(msg, len, &req) < 0) {
		fail(c, AGENT_GRPC_INVALID_ARGUMENT, "malformed ExecRequest");
		return;
	}
	if (c->nmsg == 1) {
		exec_first(c, req);
	} else if (c->exec) {
		switch (req->type_case) {
		case EXEC_REQUEST__TYPE_STANDARD_INPUT:
			if (req->standard_input->data.len == 0)
				exec_stdin_eof(c->exec);
			else if (exec_stdin(c->exec, req->standard_input->data.data,
					    req->standard_input->data.len) < 0)
				fail(c, AGENT_GRPC_RESOURCE_EXHAUSTED, "stdin flooded");
			break;
		case EXEC_REQUEST__TYPE_TERMINAL_RESIZE:
			exec_resize(c->exec, req->terminal_resize->rows,
				    req->terminal_resize->cols);
			break;
		default:
			/* A second command or an empty request: ignored, as tart-guest-agent. */
			break;
		}
	}
	exec_request__free_unpacked(req, NULL);
}

static void resolve_ip(struct call *c)
{
	char ip[64];
	int r = agent_resolve_ip(ip, sizeof(ip));

	if (r < 0) {
		finish(c, AGENT_GRPC_UNAVAILABLE, "cannot resolve VM's IP address");
		return;
	}
	if (agent_grpc_pack_resolve_ip_response(&c->s->scratch, ip) < 0 ||
	    queue(c, &c->s->scratch) < 0) {
		finish(c, AGENT_GRPC_INTERNAL, "cannot queue the response");
		return;
	}
	finish(c, AGENT_GRPC_OK, NULL);
}

static void on_message(struct call *c, const uint8_t *msg, size_t len)
{
	c->nmsg++;
	if (c->nmsg == 1)
		loop_set_timer(&c->timer, 0, NULL);
	if (c->kind == CALL_EXEC) {
		exec_message(c, msg, len);
	} else if (c->kind == CALL_RESOLVE_IP) {
		ResolveIPRequest *req;
		if (c->nmsg > 1)
			fail(c, AGENT_GRPC_UNIMPLEMENTED, "ResolveIP takes one request message");
		else if (agent_grpc_unpack_resolve_ip_request(msg, len, &req) < 0)
			fail(c, AGENT_GRPC_INVALID_ARGUMENT, "malformed ResolveIPRequest");
		else
			resolve_iprequest__free_unpacked(req, NULL);
	}
}

static void on_remote_eof(struct call *c)
{
	c->remote_eof = true;
	if (c->finished)
		return;
	if (agent_grpc_reader_partial(&c->reader)) {
		fail(c, AGENT_GRPC_INVALID_ARGUMENT, "request stream ended inside a message");
		return;
	}
	if (c->nmsg == 0) {
		fail(c, AGENT_GRPC_INVALID_ARGUMENT, "no request message");
		return;
	}
	if (c->kind == CALL_RESOLVE_IP)
		resolve_ip(c);
	else if (c->exec)
		exec_stdin_eof(c->exec); /* a half-close is an EOF too */
}

static void on_timeout(struct loop_watch *w)
{
	struct call *c = w->data;
	fail(c, AGENT_GRPC_DEADLINE_EXCEEDED, "no request message in time");
}

static void start_call(struct call *c)
{
	const struct agent_grpc_meta *m = &c->meta;

	if (!m->content_type_ok) {
		/* Not gRPC at all: an HTTP error, as gRPC servers answer. */
		const nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"415", 7, 3, 0}};
		c->responded = c->finished = true;
		nghttp2_submit_response(c->s->h2, c->id, nv, ARRAY_SIZE(nv), NULL);
		return;
	}
	if (strcmp(m->path, AGENT_GRPC_PATH_EXEC) == 0)
		c->kind = CALL_EXEC;
	else if (strcmp(m->path, AGENT_GRPC_PATH_RESOLVE_IP) == 0)
		c->kind = CALL_RESOLVE_IP;
	if (strcmp(m->method, "POST") != 0 || c->kind == CALL_UNKNOWN) {
		finish(c, AGENT_GRPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	if (m->compressed) {
		finish(c, AGENT_GRPC_UNIMPLEMENTED, "compression is not supported");
		return;
	}
	if (c->s->cfg.first_message_timeout_ms)
		loop_set_timer(&c->timer, c->s->cfg.first_message_timeout_ms, on_timeout);
}

static void call_free(struct call *c)
{
	struct agent_session *s = c->s;
	for (struct call **p = &s->calls; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->exec)
		exec_detach(c->exec, true);
	loop_remove(s->loop, &c->timer);
	agent_grpc_reader_release(&c->reader);
	agent_grpc_outq_release(&c->outq);
	free(c);
}

/* ---- nghttp2 callbacks ---- */

static struct call *get_call(nghttp2_session *h2, int32_t id)
{
	return id > 0 ? nghttp2_session_get_stream_user_data(h2, id) : NULL;
}

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct agent_session *s = user;
	struct call *c;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->id = f->hd.stream_id;
	agent_grpc_meta_init(&c->meta);
	agent_grpc_reader_init(&c->reader, 0);
	agent_grpc_outq_init(&c->outq);
	loop_watch_init(&c->timer, -1, NULL, c);
	loop_add(s->loop, &c->timer);
	c->next = s->calls;
	s->calls = c;
	nghttp2_session_set_stream_user_data(h2, c->id, c);
	return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct call *c = get_call(h2, f->hd.stream_id);
	(void)flags;
	(void)user;
	if (!c || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (agent_grpc_meta_add(&c->meta, name, namelen, value, valuelen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM this request */
	return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct agent_session *s = user;
	struct call *c = get_call(h2, f->hd.stream_id);

	switch (f->hd.type) {
	case NGHTTP2_GOAWAY:
		s->goaway_received = true;
		return 0;
	case NGHTTP2_HEADERS:
		if (c && f->headers.cat == NGHTTP2_HCAT_REQUEST)
			start_call(c);
		break;
	case NGHTTP2_DATA:
		break;
	default:
		return 0;
	}
	if (c && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		on_remote_eof(c);
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct call *c = get_call(h2, id);
	const uint8_t *msg;
	size_t mlen;
	int k;

	(void)flags;
	(void)user;
	/* The connection window is never held back: one slow stream must not stall the rest. */
	nghttp2_session_consume_connection(h2, len);
	if (!c || c->finished || c->kind == CALL_UNKNOWN) {
		nghttp2_session_consume_stream(h2, id, len);
		return 0;
	}
	c->unacked += (uint32_t)len;
	k = agent_grpc_reader_feed(&c->reader, data, len);
	while (k >= 0 && !c->finished && (k = agent_grpc_reader_next(&c->reader, &msg, &mlen)) > 0)
		on_message(c, msg, mlen);
	if (k == -EMSGSIZE)
		fail(c, AGENT_GRPC_RESOURCE_EXHAUSTED, "request message larger than 4 MiB");
	else if (k < 0)
		fail(c, AGENT_GRPC_UNIMPLEMENTED, "compressed messages are not supported");
	/* Bytes still waiting for the child's stdin keep their window; the rest goes back. */
	if (c->finished || !c->exec || exec_stdin_pending(c->exec) == 0)
		ack(c);
	return 0;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct call *c = get_call(h2, f->hd.stream_id);
	(void)user;
	/* Our side ended while the client still sends: tell it to stop, as grpc servers do. */
	if (c && !c->remote_eof && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA))
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, c->id, NGHTTP2_NO_ERROR);
	return 0;
}

static int before_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct agent_session *s = user;
	(void)h2;
	/* nghttp2 ends the connection after a protocol error with a GOAWAY: remember it. */
	if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR)
		s->broken = true;
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error, void *user)
{
	struct call *c = get_call(h2, id);
	(void)user;
	if (!c)
		return 0;
	if (error != NGHTTP2_NO_ERROR || !c->finished)
		log_debug("stream %d closed (error %u)%s", id, error,
			  c->exec ? ", killing its command" : "");
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	call_free(c);
	return 0;
}

/* ---- the session ---- */

int session_new(struct loop *l, const struct session_config *cfg, struct agent_session **ret)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	struct agent_session *s;
	int r;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_before_frame_send_callback(cb, before_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	r = agent_grpc_option_new(&opt);
	if (r < 0) {
		nghttp2_session_callbacks_del(cb);
		return r;
	}
	s = xcalloc(1, sizeof(*s));
	s->loop = l;
	s->cfg = *cfg;
	strbuf_init(&s->scratch, 0);
	strbuf_init(&s->outbox, 0);
	r = nghttp2_session_server_new2(&s->h2, cb, s, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (r != 0 || agent_grpc_submit_settings(s->h2) != 0) {
		if (r == 0)
			nghttp2_session_del(s->h2);
		free(s);
		return -EIO;
	}
	*ret = s;
	return 0;
}

/* Move nghttp2's pending output into the outbox, so that a connection error the last input
 * caused is known (its GOAWAY passes before_frame_send) before anything is written. */
static void stage(struct agent_session *s)
{
	const uint8_t *d;
	ssize_t n;

	if (s->handed) {
		strbuf_reset(&s->outbox);
		s->handed = false;
	}
	/* Capped: a peer that grants window but does not read cannot make us buffer. */
	n = 0;
	while (s->outbox.len < STAGE_CAP && (n = nghttp2_session_mem_send(s->h2, &d)) > 0)
		strbuf_putn(&s->outbox, d, (size_t)n);
	if (n < 0) {
		log_debug("http/2 send: %s", nghttp2_strerror((int)n));
		s->broken = true;
	}
}

int session_recv(struct agent_session *s, const uint8_t *data, size_t len)
{
	ssize_t n;
	if (s->broken)
		return -EPROTO;
	n = nghttp2_session_mem_recv(s->h2, data, len);
	if (n < 0) {
		log_debug("http/2: %s", nghttp2_strerror((int)n));
		s->broken = true;
		return -EPROTO;
	}
	stage(s);
	return s->broken ? -EPROTO : 0;
}

ssize_t session_send(struct agent_session *s, const uint8_t **ret_data)
{
	stage(s);
	if (!s->outbox.len)
		return 0;
	s->handed = true;
	*ret_data = (const uint8_t *)s->outbox.buf;
	return (ssize_t)s->outbox.len;
}

bool session_done(struct agent_session *s)
{
	if (s->outbox.len && !s->handed)
		return false;
	if (s->broken)
		return !nghttp2_session_want_write(s->h2);
	return !nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2);
}

bool session_alive(struct agent_session *s)
{
	return !s->broken && nghttp2_session_want_read(s->h2);
}

bool session_goaway_received(struct agent_session *s)
{
	return s->goaway_received;
}

void session_terminate(struct agent_session *s)
{
	nghttp2_session_terminate_session(s->h2, NGHTTP2_NO_ERROR);
}

void session_free(struct agent_session *s)
{
	if (!s)
		return;
	while (s->calls)
		call_free(s->calls);
	nghttp2_session_del(s->h2);
	strbuf_release(&s->scratch);
	strbuf_release(&s->outbox);
	free(s);
}
