/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Transfer progress on stderr, shared by threads: "NN% 123.4 MB/s ETA 0:12". On a TTY the line
 * is redrawn in place (ESC[1A \r ESC[J, as Tart does); when CI is set (or stderr is not a TTY)
 * each update is a new line. Updates are printed at most once per second and only when the
 * text changes.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct oci_progress {
	pthread_mutex_t lock;
	uint64_t total, done;
	double start, last;
	char last_text[96];
	bool tty, enabled, drawn;
};

void oci_progress_init(struct oci_progress *p, uint64_t total);
/* Count n more bytes done; thread-safe. */
void oci_progress_add(struct oci_progress *p, uint64_t n);
/* Print the final 100% line. */
void oci_progress_finish(struct oci_progress *p);
void oci_progress_release(struct oci_progress *p);

/*
 * With TART_TRANSFER_STATS set: log where the process's CPU went so far (util/cpustat.h), as
 * "transfer CPU: hashing 1.23 s, ..., other 0.12 s of 3.45 CPU s".
 */
void oci_progress_cpu_summary(void);
