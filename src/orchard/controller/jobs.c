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
