/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent's single-threaded event loop: poll(2) over registered file descriptors, one
 * deadline per watch, and "prepare" hooks run before every poll (where connections flush
 * their output and commands decide whether to read more). Watches are owned by their
 * users; the loop only keeps pointers, so a user removes its watch before freeing it.
 * Removal during dispatch is safe.
 */

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;

typedef void (*loop_fd_cb)(struct loop_watch *w, short revents);
typedef void (*loop_timer_cb)(struct loop_watch *w);
typedef void (*loop_prepare_cb)(void *data);

struct loop_watch {
	int fd;	      /* -1: a pure timer */
	short events; /* POLLIN/POLLOUT wanted; 0 = not polled (POLLHUP/ERR ignored) */
	loop_fd_cb cb;
	uint64_t deadline_ms; /* 0 = none; monotonic, see loop_now_ms() */
	loop_timer_cb timer_cb;
	void *data;
	int slot; /* index in the loop, -1 when not added */
};

struct loop *loop_new(void);
void loop_free(struct loop *l);
void loop_watch_init(struct loop_watch *w, int fd, loop_fd_cb cb, void *data);
void loop_add(struct loop *l, struct loop_watch *w);
void loop_remove(struct loop *l, struct loop_watch *w);
/* Arm the watch's timer delay_ms from now (0 disarms). */
void loop_set_timer(struct loop_watch *w, uint64_t delay_ms, loop_timer_cb cb);
void loop_add_prepare(struct loop *l, loop_prepare_cb cb, void *data);
void loop_remove_prepare(struct loop *l, loop_prepare_cb cb, void *data);
/* Run prepare hooks, poll once (at most max_wait_ms, -1 = until something happens), dispatch.
 * Returns -errno when poll fails other than EINTR. */
int loop_run_once(struct loop *l, int max_wait_ms);
uint64_t loop_now_ms(void);
