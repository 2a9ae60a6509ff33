// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/digest.h"

static void test_vectors(void **state)
{
	(void)state;
	char d[OCI_DIGEST_STRLEN];
	oci_digest_buf("", 0, d);
	assert_string_equal(
	    d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	oci_digest_buf("abc", 3, d);
	assert_string_equal(
	    d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_streaming(void **state)
{
	(void)state;
	char big[10000], a[OCI_DIGEST_STRLEN], b[OCI_DIGEST_STRLEN];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	oci_digest_buf(big, sizeof(big), a);
	struct oci_digest s;
	oci_digest_init(&s);
	for (size_t i = 0; i < sizeof(big); i += 333)
		oci_digest_update(&s, big + i, sizeof(big) - i < 333 ? sizeof(big) - i : 333);
	oci_digest_final(&s, b);
	assert_string_equal(a, b);
	FILE *f = tmpfile();
	assert_non_null(f);
	assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
	fflush(f);
	char c[OCI_DIGEST_STRLEN];
	assert_int_equal(oci_digest_fd_range(fileno(f), 100, 5000, c), 0);
	oci_digest_buf(big + 100, 5000, b);
	assert_string_equal(b, c);
	assert_true(oci_digest_fd_range(fileno(f), 9000, 5000, c) < 0); /* past the end */
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_streaming),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
