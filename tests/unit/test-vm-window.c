// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/strbuf.h"
#include "vm/window.h"

/* Tart's rules: --vnc replaces the window unless --graphics; --graphics needs a display. */
static void test_choose(void **state)
{
	(void)state;
	assert_int_equal(vm_window_choose(VM_GRAPHICS_AUTO, false, true), VM_WINDOW_OPEN);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_AUTO, false, false), VM_WINDOW_NONE);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_AUTO, true, true), VM_WINDOW_NONE);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_OFF, false, true), VM_WINDOW_NONE);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_OFF, true, true), VM_WINDOW_NONE);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_ON, false, true), VM_WINDOW_OPEN);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_ON, true, true), VM_WINDOW_OPEN);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_ON, false, false), VM_WINDOW_NEED_DISPLAY);
	assert_int_equal(vm_window_choose(VM_GRAPHICS_ON, true, false), VM_WINDOW_NEED_DISPLAY);
}

static int probe(void)
{
	char *why = NULL;
	int r = vm_window_probe_display(&why);
	assert_true(r == 0 ? why == NULL : why != NULL);
	free(why);
	return r;
}

/* A listening unix socket at path (abstract: in the abstract namespace). */
static int listen_unix(const char *path, bool abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t off = abstract ? 1 : 0;
	memcpy(sa.sun_path + off, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + off +
					  strlen(path) + !abstract)),
			 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* The display must answer: a variable naming nothing that listens is no display. */
static void test_probe_display(void **state)
{
	(void)state;
	char n[16], dir[] = "/tmp/test-vm-window.XXXXXX";
	assert_non_null(mkdtemp(dir));
	unsetenv("WAYLAND_DISPLAY");
	unsetenv("DISPLAY");
	assert_int_equal(probe(), -ENXIO);
	setenv("DISPLAY", "", 1);
	assert_int_equal(probe(), -ENXIO);

	/* X11 on the local abstract socket /tmp/.X11-unix/XN (a number nobody uses). */
	unsigned num = 40000 + (unsigned)getpid() % 10000;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/.X11-unix/X%u", num);
	snprintf(n, sizeof(n), ":%u.0", num);
	setenv("DISPLAY", n, 1);
	assert_true(probe() < 0);
	int fd = listen_unix(path, true);
	assert_int_equal(probe(), 0);
	snprintf(n, sizeof(n), "unix:%u", num);
	setenv("DISPLAY", n, 1);
	assert_int_equal(probe(), 0);
	close(fd);
	assert_true(probe() < 0);
	setenv("DISPLAY", "no-number", 1);
	assert_int_equal(probe(), -EINVAL);
	setenv("DISPLAY", ":x", 1);
	assert_int_equal(probe(), -EINVAL);

	/* X11 over TCP: HOST:N is port 6000+N. */
	int t = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);
	assert_int_equal(bind(t, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(t, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(listen(t, 4), 0);
	unsigned port = ntohs(sin.sin_port);
	if (port > 6000) {
		char tcp[32];
		snprintf(tcp, sizeof(tcp), "127.0.0.1:%u.0", port - 6000);
		setenv("DISPLAY", tcp, 1);
		assert_int_equal(probe(), 0);
		close(t);
		assert_int_equal(probe(), -ECONNREFUSED);
	} else {
		close(t);
	}

	/* Wayland: a name under XDG_RUNTIME_DIR or an absolute path; tried before DISPLAY. */
	setenv("DISPLAY", ":x", 1);
	setenv("XDG_RUNTIME_DIR", dir, 1);
	setenv("WAYLAND_DISPLAY", "wayland-test", 1);
	assert_true(probe() < 0);
	char wl[96];
	snprintf(wl, sizeof(wl), "%s/wayland-test", dir);
	fd = listen_unix(wl, false);
	assert_int_equal(probe(), 0);
	setenv("WAYLAND_DISPLAY", wl, 1);
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(probe(), 0);
	close(fd);
	unlink(wl);
	assert_true(probe() < 0);
	unsetenv("WAYLAND_DISPLAY");
	unsetenv("DISPLAY");
	rmdir(dir);
}

/* QEMU's GTK window quits QEMU on close: the SHUTDOWN event of reason host-qmp-quit. */
static void test_close_event(void **state)
{
	(void)state;
	struct vm_window w = {.open = true};
	json_t *guest = json_pack("{s:b,s:s}", "guest", 1, "reason", "guest-shutdown");
	json_t *quit = json_pack("{s:b,s:s}", "guest", 0, "reason", "host-qmp-quit");
	vm_window_on_event("SHUTDOWN", guest, &w);
	vm_window_on_event("STOP", NULL, &w);
	vm_window_on_event("POWERDOWN", NULL, &w);
	assert_false(w.closed);
	vm_window_on_event("SHUTDOWN", quit, &w);
	assert_true(w.closed);

	/* Without a window the same event is not a window's closing. */
	struct vm_window none = {.open = false};
	vm_window_on_event("SHUTDOWN", quit, &none);
	assert_false(none.closed);
	json_decref(guest);
	json_decref(quit);
}

static void count_event(const char *name, json_t *data, void *userdata)
{
	(void)name;
	(void)data;
	(*(int *)userdata)++;
}

/* The window listens beside another module's on_event (both get every event) and beside
 * more listeners; it can be added before QMP is opened. */
static void test_close_event_through_qmp(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct qemu_qmp q = {.fd = -1};
	struct vm_window w = {.open = true};
	int others = 0, more = 0;
	vm_window_watch(&w, &q);
	q.on_event = count_event;
	q.userdata = &others;
	assert_int_equal(qemu_qmp_watch(&q, count_event, &more), 0);
	q.fd = sv[0];
	strbuf_init(&q.in, 65536);
	static const char ev[] = "{\"event\": \"STOP\"}\n"
				 "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, "
				 "\"reason\": \"host-qmp-quit\"}}\n";
	assert_int_equal(write(sv[1], ev, sizeof(ev) - 1), (ssize_t)sizeof(ev) - 1);
	assert_true(qemu_qmp_poll_events(&q) >= 0);
	assert_true(w.closed);
	assert_int_equal(others, 2);
	assert_int_equal(more, 2);
	/* slots are bounded */
	assert_int_equal(qemu_qmp_watch(&q, count_event, &more), 0);
	assert_int_equal(qemu_qmp_watch(&q, count_event, &more), 0);
	assert_int_equal(qemu_qmp_watch(&q, count_event, &more), -ENOSPC);
	qemu_qmp_release(&q);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_choose),
	    cmocka_unit_test(test_probe_display),
	    cmocka_unit_test(test_close_event),
	    cmocka_unit_test(test_close_event_through_qmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
