// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "oci/ref.h"

static void ok(const char *s, const char *host, const char *ns, const char *tag, const char *dg)
{
	struct oci_ref r = OCI_REF_INIT;
	char *err = NULL;
	assert_int_equal(oci_ref_parse(s, &r, &err), 0);
	assert_string_equal(r.host, host);
	assert_string_equal(r.namespace, ns);
	if (tag)
		assert_string_equal(r.tag, tag);
	else
		assert_null(r.tag);
	if (dg)
		assert_string_equal(r.digest, dg);
	else
		assert_null(r.digest);
	oci_ref_release(&r);
}

static void bad(const char *s)
{
	struct oci_ref r = OCI_REF_INIT;
	char *err = NULL;
	assert_int_equal(oci_ref_parse(s, &r, &err), -22);
	assert_non_null(err);
	free(err);
	assert_false(oci_ref_is_remote(s));
}

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The cases of Tart's RemoteNameTests.swift. */
static void test_tart_cases(void **state)
{
	(void)state;
	ok("ghcr.io/a/b:latest", "ghcr.io", "a/b", "latest", NULL);
	ok("ghcr.io/a/b:1.2.3-RC-1", "ghcr.io", "a/b", "1.2.3-RC-1", NULL);
	ok("ghcr.io/a/b@sha256:" D64, "ghcr.io", "a/b", NULL, "sha256:" D64);
	ok("127.0.0.1:8080/a/b", "127.0.0.1:8080", "a/b", "latest", NULL);
	ok("ghcr.io/cirruslabs/macos-tahoe-base", "ghcr.io", "cirruslabs/macos-tahoe-base", "latest",
	   NULL);
	ok("REG.io/Upper/Case_x.y", "REG.io", "Upper/Case_x.y", "latest", NULL);
	bad("debian");
	bad("debian:latest");
	bad("127.0.0.1:/a/b");
	bad("ghcr.io/a/../b");
	bad("ghcr.io/a/b@sha512:" D64);
	bad("ghcr.io/a/b@sha256:abc");
	bad("ghcr.io/a//b");
	bad("ghcr.io/a/b:");
	bad("ghcr.io/\xc3\xa9/b");
	bad("http://ghcr.io/a/b");
	bad("");
}

static void test_to_string(void **state)
{
	(void)state;
	struct oci_ref r = OCI_REF_INIT;
	assert_int_equal(oci_ref_parse("127.0.0.1:5000/x/y", &r, NULL), 0);
	char *s = oci_ref_to_string(&r);
	assert_string_equal(s, "127.0.0.1:5000/x/y:latest");
	free(s);
	oci_ref_release(&r);
	assert_true(oci_digest_valid("sha256:" D64));
	assert_false(oci_digest_valid("sha256:" D64 "0"));
	assert_false(oci_digest_valid("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tart_cases),
		cmocka_unit_test(test_to_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
