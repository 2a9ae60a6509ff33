/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The VM window of `tart run`: whether one opens, and how its closing is recognised.
 *
 * Tart's rules: a window unless --no-graphics, or unless --vnc without --graphics. Ours add
 * the host: a window needs a display (DISPLAY or WAYLAND_DISPLAY naming a server that accepts
 * a connection) and QEMU's GTK display (Debian's qemu-system-gui). Without them the VM runs
 * headless, as before, with a notice when a display was named; with --graphics their absence
 * is an error.
 *
 * QEMU 7.2's GTK window quits QEMU when it is closed (the SHUTDOWN event says
 * "host-qmp-quit"), which is Tart's behaviour too (closing its window stops the VM at once);
 * vm_window_watch() notices it so that `run` can say what happened.
 */

#include <stdbool.h>

#include "qemu/qmp.h"

enum vm_graphics {
	VM_GRAPHICS_AUTO, /* neither flag: a window when the host can show one */
	VM_GRAPHICS_ON,	  /* --graphics: a window, even beside --vnc; an error without a display */
	VM_GRAPHICS_OFF,  /* --no-graphics */
};

enum vm_window_choice {
	VM_WINDOW_NONE,		/* run headless */
	VM_WINDOW_OPEN,		/* open the window */
	VM_WINDOW_NEED_DISPLAY, /* --graphics, but the host has no display: an error */
};

/* Tart's flag logic given whether the host has a display. Pure. */
enum vm_window_choice vm_window_choose(enum vm_graphics g, bool vnc, bool have_display);

/*
 * Whether the display named by the environment (WAYLAND_DISPLAY, relative to XDG_RUNTIME_DIR
 * unless absolute; DISPLAY as "[unix]:N[.S]" for the local socket or "HOST:N[.S]" for TCP port
 * 6000+N) accepts a connection. 0 when one does; -ENXIO when neither variable is set; another
 * -errno when none answers. *ret_why (allocated) says what was tried, on failure.
 */
int vm_window_probe_display(char **ret_why);

/*
 * The whole decision for `run`: the flags, the display, QEMU's GTK module (asking qemu_bin).
 * Logs the notices and errors. 0 with *ret_window set, or -ENXIO (--graphics without a
 * display) or -ENOPKG (--graphics without qemu-system-gui).
 */
int vm_window_decide(enum vm_graphics g, bool vnc, const char *qemu_bin, bool *ret_window);

/* Watches the QMP events of one run: closed turns true when the user closed the window. */
struct vm_window {
	bool open;
	bool closed;
};

/*
 * QEMU failed with stderr_tail: if its window could not open (a display that answers but
 * refuses this user, e.g. without XAUTHORITY), say what to do.
 */
void vm_window_explain_failure(const struct vm_window *w, const char *stderr_tail);

/* Listen to q's events (qemu_qmp_watch: q's on_event stays free for others; before or after
 * qemu_qmp_open). The window state must outlive q's use. */
void vm_window_watch(struct vm_window *w, struct qemu_qmp *q);
/* The handler itself, for tests: data is the event's "data" member (may be NULL). */
void vm_window_on_event(const char *name, json_t *data, void *userdata);
