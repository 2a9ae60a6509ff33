// SPDX-License-Identifier: Apache-2.0
/*
 * The worker's side of Orchard's RPC v2 (internal/worker/rpcv2.go): a WebSocket the worker
 * opens to /v1/rpc/watch?workerName=... carries JSON instructions; port-forward and resolve-ip
 * are answered by dialing back (/v1/rpc/port-forward WebSocket, POST /v1/rpc/resolve-ip), so
 * the worker never accepts a connection. Synthetic workers point port-forwards at an echo
 * server on loopback, as Orchard's do.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orchard/worker/worker.h"
#include "orchard/ws.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"

#define CONNECT_TIMEOUT_MS 10000

/* TCP connection to host:port within timeout_ms; the fd or -errno. */
static int tcp_connect(const char *host, int port, int timeout_ms)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g != 0)
		return -EHOSTUNREACH;
	int r = -ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			r = negerrno();
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			r = negerrno();
			close(fd);
			continue;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n = poll(&p, 1, timeout_ms);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (n <= 0) {
			r = n == 0 ? -ETIMEDOUT : negerrno();
			close(fd);
			continue;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			r = -soerr;
			close(fd);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		freeaddrinfo(res);
		return fd;
	}
	freeaddrinfo(res);
	return r;
}

struct instruction {
	struct worker *w;
	char *session;
	char *vm_uid;
	int port;
};

static void instruction_free(struct instruction *in)
{
	free(in->session);
	free(in->vm_uid);
	free(in);
}

static int dial(struct instruction *in, char **ret_error)
{
	_cleanup_free_ char *host = NULL;
	int port = in->port;
	if (!*in->vm_uid) {
		host = xstrdup("localhost"); /* a port-forward to the worker itself */
	} else {
		struct wvm *vm = worker_find_vm_uid(in->w, in->vm_uid);
		if (!vm) {
			*ret_error = xstrdup("port-forwarding failed: failed to get the VM");
			return -ENOENT;
		}
		_cleanup_free_ char *err = NULL;
		int r = wvm_endpoint(vm, in->port, &host, &port, &err);
		wvm_unref(vm);
		if (r < 0) {
			*ret_error = xasprintf("port-forwarding failed: failed to get VM's IP: %s",
					       err ? err : strerror(-r));
			return r;
		}
	}
	int fd = tcp_connect(host, port, CONNECT_TIMEOUT_MS);
	if (fd < 0)
		*ret_error = xasprintf("port-forwarding failed: failed to connect to the VM: dial "
				       "tcp %s:%d: %s",
				       host, port, strerror(-fd));
	return fd;
}

static void *port_forward_main(void *p)
{
	struct instruction *in = p;
	struct worker *w = in->w;
	_cleanup_free_ char *err = NULL;
	_cleanup_close_ int fd = dial(in, &err);
	if (fd < 0)
		log_warning("worker: %s", err);
	_cleanup_free_ char *s = orchard_escape(in->session);
	_cleanup_free_ char *e = orchard_escape(err ? err : "");
	_cleanup_free_ char *q = xasprintf("session=%s&errorMessage=%s", s, e);
	struct orchard_ws *ws = NULL;
	_cleanup_free_ char *werr = NULL;
	int r = orchard_ws_open(w->client, "rpc/port-forward", q, 30, &ws, NULL, &werr);
	if (r < 0) {
		log_warning("worker: port forwarding failed: failed to call API: %s", werr);
	} else {
		if (fd >= 0)
			(void)orchard_ws_bridge(ws, fd, fd);
		orchard_ws_close(ws);
	}
	instruction_free(in);
	return NULL;
}

static void *resolve_ip_main(void *p)
{
	struct instruction *in = p;
	struct worker *w = in->w;
	_cleanup_free_ char *ip = NULL, *err = NULL, *msg = NULL;
	struct wvm *vm = worker_find_vm_uid(w, in->vm_uid);
	if (!vm) {
		msg = xasprintf("failed to resolve VM's IP: VM \"%s\" not found", in->vm_uid);
	} else {
		if (wvm_ip(vm, &ip, &err) < 0)
			msg = xasprintf(
			    "failed to resolve VM's IP: \"tart ip\" failed for VM \"%s\": "
			    "%s",
			    in->vm_uid, err ? err : "unknown error");
		wvm_unref(vm);
	}
	if (msg)
		log_warning("worker: %s", msg);
	_cleanup_free_ char *s = orchard_escape(in->session);
	_cleanup_free_ char *i = orchard_escape(ip ? ip : "");
	_cleanup_free_ char *m = orchard_escape(msg ? msg : "");
	_cleanup_free_ char *q = xasprintf("session=%s&ip=%s&errorMessage=%s", s, i, m);
	struct orchard_call c = {.method = "POST", .path = "rpc/resolve-ip", .query = q};
	_cleanup_free_ char *cerr = NULL;
	if (orchard_client_call(w->client, &c, NULL, NULL, NULL, &cerr) < 0)
		log_warning("worker: failed to resolve IP for the VM with UID \"%s\": failed to "
			    "call back to the controller: %s",
			    in->vm_uid, cerr);
	instruction_free(in);
	return NULL;
}

static void spawn_detached(void *(*fn)(void *), struct instruction *in)
{
	if (worker_thread(fn, in) < 0) {
		log_warning("worker: cannot start a thread for an instruction");
		instruction_free(in);
	}
}

static void handle(struct worker *w, const struct strbuf *msg)
{
	_cleanup_json_ json_t *j = NULL;
	if (json_parse_buf(msg->buf, msg->len, &j) < 0 || !json_is_object(j)) {
		log_warning("worker: ignoring a watch instruction that is not a JSON object");
		return;
	}
	json_t *pf = json_object_get(j, "portForwardAction");
	json_t *rip = json_object_get(j, "resolveIPAction");
	json_t *act = json_is_object(pf) ? pf : rip;
	if (json_is_object(json_object_get(j, "syncVMsAction")) && !json_is_object(act)) {
		worker_request_sync(w);
		return;
	}
	if (!json_is_object(act))
		return; /* an instruction of a newer controller */
	struct instruction *in = xcalloc(1, sizeof(*in));
	in->w = w;
	in->session = xstrdup(json_string_value(json_object_get(act, "session")) ?: "");
	in->vm_uid = xstrdup(json_string_value(json_object_get(act, "vmUID")) ?: "");
	json_int_t port = json_integer_value(json_object_get(act, "port"));
	in->port = port > 0 && port < 65536 ? (int)port : 0;
	if (act == pf) {
		log_debug("worker: received port-forwarding request to VM UID %s, port %d",
			  in->vm_uid, in->port);
		spawn_detached(port_forward_main, in);
	} else {
		log_debug("worker: received IP resolution request to VM UID %s", in->vm_uid);
		spawn_detached(resolve_ip_main, in);
	}
}

void *worker_watch_main(void *p)
{
	struct worker *w = p;
	_cleanup_free_ char *esc = orchard_escape(w->name);
	_cleanup_free_ char *q = xasprintf("workerName=%s", esc);
	struct strbuf msg = STRBUF_INIT;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		bool over = w->session_over || w->stopping;
		pthread_mutex_unlock(&w->lock);
		if (over)
			break;
		struct orchard_ws *ws = NULL;
		_cleanup_free_ char *err = NULL;
		int r = orchard_ws_open(w->client, "rpc/watch", q, 30, &ws, NULL, &err);
		if (r < 0) {
			log_warning("worker: failed to watch RPC v2: %s", err);
			worker_sleep(w, 1000 * 1000);
			continue;
		}
		pthread_mutex_lock(&w->lock);
		w->watch = ws;
		over = w->session_over || w->stopping;
		pthread_mutex_unlock(&w->lock);
		if (!over) {
			log_info("worker: watching instructions from the controller");
			worker_request_sync(w); /* whatever was said while we were away */
			while ((r = orchard_ws_recv(ws, &msg)) == 0)
				handle(w, &msg);
		}
		pthread_mutex_lock(&w->lock);
		w->watch = NULL;
		pthread_mutex_unlock(&w->lock);
		orchard_ws_close(ws);
		if (r != -EINTR && !over) {
			log_warning(
			    "worker: failed to watch RPC v2: the controller closed the channel");
			worker_sleep(w, 1000 * 1000);
		}
	}
	strbuf_release(&msg);
	return NULL;
}

/* ---- synthetic mode's echo server ---------------------------------------------------------- */

static void *echo_conn_main(void *p)
{
	int fd = (int)(intptr_t)p;
	char buf[16384];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || fs_write_all(fd, buf, (size_t)n) < 0)
			break;
	}
	close(fd);
	return NULL;
}

static void *echo_main(void *p)
{
	int lfd = (int)(intptr_t)p;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			break;
		}
		if (worker_thread(echo_conn_main, (void *)(intptr_t)fd) < 0)
			close(fd);
	}
	return NULL;
}

int worker_echo_server_start(struct worker *w)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int r = negerrno();
		close(fd);
		return r;
	}
	w->echo_port = ntohs(sa.sin_port);
	int r = worker_thread(echo_main, (void *)(intptr_t)fd);
	if (r != 0) {
		close(fd);
		return -r;
	}
	return 0;
}
