// SPDX-License-Identifier: Apache-2.0
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>
#include <nghttp2/nghttp2.h>

#include "agent/grpc.h"
#include "util/alloc.h"
#include "util/log.h"

#define READ_CHUNK (64u << 10)
#define PORT_RECHECK_MS 250
#define PORT_REOPEN_MS 1000
#define VSOCK_RETRY_MS 5000

static struct loop *tloop;
static struct transport_config tcfg;

/* ---- a session on a file descriptor ---- */

struct wire {
	int fd;
	struct agent_session *session;
	uint8_t *pending; /* written partially: the rest of one session_send chunk */
	size_t plen, ppos;
};

static void wire_reset(struct wire *w)
{
	session_free(w->session);
	w->session = NULL;
	free(w->pending);
	w->pending = NULL;
	w->plen = w->ppos = 0;
}

/* Write what the session has to say. 0: all written or would block; <0: the fd failed. */
static int wire_flush(struct wire *w)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n, k;
		if (w->pending) {
			k = write(w->fd, w->pending + w->ppos, w->plen - w->ppos);
			if (k < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : -errno;
			w->ppos += (size_t)k;
			if (w->ppos < w->plen)
				return 0;
			free(w->pending);
			w->pending = NULL;
		}
		if (!w->session)
			return 0;
		n = session_send(w->session, &data);
		if (n <= 0)
			return n < 0 ? -EIO : 0;
		k = write(w->fd, data, (size_t)n);
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (k < 0)
			k = 0;
		if (k < n) {
			w->plen = (size_t)(n - k);
			w->ppos = 0;
			w->pending = xmalloc(w->plen);
			memcpy(w->pending, data + k, w->plen);
		}
	}
}

static short wire_events(const struct wire *w)
{
	return POLLIN | (w->pending ? POLLOUT : 0);
}

/* ---- connections from listeners ---- */

struct conn {
	struct conn *next;
	struct wire wire;
	struct loop_watch w;
};

static struct conn *conns;

static void conn_close(struct conn *c)
{
	for (struct conn **p = &conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	loop_remove(tloop, &c->w);
	wire_reset(&c->wire);
	close(c->wire.fd);
	free(c);
}

static void conn_event(struct loop_watch *w, short revents)
{
	struct conn *c = w->data;
	uint8_t buf[READ_CHUNK];

	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	/* A full read may have more behind it: take a few before polling again. */
	for (int i = 0; i < 4; i++) {
		ssize_t n = read(c->wire.fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			log_debug("connection closed by the peer");
			conn_close(c);
			return;
		}
		if (n < 0)
			return;
		if (session_recv(c->wire.session, buf, (size_t)n) < 0) {
			log_debug("connection: protocol error, closing");
			return;
		}
		if ((size_t)n < sizeof(buf))
			return;
	}
}

static void conns_prepare(void *data)
{
	struct conn *next;
	(void)data;
	for (struct conn *c = conns; c; c = next) {
		next = c->next;
		if (wire_flush(&c->wire) < 0 || session_done(c->wire.session)) {
			conn_close(c);
			continue;
		}
		c->w.events = wire_events(&c->wire);
	}
}

struct listener {
	struct listener *next;
	struct loop_watch w;
	const char *what;
};

static struct listener *listeners;

static void on_accept(struct loop_watch *w, short revents)
{
	struct listener *li = w->data;
	struct conn *c;
	int fd;

	(void)revents;
	fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning("%s: accept: %m", li->what);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->wire.fd = fd;
	if (session_new(tloop, &tcfg.session, &c->wire.session) < 0) {
		log_warning("%s: cannot create a session", li->what);
		close(fd);
		free(c);
		return;
	}
	loop_watch_init(&c->w, fd, conn_event, c);
	c->w.events = POLLIN;
	loop_add(tloop, &c->w);
	c->next = conns;
	conns = c;
	log_debug("%s: new connection", li->what);
}

static struct listener *listener_add(int fd, const char *what)
{
	struct listener *li = xcalloc(1, sizeof(*li));
	li->what = what;
	loop_watch_init(&li->w, fd, on_accept, li);
	li->w.events = POLLIN;
	loop_add(tloop, &li->w);
	li->next = listeners;
	listeners = li;
	return li;
}

/* Bound and listening under a temporary name, then renamed into place: whoever sees the
 * path can connect. */
static int unix_listen(const char *path, int backlog)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.tmp", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0 ||
	    rename(sa.sun_path, path) < 0) {
		int r = -errno;
		unlink(sa.sun_path);
		close(fd);
		return r;
	}
	return fd;
}

/* vsock: the guest may have no vsock device, or its driver may arrive later. */
static struct loop_watch vsock_retry;

static void vsock_try(struct loop_watch *w)
{
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK, .svm_port = AGENT_VSOCK_PORT, .svm_cid = VMADDR_CID_ANY};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		static bool told;
		if (!told)
			log_info(
			    "no vsock here (%m): serving the serial port only; retrying every %d s",
			    VSOCK_RETRY_MS / 1000);
		told = true;
		loop_set_timer(w, VSOCK_RETRY_MS, vsock_try);
		return;
	}
	loop_remove(tloop, w);
	listener_add(fd, "vsock");
	log_info("listening on vsock port %d", AGENT_VSOCK_PORT);
}

/* ---- the serial link ---- */

enum link_state { LINK_DISCONNECTED, LINK_SYNC, LINK_ACTIVE };

static struct link {
	bool enabled;
	bool device; /* a character device (virtio port), else a listening socket */
	const char *path;
	int lfd; /* --serial-listen */
	struct loop_watch w, wl, timer;
	enum link_state state;
	struct agent_grpc_preface_scan scan;
	struct wire wire;
	unsigned sessions;
} slink = {.lfd = -1, .wire.fd = -1};

static void link_check(struct loop_watch *w);

static void link_set_async(bool on)
{
	int fl = fcntl(slink.wire.fd, F_GETFL);
	if (fl < 0)
		return;
	if (on)
		fcntl(slink.wire.fd, F_SETOWN, getpid());
	fcntl(slink.wire.fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

static void link_enter_sync(void)
{
	wire_reset(&slink.wire);
	slink.state = LINK_SYNC;
	agent_grpc_preface_reset(&slink.scan);
	slink.w.events = POLLIN;
}

/* The host went away: drop the session (its commands die) and wait for it to come back. */
static void link_disconnect(void)
{
	if (slink.wire.session)
		log_info("serial: host disconnected, session reset");
	else
		log_debug("serial: host disconnected");
	wire_reset(&slink.wire);
	slink.state = LINK_DISCONNECTED;
	slink.w.events = 0;
	if (slink.device) {
		link_set_async(true);
		loop_set_timer(&slink.timer, PORT_RECHECK_MS, link_check);
	} else {
		loop_remove(tloop, &slink.w);
		close(slink.wire.fd);
		slink.wire.fd = -1;
		slink.wl.events = POLLIN;
	}
}

/* A session from the preface on: the preface itself, then what followed it. */
static bool link_start_session(void)
{
	static const uint8_t preface[] = NGHTTP2_CLIENT_MAGIC;
	if (session_new(tloop, &tcfg.session, &slink.wire.session) < 0) {
		log_warning("serial: cannot create a session");
		return false;
	}
	slink.sessions++;
	log_info("serial: session %u started", slink.sessions);
	slink.state = LINK_ACTIVE;
	session_recv(slink.wire.session, preface, NGHTTP2_CLIENT_MAGIC_LEN);
	return true;
}

/* Feed bytes read from the port. */
static void link_feed(const uint8_t *p, size_t n)
{
	size_t end;
	int r;

	if (slink.state == LINK_SYNC) {
		if (!agent_grpc_preface_sync(&slink.scan, p, n, &end) || !link_start_session())
			return;
		p += end;
		n -= end;
	}
	if (!n || slink.state != LINK_ACTIVE)
		return;
	r = session_recv(slink.wire.session, p, n);
	if (session_goaway_received(slink.wire.session)) {
		log_info("serial: host sent GOAWAY, session reset");
		link_enter_sync();
		return;
	}
	if (r == 0 && session_alive(slink.wire.session)) {
		agent_grpc_preface_keep(&slink.scan, p, n);
		return;
	}
	/* The session broke. If a host reconnected before we saw it leave, its preface is in
	 * what broke it: start over from there instead of waiting for the host's timeout. */
	if (agent_grpc_preface_find(&slink.scan, p, n, &end)) {
		log_info("serial: new host preface inside session %u, session reset",
			 slink.sessions);
		link_enter_sync();
		if (link_start_session())
			link_feed(p + end, n - end);
		return;
	}
	log_info("serial: protocol error in session %u, session reset", slink.sessions);
	/* Its GOAWAY goes out in prepare, then back to SYNC. */
}

static void link_event(struct loop_watch *w, short revents)
{
	uint8_t buf[READ_CHUNK];
	ssize_t n;

	(void)w;
	if (!(revents & (POLLIN | POLLHUP | POLLERR)) || slink.state == LINK_DISCONNECTED)
		return;
	n = read(slink.wire.fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (n < 0)
			log_info("serial: read: %m");
		link_disconnect();
		if (n < 0 && slink.device) {
			/* Unplugged (ENODEV): open it afresh once it is back. */
			loop_remove(tloop, &slink.w);
			close(slink.wire.fd);
			slink.wire.fd = -1;
		}
		return;
	}
	link_feed(buf, (size_t)n);
}

static void link_prepare(void *data)
{
	(void)data;
	if (slink.state != LINK_ACTIVE)
		return;
	if (wire_flush(&slink.wire) < 0) {
		link_disconnect();
		return;
	}
	if (session_done(slink.wire.session)) {
		log_info("serial: session %u over (HTTP/2 connection closed), session reset",
			 slink.sessions);
		link_enter_sync();
		return;
	}
	slink.w.events = wire_events(&slink.wire);
}

/* Open the port; without udev (a busybox initramfs) /dev/virtio-ports/NAME does not exist,
 * so find the vportNpM whose sysfs name matches. */
static int open_port(const char *path)
{
	const int flags = O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	const char *prefix = "/dev/virtio-ports/";
	char sys[320], name[128], dev[300];
	int fd = open(path, flags);
	DIR *d;
	struct dirent *de;

	if (fd >= 0 || errno != ENOENT || strncmp(path, prefix, strlen(prefix)) != 0)
		return fd;
	d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(sys, sizeof(sys), "/sys/class/virtio-ports/%s/name", de->d_name);
		f = fopen(sys, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f) && (name[strcspn(name, "\n")] = 0, 1) &&
		    strcmp(name, path + strlen(prefix)) == 0) {
			snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
			fd = open(dev, flags);
		}
		fclose(f);
		if (fd >= 0)
			break;
	}
	closedir(d);
	return fd;
}

/* A virtio port reports POLLHUP while no host is connected. */
static void link_check(struct loop_watch *w)
{
	struct pollfd pfd;
	(void)w;
	if (!slink.device || slink.state != LINK_DISCONNECTED)
		return;
	if (slink.wire.fd < 0) {
		int fd = open_port(slink.path);
		if (fd < 0) {
			static bool told;
			if (!told)
				log_info("serial: no '%s' yet (%m), waiting for it", slink.path);
			told = true;
			loop_set_timer(&slink.timer, PORT_REOPEN_MS, link_check);
			return;
		}
		slink.wire.fd = fd;
		loop_watch_init(&slink.w, fd, link_event, NULL);
		loop_add(tloop, &slink.w);
		log_info("serial: opened '%s'", slink.path);
	}
	pfd = (struct pollfd){.fd = slink.wire.fd, .events = POLLIN};
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		link_set_async(true);
		loop_set_timer(&slink.timer, PORT_RECHECK_MS, link_check);
		return;
	}
	link_set_async(false);
	loop_set_timer(&slink.timer, 0, NULL);
	log_debug("serial: host connected");
	link_enter_sync();
}

static void link_accept(struct loop_watch *w, short revents)
{
	int fd;
	(void)revents;
	if (slink.wire.fd >= 0)
		return;
	fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	slink.wire.fd = fd;
	loop_watch_init(&slink.w, fd, link_event, NULL);
	loop_add(tloop, &slink.w);
	/* One host at a time, like QEMU's chardev: the next waits in the backlog. */
	slink.wl.events = 0;
	log_debug("serial: host connected");
	link_enter_sync();
}

void transport_poke(void)
{
	if (slink.enabled && slink.device && slink.state == LINK_DISCONNECTED)
		link_check(&slink.timer);
}

int transport_start(struct loop *l, const struct transport_config *cfg)
{
	tloop = l;
	tcfg = *cfg;
	loop_add_prepare(l, conns_prepare, NULL);
	loop_add_prepare(l, link_prepare, NULL);

	if (cfg->listen_unix) {
		int fd = unix_listen(cfg->listen_unix, 64);
		if (fd < 0)
			return log_error_errno(fd, "cannot listen on '%s'", cfg->listen_unix);
		listener_add(fd, "unix");
		log_info("listening on '%s'", cfg->listen_unix);
	}
	if (cfg->serial_device || cfg->serial_listen) {
		slink.enabled = true;
		slink.state = LINK_DISCONNECTED;
		loop_watch_init(&slink.timer, -1, NULL, NULL);
		loop_add(l, &slink.timer);
	}
	if (cfg->serial_listen) {
		slink.path = cfg->serial_listen;
		slink.lfd = unix_listen(slink.path, 4);
		if (slink.lfd < 0)
			return log_error_errno(slink.lfd, "cannot listen on '%s'", slink.path);
		loop_watch_init(&slink.wl, slink.lfd, link_accept, NULL);
		slink.wl.events = POLLIN;
		loop_add(l, &slink.wl);
		log_info("serial: emulated port at '%s'", slink.path);
	} else if (cfg->serial_device) {
		slink.device = true;
		slink.path = cfg->serial_device;
		link_check(&slink.timer);
	}
	if (cfg->vsock) {
		loop_watch_init(&vsock_retry, -1, NULL, NULL);
		loop_add(l, &vsock_retry);
		vsock_try(&vsock_retry);
	}
	return 0;
}

void transport_stop(void)
{
	while (conns) {
		session_terminate(conns->wire.session);
		(void)wire_flush(&conns->wire);
		conn_close(conns);
	}
	if (slink.wire.session) {
		session_terminate(slink.wire.session);
		(void)wire_flush(&slink.wire);
	}
	wire_reset(&slink.wire);
	while (listeners) {
		struct listener *li = listeners;
		listeners = li->next;
		loop_remove(tloop, &li->w);
		close(li->w.fd);
		free(li);
	}
	if (tcfg.listen_unix)
		unlink(tcfg.listen_unix);
	if (tcfg.serial_listen)
		unlink(tcfg.serial_listen);
}
