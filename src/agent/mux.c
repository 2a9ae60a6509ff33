// SPDX-License-Identifier: Apache-2.0
#include "agent/mux.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/grpc.h"
#include "agent/keepalive.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

/* Per control.sock client: every stream's request bytes together (agent/grpc.h's 4 MiB would
 * let 128 clients hold 512 MiB). */
#define CLIENT_CONN_WINDOW (1u << 20)
/* Between closing a live agent's connection and making the next one. */
#define RECONNECT_DELAY_USEC (500 * 1000ULL)
/* A stream waits this long at most for an agent to become ready. */
#define WAIT_USEC (AGENT_MUX_HANDSHAKE_USEC + 3 * 1000000ULL)

/* Header lists that own their bytes. */
struct nvlist {
	nghttp2_nv *v;
	size_t n, alloc;
	size_t bytes;
};

static void nv_add(struct nvlist *l, const uint8_t *name, size_t nl, const uint8_t *value,
		   size_t vl)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? 2 * l->alloc : 8;
		l->v = xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	uint8_t *n = xmalloc(nl + 1), *v = xmalloc(vl + 1);
	memcpy(n, name, nl);
	memcpy(v, value, vl);
	n[nl] = v[vl] = 0;
	l->v[l->n++] = (nghttp2_nv){.name = n, .value = v, .namelen = nl, .valuelen = vl};
	l->bytes += nl + vl;
}

static void nv_clear(struct nvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	*l = (struct nvlist){0};
}

/*
 * Bytes one side received and the other has not taken yet: taken from the front without moving
 * the rest each time (a frame is 16 KiB, a window 512 KiB).
 */
struct byteq {
	struct strbuf b;
	size_t off;
};

static size_t q_len(const struct byteq *q)
{
	return q->b.len - q->off;
}

static void q_put(struct byteq *q, const void *data, size_t len)
{
	strbuf_putn(&q->b, data, len);
}

/* Copy up to max bytes out of the front; returns how many. */
static size_t q_take(struct byteq *q, uint8_t *buf, size_t max)
{
	size_t n = MIN(max, q_len(q));
	memcpy(buf, q->b.buf + q->off, n);
	q->off += n;
	if (q->off == q->b.len) {
		strbuf_reset(&q->b);
		q->off = 0;
	} else if (q->off > (256u << 10)) {
		memmove(q->b.buf, q->b.buf + q->off, q->b.len - q->off);
		q->b.len -= q->off;
		q->off = 0;
	}
	return n;
}

struct mux_client {
	struct agent_mux *m;
	int fd;
	nghttp2_session *s;
	struct mux_client *next;
	size_t n_streams;
	bool dead;
};

enum route { ROUTE_WAIT, ROUTE_UP, ROUTE_LOCAL, ROUTE_DONE };

struct agent_mux_stream {
	struct agent_mux *m;
	struct agent_mux_stream *next, *prev;
	struct mux_client *c; /* NULL once the client's stream closed */
	int32_t down_id;
	nghttp2_session *up_sess; /* the agent connection this stream was forwarded on */
	int32_t up_id;
	bool up_open;
	enum route route;
	usec_t wait_deadline;
	char *path;
	struct nvlist req, resp, trailers;
	struct byteq c2a, a2c; /* bytes not yet taken by the other side */
	bool c2a_eof, a2c_eof;
	bool resp_sent;
	void *local;
};

/*
 * The agent connection: DOWN (none; made again when the port next opens), CONNECTING (our
 * preface is queued or sent, no SETTINGS yet), READY.
 */
enum up_state { UP_DOWN, UP_CONNECTING, UP_READY };
enum port_state { PORT_CLOSED, PORT_OPEN, PORT_UNKNOWN };

struct agent_mux {
	struct agent_mux_ops ops;
	int up_fd;
	nghttp2_session *up;
	enum up_state up_state;
	bool up_used;	     /* streams went over this connection: a new agent needs a new one */
	bool up_failed;	     /* the last handshake timed out: streams do not wait for it */
	bool up_goaway;	     /* a GOAWAY went either way: the connection takes no new streams */
	usec_t reconnect_at; /* a reset waits to reconnect until then (UP_CONNECTING, no session) */
	usec_t up_deadline;  /* of the handshake, while the port is open */
	enum port_state port;
	struct agent_keepalive ka; /* of the agent connection while calls are open on it */
	struct mux_client *clients;
	size_t n_clients;
	struct agent_mux_stream *streams;
	nghttp2_session_callbacks *down_cbs, *up_cbs;
	nghttp2_option *opt;
	bool reroute; /* streams wait on something that changed */
};

/* ---- streams ------------------------------------------------------------------------------ */

static struct agent_mux_stream *stream_new(struct mux_client *c, int32_t id)
{
	struct agent_mux_stream *s = xcalloc(1, sizeof(*s));
	s->m = c->m;
	s->c = c;
	s->down_id = id;
	strbuf_init(&s->c2a.b, 0);
	strbuf_init(&s->a2c.b, 0);
	s->next = c->m->streams;
	if (s->next)
		s->next->prev = s;
	c->m->streams = s;
	c->n_streams++;
	return s;
}

static void stream_free(struct agent_mux_stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->m->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	nv_clear(&s->req);
	nv_clear(&s->resp);
	nv_clear(&s->trailers);
	strbuf_release(&s->c2a.b);
	strbuf_release(&s->a2c.b);
	free(s->path);
	free(s);
}

/* Free the stream once neither the client nor the agent connection refers to it. */
static void stream_maybe_free(struct agent_mux_stream *s)
{
	if (!s->c && !s->up_open && !s->local)
		stream_free(s);
}

static ssize_t read_down(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud);

static void resume_down(struct agent_mux_stream *s)
{
	if (s->c && s->resp_sent)
		(void)nghttp2_session_resume_data(s->c->s, s->down_id);
}

static void resume_up(struct agent_mux_stream *s)
{
	if (s->up_open && s->up_sess == s->m->up)
		(void)nghttp2_session_resume_data(s->up_sess, s->up_id);
}

static void submit_response(struct agent_mux_stream *s, const nghttp2_nv *nv, size_t n, bool data)
{
	nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_down};
	if (nghttp2_submit_response(s->c->s, s->down_id, nv, n, data ? &prd : NULL) == 0)
		s->resp_sent = true;
	else
		(void)nghttp2_submit_rst_stream(s->c->s, NGHTTP2_FLAG_NONE, s->down_id,
						NGHTTP2_INTERNAL_ERROR);
}

/* End the client's stream with a gRPC status: trailers-only when nothing was answered yet. */
static void stream_fail(struct agent_mux_stream *s, int status, const char *message)
{
	if (s->route != ROUTE_LOCAL)
		s->route = ROUTE_DONE;
	if (!s->c || s->a2c_eof)
		return;
	struct agent_grpc_nv h;
	log_debug("agent: stream %d ends with gRPC status %d (%s)", s->down_id, status,
		  message ? message : "");
	s->a2c_eof = true;
	if (!s->resp_sent) {
		agent_grpc_nv_trailers_only(&h, status, message);
		submit_response(s, h.nv, h.n, false);
		agent_grpc_nv_release(&h);
		return;
	}
	agent_grpc_nv_trailers(&h, status, message);
	nv_clear(&s->trailers);
	for (size_t i = 0; i < h.n; i++)
		nv_add(&s->trailers, h.nv[i].name, h.nv[i].namelen, h.nv[i].value,
		       h.nv[i].valuelen);
	agent_grpc_nv_release(&h);
	resume_down(s);
}

static ssize_t read_up(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *ud);

static void route_local(struct agent_mux_stream *s)
{
	struct agent_mux *m = s->m;
	s->route = ROUTE_LOCAL;
	s->local = m->ops.open(m->ops.ud, s, s->path ? s->path : "");
	if (!s->local) {
		s->route = ROUTE_DONE;
		return; /* the backend answered (e.g. UNIMPLEMENTED) */
	}
	size_t n = q_len(&s->c2a);
	if (n) {
		if (s->c)
			(void)nghttp2_session_consume(s->c->s, s->down_id, n);
		m->ops.data(s->local, (const uint8_t *)s->c2a.b.buf + s->c2a.off, n);
		strbuf_reset(&s->c2a.b);
		s->c2a.off = 0;
	}
	if (s->c2a_eof && s->local)
		m->ops.end(s->local);
}

static bool up_worth_waiting(const struct agent_mux *m)
{
	return m->up_state == UP_CONNECTING && !m->up_failed && m->port != PORT_CLOSED;
}

static void route(struct agent_mux_stream *s, usec_t now)
{
	struct agent_mux *m = s->m;
	if (s->route != ROUTE_WAIT || !s->c)
		return;
	if (m->up_state == UP_READY) {
		nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_up};
		int32_t id = nghttp2_submit_request(m->up, NULL, s->req.v, s->req.n, &prd, s);
		if (id < 0) {
			stream_fail(s, AGENT_GRPC_INTERNAL, "cannot forward the call to the agent");
			return;
		}
		s->route = ROUTE_UP;
		s->up_sess = m->up;
		s->up_id = id;
		s->up_open = true;
		m->up_used = true;
		return;
	}
	if (up_worth_waiting(m) && now < s->wait_deadline)
		return;
	int r = m->ops.ready ? m->ops.ready(m->ops.ud) : -1;
	if (r > 0) {
		route_local(s);
	} else if (r < 0 || now >= s->wait_deadline) {
		stream_fail(s, AGENT_GRPC_UNAVAILABLE,
			    "no guest agent answers in the VM (neither the Tart Guest Agent nor "
			    "QEMU's guest agent)");
	}
}

static void reroute_all(struct agent_mux *m, usec_t now)
{
	m->reroute = false;
	for (struct agent_mux_stream *s = m->streams, *n; s; s = n) {
		n = s->next;
		route(s, now);
	}
}

/* ---- the agent connection (upstream, HTTP/2 client) --------------------------------------- */

static ssize_t read_up(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
		       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)session, (void)id, (void)ud;
	struct agent_mux_stream *s = src->ptr;
	size_t n = q_take(&s->c2a, buf, length);
	/* Only now may the client send more. */
	if (n && s->c)
		(void)nghttp2_session_consume(s->c->s, s->down_id, n);
	if (q_len(&s->c2a) == 0 && s->c2a_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static ssize_t send_fd(int fd, const uint8_t *data, size_t length)
{
	ssize_t k;
	do
		k = write(fd, data, length);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == EAGAIN ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
	return k;
}

static ssize_t up_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
		       void *ud)
{
	(void)session, (void)flags;
	struct agent_mux *m = ud;
	return send_fd(m->up_fd, data, length);
}

static struct agent_mux_stream *up_stream(nghttp2_session *session, int32_t id)
{
	return nghttp2_session_get_stream_user_data(session, id);
}

static int up_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
			size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags, (void)ud;
	struct agent_mux_stream *s = up_stream(session, frame->hd.stream_id);
	if (!s || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct nvlist *l = frame->headers.cat == NGHTTP2_HCAT_RESPONSE ? &s->resp : &s->trailers;
	if (l->bytes + nl + vl > 64 * 1024)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets just this stream */
	nv_add(l, name, nl, value, vl);
	return 0;
}

/*
 * A GOAWAY either way ends the agent's session (agent/grpc.h's convention: it then waits for a
 * new preface) and makes nghttp2 refuse every new stream on it: start a new connection.
 */
static int up_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	(void)session;
	struct agent_mux *m = ud;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		log_debug("agent: GOAWAY sent to the guest agent (%s)",
			  nghttp2_http2_strerror(frame->goaway.error_code));
		m->up_goaway = true;
	}
	return 0;
}

static int up_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct agent_mux *m = ud;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		log_debug("agent: GOAWAY from the guest agent (%s)",
			  nghttp2_http2_strerror(frame->goaway.error_code));
		m->up_goaway = true;
		return 0;
	}
	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		if (m->up_state == UP_CONNECTING) {
			log_debug("agent: the Tart guest agent answered on its serial port");
			m->up_state = UP_READY;
			m->up_failed = false;
			m->up_deadline = 0;
			m->reroute = true;
		}
		return 0;
	}
	struct agent_mux_stream *s = up_stream(session, frame->hd.stream_id);
	if (!s)
		return 0;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
		if (s->c && !s->resp_sent)
			submit_response(s, s->resp.v, s->resp.n, !end);
		nv_clear(&s->resp);
	}
	if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end) {
		s->a2c_eof = true;
		resume_down(s);
	}
	return 0;
}

static int up_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
		      size_t len, void *ud)
{
	(void)flags, (void)ud;
	struct agent_mux_stream *s = up_stream(session, id);
	if (!s || !s->c) {
		(void)nghttp2_session_consume(session, id, len);
		return 0;
	}
	q_put(&s->a2c, data, len);
	resume_down(s);
	return 0;
}

static int up_on_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *ud)
{
	(void)ud;
	struct agent_mux_stream *s = up_stream(session, id);
	if (!s)
		return 0;
	s->up_open = false;
	if (!s->a2c_eof && s->c) {
		/* The agent reset the stream: so does the client's side. */
		(void)nghttp2_submit_rst_stream(s->c->s, NGHTTP2_FLAG_NONE, s->down_id,
						error_code ? error_code : NGHTTP2_INTERNAL_ERROR);
		s->route = ROUTE_DONE;
	}
	stream_maybe_free(s);
	return 0;
}

/* The agent connection is gone: every stream forwarded on it ends with UNAVAILABLE. */
static void up_break(struct agent_mux *m, const char *why)
{
	if (!m->up)
		return;
	log_debug("agent: connection to the Tart guest agent ended: %s", why);
	for (struct agent_mux_stream *s = m->streams, *n; s; s = n) {
		n = s->next;
		if (s->up_sess != m->up)
			continue;
		s->up_sess = NULL;
		if (s->up_open && !s->a2c_eof)
			stream_fail(s, AGENT_GRPC_UNAVAILABLE, why);
		s->up_open = false;
		stream_maybe_free(s);
	}
	nghttp2_session_del(m->up);
	m->up = NULL;
	if (m->up_fd >= 0)
		close(m->up_fd);
	m->up_fd = -1;
	m->up_state = UP_DOWN;
	m->up_used = false;
	m->up_goaway = false;
	m->up_deadline = 0;
	m->reroute = true;
}

/*
 * A new connection to the port's chardev (closing the old one resets the agent's session),
 * with our preface, SETTINGS and a PING queued: QEMU holds them until the guest reads the
 * port, so an agent that opens the port later still finds the preface first.
 */
/* Connect now (a fresh agent, or the first time). */
static void up_connect(struct agent_mux *m, usec_t now)
{
	m->reconnect_at = 0;
	int fd = m->ops.connect(m->ops.connect_ud);
	if (fd < 0) {
		log_debug("agent: cannot connect to the agent port's chardev: %s", strerror(-fd));
		return;
	}
	if (nghttp2_session_client_new2(&m->up, m->up_cbs, m, m->opt) != 0) {
		close(fd);
		m->up = NULL;
		return;
	}
	m->up_fd = fd;
	agent_keepalive_init(&m->ka, now);
	(void)agent_grpc_submit_settings(m->up);
	(void)nghttp2_submit_ping(m->up, NGHTTP2_FLAG_NONE, NULL);
	m->up_state = UP_CONNECTING;
	/* After a handshake timed out, a late answer is still welcome, without further resets. */
	m->up_deadline =
	    m->port != PORT_CLOSED && !m->up_failed ? now + AGENT_MUX_HANDSHAKE_USEC : 0;
}

/*
 * End the connection and make a new one: at once when the agent is new (its port just
 * opened), else after RECONNECT_DELAY_USEC. A live agent needs that moment to see the hangup
 * (agent/grpc.h: it polls the port every 250 ms); until then it may still write its old
 * session's frames, which a new connection would take for garbage.
 */
static void up_reset(struct agent_mux *m, const char *why, usec_t now)
{
	up_break(m, why);
	if (m->port == PORT_OPEN || m->port == PORT_UNKNOWN) {
		m->up_state = UP_CONNECTING;
		m->reconnect_at = now + RECONNECT_DELAY_USEC;
		m->up_deadline = m->reconnect_at + AGENT_MUX_HANDSHAKE_USEC;
	} else {
		up_connect(m, now);
	}
}

void agent_mux_port_changed(struct agent_mux *m, bool open, usec_t now)
{
	m->port = open ? PORT_OPEN : PORT_CLOSED;
	if (open)
		m->up_failed = false; /* a new agent: worth waiting for */
	if (!open) {
		/* The agent is gone with its session; a new one gets a new connection. */
		up_break(m, "the guest agent closed its connection (it exited or was restarted)");
	} else if (m->up_state == UP_DOWN || m->up_used || m->up_state == UP_READY ||
		   m->reconnect_at) {
		up_break(m, "the guest agent restarted");
		up_connect(m, now);
	} else {
		/* A fresh connection whose preface waits in QEMU: the handshake starts now. */
		m->up_deadline = now + AGENT_MUX_HANDSHAKE_USEC;
	}
	reroute_all(m, now);
}

void agent_mux_local_changed(struct agent_mux *m, usec_t now)
{
	reroute_all(m, now);
}

/* Calls are open on the agent connection: watch that it still answers. */
static bool up_busy(const struct agent_mux *m)
{
	if (m->up_state != UP_READY)
		return false;
	for (const struct agent_mux_stream *s = m->streams; s; s = s->next)
		if (s->up_open && s->up_sess == m->up)
			return true;
	return false;
}

/* ---- control.sock clients (downstream, HTTP/2 servers) ------------------------------------ */

static ssize_t read_down(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)ud;
	struct agent_mux_stream *s = src->ptr;
	size_t n = q_take(&s->a2c, buf, length);
	if (n && s->up_sess && s->up_sess == s->m->up)
		(void)nghttp2_session_consume(s->up_sess, s->up_id, n);
	if (q_len(&s->a2c) == 0 && s->a2c_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->trailers.n) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			(void)nghttp2_submit_trailer(session, id, s->trailers.v, s->trailers.n);
		}
		return (ssize_t)n;
	}
	if (s->route == ROUTE_LOCAL && s->local && s->m->ops.pull)
		s->m->reroute = true; /* ask the backend for more after this round */
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

static ssize_t down_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
			 void *ud)
{
	(void)session, (void)flags;
	struct mux_client *c = ud;
	return send_fd(c->fd, data, length);
}

/*
 * The response ended while the client still sends (it never half-closed, as Tart's client
 * does not): end the stream as grpc servers do, with RST_STREAM(NO_ERROR), so it does not
 * linger half-open.
 */
static int down_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	(void)ud;
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct agent_mux_stream *s =
	    nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s && !s->c2a_eof)
		(void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
						NGHTTP2_NO_ERROR);
	return 0;
}

static int down_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct mux_client *c = ud;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct agent_mux_stream *s = stream_new(c, frame->hd.stream_id);
	(void)nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
	return 0;
}

static int down_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
			  size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)flags, (void)ud;
	struct agent_mux_stream *s =
	    nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (s->req.bytes + nl + vl > 64 * 1024)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nv_add(&s->req, name, nl, value, vl);
	if (nl == 5 && memcmp(name, ":path", 5) == 0) {
		free(s->path);
		s->path = xstrndup((const char *)value, vl);
	}
	return 0;
}

static void client_data_ended(struct agent_mux_stream *s)
{
	s->c2a_eof = true;
	if (s->route == ROUTE_UP)
		resume_up(s);
	else if (s->route == ROUTE_LOCAL && s->local)
		s->m->ops.end(s->local);
}

static int down_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
	struct mux_client *c = ud;
	struct agent_mux_stream *s =
	    nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s)
		return 0;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		s->wait_deadline = now_monotonic_usec() + WAIT_USEC;
		if (end)
			s->c2a_eof = true;
		route(s, now_monotonic_usec());
		(void)c;
		return 0;
	}
	if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) && end)
		client_data_ended(s);
	return 0;
}

static int down_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
			size_t len, void *ud)
{
	(void)flags, (void)ud;
	struct agent_mux_stream *s = nghttp2_session_get_stream_user_data(session, id);
	if (!s || s->route == ROUTE_DONE || (s->route == ROUTE_LOCAL && !s->local)) {
		(void)nghttp2_session_consume(session, id, len);
		return 0;
	}
	if (s->route == ROUTE_LOCAL) {
		(void)nghttp2_session_consume(session, id, len);
		s->m->ops.data(s->local, data, len);
		return 0;
	}
	q_put(&s->c2a, data, len);
	if (s->route == ROUTE_UP)
		resume_up(s);
	return 0;
}

static int down_on_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *ud)
{
	(void)error_code;
	struct mux_client *c = ud;
	struct agent_mux_stream *s = nghttp2_session_get_stream_user_data(session, id);
	if (!s)
		return 0;
	s->c = NULL;
	c->n_streams--;
	if (s->up_open && s->up_sess == s->m->up)
		(void)nghttp2_submit_rst_stream(s->up_sess, NGHTTP2_FLAG_NONE, s->up_id,
						NGHTTP2_CANCEL);
	if (s->local) {
		void *st = TAKE_PTR(s->local);
		s->m->ops.close(st);
	}
	stream_maybe_free(s);
	return 0;
}

static void client_free(struct agent_mux *m, struct mux_client *c)
{
	/* Streams still open on this client are closed without callbacks: detach them here. */
	for (struct agent_mux_stream *s = m->streams, *n; s; s = n) {
		n = s->next;
		if (s->c != c)
			continue;
		down_on_close(c->s, s->down_id, NGHTTP2_CANCEL, c);
	}
	nghttp2_session_del(c->s);
	close(c->fd);
	struct mux_client **pp = &m->clients;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	m->n_clients--;
	free(c);
}

int agent_mux_add_client(struct agent_mux *m, int fd)
{
	if (m->n_clients >= AGENT_MUX_MAX_CLIENTS) {
		close(fd);
		return -EMFILE;
	}
	struct mux_client *c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->fd = fd;
	if (nghttp2_session_server_new2(&c->s, m->down_cbs, c, m->opt) != 0) {
		close(fd);
		free(c);
		return -ENOMEM;
	}
	(void)agent_grpc_submit_settings(c->s);
	/* A client's streams together hold at most this much in tart run. */
	(void)nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, CLIENT_CONN_WINDOW);
	c->next = m->clients;
	m->clients = c;
	m->n_clients++;
	return 0;
}

/* ---- the local backend's side of a stream -------------------------------------------------- */

size_t agent_mux_stream_room(const struct agent_mux_stream *s)
{
	size_t n = q_len(&s->a2c);
	return n >= AGENT_GRPC_STREAM_WINDOW ? 0 : AGENT_GRPC_STREAM_WINDOW - n;
}

static void local_headers(struct agent_mux_stream *s)
{
	if (s->resp_sent || !s->c)
		return;
	struct agent_grpc_nv h;
	agent_grpc_nv_response(&h);
	submit_response(s, h.nv, h.n, true);
	agent_grpc_nv_release(&h);
}

void agent_mux_stream_write(struct agent_mux_stream *s, const void *data, size_t len)
{
	if (!s->c || s->a2c_eof)
		return;
	local_headers(s);
	q_put(&s->a2c, data, len);
	resume_down(s);
}

void agent_mux_stream_finish(struct agent_mux_stream *s, int grpc_status, const char *message)
{
	stream_fail(s, grpc_status, message);
}

/* ---- setup and the poll loop --------------------------------------------------------------- */

struct agent_mux *agent_mux_new(const struct agent_mux_ops *ops, bool restored, usec_t now)
{
	struct agent_mux *m = xcalloc(1, sizeof(*m));
	m->ops = *ops;
	m->up_fd = -1;
	m->port = restored ? PORT_UNKNOWN : PORT_CLOSED;
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		abort();
	nghttp2_session_callbacks_set_send_callback(cb, down_send);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, down_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, down_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, down_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, down_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, down_on_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, down_on_frame_send);
	m->down_cbs = cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		abort();
	nghttp2_session_callbacks_set_send_callback(cb, up_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, up_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, up_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, up_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, up_on_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, up_on_frame_send);
	m->up_cbs = cb;
	if (agent_grpc_option_new(&m->opt) < 0)
		abort();
	up_connect(m, now);
	return m;
}

void agent_mux_free(struct agent_mux *m)
{
	if (!m)
		return;
	while (m->clients)
		client_free(m, m->clients);
	up_break(m, "tart run is stopping");
	while (m->streams)
		stream_free(m->streams);
	nghttp2_session_callbacks_del(m->down_cbs);
	nghttp2_session_callbacks_del(m->up_cbs);
	nghttp2_option_del(m->opt);
	free(m);
}

static short session_events(nghttp2_session *s)
{
	return (short)((nghttp2_session_want_read(s) ? POLLIN : 0) |
		       (nghttp2_session_want_write(s) ? POLLOUT : 0));
}

size_t agent_mux_poll_fill(struct agent_mux *m, struct pollfd *p, size_t max)
{
	size_t n = 0;
	if (m->up && n < max)
		p[n++] = (struct pollfd){.fd = m->up_fd, .events = session_events(m->up)};
	for (struct mux_client *c = m->clients; c && n < max; c = c->next)
		p[n++] = (struct pollfd){.fd = c->fd, .events = session_events(c->s)};
	return n;
}

/* Feed bytes from fd into session; false when the connection is over. */
static bool recv_into(int fd, nghttp2_session *s)
{
	uint8_t buf[65536];
	ssize_t k = read(fd, buf, sizeof(buf));
	if (k < 0)
		return errno == EAGAIN || errno == EINTR;
	if (k == 0)
		return false;
	if (!s)
		return true; /* draining */
	return nghttp2_session_mem_recv(s, buf, (size_t)k) == k;
}

void agent_mux_handle(struct agent_mux *m, const struct pollfd *p, size_t n, usec_t now)
{
	for (size_t i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (m->up && p[i].fd == m->up_fd) {
			if (p[i].revents & POLLIN)
				agent_keepalive_rx(&m->ka, now);
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !recv_into(m->up_fd, m->up))
				up_reset(m, "the connection to the guest agent failed", now);
			continue;
		}
		for (struct mux_client *c = m->clients; c; c = c->next) {
			if (c->fd != p[i].fd)
				continue;
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    !recv_into(c->fd, c->s))
				c->dead = true;
			break;
		}
	}
	if (m->reconnect_at && now >= m->reconnect_at)
		up_connect(m, now);
	if (m->up_state == UP_CONNECTING && m->up_deadline && now >= m->up_deadline) {
		/* Streams stop waiting for it; a late answer still brings it up. */
		up_reset(m, "the Tart guest agent did not answer on its serial port", now);
		m->up_failed = true;
		m->up_deadline = 0;
		m->reroute = true;
	}
	for (struct agent_mux_stream *s = m->streams; s; s = s->next)
		if (s->route == ROUTE_WAIT && s->c && now >= s->wait_deadline)
			m->reroute = true;
	if (up_busy(m)) {
		switch (agent_keepalive_check(&m->ka, now, NULL)) {
		case AGENT_KEEPALIVE_PING:
			(void)nghttp2_submit_ping(m->up, NGHTTP2_FLAG_NONE, NULL);
			break;
		case AGENT_KEEPALIVE_DEAD:
			up_reset(m, "the guest agent stopped answering (no reply to a PING)", now);
			break;
		default:
			break;
		}
	} else if (m->up) {
		agent_keepalive_rx(&m->ka, now); /* idle: nothing to watch */
	}
	if (m->reroute) {
		reroute_all(m, now);
		for (struct agent_mux_stream *s = m->streams; s; s = s->next)
			if (s->route == ROUTE_LOCAL && s->local && s->c && m->ops.pull &&
			    agent_mux_stream_room(s) > 0)
				m->ops.pull(s->local);
	}
	/* Flush: nghttp2 writes until the socket is full (WOULDBLOCK keeps the rest). */
	if (m->up && nghttp2_session_send(m->up) != 0)
		up_reset(m, "cannot write to the guest agent's serial port", now);
	for (struct mux_client *c = m->clients, *next; c; c = next) {
		next = c->next;
		if (!c->dead && nghttp2_session_send(c->s) != 0)
			c->dead = true;
		if (c->dead ||
		    (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s)))
			client_free(m, c);
	}
	/* Consumed windows from client sends may have freed upstream work, and vice versa. */
	if (m->up && nghttp2_session_want_write(m->up) && nghttp2_session_send(m->up) != 0)
		up_reset(m, "cannot write to the guest agent's serial port", now);
	if (m->up && (m->up_goaway ||
		      (!nghttp2_session_want_read(m->up) && !nghttp2_session_want_write(m->up)))) {
		up_reset(m, "the guest agent ended the connection (GOAWAY)", now);
		reroute_all(m, now);
	}
}

usec_t agent_mux_deadline(const struct agent_mux *m)
{
	usec_t d = m->up_state == UP_CONNECTING ? m->up_deadline : 0;
	if (m->reconnect_at && (!d || m->reconnect_at < d))
		d = m->reconnect_at;
	if (up_busy(m)) {
		struct agent_keepalive k = m->ka;
		usec_t next;
		(void)agent_keepalive_check(&k, k.last_rx, &next);
		d = d ? MIN(d, next) : next;
	}
	for (const struct agent_mux_stream *s = m->streams; s; s = s->next)
		if (s->route == ROUTE_WAIT && s->c && (!d || s->wait_deadline < d))
			d = s->wait_deadline;
	if (m->reroute)
		d = 1; /* at once */
	return d;
}
