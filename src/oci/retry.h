/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One retry budget per transfer operation (a pull, a push): every failed attempt of every
 * request it makes, in any thread, draws on the same budget, so retries never nest (request
 * attempts x layer restarts x whole-operation retries). A registry that fails every request
 * ends the operation after OCI_RETRY_FAILURES failed attempts plus their back-off; an attempt
 * that moved at least OCI_RETRY_REFUND bytes before it broke is free, so a long transfer over
 * a flaky network keeps going while a registry that stalls or trickles cannot keep it alive.
 *
 * Back-off: first_delay_ms doubled per failure up to OCI_RETRY_MAX_DELAY_MS, or the server's
 * Retry-After (capped at OCI_RETRY_MAX_RETRY_AFTER_S). Thread-safe. Non-logging.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define OCI_RETRY_FAILURES 5
#define OCI_RETRY_REFUND (64ULL << 20)
#define OCI_RETRY_MAX_DELAY_MS 30000
#define OCI_RETRY_MAX_RETRY_AFTER_S 60

struct oci_retry {
	pthread_mutex_t lock;
	unsigned first_delay_ms;
	unsigned failures; /* counted failures so far */
	bool reported;	   /* the operation's one error line has been printed */
};

void oci_retry_init(struct oci_retry *b, unsigned first_delay_ms);
void oci_retry_release(struct oci_retry *b);

/*
 * Account one failed attempt that delivered `progress` bytes; retry_after_s is the server's
 * Retry-After (-1: none). Returns the delay in ms to wait before the next attempt (the caller
 * sleeps), or -1 when the budget is spent. *ret_failures (optional) gets the count so far.
 */
int64_t oci_retry_failed(struct oci_retry *b, uint64_t progress, long retry_after_s,
			 unsigned *ret_failures);

/* Failures counted so far. */
unsigned oci_retry_failures(struct oci_retry *b);

/* True exactly once: for the caller that prints the operation's error line. */
bool oci_retry_claim_report(struct oci_retry *b);
