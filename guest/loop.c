// SPDX-License-Identifier: Apache-2.0
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/macro.h"

struct prepare {
	loop_prepare_cb cb;
	void *data;
};

struct loop {
	struct loop_watch **w;
	size_t n, alloc;
	struct prepare *prep;
	size_t nprep, allocprep;
	struct pollfd *pfd;
	struct loop_watch **pw; /* the watch of each pfd entry */
	size_t pfd_alloc;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
	return xcalloc(1, sizeof(struct loop));
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	free(l->w);
	free(l->prep);
	free(l->pfd);
	free(l->pw);
	free(l);
}

void loop_watch_init(struct loop_watch *w, int fd, loop_fd_cb cb, void *data)
{
	*w = (struct loop_watch){.fd = fd, .cb = cb, .data = data, .slot = -1};
}

void loop_add(struct loop *l, struct loop_watch *w)
{
	if (w->slot >= 0)
		return;
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 16;
		l->w = xrealloc(l->w, l->alloc * sizeof(*l->w));
	}
	w->slot = (int)l->n;
	l->w[l->n++] = w;
}

void loop_remove(struct loop *l, struct loop_watch *w)
{
	if (w->slot < 0)
		return;
	/* Leave a hole; loop_run_once compacts after dispatch. */
	l->w[w->slot] = NULL;
	for (size_t i = 0; i < l->pfd_alloc; i++)
		if (l->pw && l->pw[i] == w)
			l->pw[i] = NULL;
	w->slot = -1;
}

void loop_set_timer(struct loop_watch *w, uint64_t delay_ms, loop_timer_cb cb)
{
	w->timer_cb = cb;
	w->deadline_ms = delay_ms ? loop_now_ms() + delay_ms : 0;
}

void loop_add_prepare(struct loop *l, loop_prepare_cb cb, void *data)
{
	if (l->nprep == l->allocprep) {
		l->allocprep = l->allocprep ? l->allocprep * 2 : 8;
		l->prep = xrealloc(l->prep, l->allocprep * sizeof(*l->prep));
	}
	l->prep[l->nprep++] = (struct prepare){cb, data};
}

void loop_remove_prepare(struct loop *l, loop_prepare_cb cb, void *data)
{
	for (size_t i = 0; i < l->nprep; i++)
		if (l->prep[i].cb == cb && l->prep[i].data == data) {
			memmove(&l->prep[i], &l->prep[i + 1],
				(l->nprep - i - 1) * sizeof(*l->prep));
			l->nprep--;
			return;
		}
}

static void compact(struct loop *l)
{
	size_t j = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->w[i]) {
			l->w[j] = l->w[i];
			l->w[j]->slot = (int)j;
			j++;
		}
	l->n = j;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	uint64_t now, next = 0;
	size_t np = 0;
	int timeout, r;

	/* Hooks may add or remove hooks: iterate over a snapshot count, re-checking bounds. */
	for (size_t i = 0; i < l->nprep; i++)
		l->prep[i].cb(l->prep[i].data);
	compact(l);
	if (l->n > l->pfd_alloc) {
		l->pfd_alloc = l->alloc;
		l->pfd = xrealloc(l->pfd, l->pfd_alloc * sizeof(*l->pfd));
		l->pw = xrealloc(l->pw, l->pfd_alloc * sizeof(*l->pw));
	}
	for (size_t i = 0; i < l->n; i++) {
		struct loop_watch *w = l->w[i];
		if (w->deadline_ms && (!next || w->deadline_ms < next))
			next = w->deadline_ms;
		if (w->fd < 0 || !w->events)
			continue;
		l->pfd[np] = (struct pollfd){.fd = w->fd, .events = w->events};
		l->pw[np++] = w;
	}
	timeout = max_wait_ms;
	if (next) {
		now = loop_now_ms();
		uint64_t d = next > now ? next - now : 0;
		if (timeout < 0 || d < (uint64_t)timeout)
			timeout = (int)MIN(d, (uint64_t)INT32_MAX);
	}
	r = poll(l->pfd, np, timeout);
	if (r < 0 && errno != EINTR)
		return -errno;
	for (size_t i = 0; r > 0 && i < np; i++) {
		struct loop_watch *w = l->pw[i];
		if (w && l->pfd[i].revents)
			w->cb(w, l->pfd[i].revents);
	}
	now = loop_now_ms();
	for (size_t i = 0; i < l->n; i++) {
		struct loop_watch *w = l->w[i];
		if (w && w->deadline_ms && w->deadline_ms <= now) {
			w->deadline_ms = 0;
			if (w->timer_cb)
				w->timer_cb(w);
		}
	}
	compact(l);
	return 0;
}
