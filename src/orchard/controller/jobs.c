// SPDX-License-Identifier: Apache-2.0
/*
 * The API threads: HTTP requests run here so that their etcd round trips (a few ms each,
 * seconds when a member is going away) happen in parallel and never stall the event loop,
 * which keeps moving WebSocket traffic meanwhile.
 */
#include <errno.h>
#include <stdlib.h>

#include "orchard/controller/internal.h"
#include "util/alloc.h"

static void *job_thread(void *userdata)
{
	struct controller *c = userdata;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->jobs)
			pthread_cond_wait(&c->jobs_cond, &c->lock);
		struct api_job *j = c->jobs;
		c->jobs = j->next;
		if (!c->jobs)
			c->jobs_tail = &c->jobs;
		pthread_mutex_unlock(&c->lock);

		j->next = NULL;
		api_run_job(c, j);

		pthread_mutex_lock(&c->lock);
		*c->done_tail = j;
		c->done_tail = &j->next;
		pthread_mutex_unlock(&c->lock);
		controller_wake(c);
	}
	return NULL;
}

int jobs_start(struct controller *c, int nthreads)
{
	c->jobs_tail = &c->jobs;
	c->done_tail = &c->done;
	pthread_cond_init(&c->jobs_cond, NULL);
	for (int i = 0; i < nthreads; i++) {
		pthread_t t;
		int r = -pthread_create(&t, NULL, job_thread, c);
		if (r < 0)
			return r;
		pthread_detach(t);
	}
	return 0;
}

void jobs_submit(struct controller *c, struct api_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&c->lock);
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	pthread_cond_signal(&c->jobs_cond);
	pthread_mutex_unlock(&c->lock);
}

struct api_job *jobs_take_done(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	struct api_job *j = c->done;
	c->done = NULL;
	c->done_tail = &c->done;
	pthread_mutex_unlock(&c->lock);
	return j;
}

/* ---- errands of the event loop ---- */

static void *errand_thread(void *userdata)
{
	struct controller *c = userdata;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->errands)
			pthread_cond_wait(&c->errands_cond, &c->lock);
		struct errand *e = c->errands;
		c->errands = e->next;
		if (!c->errands)
			c->errands_tail = &c->errands;
		pthread_mutex_unlock(&c->lock);

		e->next = NULL;
		e->run(c, e);
		if (!e->done) {
			e->release(e);
			continue;
		}
		pthread_mutex_lock(&c->lock);
		*c->errands_done_tail = e;
		c->errands_done_tail = &e->next;
		pthread_mutex_unlock(&c->lock);
		controller_wake(c);
	}
	return NULL;
}

int errands_start(struct controller *c)
{
	c->errands_tail = &c->errands;
	c->errands_done_tail = &c->errands_done;
	pthread_cond_init(&c->errands_cond, NULL);
	pthread_t t;
	int r = -pthread_create(&t, NULL, errand_thread, c);
	if (r == 0)
		pthread_detach(t);
	return r;
}

void errand_submit(struct controller *c, struct errand *e)
{
	e->next = NULL;
	pthread_mutex_lock(&c->lock);
	*c->errands_tail = e;
	c->errands_tail = &e->next;
	pthread_cond_signal(&c->errands_cond);
	pthread_mutex_unlock(&c->lock);
}

void errands_finish(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	struct errand *e = c->errands_done;
	c->errands_done = NULL;
	c->errands_done_tail = &c->errands_done;
	pthread_mutex_unlock(&c->lock);
	while (e) {
		struct errand *next = e->next;
		e->done(c, e);
		e->release(e);
		e = next;
	}
}
