// SPDX-License-Identifier: Apache-2.0
#include "orchard/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"

#define MSG_CAP (1u << 20)
#define CHUNK_MAX (64u << 10)
#define TX_HIGH_WATER (1u << 20) /* the reader waits while this much is queued */

struct chunk {
	struct chunk *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of room, then the payload */
};

struct msg {
	struct msg *next;
	struct strbuf sb;
};

enum ws_state { WS_CONNECTING, WS_OPEN, WS_CLOSED, WS_FAILED };

struct orchard_ws {
	struct lws_context *ctx;
	struct lws *wsi;
	enum ws_state state;
	long status;
	char *error;
	char *auth;

	pthread_mutex_t lock; /* tx queue, tx_eof, interrupted: shared with the bridge reader */
	pthread_cond_t cond;
	struct chunk *tx_head, *tx_tail;
	size_t tx_bytes;
	bool tx_eof;
	bool interrupted;

	struct strbuf rx; /* the message being received */
	struct msg *rx_head, *rx_tail;
	int out_fd; /* bridge: payloads go here */
	bool out_failed;
};

static const lws_retry_bo_t idle_policy = {
    .secs_since_valid_ping = 30,
    .secs_since_valid_hangup = 75,
};

static void queue_msg(struct orchard_ws *ws)
{
	struct msg *m = xcalloc(1, sizeof(*m));
	m->sb = ws->rx;
	strbuf_init(&ws->rx, MSG_CAP);
	if (ws->rx_tail)
		ws->rx_tail->next = m;
	else
		ws->rx_head = m;
	ws->rx_tail = m;
}

static int on_writeable(struct orchard_ws *ws, struct lws *wsi)
{
	pthread_mutex_lock(&ws->lock);
	struct chunk *c = ws->tx_head;
	if (c) {
		ws->tx_head = c->next;
		if (!ws->tx_head)
			ws->tx_tail = NULL;
		ws->tx_bytes -= c->len;
		pthread_cond_broadcast(&ws->cond);
	}
	bool more = ws->tx_head != NULL, eof = ws->tx_eof;
	pthread_mutex_unlock(&ws->lock);
	if (c) {
		int n = lws_write(wsi, c->buf + LWS_PRE, c->len, LWS_WRITE_BINARY);
		size_t len = c->len;
		free(c);
		if (n < (int)len)
			return -1;
	}
	if (more) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (eof) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	(void)user;
	struct lws_context *ctx = lws_get_context(wsi);
	struct orchard_ws *ws = ctx ? lws_context_user(ctx) : NULL;
	if (!ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = in, *end = *p + len;
		if (ws->auth && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
							     (unsigned char *)ws->auth,
							     (int)strlen(ws->auth), p, end))
			return -1;
		static const char ua[] = ORCHARD_USER_AGENT;
		if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_USER_AGENT,
						 (const unsigned char *)ua, (int)strlen(ua), p,
						 end))
			return -1;
		return 0;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->state = WS_OPEN;
		ws->status = 101;
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		ws->state = WS_FAILED;
		ws->status = lws_http_client_http_response(wsi);
		free(ws->error);
		ws->error = xstrndup(in ? (const char *)in : "connection failed", in ? len : 17);
		ws->wsi = NULL;
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (ws->out_fd >= 0) {
			if (fs_write_all(ws->out_fd, in, len) < 0) {
				ws->out_failed = true;
				return -1;
			}
			return 0;
		}
		if (strbuf_add(&ws->rx, in, len) < 0)
			return -1; /* over MSG_CAP: not a message of ours */
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
			queue_msg(ws);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(ws, wsi);
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (ws->wsi && ws->state == WS_OPEN) {
			pthread_mutex_lock(&ws->lock);
			bool want = ws->tx_head || ws->tx_eof;
			pthread_mutex_unlock(&ws->lock);
			if (want)
				lws_callback_on_writable(ws->wsi);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (wsi == ws->wsi || reason == LWS_CALLBACK_CLIENT_CLOSED) {
			if (ws->state == WS_CONNECTING)
				ws->state = WS_FAILED;
			else if (ws->state == WS_OPEN)
				ws->state = WS_CLOSED;
			ws->wsi = NULL;
		}
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
    {.name = "orchard", .callback = callback, .rx_buffer_size = CHUNK_MAX},
    {0},
};

static bool interrupted(struct orchard_ws *ws)
{
	pthread_mutex_lock(&ws->lock);
	bool r = ws->interrupted;
	pthread_mutex_unlock(&ws->lock);
	return r;
}

static int open_one(const struct orchard_endpoint *e, const char *path, const char *query,
		    long timeout_s, struct orchard_ws **ret, long *ret_status, char **ret_error);

int orchard_ws_open(struct orchard_client *c, const char *path, const char *query, long timeout_s,
		    struct orchard_ws **ret, long *ret_status, char **ret_error)
{
	int r = -EINVAL;
	for (size_t i = 0; i < orchard_client_endpoints(c); i++) {
		struct orchard_endpoint ep;
		orchard_client_endpoint(c, i, &ep);
		if (ret_error && *ret_error) {
			free(*ret_error);
			*ret_error = NULL;
		}
		r = open_one(&ep, path, query, timeout_s, ret, ret_status, ret_error);
		if (!orchard_transport_error(r)) {
			if (r == 0)
				orchard_client_prefer(c, i);
			break;
		}
	}
	return r;
}

static int open_one(const struct orchard_endpoint *e, const char *path, const char *query,
		    long timeout_s, struct orchard_ws **ret, long *ret_status, char **ret_error)
{
	struct orchard_endpoint ep = *e;
	if (timeout_s <= 0)
		timeout_s = 30;

	lws_set_log_level(0, NULL);
	struct orchard_ws *ws = xcalloc(1, sizeof(*ws));
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->cond, NULL);
	strbuf_init(&ws->rx, MSG_CAP);
	ws->out_fd = -1;
	ws->auth = ep.auth_header ? xstrdup(ep.auth_header) : NULL;

	struct lws_context_creation_info info = {0};
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.user = ws;
	info.fd_limit_per_thread = 16; /* lws sizes tables by the fd limit otherwise */
	info.timeout_secs = (unsigned)timeout_s;
	info.connect_timeout_secs = (unsigned)timeout_s;
	if (ep.tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		if (ep.cert_pem) {
			info.client_ssl_ca_mem = ep.cert_pem;
			info.client_ssl_ca_mem_len = (unsigned)ep.cert_pem_len;
		}
	}
	ws->ctx = lws_create_context(&info);
	if (!ws->ctx) {
		orchard_ws_close(ws);
		if (ret_error)
			*ret_error = xstrdup("cannot create a WebSocket context");
		return -ENOMEM;
	}

	_cleanup_free_ char *full =
	    xasprintf("%s/v1/%s%s%s", ep.prefix, path, query ? "?" : "", query ? query : "");
	_cleanup_free_ char *host_hdr =
	    xasprintf("%s:%d", ep.server_name ? ep.server_name : ep.host, ep.port);
	struct lws_client_connect_info ci = {0};
	ci.context = ws->ctx;
	ci.address = ep.host;
	ci.port = ep.port;
	ci.path = full;
	/* lws takes the TLS name (SNI and the certificate check) from the Host header */
	ci.host = ep.server_name ? ep.server_name : host_hdr;
	ci.origin = host_hdr;
	ci.ssl_connection = ep.tls ? LCCSCF_USE_SSL : 0;
	ci.local_protocol_name = "orchard";
	ci.retry_and_idle_policy = &idle_policy;
	ci.pwsi = &ws->wsi;
	if (!lws_client_connect_via_info(&ci) && ws->state == WS_CONNECTING)
		ws->state = WS_FAILED;
	while (ws->state == WS_CONNECTING)
		if (lws_service(ws->ctx, 0) < 0)
			ws->state = WS_FAILED;
	if (ws->state != WS_OPEN) {
		long st = ws->status;
		int r = st >= 200 ? orchard_status_errno(st) : -ECONNREFUSED;
		if (ws->error && strstr(ws->error, "imeout"))
			r = -ETIMEDOUT;
		if (ret_status)
			*ret_status = st;
		if (ret_error) {
			if (st >= 200)
				*ret_error = xasprintf("failed to upgrade to WebSocket: %ld %s", st,
						       orchard_status_text(st));
			else
				*ret_error =
				    xasprintf("WebSocket connection to %s:%d failed: %s", ep.host,
					      ep.port, ws->error ? ws->error : "connection failed");
		}
		orchard_ws_close(ws);
		return r;
	}
	if (ret_status)
		*ret_status = 101;
	*ret = ws;
	return 0;
}

int orchard_ws_recv(struct orchard_ws *ws, struct strbuf *msg)
{
	while (!ws->rx_head) {
		if (interrupted(ws))
			return -EINTR;
		if (ws->state != WS_OPEN)
			return -ECONNRESET;
		if (lws_service(ws->ctx, 0) < 0)
			return -ECONNRESET;
	}
	struct msg *m = ws->rx_head;
	ws->rx_head = m->next;
	if (!ws->rx_head)
		ws->rx_tail = NULL;
	strbuf_release(msg);
	*msg = m->sb;
	free(m);
	return 0;
}

/* Queue data for sending; waits while the queue is over its high-water mark. */
static void enqueue(struct orchard_ws *ws, const void *data, size_t len)
{
	struct chunk *c = xmalloc(sizeof(*c) + LWS_PRE + len);
	c->next = NULL;
	c->len = len;
	memcpy(c->buf + LWS_PRE, data, len);
	pthread_mutex_lock(&ws->lock);
	while (ws->tx_bytes > TX_HIGH_WATER && !ws->interrupted && !ws->tx_eof)
		pthread_cond_wait(&ws->cond, &ws->lock);
	if (ws->tx_tail)
		ws->tx_tail->next = c;
	else
		ws->tx_head = c;
	ws->tx_tail = c;
	ws->tx_bytes += len;
	pthread_mutex_unlock(&ws->lock);
	lws_cancel_service(ws->ctx);
}

struct reader {
	struct orchard_ws *ws;
	int fd;
	int stop_fd; /* read end of a pipe: readable when the bridge ends */
};

static void *reader_main(void *p)
{
	struct reader *rd = p;
	struct orchard_ws *ws = rd->ws;
	_cleanup_free_ char *buf = xmalloc(CHUNK_MAX);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = rd->fd, .events = POLLIN},
					{.fd = rd->stop_fd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			return NULL;
		ssize_t n = read(rd->fd, buf, CHUNK_MAX);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		enqueue(ws, buf, (size_t)n);
	}
	pthread_mutex_lock(&ws->lock);
	ws->tx_eof = true;
	pthread_mutex_unlock(&ws->lock);
	lws_cancel_service(ws->ctx);
	return NULL;
}

int orchard_ws_bridge(struct orchard_ws *ws, int in_fd, int out_fd)
{
	/* what arrived before the bridge started goes out first */
	for (struct msg *m = ws->rx_head; m; m = ws->rx_head) {
		ws->rx_head = m->next;
		(void)fs_write_all(out_fd, m->sb.buf, m->sb.len);
		strbuf_release(&m->sb);
		free(m);
	}
	ws->rx_tail = NULL;
	ws->out_fd = out_fd;

	int stop[2];
	if (pipe2(stop, O_CLOEXEC) < 0)
		return negerrno();
	struct reader rd = {.ws = ws, .fd = in_fd, .stop_fd = stop[0]};
	pthread_t th;
	int r = pthread_create(&th, NULL, reader_main, &rd);
	if (r != 0) {
		close(stop[0]);
		close(stop[1]);
		return -r;
	}
	r = 0;
	while (ws->state == WS_OPEN && !ws->out_failed) {
		if (interrupted(ws)) {
			r = -EINTR;
			break;
		}
		if (lws_service(ws->ctx, 0) < 0)
			break;
	}
	/* wake the reader (poll on the stop pipe) and any wait for queue room */
	(void)!write(stop[1], "x", 1);
	pthread_mutex_lock(&ws->lock);
	ws->tx_eof = true;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	pthread_join(th, NULL);
	close(stop[0]);
	close(stop[1]);
	ws->out_fd = -1;
	return r;
}

void orchard_ws_interrupt(struct orchard_ws *ws)
{
	pthread_mutex_lock(&ws->lock);
	ws->interrupted = true;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	if (ws->ctx)
		lws_cancel_service(ws->ctx);
}

void orchard_ws_close(struct orchard_ws *ws)
{
	if (!ws)
		return;
	if (ws->ctx)
		lws_context_destroy(ws->ctx);
	while (ws->tx_head) {
		struct chunk *c = ws->tx_head;
		ws->tx_head = c->next;
		free(c);
	}
	while (ws->rx_head) {
		struct msg *m = ws->rx_head;
		ws->rx_head = m->next;
		strbuf_release(&m->sb);
		free(m);
	}
	strbuf_release(&ws->rx);
	pthread_mutex_destroy(&ws->lock);
	pthread_cond_destroy(&ws->cond);
	free(ws->error);
	if (ws->auth)
		explicit_bzero(ws->auth, strlen(ws->auth));
	free(ws->auth);
	free(ws);
}
