// SPDX-License-Identifier: Apache-2.0
/*
 * The controller's event loop on libwebsockets: HTTP/1.1 requests (api.c answers them),
 * the answers that wait (GET /vms/:name/ip, GET /vms/:name?watch=true), and the WebSockets:
 * the workers' watch channel, port-forward clients, the workers' dial-backs, and relays of
 * dial-backs to the controller whose client waits for them (docs/orchard.md).
 *
 * Every connection has a `struct conn` (lws opaque user data), freed at WSI_DESTROY.
 *
 * The loop itself never calls etcd: what it needs from there (a waiting request's checks,
 * a watch channel's claim, a relay's lookup) goes to the errand thread, whose answers come
 * back through lws_cancel_service (errands_finish). Upgrades authenticate against the
 * service accounts mirrored in memory (accounts.c).
 */
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "orchard/controller/internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

/* Past this much data queued towards a slow peer, stop reading from the fast side. */
#define QUEUE_HIGH (1u << 20)
#define QUEUE_LOW (256u << 10)
#define WRITE_CHUNK (64u << 10)
/* A ?watch=true client further behind than this is cut off (it can watch again) */
#define STREAM_CAP (8u << 20)
/* A worker that leaves this much of its instructions unread loses its watch channel: it
 * reconnects and syncs, as after any drop */
#define WATCH_QUEUE_CAP (4u << 20)
/* How long a worker gets to answer resolveIP or to dial back, at least. */
#define MIN_ANSWER_WAIT_S 10

enum conn_kind {
	K_HTTP,
	K_WATCH,       /* a worker's /rpc/watch */
	K_PF_CLIENT,   /* a client's /vms/:name/port-forward or /workers/:name/port-forward */
	K_PF_DIALBACK, /* a worker's /rpc/port-forward */
	K_RELAY,       /* our client connection carrying a dial-back to its controller */
};

enum phase { P_NONE, P_WAIT_VM, P_WAIT_WORKER, P_WAIT_ANSWER, P_PAIRED, P_DONE };

struct msg {
	struct msg *next;
	size_t len;
	bool text;
	unsigned char data[]; /* LWS_PRE + len */
};

struct conn {
	struct conn *next, *prev;
	struct controller *c;
	struct lws *wsi;
	enum conn_kind kind;
	uint64_t id;
	bool job_pending; /* an API thread works on its request */

	/* HTTP request */
	int method;
	char *path;
	struct orchard_strv args;
	struct strbuf body;
	bool body_pending;
	char *authorization;
	char *user_agent;

	/* HTTP answer */
	struct api_resp resp;
	bool answering;
	size_t resp_off;
	bool streaming; /* ?watch=true: NDJSON lines until the client goes */
	struct strbuf stream;

	/* waiting answers and WebSocket plans */
	enum phase phase;
	char session[37];
	char *vm_name, *vm_uid, *worker;
	uint16_t port;
	int64_t watch_from;
	usec_t deadline, answer_deadline;
	bool notified;	     /* the worker was asked (the cleanup takes it back) */
	bool held;	     /* K_WATCH: our claim on the worker's channel was submitted */
	uint64_t wait_gen;   /* this wait's number (a keep-alive connection waits again) */
	uint64_t errand_gen; /* the wait whose check is under way on the errand thread, 0 */

	/* WebSockets */
	struct conn *peer;
	struct msg *out, **out_tail;
	size_t out_bytes;
	bool text_frames;
	bool rx_paused;
	bool close_pending;
	int close_code;
	char close_reason[120];
	char *expect_fingerprint; /* K_RELAY over TLS: the peer controller's certificate */
};

static struct conn *conn_new(struct controller *c, struct lws *wsi, enum conn_kind kind)
{
	struct conn *x = xcalloc(1, sizeof(*x));
	x->c = c;
	x->wsi = wsi;
	x->kind = kind;
	x->id = ++c->next_conn_id;
	x->out_tail = &x->out;
	strbuf_init(&x->body, c->o.max_body);
	strbuf_init(&x->stream, 0);
	x->next = c->conns;
	if (c->conns)
		c->conns->prev = x;
	c->conns = x;
	if (wsi)
		lws_set_opaque_user_data(wsi, x);
	return x;
}

static void request_reset(struct conn *x)
{
	free(x->path);
	x->path = NULL;
	orchard_strv_release(&x->args);
	strbuf_reset(&x->body);
	x->body_pending = false;
	free(x->authorization);
	x->authorization = NULL;
	free(x->user_agent);
	x->user_agent = NULL;
	api_resp_release(&x->resp);
	x->answering = false;
	x->resp_off = 0;
}

static void msgs_free(struct conn *x)
{
	while (x->out) {
		struct msg *m = x->out;
		x->out = m->next;
		free(m);
	}
	x->out_tail = &x->out;
	x->out_bytes = 0;
}

static void conn_cleanup_waits(struct conn *x);

static void conn_free(struct conn *x)
{
	struct controller *c = x->c;
	conn_cleanup_waits(x);
	if (x->peer) {
		x->peer->peer = NULL;
		x->peer = NULL;
	}
	if (x->prev)
		x->prev->next = x->next;
	else
		c->conns = x->next;
	if (x->next)
		x->next->prev = x->prev;
	request_reset(x);
	strbuf_release(&x->body);
	strbuf_release(&x->stream);
	msgs_free(x);
	free(x->vm_name);
	free(x->vm_uid);
	free(x->worker);
	free(x->expect_fingerprint);
	free(x);
}

/* ---- small helpers ---- */

static char *hdr(struct lws *wsi, enum lws_token_indexes h)
{
	int n = lws_hdr_total_length(wsi, h);
	if (n <= 0)
		return NULL;
	char *s = xmalloc((size_t)n + 1);
	if (lws_hdr_copy(wsi, s, n + 1, h) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/*
 * Every URL argument, whatever its length: the request's header space (max_http_header_data)
 * bounds them all, and lws answers a request that does not fit with an error of its own.
 */
static void read_args(struct conn *x)
{
	for (int i = 0;; i++) {
		int len = lws_hdr_fragment_length(x->wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (len <= 0)
			break;
		char *buf = xmalloc((size_t)len + 1);
		if (lws_hdr_copy_fragment(x->wsi, buf, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0)
			orchard_strv_push(&x->args, buf);
		free(buf);
	}
}

/* Split the decoded path below [prefix]/v1 into segments; false when it is not ours. */
static bool split_path(struct controller *c, const char *path, struct orchard_strv *ret)
{
	const char *p = path;
	size_t pl = strlen(c->o.api_prefix);
	if (pl && (strncmp(p, c->o.api_prefix, pl) != 0))
		return false;
	p += pl;
	if (strncmp(p, "/v1", 3) != 0 || (p[3] != 0 && p[3] != '/'))
		return false;
	p += 3;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *seg = xstrndup(p, n);
		orchard_strv_push(ret, seg);
		free(seg);
		p += n;
	}
	return true;
}

/* ---- writing HTTP answers ---- */

static int write_headers(struct conn *x, int status, const char *ctype, lws_filepos_t len)
{
	unsigned char buf[LWS_PRE + 2048], *start = &buf[LWS_PRE], *p = start,
					   *end = &buf[sizeof(buf) - 1];
	if (lws_add_http_common_headers(x->wsi, (unsigned)status, ctype, len, &p, end))
		return -1;
	if (x->resp.next_cursor &&
	    lws_add_http_header_by_name(x->wsi, (const unsigned char *)"x-next-cursor:",
					(const unsigned char *)x->resp.next_cursor,
					(int)strlen(x->resp.next_cursor), &p, end))
		return -1;
	if (lws_finalize_write_http_header(x->wsi, start, &p, end))
		return -1;
	return 0;
}

/* Send resp (status, body) on an HTTP connection; the body goes out in WRITEABLE. */
static int answer(struct conn *x)
{
	x->answering = true;
	x->resp_off = 0;
	const char *ctype =
	    x->resp.content_type ? x->resp.content_type : "application/json; charset=utf-8";
	if (write_headers(x, x->resp.status ? x->resp.status : 500, ctype, x->resp.body.len) < 0)
		return -1;
	if (x->resp.body.len == 0) {
		x->answering = false;
		return lws_http_transaction_completed(x->wsi) ? -1 : 0;
	}
	lws_callback_on_writable(x->wsi);
	return 0;
}

static int answer_error(struct conn *x, int status, const char *fmt, ...) _printf_(3, 4);
static int answer_error(struct conn *x, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	api_resp_release(&x->resp);
	strbuf_init(&x->resp.body, 0);
	api_error(&x->resp, status, "%s", msg);
	free(msg);
	return answer(x);
}

static int http_writeable(struct conn *x)
{
	if (x->streaming) {
		if (x->stream.len == 0)
			return 0;
		size_t n = MIN(x->stream.len, (size_t)WRITE_CHUNK);
		unsigned char *buf = xmalloc(LWS_PRE + n);
		memcpy(buf + LWS_PRE, x->stream.buf, n);
		int w = lws_write(x->wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP);
		free(buf);
		if (w < 0)
			return -1;
		memmove(x->stream.buf, x->stream.buf + n, x->stream.len - n);
		x->stream.len -= n;
		x->stream.buf[x->stream.len] = 0;
		if (x->stream.len)
			lws_callback_on_writable(x->wsi);
		return 0;
	}
	if (!x->answering)
		return 0;
	size_t left = x->resp.body.len - x->resp_off, n = MIN(left, (size_t)WRITE_CHUNK);
	unsigned char *buf = xmalloc(LWS_PRE + n);
	memcpy(buf + LWS_PRE, x->resp.body.buf + x->resp_off, n);
	bool last = n == left;
	int w = lws_write(x->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
	free(buf);
	if (w < 0)
		return -1;
	x->resp_off += n;
	if (!last) {
		lws_callback_on_writable(x->wsi);
		return 0;
	}
	x->answering = false;
	return lws_http_transaction_completed(x->wsi) ? -1 : 0;
}

/* ---- WebSocket queues ---- */

static void ws_queue(struct conn *x, const void *data, size_t len, bool text)
{
	struct msg *m = xmalloc(sizeof(*m) + LWS_PRE + len);
	m->next = NULL;
	m->len = len;
	m->text = text;
	memcpy(m->data + LWS_PRE, data, len);
	*x->out_tail = m;
	x->out_tail = &m->next;
	x->out_bytes += len;
	lws_callback_on_writable(x->wsi);
}

static void ws_close(struct conn *x, int code, const char *reason)
{
	if (!x || x->close_pending)
		return;
	x->close_pending = true;
	x->close_code = code;
	snprintf(x->close_reason, sizeof(x->close_reason), "%s", reason ? reason : "");
	lws_callback_on_writable(x->wsi);
}

static void set_rx(struct conn *x, bool on)
{
	if (!x || x->rx_paused == !on)
		return;
	x->rx_paused = !on;
	lws_rx_flow_control(x->wsi, on ? 1 : 0);
}

static int ws_writeable(struct conn *x)
{
	if (x->out) {
		struct msg *m = x->out;
		int w = lws_write(x->wsi, m->data + LWS_PRE, m->len,
				  m->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
		if (w < 0)
			return -1;
		x->out = m->next;
		if (!x->out)
			x->out_tail = &x->out;
		x->out_bytes -= m->len;
		free(m);
		/* the side feeding us may read again */
		if (x->peer && x->peer->rx_paused && x->out_bytes < QUEUE_LOW)
			set_rx(x->peer, true);
		if (x->out || x->close_pending)
			lws_callback_on_writable(x->wsi);
		return 0;
	}
	if (x->close_pending) {
		lws_close_reason(x->wsi, (enum lws_close_status)x->close_code,
				 (unsigned char *)x->close_reason, strlen(x->close_reason));
		return -1;
	}
	return 0;
}

/* Data from x to its peer. */
static void ws_forward(struct conn *x, const void *in, size_t len)
{
	struct conn *p = x->peer;
	if (!p || len == 0)
		return;
	ws_queue(p, in, len, p->text_frames);
	if (p->out_bytes > QUEUE_HIGH)
		set_rx(x, false);
}

static void pair(struct conn *a, struct conn *b)
{
	a->peer = b;
	b->peer = a;
	a->phase = b->phase = P_PAIRED;
	set_rx(a, true);
	set_rx(b, true);
}

/* ---- waits: VM running, worker reachable, answers ---- */

/* ---- etcd errands of the waits, the watch channels and the relays ---- */

enum conn_errand_kind { CE_CHECK, CE_CLEANUP, CE_HOLD, CE_RELEASE, CE_OWNER };

enum check_outcome {
	CO_WAITING, /* the VM does not run yet (or etcd did not answer): again later */
	CO_VM_NOT_FOUND,
	CO_WORKER_NOT_FOUND,
	CO_VM_FAILED,
	CO_UNREACHABLE, /* the worker holds no channel to any controller (yet) */
	CO_SEND_FAILED,
	CO_SENT,
};

struct conn_errand {
	struct errand base;
	enum conn_errand_kind kind;
	uint64_t conn_id, gen;
	/* what the loop knew */
	enum conn_kind conn_kind;
	enum phase phase;
	char *vm_name, *worker, *vm_uid;
	char session[37];
	uint16_t port;
	/* what etcd said */
	enum check_outcome outcome;
	int r;
	char *status, *url, *cert;
};

static void errand_release(struct errand *base)
{
	struct conn_errand *e = (struct conn_errand *)base;
	free(e->vm_name);
	free(e->worker);
	free(e->vm_uid);
	free(e->status);
	free(e->url);
	free(e->cert);
	free(e);
}

/* Ask the worker (the notify key that the holder of its channel delivers). */
static int send_instruction(struct controller *c, struct conn_errand *e)
{
	int r = rpc_session_register(c, e->session);
	if (r < 0)
		return r;
	struct orchard_watch_instruction wi = {0};
	struct orchard_port_forward_action pf = {e->session, e->vm_uid ? e->vm_uid : (char *)"",
						 e->port};
	struct orchard_resolve_ip_action ip = {e->session, e->vm_uid ? e->vm_uid : (char *)""};
	if (e->conn_kind == K_HTTP)
		wi.resolve_ip = &ip;
	else
		wi.port_forward = &pf;
	return rpc_notify(c, e->worker, e->session, &wi);
}

/* One look at a waiting request's VM and worker; asks the worker once both are ready. */
static void check_run(struct controller *c, struct conn_errand *e)
{
	if (e->phase == P_WAIT_VM) {
		struct orchard_vm vm = {0};
		e->r = store_vm_get(c->store, e->vm_name, &vm, NULL);
		if (e->r == -ENOENT) {
			e->outcome = CO_VM_NOT_FOUND;
			return;
		}
		if (e->r < 0) {
			e->outcome = CO_WAITING;
			return;
		}
		free(e->worker);
		e->worker = xstrdup(vm.worker ? vm.worker : "");
		e->outcome = CO_WAITING;
		if (orchard_vm_is_failed(&vm)) {
			e->outcome = CO_VM_FAILED;
			e->status = xstrdup(vm.status ? vm.status : "");
		} else if (vm.status && streq(vm.status, ORCHARD_STATUS_RUNNING)) {
			free(e->vm_uid);
			e->vm_uid = xstrdup(vm.uid ? vm.uid : "");
			e->phase = P_WAIT_WORKER;
		}
		orchard_vm_release(&vm);
		if (e->phase == P_WAIT_VM)
			return;
	}
	if (!e->vm_name) {
		/* a port-forward to the worker itself: it must exist */
		struct orchard_worker w = {0};
		e->r = store_worker_get(c->store, e->worker, &w, NULL);
		if (e->r == 0)
			orchard_worker_release(&w);
		if (e->r < 0) {
			e->outcome = e->r == -ENOENT ? CO_WORKER_NOT_FOUND : CO_UNREACHABLE;
			return;
		}
	}
	bool reachable = false;
	e->r = rpc_worker_reachable(c, e->worker, &reachable);
	if (e->r < 0 || !reachable) {
		e->outcome = CO_UNREACHABLE;
		return;
	}
	e->r = send_instruction(c, e);
	e->outcome = e->r < 0 ? CO_SEND_FAILED : CO_SENT;
}

static void errand_run(struct controller *c, struct errand *base)
{
	struct conn_errand *e = (struct conn_errand *)base;
	switch (e->kind) {
	case CE_CHECK:
		check_run(c, e);
		break;
	case CE_CLEANUP:
		if (e->worker)
			(void)rpc_unnotify(c, e->worker, e->session);
		rpc_session_unregister(c, e->session);
		break;
	case CE_HOLD:
		if (rpc_hold_worker(c, e->worker) < 0)
			log_warning("cannot record in etcd that worker '%s' is connected here",
				    e->worker);
		break;
	case CE_RELEASE:
		rpc_release_worker(c, e->worker);
		break;
	case CE_OWNER:
		e->r = rpc_session_owner(c, e->session, &e->url, &e->cert);
		break;
	}
}

static struct conn_errand *errand_new(struct conn *x, enum conn_errand_kind kind,
				      void (*done)(struct controller *, struct errand *))
{
	struct conn_errand *e = xcalloc(1, sizeof(*e));
	e->base.run = errand_run;
	e->base.done = done;
	e->base.release = errand_release;
	e->kind = kind;
	e->conn_id = x->id;
	e->gen = x->wait_gen;
	e->conn_kind = x->kind;
	e->phase = x->phase;
	e->vm_name = x->vm_name ? xstrdup(x->vm_name) : NULL;
	e->worker = x->worker ? xstrdup(x->worker) : NULL;
	e->vm_uid = x->vm_uid ? xstrdup(x->vm_uid) : NULL;
	snprintf(e->session, sizeof(e->session), "%s", x->session);
	e->port = x->port;
	return e;
}

static struct conn *conn_by_id(struct controller *c, uint64_t id)
{
	for (struct conn *x = c->conns; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

/* Take back a request to a worker: its notify key, our session and any answer. */
static void submit_cleanup(struct controller *c, const char *worker, const char *session)
{
	struct conn_errand *e = xcalloc(1, sizeof(*e));
	e->base.run = errand_run;
	e->base.release = errand_release;
	e->kind = CE_CLEANUP;
	e->worker = worker ? xstrdup(worker) : NULL;
	snprintf(e->session, sizeof(e->session), "%s", session);
	errand_submit(c, &e->base);
}

static void conn_cleanup_waits(struct conn *x)
{
	struct controller *c = x->c;
	if (x->notified)
		submit_cleanup(c, x->worker, x->session);
	x->notified = false;
	if (x->kind == K_WATCH && x->held)
		errand_submit(c, &errand_new(x, CE_RELEASE, NULL)->base);
	x->held = false;
}

static bool waiting(const struct conn *x)
{
	return x->phase == P_WAIT_VM || x->phase == P_WAIT_WORKER || x->phase == P_WAIT_ANSWER;
}

/* The end of a wait: an HTTP answer, or a WebSocket close. */
static void wait_fail(struct conn *x, int status, const char *fmt, ...) _printf_(3, 4);
static void wait_fail(struct conn *x, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	x->phase = P_DONE;
	lws_set_timer_usecs(x->wsi, LWS_SET_TIMER_USEC_CANCEL);
	conn_cleanup_waits(x);
	if (x->kind == K_HTTP) {
		if (answer_error(x, status, "%s", msg) < 0)
			lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	} else {
		/* 4000 + the HTTP status Orchard would have answered before the upgrade */
		ws_close(x, 4000 + status, msg);
	}
	free(msg);
}

static void arm(struct conn *x, usec_t usec)
{
	lws_set_timer_usecs(x->wsi, (lws_usec_t)usec);
}

/* A check's answer, back in the loop. */
static void check_done(struct controller *c, struct errand *base)
{
	struct conn_errand *e = (struct conn_errand *)base;
	struct conn *x = conn_by_id(c, e->conn_id);
	if (x && x->errand_gen == e->gen)
		x->errand_gen = 0;
	bool asked = e->outcome == CO_SENT || e->outcome == CO_SEND_FAILED;
	if (!x || x->wait_gen != e->gen || (x->phase != P_WAIT_VM && x->phase != P_WAIT_WORKER)) {
		/* the client went, or the wait ended meanwhile (the worker's answer came before
		 * this did): take back what was asked */
		if (asked)
			submit_cleanup(c, e->worker, e->session);
		return;
	}
	if (e->worker && (!x->worker || !streq(x->worker, e->worker))) {
		free(x->worker);
		x->worker = xstrdup(e->worker);
	}
	if (e->vm_uid && (!x->vm_uid || !streq(x->vm_uid, e->vm_uid))) {
		free(x->vm_uid);
		x->vm_uid = xstrdup(e->vm_uid);
	}
	usec_t now = now_monotonic_usec();
	switch (e->outcome) {
	case CO_VM_NOT_FOUND:
		return wait_fail(x, 404, "VM not found");
	case CO_WORKER_NOT_FOUND:
		return wait_fail(x, 404, "worker not found");
	case CO_VM_FAILED:
		return wait_fail(x, 417, "VM is in a terminal state '%s'", e->status);
	case CO_WAITING:
		if (now >= x->deadline)
			return wait_fail(x, e->r < 0 ? 503 : 408,
					 "VM is not running on '%s' worker",
					 x->worker ? x->worker : "");
		return arm(x, 1000000);
	case CO_UNREACHABLE:
		x->phase = P_WAIT_WORKER;
		if (now >= x->deadline)
			return wait_fail(x, 503, "worker %s is not connected to any controller",
					 x->worker ? x->worker : "");
		return arm(x, 1000000);
	case CO_SEND_FAILED:
		x->notified = true; /* whatever got written is taken back */
		return wait_fail(x, 503, "failed to request %s from the worker %s",
				 x->kind == K_HTTP ? "VM's IP" : "port forwarding", x->worker);
	case CO_SENT:
		x->notified = true;
		x->phase = P_WAIT_ANSWER;
		x->answer_deadline = MAX(x->deadline, now + MIN_ANSWER_WAIT_S * 1000000ULL);
		return arm(x, MIN(x->answer_deadline - now, 1000000ULL));
	}
}

/* How long past its deadline a wait may hang on an errand etcd does not answer. */
#define ERRAND_GRACE_USEC (10 * 1000000ULL)

static void step(struct conn *x)
{
	usec_t now = now_monotonic_usec();
	if (x->phase == P_WAIT_ANSWER) {
		if (now >= x->answer_deadline)
			return wait_fail(x, 503, "the worker %s did not answer in time", x->worker);
		return arm(x, MIN(x->answer_deadline - now, 1000000ULL));
	}
	if (x->errand_gen == x->wait_gen) {
		/* its check is under way: etcd is slow, the loop does not wait for it */
		if (now >= x->deadline + ERRAND_GRACE_USEC)
			return wait_fail(x, 503, "%s",
					 "the controller's store (etcd) is unavailable, try again "
					 "later");
		return arm(x, 1000000);
	}
	x->errand_gen = x->wait_gen;
	errand_submit(x->c, &errand_new(x, CE_CHECK, check_done)->base);
	arm(x, 1000000);
}

static void start_wait(struct conn *x, const char *vm_name, const char *worker, uint64_t wait_s)
{
	x->deadline = now_monotonic_usec() + wait_s * 1000000ULL;
	/* a keep-alive connection may have waited before */
	free(x->vm_name);
	free(x->worker);
	free(x->vm_uid);
	x->vm_name = x->worker = x->vm_uid = NULL;
	x->notified = false;
	x->wait_gen++;
	/* the session the worker will name in its answer or dial-back; nobody knows it before
	 * the worker is asked */
	orchard_uuid(x->session);
	if (vm_name) {
		x->vm_name = xstrdup(vm_name);
		x->phase = P_WAIT_VM;
	} else {
		x->worker = xstrdup(worker);
		x->vm_uid = xstrdup("");
		x->phase = P_WAIT_WORKER;
	}
	/* a waiting connection must not be reaped as idle */
	lws_set_timeout(x->wsi, NO_PENDING_TIMEOUT, 0);
	step(x);
}

/* ---- the etcd events ---- */

static struct conn *find_session(struct controller *c, const char *session, enum conn_kind kind)
{
	/* any waiting phase: the answer may overtake the errand that asked for it */
	for (struct conn *x = c->conns; x; x = x->next)
		if (x->kind == kind && waiting(x) && streq(x->session, session))
			return x;
	return NULL;
}

static void on_answer(struct controller *c, const char *session, const char *value, size_t len)
{
	struct conn *x = find_session(c, session, K_HTTP);
	if (!x)
		return;
	json_t *j = json_loadb(value, len, 0, NULL);
	const char *ip = json_string_value(json_object_get(j, "ip"));
	const char *err = json_string_value(json_object_get(j, "errorMessage"));
	if (err && *err) {
		wait_fail(x, 500, "VM's IP resolution on the worker %s failed: %s", x->worker, err);
	} else {
		x->phase = P_DONE;
		lws_set_timer_usecs(x->wsi, LWS_SET_TIMER_USEC_CANCEL);
		conn_cleanup_waits(x);
		api_resp_release(&x->resp);
		strbuf_init(&x->resp.body, 0);
		api_json(&x->resp, 200, json_pack("{s:s}", "ip", ip ? ip : ""));
		if (answer(x) < 0)
			lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
	json_decref(j);
}

static void on_notify(struct controller *c, const char *rest, const char *value, size_t len)
{
	/* rest: "<worker>/<id>" */
	const char *slash = strrchr(rest, '/');
	if (!slash)
		return;
	_cleanup_free_ char *worker = xstrndup(rest, (size_t)(slash - rest));
	for (struct conn *x = c->conns; x; x = x->next) {
		if (x->kind != K_WATCH || !x->worker || !streq(x->worker, worker) ||
		    x->close_pending)
			continue;
		if (x->out_bytes + len > WATCH_QUEUE_CAP) {
			log_warning("worker '%s' does not read its watch channel (%u MiB queued): "
				    "closing it",
				    worker, WATCH_QUEUE_CAP >> 20);
			/* a close frame could not get through a full socket either: hang up */
			msgs_free(x);
			x->close_pending = true;
			lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			continue;
		}
		ws_queue(x, value, len, false);
	}
}

static void on_vm_event(struct controller *c, const struct ctl_event *e)
{
	const char *name = e->key + strlen("vms/");
	for (struct conn *x = c->conns; x; x = x->next) {
		if (!x->streaming || !x->vm_name || !streq(x->vm_name, name) ||
		    e->mod_revision <= x->watch_from)
			continue;
		struct orchard_vm vm = {0};
		json_t *j = json_loadb(e->value, e->len, 0, NULL);
		if (!j || orchard_vm_from_json(j, 0, &vm, NULL) < 0) {
			json_decref(j);
			continue;
		}
		json_decref(j);
		vm.meta.version = (uint64_t)e->mod_revision;
		json_t *msg = json_object();
		json_object_set_new(msg, "type", json_string(e->deleted ? "DELETED" : "MODIFIED"));
		json_object_set_new(msg, "object", orchard_vm_to_json(&vm));
		char *s = orchard_json_dump(msg);
		json_decref(msg);
		orchard_vm_release(&vm);
		if (x->stream.len + strlen(s) + 1 > STREAM_CAP) {
			log_warning("a watch of VM '%s' is more than %u MiB behind: closing it",
				    name, STREAM_CAP >> 20);
			free(s);
			x->streaming = false;
			lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			continue;
		}
		strbuf_puts(&x->stream, s);
		strbuf_putc(&x->stream, '\n');
		free(s);
		x->watch_from = e->mod_revision;
		lws_callback_on_writable(x->wsi);
	}
}

static void process_jobs(struct controller *c);

static void process_events(struct controller *c)
{
	errands_finish(c);
	process_jobs(c);
	struct ctl_event *e = controller_take_events(c);
	while (e) {
		struct ctl_event *next = e->next;
		if (e->source == CTL_EVENT_VMS) {
			on_vm_event(c, e);
		} else if (!e->deleted && strncmp(e->key, "live/answers/", 13) == 0) {
			on_answer(c, e->key + 13, e->value, e->len);
		} else if (!e->deleted && strncmp(e->key, "live/notify/", 12) == 0) {
			on_notify(c, e->key + 12, e->value, e->len);
		}
		ctl_event_free(e);
		e = next;
	}
}

/* ---- HTTP requests ---- */

static void start_watch(struct conn *x)
{
	struct orchard_vm *vm = x->resp.vm;
	x->streaming = true;
	x->vm_name = xstrdup(vm->meta.name ? vm->meta.name : "");
	x->watch_from = (int64_t)vm->meta.version;
	json_t *msg = json_object();
	json_object_set_new(msg, "type", json_string("ADDED"));
	json_object_set_new(msg, "object", orchard_vm_to_json(vm));
	char *s = orchard_json_dump(msg);
	json_decref(msg);
	strbuf_puts(&x->stream, s);
	strbuf_putc(&x->stream, '\n');
	free(s);
	lws_set_timeout(x->wsi, NO_PENDING_TIMEOUT, 0);
	if (write_headers(x, 200, "application/x-ndjson", LWS_ILLEGAL_HTTP_CONTENT_LEN) < 0) {
		lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	lws_callback_on_writable(x->wsi);
}

/*
 * Authenticate an upgrade from the Authorization header, against the mirrored accounts (the
 * loop does not wait for etcd); < 0: answered already (401/503).
 */
static int authenticate(struct conn *x, struct orchard_service_account *sa, bool *has)
{
	*has = false;
	if (!x->authorization)
		return 0;
	int r = accounts_authenticate(x->c, x->authorization, sa);
	if (r == 0) {
		*has = true;
		return 0;
	}
	api_resp_release(&x->resp);
	strbuf_init(&x->resp.body, 0);
	if (r == -EACCES)
		api_error(&x->resp, 401, "invalid service account name or token");
	else
		api_store_error(&x->resp, r, "service account");
	return -1;
}

/* Continue with an answered request: send it, or start what waits. */
static int finish_request(struct conn *x)
{
	switch (x->resp.defer) {
	case API_DEFER_WATCH:
		start_watch(x);
		return 0;
	case API_DEFER_IP:
		start_wait(x, x->resp.vm->meta.name, NULL, x->resp.wait_s);
		return 0;
	default:
		return answer(x);
	}
}

/* Hand the request to an API thread; process_events() finishes it. */
static int dispatch(struct conn *x)
{
	struct controller *c = x->c;
	struct api_job *j = xcalloc(1, sizeof(*j));
	if (!split_path(c, x->path ? x->path : "", &j->seg)) {
		api_job_free(j);
		return answer_error(x, 404, "not found");
	}
	j->conn_id = x->id;
	j->method = x->method;
	for (size_t i = 0; i < x->args.n; i++)
		orchard_strv_push(&j->args, x->args.v[i]);
	j->body = strbuf_detach(&x->body, &j->body_len);
	j->authorization = x->authorization ? xstrdup(x->authorization) : NULL;
	j->user_agent = x->user_agent ? xstrdup(x->user_agent) : NULL;
	x->job_pending = true;
	lws_set_timeout(x->wsi, NO_PENDING_TIMEOUT, 0);
	jobs_submit(c, j);
	return 0;
}

static void process_jobs(struct controller *c)
{
	struct api_job *j = jobs_take_done(c);
	while (j) {
		struct api_job *next = j->next;
		struct conn *x = c->conns;
		while (x && !(x->id == j->conn_id && x->job_pending))
			x = x->next;
		if (x) {
			/* the client is still there: answer it */
			x->job_pending = false;
			api_resp_release(&x->resp);
			x->resp = j->resp;
			j->resp = (struct api_resp){0};
			if (finish_request(x) < 0)
				lws_set_timeout(x->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		}
		api_job_free(j);
		j = next;
	}
}

static int on_http(struct conn *x, const char *uri)
{
	request_reset(x);
	x->kind = K_HTTP;
	x->phase = P_NONE;
	char *u = NULL;
	int ulen = 0;
	x->method = lws_http_get_uri_and_method(x->wsi, &u, &ulen);
	x->path = xstrdup(uri ? uri : "");
	read_args(x);
	x->authorization = hdr(x->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	x->user_agent = hdr(x->wsi, WSI_TOKEN_HTTP_USER_AGENT);
	if (x->method == LWSHUMETH_POST || x->method == LWSHUMETH_PUT) {
		_cleanup_free_ char *cl = hdr(x->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
		_cleanup_free_ char *te = hdr(x->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
		unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
		if (len > x->c->o.max_body) {
			answer_error(x, 413, "request body is larger than %llu bytes",
				     (unsigned long long)x->c->o.max_body);
			return -1;
		}
		if (te) {
			/* libwebsockets does not decode chunked request bodies; Orchard's clients
			 * always send a length */
			answer_error(x, 411, "a request body needs a Content-Length");
			return -1;
		}
		if (len > 0) {
			x->body_pending = true;
			return 0;
		}
	}
	return dispatch(x);
}

/* ---- WebSocket upgrades ---- */

/* Write an HTTP error before an upgrade; returns 1 for HTTP_CONFIRM_UPGRADE. */
static int reject_upgrade(struct conn *x)
{
	const char *ctype = "application/json; charset=utf-8";
	unsigned char buf[LWS_PRE + 2048], *start = &buf[LWS_PRE], *p = start,
					   *end = &buf[sizeof(buf) - 1];
	if (lws_add_http_common_headers(x->wsi, (unsigned)x->resp.status, ctype, x->resp.body.len,
					&p, end) ||
	    lws_finalize_write_http_header(x->wsi, start, &p, end))
		return -1;
	if (x->resp.body.len) {
		unsigned char *b = xmalloc(LWS_PRE + x->resp.body.len);
		memcpy(b + LWS_PRE, x->resp.body.buf, x->resp.body.len);
		int w = lws_write(x->wsi, b + LWS_PRE, x->resp.body.len, LWS_WRITE_HTTP_FINAL);
		free(b);
		if (w < 0)
			return -1;
	}
	return 1;
}

#define REJECT(x, status, ...)                                                                     \
	do {                                                                                       \
		api_resp_release(&(x)->resp);                                                      \
		strbuf_init(&(x)->resp.body, 0);                                                   \
		api_error(&(x)->resp, status, __VA_ARGS__);                                        \
		goto reject;                                                                       \
	} while (0)

static bool parse_u16_arg(struct conn *x, const char *name, const char *def, uint64_t min,
			  uint64_t *ret)
{
	_cleanup_free_ char *v = api_query(&x->args, name);
	const char *s = v ? v : def;
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (*end || errno || n > 65535 || n < min)
		return false;
	*ret = n;
	return true;
}

#define ROLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Decide on an upgrade: 0 accept (x is set up for ESTABLISHED), >0 rejected, <0 hang up. */
static int confirm_upgrade(struct conn *x)
{
	struct controller *c = x->c;
	request_reset(x);
	x->path = hdr(x->wsi, WSI_TOKEN_GET_URI);
	read_args(x);
	x->authorization = hdr(x->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	x->user_agent = hdr(x->wsi, WSI_TOKEN_HTTP_USER_AGENT);
	x->method = LWSHUMETH_GET;
	struct orchard_strv seg = {0};
	struct orchard_service_account sa = {0};
	bool has_sa = false;
	int ret = 0;
	strbuf_init(&x->resp.body, 0);
	if (!x->path || !split_path(c, x->path, &seg))
		REJECT(x, 404, "not found");
	if (authenticate(x, &sa, &has_sa) < 0)
		goto reject;
	struct api_req q = {.c = c,
			    .method = LWSHUMETH_GET,
			    .seg = seg.v,
			    .nseg = seg.n,
			    .args = &x->args,
			    .sa = has_sa ? &sa : NULL,
			    .user_agent = x->user_agent};
	bool vm_pf = seg.n == 3 && streq(seg.v[0], "vms") && streq(seg.v[2], "port-forward");
	bool worker_pf =
	    seg.n == 3 && streq(seg.v[0], "workers") && streq(seg.v[2], "port-forward");
	if (vm_pf || worker_pf) {
		if (vm_pf ? !api_authorize(
				&q, &x->resp, true,
				ROLES(ORCHARD_ROLE_COMPUTE_WRITE, ORCHARD_ROLE_COMPUTE_CONNECT))
			  : !api_authorize(&q, &x->resp, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE)))
			goto reject;
		uint64_t port, wait;
		if (!parse_u16_arg(x, "port", NULL, 1, &port))
			REJECT(x, 400, "invalid port");
		if (!parse_u16_arg(x, "wait", "10", 0, &wait))
			REJECT(x, 400, "invalid wait");
		if (orchard_name_validate(seg.v[1], vm_pf ? "VM" : "worker", NULL) < 0)
			REJECT(x, 404, "%s not found", vm_pf ? "VM" : "worker");
		/* whether the VM or worker exists, and the VM's state, come after the upgrade
		 * (closes with 4404/4417): the loop does not wait for etcd */
		x->kind = K_PF_CLIENT;
		x->port = (uint16_t)port;
		x->deadline = wait; /* seconds until ESTABLISHED turns it into a deadline */
		x->vm_name = vm_pf ? xstrdup(seg.v[1]) : NULL;
		x->worker = worker_pf ? xstrdup(seg.v[1]) : NULL;
		/* old x/net/websocket clients send no User-Agent and want text frames */
		x->text_frames = !x->user_agent || !*x->user_agent;
	} else if (seg.n == 2 && streq(seg.v[0], "rpc") && streq(seg.v[1], "watch")) {
		if (!api_authorize(&q, &x->resp, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
			goto reject;
		_cleanup_free_ char *w = api_query(&x->args, "workerName");
		if (!w || !*w)
			REJECT(x, 400, "worker name cannot be empty");
		if (orchard_name_validate(w, "worker", NULL) < 0)
			REJECT(x, 400, "invalid worker name");
		x->kind = K_WATCH;
		x->worker = TAKE_PTR(w);
	} else if (seg.n == 2 && streq(seg.v[0], "rpc") && streq(seg.v[1], "port-forward")) {
		if (!api_authorize(&q, &x->resp, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
			goto reject;
		_cleanup_free_ char *s = api_query(&x->args, "session");
		if (!s || !*s || strlen(s) >= sizeof(x->session) ||
		    orchard_name_validate(s, "session", NULL) < 0)
			REJECT(x, 400, "invalid session");
		x->kind = K_PF_DIALBACK;
		snprintf(x->session, sizeof(x->session), "%s", s);
	} else if (seg.n == 3 && streq(seg.v[0], "vms") && streq(seg.v[2], "exec")) {
		if (!api_authorize(&q, &x->resp, true,
				   ROLES(ORCHARD_ROLE_COMPUTE_WRITE, ORCHARD_ROLE_COMPUTE_CONNECT)))
			goto reject;
		REJECT(x, 501,
		       "exec through the controller is not implemented: use `orchard ssh "
		       "vm` (port-forward to port 22)");
	} else {
		REJECT(x, 404, "not found");
	}
	goto finish;
reject:
	ret = reject_upgrade(x);
finish:
	orchard_service_account_release(&sa);
	orchard_strv_release(&seg);
	return ret;
}

static void owner_done(struct controller *c, struct errand *base);

static void on_established(struct conn *x)
{
	struct controller *c = x->c;
	switch (x->kind) {
	case K_WATCH:
		x->held = true;
		errand_submit(c, &errand_new(x, CE_HOLD, NULL)->base);
		/* what may have been asked while it was away */
		{
			struct orchard_watch_instruction wi = {.sync_vms = true};
			json_t *j = orchard_watch_instruction_to_json(&wi);
			char *s = orchard_json_dump(j);
			json_decref(j);
			ws_queue(x, s, strlen(s), false);
			free(s);
		}
		break;
	case K_PF_CLIENT: {
		set_rx(x, false); /* until paired */
		uint64_t wait = (uint64_t)x->deadline;
		_cleanup_free_ char *vm = x->vm_name ? xstrdup(x->vm_name) : NULL;
		_cleanup_free_ char *w = x->worker ? xstrdup(x->worker) : NULL;
		free(x->vm_name);
		free(x->worker);
		x->vm_name = x->worker = NULL;
		start_wait(x, vm, w, wait);
		break;
	}
	case K_PF_DIALBACK: {
		_cleanup_free_ char *err = api_query(&x->args, "errorMessage");
		struct conn *client = find_session(c, x->session, K_PF_CLIENT);
		if (client) {
			if (err && *err) {
				wait_fail(client, 503,
					  "failed to establish port forwarding session on the "
					  "worker: %s",
					  err);
				ws_close(x, LWS_CLOSE_STATUS_NORMAL, "");
				return;
			}
			lws_set_timer_usecs(client->wsi, LWS_SET_TIMER_USEC_CANCEL);
			conn_cleanup_waits(client);
			pair(client, x);
			return;
		}
		/* at most one hop: a dial-back another controller relayed here is not relayed again
		 * (two controllers behind one advertised address must not bounce it forever) */
		_cleanup_free_ char *relayed = api_query(&x->args, "relayed");
		if (relayed) {
			ws_close(x, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				 "unknown port-forwarding session");
			return;
		}
		set_rx(x, false);
		errand_submit(c, &errand_new(x, CE_OWNER, owner_done)->base);
		break;
	}
	default:
		break;
	}
}

/* ---- relays of dial-backs to the controller that waits for them ---- */

static void relay_to_owner(struct conn *x, const char *url, const char *cert)
{
	struct controller *c = x->c;
	const char *prot = NULL, *address = NULL, *path = NULL;
	int port = 0;
	char *u = xstrdup(url);
	if (lws_parse_uri(u, &prot, &address, &port, &path) != 0) {
		free(u);
		ws_close(x, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "bad controller URL");
		return;
	}
	bool tls = streq(prot, "https") || streq(prot, "wss");
	_cleanup_free_ char *err = api_query(&x->args, "errorMessage");
	_cleanup_free_ char *esc = NULL;
	if (err && *err) {
		esc = xmalloc(strlen(err) * 3 + 1);
		lws_urlencode(esc, err, (int)strlen(err) * 3 + 1);
	}
	_cleanup_free_ char *full =
	    xasprintf("%s/v1/rpc/port-forward?session=%s&relayed=1%s%s", c->o.api_prefix,
		      x->session, esc ? "&errorMessage=" : "", esc ? esc : "");
	struct conn *relay = conn_new(c, NULL, K_RELAY);
	relay->authorization = x->authorization ? xstrdup(x->authorization) : NULL;
	relay->peer = x;
	x->peer = relay;
	if (tls && cert)
		(void)tls_fingerprint(cert, &relay->expect_fingerprint);
	struct lws_client_connect_info ci = {0};
	ci.context = c->lws;
	ci.address = address;
	ci.port = port;
	ci.path = full;
	ci.host = tls ? "orchard-controller" : address;
	ci.origin = ci.host;
	ci.ssl_connection = tls ? (LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
				   LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK)
				: 0;
	ci.local_protocol_name = "orchard";
	/*
	 * The conn is attached only once the call returned: a connection that fails inside it is
	 * destroyed there, and must not free our conn behind our back.
	 */
	struct lws *w = lws_client_connect_via_info(&ci);
	if (!w) {
		x->peer = NULL;
		conn_free(relay);
		ws_close(x, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			 "cannot reach the controller of this session");
	} else {
		relay->wsi = w;
		lws_set_opaque_user_data(w, relay);
	}
	free(u);
}

/* Where the dial-back's session waits, back from etcd. */
static void owner_done(struct controller *c, struct errand *base)
{
	struct conn_errand *e = (struct conn_errand *)base;
	struct conn *x = conn_by_id(c, e->conn_id);
	if (!x || x->kind != K_PF_DIALBACK || x->close_pending || x->peer)
		return;
	if (e->r < 0)
		ws_close(x, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			 "unknown port-forwarding session");
	else
		relay_to_owner(x, e->url, e->cert);
}

/* ---- the callback ---- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct controller *c = lws_context_user(lws_get_context(wsi));
	struct conn *x = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	(void)user;

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (c)
			process_events(c);
		return 0;

	case LWS_CALLBACK_HTTP:
		if (!x)
			x = conn_new(c, wsi, K_HTTP);
		return on_http(x, in);
	case LWS_CALLBACK_HTTP_BODY:
		if (!x || !x->body_pending)
			return 0;
		if (strbuf_add(&x->body, in, len) < 0) {
			x->body_pending = false;
			answer_error(x, 413, "request body is larger than %llu bytes",
				     (unsigned long long)x->c->o.max_body);
			return -1;
		}
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!x || !x->body_pending)
			return 0;
		x->body_pending = false;
		return dispatch(x);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return x ? http_writeable(x) : 0;

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		if (!x)
			x = conn_new(c, wsi, K_HTTP);
		return confirm_upgrade(x);
	case LWS_CALLBACK_ESTABLISHED:
		if (x)
			on_established(x);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (!x)
			return 0;
		if (x->kind == K_PF_CLIENT || x->kind == K_PF_DIALBACK)
			ws_forward(x, in, len);
		return 0; /* the watch channel's input is ignored, as Orchard does */
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return x ? ws_writeable(x) : 0;
	case LWS_CALLBACK_CLOSED:
		if (x && x->peer)
			ws_close(x->peer, LWS_CLOSE_STATUS_NORMAL, "");
		return 0;

	case LWS_CALLBACK_TIMER:
		if (x && waiting(x))
			step(x);
		return 0;

	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		if (x && x->authorization) {
			unsigned char **p = in, *end = *p + len;
			if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
							 (unsigned char *)x->authorization,
							 (int)strlen(x->authorization), p, end))
				return -1;
		}
		return 0;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION: {
		/* pin the peer controller's certificate as it published it in etcd */
		X509_STORE_CTX *ctx = user;
		if (!x || !x->expect_fingerprint)
			return 0;
		if (X509_STORE_CTX_get_error_depth(ctx) != 0)
			return 0;
		X509 *cert = X509_STORE_CTX_get_current_cert(ctx);
		unsigned char *der = NULL;
		int n = cert ? i2d_X509(cert, &der) : -1;
		_cleanup_free_ char *fp = NULL;
		int r = n > 0 ? tls_fingerprint_der(der, (size_t)n, &fp) : -EIO;
		OPENSSL_free(der);
		if (r < 0 || !streq(fp, x->expect_fingerprint))
			return 1;
		X509_STORE_CTX_set_error(ctx, X509_V_OK);
		return 0;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (x && x->peer) {
			x->phase = x->peer->phase = P_PAIRED;
			set_rx(x->peer, true);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (x)
			ws_forward(x, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return x ? ws_writeable(x) : 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (x && x->peer)
			ws_close(x->peer,
				 reason == LWS_CALLBACK_CLIENT_CLOSED
				     ? LWS_CLOSE_STATUS_NORMAL
				     : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
				 reason == LWS_CALLBACK_CLIENT_CLOSED ? "" : "relay failed");
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		if (x) {
			if (x->peer)
				ws_close(x->peer, LWS_CLOSE_STATUS_NORMAL, "");
			lws_set_opaque_user_data(wsi, NULL);
			conn_free(x);
		}
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- serving ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static const struct lws_protocols protocols[] = {
    {"orchard", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int parse_listen(const char *listen, char **ret_host, int *ret_port)
{
	const char *colon = strrchr(listen, ':');
	if (!colon)
		return -EINVAL;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || colon[1] == 0)
		return -EINVAL;
	*ret_host = colon == listen ? NULL : xstrndup(listen, (size_t)(colon - listen));
	if (*ret_host && (*ret_host)[0] == '[') {
		char *h = xstrndup(*ret_host + 1, strlen(*ret_host) - 2);
		free(*ret_host);
		*ret_host = h;
	}
	*ret_port = (int)port;
	return 0;
}

int http_serve(struct controller *c)
{
	_cleanup_free_ char *host = NULL, *cert = NULL, *key = NULL;
	int port;
	if (parse_listen(c->o.listen, &host, &port) < 0)
		return log_error_errno(-EINVAL, "invalid --listen address '%s'", c->o.listen);
	if (!c->o.insecure_no_tls) {
		int r = tls_prepare(c, &cert, &key);
		if (r < 0)
			return r;
	}
	if (!c->url)
		c->url = xasprintf("%s://%s:%d", c->o.insecure_no_tls ? "http" : "https",
				   host ? host : "127.0.0.1", port);

	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context_creation_info info = {0};
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.user = c;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	/* pings on idle WebSockets every interval; a peer silent for 3 intervals is gone */
	static lws_retry_bo_t idle;
	idle.secs_since_valid_ping = (uint16_t)c->o.ping_interval_s;
	idle.secs_since_valid_hangup = (uint16_t)MIN(3 * c->o.ping_interval_s + 10, 65535);
	info.retry_and_idle_policy = &idle;
	info.timeout_secs = 30;
	info.keepalive_timeout = 60;
	info.max_http_header_data = 8192;
	info.alpn = "http/1.1";
	if (cert) {
		info.ssl_cert_filepath = cert;
		info.ssl_private_key_filepath = key;
	}
	c->lws = lws_create_context(&info);
	if (!c->lws)
		return log_error_errno(-EADDRINUSE, "cannot listen on %s", c->o.listen);
	return 0;
}

int http_loop(struct controller *c)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* events queued before the loop started */
	lws_cancel_service(c->lws);
	while (!interrupted)
		if (lws_service(c->lws, 0) < 0)
			break;
	return 0;
}

void http_stop(struct controller *c)
{
	pthread_mutex_lock(&c->lws_lock);
	c->lws_gone = true;
	pthread_mutex_unlock(&c->lws_lock);
	if (c->lws)
		lws_context_destroy(c->lws);
	c->lws = NULL;
}
