// SPDX-License-Identifier: Apache-2.0
#include "oci/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/cpustat.h"
#include "util/log.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void oci_progress_init(struct oci_progress *p, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->total = total;
	p->start = p->last = now();
	p->tty = !getenv("CI") && isatty(STDERR_FILENO);
	p->enabled = true;
}

static void render(struct oci_progress *p, double t, bool force)
{
	if (!force && t - p->last < 1.0)
		return;
	char text[96];
	unsigned pct = p->total ? (unsigned)(p->done * 100 / p->total) : 100;
	double el = t - p->start;
	double rate = el > 0 ? (double)p->done / el : 0;
	if (rate > 0 && p->done < p->total) {
		unsigned eta = (unsigned)((double)(p->total - p->done) / rate);
		snprintf(text, sizeof(text), "%u%% %.1f MB/s ETA %u:%02u", pct, rate / 1e6,
			 eta / 60, eta % 60);
	} else {
		snprintf(text, sizeof(text), "%u%% %.1f MB/s", pct, rate / 1e6);
	}
	p->last = t;
	if (strcmp(text, p->last_text) == 0)
		return;
	snprintf(p->last_text, sizeof(p->last_text), "%s", text);
	if (p->tty && p->drawn)
		fprintf(stderr, "\x1b[1A\r\x1b[J%s\n", text);
	else
		fprintf(stderr, "%s\n", text);
	p->drawn = true;
}

void oci_progress_add(struct oci_progress *p, uint64_t n)
{
	pthread_mutex_lock(&p->lock);
	p->done += n;
	if (p->enabled)
		render(p, now(), false);
	pthread_mutex_unlock(&p->lock);
}

void oci_progress_finish(struct oci_progress *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->enabled && p->done >= p->total)
		render(p, now(), true);
	pthread_mutex_unlock(&p->lock);
}

void oci_progress_release(struct oci_progress *p)
{
	pthread_mutex_destroy(&p->lock);
}

void oci_progress_cpu_summary(void)
{
	if (!cpustat_enabled())
		return;
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	cpustat_summary(&sb);
	log_info("transfer CPU: %s", sb.buf);
}
