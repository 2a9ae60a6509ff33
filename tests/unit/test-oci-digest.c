// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* A digest saved mid-stream (mid-block too) and restored elsewhere ends where it would have. */
static void test_save_restore(void **state)
{
	(void)state;
	char big[10000], a[OCI_DIGEST_STRLEN], b[OCI_DIGEST_STRLEN];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 13);
	oci_digest_buf(big, sizeof(big), a);
	size_t cuts[] = {0, 1, 63, 64, 65, 4097, sizeof(big)};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		struct oci_digest s, t;
		char text[OCI_DIGEST_STATE_STRLEN];
		oci_digest_init(&s);
		oci_digest_update(&s, big, cuts[i]);
		oci_digest_save(&s, text);
		oci_digest_release(&s);
		assert_int_equal(strlen(text), OCI_DIGEST_STATE_STRLEN - 1);
		oci_digest_init(&t);
		assert_int_equal(oci_digest_restore(&t, text), 0);
		oci_digest_update(&t, big + cuts[i], sizeof(big) - cuts[i]);
		oci_digest_final(&t, b);
		assert_string_equal(a, b);
	}
	/* damaged text is refused and leaves the digest usable */
	struct oci_digest s;
	char text[OCI_DIGEST_STATE_STRLEN];
	oci_digest_init(&s);
	oci_digest_save(&s, text);
	assert_int_equal(oci_digest_restore(&s, "00"), -EINVAL);
	text[5] = 'x';
	assert_int_equal(oci_digest_restore(&s, text), -EINVAL);
	oci_digest_final(&s, b);
	assert_string_equal(
	    b, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* The known digest of a 512 MiB zero chunk is the real one; other sizes are computed. */
static void test_zeros(void **state)
{
	(void)state;
	size_t sizes[] = {0, 1, 65536, 100000, 512u << 20};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *z = calloc(1, sizes[i] + 1);
		char a[OCI_DIGEST_STRLEN], b[OCI_DIGEST_STRLEN];
		oci_digest_buf(z, sizes[i], a);
		oci_digest_zeros(sizes[i], b);
		assert_string_equal(a, b);
		oci_digest_zeros(sizes[i], b); /* again, from the memo */
		assert_string_equal(a, b);
		free(z);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_streaming),
	    cmocka_unit_test(test_save_restore),
	    cmocka_unit_test(test_zeros),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
