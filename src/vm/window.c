// SPDX-License-Identifier: Apache-2.0
#include "vm/window.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/log.h"
#include "util/run.h"
#include "util/strbuf.h"

#define CONNECT_TIMEOUT_MS 2000

enum vm_window_choice vm_window_choose(enum vm_graphics g, bool vnc, bool have_display)
{
	/* Tart: --vnc replaces the window unless --graphics asks for both. */
	if (g == VM_GRAPHICS_OFF || (g == VM_GRAPHICS_AUTO && vnc))
		return VM_WINDOW_NONE;
	if (have_display)
		return VM_WINDOW_OPEN;
	return g == VM_GRAPHICS_ON ? VM_WINDOW_NEED_DISPLAY : VM_WINDOW_NONE;
}

/* Non-blocking, so a full listen backlog (EAGAIN: somebody listens) cannot stall us. */
static int connect_unix(const char *path, bool abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(path), off = abstract ? 1 : 0;
	if (n + off >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path + off, path, n);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + off + n);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negerrno();
	if (connect(fd, (struct sockaddr *)&sa, len) < 0 && errno != EAGAIN)
		return negerrno();
	return 0;
}

static int connect_tcp(const char *host, unsigned port)
{
	char service[16];
	snprintf(service, sizeof(service), "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(host, service, &hints, &res) != 0)
		return -EHOSTUNREACH;
	int r = -ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && r < 0; ai = ai->ai_next) {
		_cleanup_close_ int fd =
		    socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			r = 0;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int err = ETIMEDOUT;
			socklen_t el = sizeof(err);
			if (poll(&p, 1, CONNECT_TIMEOUT_MS) == 1)
				(void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			r = err ? -err : 0;
		} else {
			r = negerrno();
		}
	}
	freeaddrinfo(res);
	return r;
}

/* DISPLAY: "[HOST]:N[.S]"; no host or "unix" = the local socket (abstract or in /tmp). */
static int probe_x11(const char *display)
{
	const char *colon = strrchr(display, ':');
	if (!colon)
		return -EINVAL;
	char *end;
	unsigned long n = strtoul(colon + 1, &end, 10);
	if (end == colon + 1 || (*end && *end != '.') || n > 59535)
		return -EINVAL;
	_cleanup_free_ char *host = xstrndup(display, (size_t)(colon - display));
	if (*host == '/') /* a socket path (XQuartz's launchd style) */
		return connect_unix(display, false);
	if (*host && !streq(host, "unix"))
		return connect_tcp(host, 6000 + (unsigned)n);
	_cleanup_free_ char *path = xasprintf("/tmp/.X11-unix/X%lu", n);
	int r = connect_unix(path, true);
	return r < 0 ? connect_unix(path, false) : 0;
}

static int probe_wayland(const char *name)
{
	if (*name == '/')
		return connect_unix(name, false);
	const char *dir = getenv("XDG_RUNTIME_DIR");
	if (!dir || !*dir)
		return -ENOENT;
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	return connect_unix(path, false);
}

int vm_window_probe_display(char **ret_why)
{
	const char *w = getenv("WAYLAND_DISPLAY"), *x = getenv("DISPLAY");
	if ((!w || !*w) && (!x || !*x)) {
		if (ret_why)
			*ret_why = xstrdup("neither DISPLAY nor WAYLAND_DISPLAY is set");
		return -ENXIO;
	}
	/* Wayland first, as GTK tries it. */
	_cleanup_strbuf_ struct strbuf why = STRBUF_INIT;
	int r = -ENXIO;
	if (w && *w) {
		r = probe_wayland(w);
		if (r == 0)
			return 0;
		strbuf_putf(&why, "cannot connect to WAYLAND_DISPLAY '%s' (%s)", w, strerror(-r));
	}
	if (x && *x) {
		r = probe_x11(x);
		if (r == 0)
			return 0;
		strbuf_putf(&why, "%scannot connect to DISPLAY '%s' (%s)", why.len ? ", " : "", x,
			    r == -EINVAL ? "not of the form [HOST]:N[.S]" : strerror(-r));
	}
	if (ret_why)
		*ret_why = strbuf_detach(&why, NULL);
	return r;
}

#if defined(__x86_64__)
#define DEBIAN_QEMU_MODULES "/usr/lib/x86_64-linux-gnu/qemu"
#elif defined(__aarch64__)
#define DEBIAN_QEMU_MODULES "/usr/lib/aarch64-linux-gnu/qemu"
#endif

/* "gtk" is a loadable module of QEMU in Debian: the package qemu-system-gui. */
static bool qemu_has_gtk(const char *qemu_bin)
{
#ifdef DEBIAN_QEMU_MODULES
	/*
	 * Debian's own QEMU: its module directory tells at once. Asking QEMU (below) loads every
	 * display module, GTK included: 0.2-0.6 s on a busy machine.
	 */
	if (strneq(qemu_bin, "/usr/bin/qemu-system-", 21) && !getenv("QEMU_MODULE_DIR") &&
	    access(DEBIAN_QEMU_MODULES "/ui-gtk.so", R_OK) == 0)
		return true;
#endif
	/* Any other QEMU lists the display types it can load. */
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, qemu_bin, "-display", "help", NULL);
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	_cleanup_strbuf_ struct strbuf err = STRBUF_INIT;
	strbuf_init(&out, 4096);
	strbuf_init(&err, 4096);
	int status = -1;
	if (run_argv(&argv, &out, &err, &status) < 0 || status != 0)
		return false;
	return strstr(out.buf, "\ngtk\n") != NULL;
}

int vm_window_decide(enum vm_graphics g, bool vnc, const char *qemu_bin, bool *ret_window)
{
	if (vm_window_choose(g, vnc, true) == VM_WINDOW_NONE) {
		*ret_window = false;
		return 0;
	}
	_cleanup_free_ char *why = NULL;
	int k = vm_window_probe_display(&why);
	switch (vm_window_choose(g, vnc, k == 0)) {
	case VM_WINDOW_NEED_DISPLAY:
		log_error("--graphics needs a display, but %s; --vnc shows the VM's screen on a "
			  "host without one",
			  why);
		return -ENXIO;
	case VM_WINDOW_NONE:
		if (k != -ENXIO)
			log_notice("no VM window: %s", why);
		*ret_window = false;
		return 0;
	case VM_WINDOW_OPEN:
		break;
	}
	if (!qemu_has_gtk(qemu_bin)) {
		if (g == VM_GRAPHICS_ON) {
			log_error(
			    "cannot open the VM window: QEMU's GTK display is missing: install "
			    "the Debian package 'qemu-system-gui'");
			return -ENOPKG;
		}
		log_notice(
		    "no VM window: QEMU's GTK display is missing (install the Debian "
		    "package 'qemu-system-gui' to see the VM's screen, or pass --no-graphics)");
		*ret_window = false;
		return 0;
	}
	*ret_window = true;
	return 0;
}

void vm_window_on_event(const char *name, json_t *data, void *userdata)
{
	struct vm_window *w = userdata;
	const char *reason = json_string_value(json_object_get(data, "reason"));
	/*
	 * QEMU's GTK window (its close button, or Machine > Quit) calls QMP's quit internally.
	 * tart's own "quit" produces the same event, but only after it stopped listening.
	 */
	if (!w->open || w->closed || !streq(name, "SHUTDOWN") || !reason ||
	    !streq(reason, "host-qmp-quit"))
		return;
	w->closed = true;
	log_notice("the VM window was closed");
	fprintf(stderr, "Stopping VM...\n");
}

void vm_window_explain_failure(const struct vm_window *w, const char *stderr_tail)
{
	if (w->open && strstr(stderr_tail, "gtk initialization failed"))
		log_error("QEMU cannot open the VM window on the display (DISPLAY '%s'): make sure "
			  "this user may use it (XAUTHORITY), or pass --no-graphics",
			  getenv("DISPLAY") ? getenv("DISPLAY") : "");
}

void vm_window_watch(struct vm_window *w, struct qemu_qmp *q)
{
	/* Room for four listeners: the window is the first, so there is always a slot. */
	(void)qemu_qmp_watch(q, vm_window_on_event, w);
}
