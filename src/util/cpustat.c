// SPDX-License-Identifier: Apache-2.0
#include "util/cpustat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DEPTH 16

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool enabled;
static _Atomic uint64_t charged_ns[CPUSTAT_N];

static _Thread_local struct {
	unsigned depth; /* 0: nothing pushed yet (OTHER) */
	enum cpustat_cat stack[DEPTH];
	uint64_t last_ns;
} t;

static void init(void)
{
	const char *v = getenv("TART_TRANSFER_STATS");
	enabled = v && *v && strcmp(v, "0") != 0;
}

bool cpustat_enabled(void)
{
	pthread_once(&once, init);
	return enabled;
}

static uint64_t thread_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Charge the current category (deeper than DEPTH: the deepest one kept) */
static void charge(void)
{
	uint64_t now = thread_ns();
	enum cpustat_cat c =
	    t.depth ? t.stack[(t.depth < DEPTH ? t.depth : DEPTH) - 1] : CPUSTAT_OTHER;
	atomic_fetch_add(&charged_ns[c], now - t.last_ns);
	t.last_ns = now;
}

void cpustat_push(enum cpustat_cat c)
{
	if (!cpustat_enabled())
		return;
	if (t.depth == 0 && t.last_ns == 0)
		t.last_ns = thread_ns(); /* a new thread: its earlier time is not ours to place */
	charge();
	if (t.depth < DEPTH)
		t.stack[t.depth] = c;
	t.depth++;
}

void cpustat_pop(void)
{
	if (!cpustat_enabled() || t.depth == 0)
		return;
	charge();
	t.depth--;
}

static double seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

void cpustat_summary(struct strbuf *out)
{
	static const char *const names[CPUSTAT_N] = {
	    [CPUSTAT_OTHER] = "other",		[CPUSTAT_HASH] = "hashing",
	    [CPUSTAT_COMPRESS] = "compression", [CPUSTAT_DECOMPRESS] = "decompression",
	    [CPUSTAT_READ] = "reads",		[CPUSTAT_WRITE] = "writes",
	    [CPUSTAT_NET] = "network",
	};
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double total = seconds(&ru.ru_utime) + seconds(&ru.ru_stime), claimed = 0;
	for (int c = CPUSTAT_OTHER + 1; c < CPUSTAT_N; c++) {
		double s = (double)atomic_load(&charged_ns[c]) / 1e9;
		claimed += s;
		strbuf_putf(out, "%s %.2f s, ", names[c], s);
	}
	strbuf_putf(out, "%s %.2f s of %.2f CPU s", names[CPUSTAT_OTHER],
		    total > claimed ? total - claimed : 0, total);
}
