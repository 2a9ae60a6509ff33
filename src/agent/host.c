// SPDX-License-Identifier: Apache-2.0
#include "agent/host.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/control.h"
#include "agent/emul.h"
#include "agent/grpc.h"
#include "agent/mux.h"
#include "agent/qga.h"
#include "agent/vsock.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"

/* A guest that neither accepts nor refuses a vsock connection by then is taken as refusing. */
#define VSOCK_CONNECT_USEC (2 * 1000000ULL)
#define PROXY_BUF (64u << 10)
#define MAX_EVENTS 64

/* One control.sock connection proxied byte for byte to guest vsock port 8080. */
struct proxy_buf {
	char data[PROXY_BUF];
	size_t off, len;
	bool eof; /* the reading side ended: shut down writing once flushed */
};

struct proxy {
	struct proxy *next;
	int cfd, vfd;
	bool connecting;
	usec_t deadline;
	struct proxy_buf c2v, v2c;
	bool dead;
};

struct port_event {
	bool agent; /* else qga */
	bool open;
};

struct agent_host {
	int dir_fd; /* O_PATH of the VM directory: sockets are addressed through it */
	char *vm_dir;
	int listen_fd;	    /* control.sock */
	ino_t control_ino;  /* to remove only our own control.sock */
	int serial_listen;  /* the agent port's chardev (QEMU's, until it runs) */
	int qga_fds[2];	    /* [0] ours, [1] QEMU's */
	int vsock_fd;	    /* QEMU's vhostfd */
	uint32_t vsock_cid; /* 0: no vsock */
	int wake_fd;
	struct agent_qga qga;
	struct agent_emul *emul;
	struct agent_mux *mux;
	struct proxy *proxies;
	size_t n_proxies;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards events */
	struct port_event events[MAX_EVENTS];
	size_t n_events;
	bool restored;
	atomic_bool qga_ready; /* QEMU's guest agent answered a sync, and its port stayed open */
};

/* /proc/self/fd/<dir>/<name>: short whatever the VM directory's path. */
static void dir_addr(const struct agent_host *h, const char *name, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", h->dir_fd, name);
}

/* The agent port's chardev listens on a 0600 socket in the VM directory; QEMU accepts. */
static int serial_listen(struct agent_host *h)
{
	struct sockaddr_un sa;
	dir_addr(h, AGENT_SERIAL_SOCKET, &sa);
	if (unlinkat(h->dir_fd, AGENT_SERIAL_SOCKET, 0) < 0 && errno != ENOENT)
		return negerrno();
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	/* The mode of the socket file comes from the socket inode: nobody else may connect. */
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 1) < 0)
		return negerrno();
	return TAKE_FD(fd);
}

static int serial_connect(void *ud)
{
	struct agent_host *h = ud;
	struct sockaddr_un sa;
	dir_addr(h, AGENT_SERIAL_SOCKET, &sa);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return negerrno();
	return TAKE_FD(fd);
}

int agent_host_prepare(const char *vm_dir, struct qemu_spec *spec, struct agent_host **ret)
{
	struct agent_host *h = xcalloc(1, sizeof(*h));
	h->dir_fd = h->listen_fd = h->serial_listen = h->vsock_fd = h->wake_fd = -1;
	h->qga_fds[0] = h->qga_fds[1] = -1;
	h->vm_dir = xstrdup(vm_dir);
	pthread_mutex_init(&h->lock, NULL);
	agent_qga_init(&h->qga, -1);
	int k;
	h->dir_fd = open(vm_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (h->dir_fd < 0) {
		k = log_error_errno(negerrno(), "cannot open '%s'", vm_dir);
		goto fail;
	}
	/* A VM directory that cannot hold a socket (some network filesystems) still runs. */
	h->serial_listen = serial_listen(h);
	if (h->serial_listen < 0)
		log_warning_errno(
		    h->serial_listen,
		    "cannot create '%s/%s': tart exec reaches only QEMU's guest agent", vm_dir,
		    AGENT_SERIAL_SOCKET);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, h->qga_fds) < 0) {
		k = log_error_errno(negerrno(), "cannot create the QEMU guest agent's channel");
		goto fail;
	}
	(void)fcntl(h->qga_fds[0], F_SETFL, O_NONBLOCK);
	k = agent_vsock_claim(&h->vsock_fd, &h->vsock_cid);
	if (k < 0) {
		log_debug("agent: no vsock (%s): the guest agent is reached over virtio-serial",
			  strerror(-k));
		h->vsock_cid = 0;
	} else {
		log_debug("agent: vsock guest CID %u", (unsigned)h->vsock_cid);
	}
	spec->agent_fd = h->serial_listen;
	spec->qga_fd = h->qga_fds[1];
	spec->vsock_fd = h->vsock_fd;
	spec->vsock_cid = h->vsock_cid;
	*ret = h;
	return 0;
fail:
	agent_host_free(h);
	return k;
}

size_t agent_host_qemu_fds(const struct agent_host *h, int *fds, size_t max)
{
	const int all[] = {h->serial_listen, h->qga_fds[1], h->vsock_fd};
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(all) && n < max; i++)
		if (all[i] >= 0)
			fds[n++] = all[i];
	return n;
}

/* ---- vsock proxies ------------------------------------------------------------------------ */

static void proxy_free(struct agent_host *h, struct proxy *p, bool keep_client)
{
	struct proxy **pp = &h->proxies;
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	h->n_proxies--;
	if (!keep_client)
		close(p->cfd);
	if (p->vfd >= 0)
		close(p->vfd);
	free(p);
}

/*
 * TART_AGENT_PROXY_UNIX=PATH (tests only): proxy to this Unix socket instead of vsock, so the
 * byte proxy and its fallback to the serial path are exercised on hosts without vsock.
 */
static int proxy_connect(const struct agent_host *h)
{
	const char *path = getenv("TART_AGENT_PROXY_UNIX");
	if (!path || !*path)
		return agent_vsock_connect_start(h->vsock_cid, AGENT_VSOCK_PORT);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return negerrno();
	return TAKE_FD(fd);
}

static bool proxying(const struct agent_host *h)
{
	const char *path = getenv("TART_AGENT_PROXY_UNIX");
	return h->vsock_cid || (path && *path);
}

static void proxy_start(struct agent_host *h, int cfd, usec_t now)
{
	int vfd = proxy_connect(h);
	if (vfd < 0) {
		log_debug("agent: vsock connection failed (%s): trying the serial port",
			  strerror(-vfd));
		(void)agent_mux_add_client(h->mux, cfd);
		return;
	}
	struct proxy *p = xcalloc(1, sizeof(*p));
	p->cfd = cfd;
	p->vfd = vfd;
	p->connecting = true;
	p->deadline = now + VSOCK_CONNECT_USEC;
	p->next = h->proxies;
	h->proxies = p;
	h->n_proxies++;
}

static short buf_in(const struct proxy_buf *b)
{
	return !b->eof && b->len < PROXY_BUF ? POLLIN : 0;
}

static short buf_out(const struct proxy_buf *b)
{
	return b->len > b->off ? POLLOUT : 0;
}

/* Move bytes from `from` through b to `to`; false when the connection is broken. */
static bool pump(int from, struct proxy_buf *b, int to, short rev_from, short rev_to)
{
	if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && !b->eof && b->len < PROXY_BUF) {
		ssize_t k = read(from, b->data + b->len, PROXY_BUF - b->len);
		if (k > 0)
			b->len += (size_t)k;
		else if (k == 0)
			b->eof = true;
		else if (errno != EAGAIN && errno != EINTR)
			return false;
	}
	if ((rev_to & POLLOUT) && b->len > b->off) {
		ssize_t k = write(to, b->data + b->off, b->len - b->off);
		if (k > 0)
			b->off += (size_t)k;
		else if (k < 0 && errno != EAGAIN && errno != EINTR)
			return false;
	}
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->eof && b->len == 0)
		(void)shutdown(to, SHUT_WR);
	return true;
}

static void proxy_handle(struct agent_host *h, struct proxy *p, short crev, short vrev, usec_t now)
{
	if (p->connecting) {
		int r = (vrev & (POLLOUT | POLLERR | POLLHUP)) ? agent_socket_connect_result(p->vfd)
							       : -EINPROGRESS;
		if (r == -EINPROGRESS && now >= p->deadline)
			r = -ETIMEDOUT;
		if (r == -EINPROGRESS)
			return;
		if (r < 0) {
			log_debug("agent: vsock port %u refused (%s): trying the serial port",
				  AGENT_VSOCK_PORT, strerror(-r));
			(void)agent_mux_add_client(h->mux, p->cfd);
			proxy_free(h, p, true);
			return;
		}
		p->connecting = false;
		(void)fcntl(p->cfd, F_SETFL, O_NONBLOCK);
		return;
	}
	if (!pump(p->cfd, &p->c2v, p->vfd, crev, vrev) ||
	    !pump(p->vfd, &p->v2c, p->cfd, vrev, crev) ||
	    (p->c2v.eof && p->v2c.eof && !p->c2v.len && !p->v2c.len))
		proxy_free(h, p, false);
}

/* ---- the thread --------------------------------------------------------------------------- */

static void take_events(struct agent_host *h, usec_t now)
{
	struct port_event ev[MAX_EVENTS];
	pthread_mutex_lock(&h->lock);
	size_t n = h->n_events;
	memcpy(ev, h->events, n * sizeof(ev[0]));
	h->n_events = 0;
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; i < n; i++) {
		log_debug("agent: guest %s the %s port", ev[i].open ? "opened" : "closed",
			  ev[i].agent ? QEMU_AGENT_PORT_NAME : QEMU_QGA_PORT_NAME);
		if (ev[i].agent) {
			agent_mux_port_changed(h->mux, ev[i].open, now);
		} else {
			agent_qga_port_changed(&h->qga, ev[i].open, now);
			agent_mux_local_changed(h->mux, now);
		}
	}
}

static void accept_clients(struct agent_host *h, usec_t now)
{
	for (;;) {
		int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (proxying(h))
			proxy_start(h, fd, now);
		else if (agent_mux_add_client(h->mux, fd) < 0)
			log_debug("agent: too many control.sock clients, one refused");
	}
}

static usec_t earliest(usec_t a, usec_t b)
{
	return !a ? b : !b ? a : MIN(a, b);
}

static void *host_thread(void *userdata)
{
	struct agent_host *h = userdata;
	size_t max = 3 + 2 * (AGENT_MUX_MAX_CLIENTS + 1) + 2 * AGENT_MUX_MAX_CLIENTS;
	_cleanup_free_ struct pollfd *p = xcalloc(max, sizeof(*p));
	take_events(h, now_monotonic_usec()); /* those before the thread ran */
	while (!atomic_load(&h->stop)) {
		size_t n = 0;
		p[n++] = (struct pollfd){.fd = h->wake_fd, .events = POLLIN};
		p[n++] =
		    (struct pollfd){.fd = h->n_proxies < AGENT_MUX_MAX_CLIENTS ? h->listen_fd : -1,
				    .events = POLLIN};
		p[n++] = (struct pollfd){.fd = h->qga.fd, .events = agent_qga_events(&h->qga)};
		size_t proxies_at = n;
		usec_t deadline = 0;
		for (struct proxy *x = h->proxies; x && n + 2 < max; x = x->next) {
			p[n++] = (struct pollfd){
			    .fd = x->cfd,
			    .events =
				x->connecting ? 0 : (short)(buf_in(&x->c2v) | buf_out(&x->v2c))};
			p[n++] = (struct pollfd){
			    .fd = x->vfd,
			    .events = x->connecting ? POLLOUT
						    : (short)(buf_in(&x->v2c) | buf_out(&x->c2v))};
			if (x->connecting)
				deadline = earliest(deadline, x->deadline);
		}
		size_t mux_at = n;
		n += agent_mux_poll_fill(h->mux, p + n, max - n);
		deadline = earliest(deadline, agent_mux_deadline(h->mux));
		deadline = earliest(deadline, agent_qga_deadline(&h->qga));
		deadline = earliest(deadline, agent_emul_deadline(h->emul));
		int timeout = -1;
		if (deadline) {
			usec_t now = now_monotonic_usec();
			timeout = deadline <= now ? 0 : (int)((deadline - now + 999) / 1000);
		}
		if (poll(p, n, timeout) < 0 && errno != EINTR)
			break;
		usec_t now = now_monotonic_usec();
		if (p[0].revents) {
			uint64_t v;
			(void)read(h->wake_fd, &v, sizeof(v));
			take_events(h, now);
		}
		if (p[1].revents)
			accept_clients(h, now);
		enum agent_qga_state before = h->qga.state;
		agent_qga_handle(&h->qga, p[2].revents, now);
		agent_emul_tick(h->emul, now);
		if (h->qga.state != before)
			agent_mux_local_changed(h->mux, now);
		/* a resync after a timeout (SYNCING) keeps what the last sync said */
		if (h->qga.state != QGA_SYNCING)
			atomic_store(&h->qga_ready, h->qga.state == QGA_READY);
		/* Proxies: the list may shrink while handled; match entries by fd. */
		size_t i = proxies_at;
		for (struct proxy *x = h->proxies, *next; x && i + 1 < mux_at; x = next) {
			next = x->next;
			if (p[i].fd == x->cfd && p[i + 1].fd == x->vfd) {
				proxy_handle(h, x, p[i].revents, p[i + 1].revents, now);
				i += 2;
			}
		}
		agent_mux_handle(h->mux, p + mux_at, n - mux_at, now);
	}
	return NULL;
}

int agent_host_start(struct agent_host *h, bool restored)
{
	/* QEMU has its ends now. */
	if (h->serial_listen >= 0)
		close(TAKE_FD(h->serial_listen));
	if (h->qga_fds[1] >= 0)
		close(TAKE_FD(h->qga_fds[1]));
	if (h->vsock_fd >= 0)
		close(TAKE_FD(h->vsock_fd));
	h->restored = restored;
	h->listen_fd = agent_control_listen(h->vm_dir);
	if (h->listen_fd < 0) {
		/* As in Tart, where the control socket is a side task: the VM runs without it. */
		log_warning_errno(h->listen_fd, "cannot create '%s/%s': tart exec will not work",
				  h->vm_dir, AGENT_CONTROL_SOCKET);
		return 0;
	}
	struct stat st;
	if (fstatat(h->dir_fd, AGENT_CONTROL_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0)
		h->control_ino = st.st_ino;
	h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->wake_fd < 0)
		return log_error_errno(negerrno(), "cannot create an eventfd");
	usec_t now = now_monotonic_usec();
	h->qga.fd = h->qga_fds[0];
	if (restored)
		agent_qga_probe(&h->qga, now);
	h->emul = agent_emul_new(&h->qga);
	struct agent_mux_ops ops = {0};
	agent_emul_fill_ops(h->emul, &ops);
	ops.connect = serial_connect;
	ops.connect_ud = h;
	h->mux = agent_mux_new(&ops, restored, now);
	int k = pthread_create(&h->thread, NULL, host_thread, h);
	if (k != 0)
		return log_error_errno(-k, "cannot start the guest agent thread");
	h->thread_started = true;
	return 0;
}

int agent_host_qga_fd(const struct agent_host *h)
{
	return h && !h->thread_started ? h->qga_fds[0] : -1;
}

bool agent_host_qga_ready(struct agent_host *h)
{
	return h && atomic_load(&h->qga_ready);
}

void agent_host_qmp_event(const char *name, json_t *data, void *userdata)
{
	struct agent_host *h = userdata;
	if (!h || !streq(name, "VSERPORT_CHANGE"))
		return;
	const char *id = json_string_value(json_object_get(data, "id"));
	json_t *open = json_object_get(data, "open");
	if (!id || !json_is_boolean(open))
		return;
	bool agent = streq(id, QEMU_AGENT_PORT_ID);
	if (!agent && !streq(id, QEMU_QGA_PORT_ID))
		return;
	pthread_mutex_lock(&h->lock);
	if (h->n_events == MAX_EVENTS) {
		/* A port flapping faster than we look: the latest events are the ones that count.
		 */
		memmove(h->events, h->events + 1, (MAX_EVENTS - 1) * sizeof(h->events[0]));
		h->n_events--;
	}
	h->events[h->n_events++] = (struct port_event){.agent = agent, .open = json_is_true(open)};
	pthread_mutex_unlock(&h->lock);
	uint64_t one = 1;
	if (h->wake_fd >= 0)
		(void)write(h->wake_fd, &one, sizeof(one));
}

void agent_host_free(struct agent_host *h)
{
	if (!h)
		return;
	if (h->thread_started) {
		atomic_store(&h->stop, true);
		uint64_t one = 1;
		(void)write(h->wake_fd, &one, sizeof(one));
		pthread_join(h->thread, NULL);
	}
	while (h->proxies)
		proxy_free(h, h->proxies, false);
	agent_mux_free(h->mux);
	agent_emul_free(h->emul);
	agent_qga_release(&h->qga);
	if (h->listen_fd >= 0) {
		struct stat st;
		if (fstatat(h->dir_fd, AGENT_CONTROL_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_ino == h->control_ino)
			(void)unlinkat(h->dir_fd, AGENT_CONTROL_SOCKET, 0);
		close(h->listen_fd);
	}
	if (h->dir_fd >= 0) {
		(void)unlinkat(h->dir_fd, AGENT_SERIAL_SOCKET, 0);
		close(h->dir_fd);
	}
	const int fds[] = {h->serial_listen, h->qga_fds[0], h->qga_fds[1], h->vsock_fd, h->wake_fd};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&h->lock);
	free(h->vm_dir);
	free(h);
}
