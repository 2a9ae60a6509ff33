// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vm/config.h"
#include "vm/dir.h"

static const char tart_linux[] =
	"{\n  \"version\" : 1,\n  \"os\" : \"linux\",\n  \"arch\" : \"arm64\",\n"
	"  \"cpuCountMin\" : 4,\n  \"cpuCount\" : 4,\n  \"memorySizeMin\" : 4294967296,\n"
	"  \"memorySize\" : 4294967296,\n  \"macAddress\" : \"7A:1B:0C:dd:ee:0f\",\n"
	"  \"display\" : {\n    \"width\" : 1024,\n    \"height\" : 768\n  },\n"
	"  \"diskFormat\" : \"raw\",\n  \"someFutureKey\" : [1, 2]\n}";

static void test_parse_tart(void **state)
{
	(void)state;
	struct vm_config c;
	char *err = NULL;
	assert_int_equal(vm_config_parse(tart_linux, strlen(tart_linux), &c, &err), 0);
	assert_string_equal(c.os, "linux");
	assert_string_equal(c.arch, "arm64");
	assert_int_equal(c.cpu_count, 4);
	assert_int_equal(c.memory_size, 4294967296ULL);
	assert_string_equal(c.mac, "7a:1b:0c:dd:ee:0f");
	assert_int_equal(c.display_width, 1024);
	assert_int_equal(c.display_refit, -1);
	char *s = vm_config_format(&c, false);
	/* Known keys re-emitted, unknown ones kept. */
	assert_non_null(strstr(s, "\"someFutureKey\":[1,2]"));
	assert_non_null(strstr(s, "\"macAddress\":\"7a:1b:0c:dd:ee:0f\""));
	assert_null(strstr(s, "displayRefit"));
	struct vm_config c2;
	assert_int_equal(vm_config_parse(s, strlen(s), &c2, NULL), 0);
	assert_string_equal(c2.mac, c.mac);
	vm_config_release(&c2);
	free(s);
	vm_config_release(&c);
}

static void expect_bad(const char *doc, const char *needle)
{
	struct vm_config c;
	char *err = NULL;
	assert_int_equal(vm_config_parse(doc, strlen(doc), &c, &err), -EBADMSG);
	assert_non_null(err);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	free(err);
}

static void test_parse_bad(void **state)
{
	(void)state;
	expect_bad("", "JSON");
	expect_bad("[]", "JSON");
	expect_bad("{\"os\":\"linux\"}", "version");
	expect_bad("{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		   "\"memorySize\":1048576}",
		   "macAddress");
	expect_bad("{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":-1,\"memorySizeMin\":1,"
		   "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\"}",
		   "cpuCount");
	expect_bad("{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		   "\"memorySize\":1048576,\"macAddress\":\"zz:00:00:00:00:01\"}",
		   "macAddress");
	expect_bad("{\"version\":1,\"os\":\"windows\"}", "os");
	expect_bad("{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		   "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\",\"display\":5}",
		   "display");
}

static void test_defaults_and_mac(void **state)
{
	(void)state;
	struct vm_config c;
	vm_config_init_linux(&c, "raw");
	assert_int_equal(c.cpu_count, 4);
	assert_int_equal(c.memory_size, 4294967296ULL);
	assert_string_equal(c.os, "linux");
	unsigned int b0;
	assert_int_equal(sscanf(c.mac, "%2x", &b0), 1);
	assert_int_equal(b0 & 1, 0); /* unicast */
	assert_int_equal(b0 & 2, 2); /* locally administered */
	char m[18];
	assert_int_equal(vm_mac_normalize("A:B:C:D:E:F", m), 0);
	assert_string_equal(m, "0a:0b:0c:0d:0e:0f");
	assert_int_equal(vm_mac_normalize("0a:0b:0c:0d:0e", m), -EINVAL);
	assert_int_equal(vm_mac_normalize("0a:0b:0c:0d:0e:0f:", m), -EINVAL);
	vm_config_release(&c);
}

static void test_names(void **state)
{
	(void)state;
	const char *why;
	assert_int_equal(vm_name_validate("debian", &why), 0);
	assert_int_equal(vm_name_validate("my vm.1", &why), 0);
	assert_int_equal(vm_name_validate("", &why), -EINVAL);
	assert_int_equal(vm_name_validate("a/b", &why), -EINVAL);
	assert_int_equal(vm_name_validate("..", &why), -EINVAL);
	assert_int_equal(vm_name_validate(".", &why), -EINVAL);
	assert_int_equal(vm_name_validate("a\nb", &why), -EINVAL);
	char longname[300];
	memset(longname, 'a', 256);
	longname[256] = 0;
	assert_int_equal(vm_name_validate(longname, &why), -EINVAL);
	longname[255] = 0;
	assert_int_equal(vm_name_validate(longname, &why), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_tart),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_defaults_and_mac),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
