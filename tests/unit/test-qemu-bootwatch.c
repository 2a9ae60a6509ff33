// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "qemu/bootwatch.h"

/* Excerpts of QEMU 7.2's `info registers` for x86-64 (real mode at reset, then long mode). */
static void test_parse_efer(void **state)
{
	(void)state;
	uint64_t efer = 1;
	assert_int_equal(qemu_boot_parse_efer("RAX=0000000000000000\n"
					      "CR0=60000011 CR2=00000000 CR3=00000000\n"
					      "EFER=0000000000000000\n",
					      &efer),
			 0);
	assert_int_equal(efer, 0);
	assert_int_equal(qemu_boot_parse_efer("DR7=0000000000000400\nEFER=0000000000000d01\n"
					      "FCW=037f",
					      &efer),
			 0);
	assert_int_equal(efer, 0xd01);
	assert_int_equal(qemu_boot_parse_efer("XEFER=0000000000000500\n", &efer), -EBADMSG);
	assert_int_equal(qemu_boot_parse_efer("EFER=\n", &efer), -EBADMSG);
	assert_int_equal(qemu_boot_parse_efer("", &efer), -EBADMSG);
}

static void test_watchdog_seconds(void **state)
{
	(void)state;
	uint64_t s = 0;
	unsetenv("TART_BOOT_WATCHDOG");
	assert_int_equal(qemu_boot_watchdog_seconds(true, &s), 0);
	assert_int_equal(s, QEMU_BOOT_WATCHDOG_DEFAULT_S);
	/* TCG: off unless asked for */
	assert_int_equal(qemu_boot_watchdog_seconds(false, &s), 0);
	assert_int_equal(s, 0);
	setenv("TART_BOOT_WATCHDOG", "7", 1);
	assert_int_equal(qemu_boot_watchdog_seconds(false, &s), 0);
	assert_int_equal(s, 7);
	setenv("TART_BOOT_WATCHDOG", "0", 1);
	assert_int_equal(qemu_boot_watchdog_seconds(true, &s), 0);
	assert_int_equal(s, 0);
	setenv("TART_BOOT_WATCHDOG", "-1", 1);
	assert_true(qemu_boot_watchdog_seconds(true, &s) < 0);
	setenv("TART_BOOT_WATCHDOG", "soon", 1);
	assert_true(qemu_boot_watchdog_seconds(true, &s) < 0);
	unsetenv("TART_BOOT_WATCHDOG");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_efer),
		cmocka_unit_test(test_watchdog_seconds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
