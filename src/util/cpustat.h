/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Where a transfer's CPU time goes, measured: each thread keeps a stack of categories and, at
 * every switch, charges the CPU time it used since the last switch (CLOCK_THREAD_CPUTIME_ID) to
 * the category on top. Off unless TART_TRANSFER_STATS is set (then push and pull print a
 * summary): a disabled push/pop is one branch. Non-logging, thread-safe.
 */

#include <stdbool.h>

#include "util/strbuf.h"

enum cpustat_cat {
	CPUSTAT_OTHER, /* callbacks' glue and whatever nobody claimed */
	CPUSTAT_HASH,
	CPUSTAT_COMPRESS,
	CPUSTAT_DECOMPRESS,
	CPUSTAT_READ,  /* disk and temporary-file reads */
	CPUSTAT_WRITE, /* disk and temporary-file writes, fsync */
	CPUSTAT_NET,   /* HTTP: libcurl and the kernel's socket work */
	CPUSTAT_N,
};

bool cpustat_enabled(void);
/* Charge the time so far to the current category and make c the current one. */
void cpustat_push(enum cpustat_cat c);
/* Charge the time so far to the current category and return to the previous one. */
void cpustat_pop(void);
/*
 * "hashing 1.23 s, compression ..., other 0.12 s of 3.45 CPU s": the charged seconds per
 * category since the process started, and the process's whole CPU time (getrusage).
 */
void cpustat_summary(struct strbuf *out);
