// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "oci/retry.h"

/* Five failures in all, whoever makes them; back-off doubles from the first delay. */
static void test_budget_is_spent_after_five_failures(void **state)
{
	(void)state;
	struct oci_retry b;
	oci_retry_init(&b, 100);
	unsigned n = 0;
	assert_int_equal(oci_retry_failed(&b, 0, -1, &n), 100);
	assert_int_equal(n, 1);
	assert_int_equal(oci_retry_failed(&b, 10, -1, &n), 200);
	assert_int_equal(oci_retry_failed(&b, 0, -1, &n), 400);
	assert_int_equal(oci_retry_failures(&b), 3);
	assert_int_equal(oci_retry_failed(&b, 0, -1, &n), 800);
	assert_int_equal(oci_retry_failed(&b, 0, -1, &n), -1);
	assert_int_equal(n, OCI_RETRY_FAILURES);
	assert_int_equal(oci_retry_failures(&b), OCI_RETRY_FAILURES);
	/* spent stays spent, even for an attempt that made progress */
	assert_int_equal(oci_retry_failed(&b, OCI_RETRY_REFUND, -1, &n), -1);
	oci_retry_release(&b);
}

/* An attempt that moved OCI_RETRY_REFUND bytes is free; Retry-After wins, capped. */
static void test_progress_is_free_and_retry_after_is_capped(void **state)
{
	(void)state;
	struct oci_retry b;
	oci_retry_init(&b, 500);
	unsigned n = 9;
	for (int i = 0; i < 20; i++)
		assert_true(oci_retry_failed(&b, OCI_RETRY_REFUND, -1, &n) >= 0);
	assert_int_equal(n, 0);
	assert_int_equal(oci_retry_failed(&b, 0, 3, &n), 3000);
	assert_int_equal(oci_retry_failed(&b, 0, 100000, &n),
			 (int64_t)OCI_RETRY_MAX_RETRY_AFTER_S * 1000);
	oci_retry_release(&b);
	oci_retry_init(&b, 20000);
	for (int i = 0; i < 3; i++)
		assert_true(oci_retry_failed(&b, 0, -1, NULL) <= OCI_RETRY_MAX_DELAY_MS);
	oci_retry_release(&b);
}

static void test_one_report(void **state)
{
	(void)state;
	struct oci_retry b;
	oci_retry_init(&b, 1);
	assert_true(oci_retry_claim_report(&b));
	assert_false(oci_retry_claim_report(&b));
	oci_retry_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_is_spent_after_five_failures),
		cmocka_unit_test(test_progress_is_free_and_retry_after_is_capped),
		cmocka_unit_test(test_one_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
