// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/run.h"

/* Input larger than a pipe buffer while the child writes it back: no deadlock. */
static void test_input_round_trip(void **state)
{
	(void)state;
	size_t n = 1024 * 1024;
	char *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	int status = -1;
	strvec_pushl(&argv, "cat", NULL);
	assert_int_equal(run_argv_input(&argv, in, n, &out, NULL, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.buf, in, n);
	strbuf_release(&out);
	strvec_clear(&argv);
	free(in);
}

/* A child that exits without reading its stdin: not an error, and no SIGPIPE for us. */
static void test_input_not_read(void **state)
{
	(void)state;
	size_t n = 4 * 1024 * 1024;
	char *in = calloc(1, n);
	struct strvec argv = STRVEC_INIT;
	int status = -1;
	strvec_pushl(&argv, "sh", "-c", "exit 3", NULL);
	assert_int_equal(run_argv_input(&argv, in, n, NULL, NULL, &status), 0);
	assert_int_equal(status, 3);
	strvec_clear(&argv);
	free(in);
}

static void test_empty_input_and_missing_program(void **state)
{
	(void)state;
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	int status = -1;
	strvec_pushl(&argv, "wc", "-c", NULL);
	assert_int_equal(run_argv_input(&argv, "", 0, &out, NULL, &status), 0);
	assert_int_equal(atoi(out.buf), 0);
	strvec_clear(&argv);
	strbuf_release(&out);
	strvec_pushl(&argv, "tart-no-such-program-here", NULL);
	assert_int_equal(run_argv_input(&argv, "x", 1, NULL, NULL, &status), -2);
	strvec_clear(&argv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_input_round_trip),
		cmocka_unit_test(test_input_not_read),
		cmocka_unit_test(test_empty_input_and_missing_program),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
