// SPDX-License-Identifier: Apache-2.0
#include "oci/retry.h"

#include "util/macro.h"

void oci_retry_init(struct oci_retry *b, unsigned first_delay_ms)
{
	*b = (struct oci_retry){.first_delay_ms = first_delay_ms};
	pthread_mutex_init(&b->lock, NULL);
}

void oci_retry_release(struct oci_retry *b)
{
	pthread_mutex_destroy(&b->lock);
}

int64_t oci_retry_failed(struct oci_retry *b, uint64_t progress, long retry_after_s,
			 unsigned *ret_failures)
{
	pthread_mutex_lock(&b->lock);
	bool counted = progress < OCI_RETRY_REFUND;
	if (counted && b->failures < OCI_RETRY_FAILURES)
		b->failures++;
	unsigned n = b->failures;
	pthread_mutex_unlock(&b->lock);
	if (ret_failures)
		*ret_failures = n;
	if (n >= OCI_RETRY_FAILURES)
		return -1;
	if (retry_after_s >= 0)
		return (int64_t)MIN(retry_after_s, (long)OCI_RETRY_MAX_RETRY_AFTER_S) * 1000;
	uint64_t ms = (uint64_t)b->first_delay_ms << (n > 0 ? n - 1 : 0);
	return (int64_t)MIN(ms, (uint64_t)OCI_RETRY_MAX_DELAY_MS);
}

unsigned oci_retry_failures(struct oci_retry *b)
{
	pthread_mutex_lock(&b->lock);
	unsigned n = b->failures;
	pthread_mutex_unlock(&b->lock);
	return n;
}

bool oci_retry_claim_report(struct oci_retry *b)
{
	pthread_mutex_lock(&b->lock);
	bool first = !b->reported;
	b->reported = true;
	pthread_mutex_unlock(&b->lock);
	return first;
}
