// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macro.h"
#include "vm/config.h"
#include "vm/dir.h"

static const char tart_linux[] =
	"{\n  \"version\" : 1,\n  \"os\" : \"linux\",\n  \"arch\" : \"arm64\",\n"
	"  \"cpuCountMin\" : 4,\n  \"cpuCount\" : 4,\n  \"memorySizeMin\" : 4294967296,\n"
	"  \"memorySize\" : 4294967296,\n  \"macAddress\" : \"7A:1B:0C:dd:ee:0f\",\n"
	"  \"display\" : {\n    \"width\" : 1024,\n    \"height\" : 768\n  },\n"
	"  \"diskFormat\" : \"raw\",\n  \"someFutureKey\" : [1, 2]\n}";

/* Vetu's schema: no "os", no minimums, "disks" and "cmdline": a Linux VM with min = value. */
static void test_parse_vetu(void **state)
{
	(void)state;
	static const char vetu[] = "{\"version\":1,\"arch\":\"amd64\",\"cmdline\":\"console=ttyS0\","
				   "\"disks\":[{\"name\":\"disk.img\"}],\"cpuCount\":2,"
				   "\"memorySize\":1073741824,\"macAddress\":\"02:00:00:00:00:07\"}";
	struct vm_config c;
	char *err = NULL;
	assert_int_equal(vm_config_parse(vetu, strlen(vetu), &c, &err), 0);
	assert_string_equal(c.os, "linux");
	assert_int_equal(c.cpu_count_min, 2);
	assert_int_equal(c.memory_size_min, 1073741824ULL);
	assert_string_equal(c.cmdline, "console=ttyS0");
	vm_config_release(&c);
	/* without Vetu's keys, a config lacking the minimums is still refused (Tart's rule) */
	static const char tartish[] = "{\"version\":1,\"cpuCount\":2,\"memorySize\":1073741824,"
				      "\"macAddress\":\"02:00:00:00:00:07\"}";
	assert_int_equal(vm_config_parse(tartish, strlen(tartish), &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "cpuCountMin"));
	free(err);
	err = NULL;
	/* Vetu omits cpuCount and memorySize when empty: Cloud Hypervisor's 1 vCPU and 512 MiB */
	static const char bare[] = "{\"version\":1,\"arch\":\"amd64\",\"cmdline\":\"console=ttyS0\","
				   "\"disks\":[{\"name\":\"disk.img\"}]}";
	assert_int_equal(vm_config_parse(bare, strlen(bare), &c, &err), 0);
	assert_int_equal(c.cpu_count, 1);
	assert_int_equal(c.memory_size, 512ULL * 1024 * 1024);
	vm_config_release(&c);
	/* a present but bad value is still refused */
	static const char badcpu[] = "{\"version\":1,\"arch\":\"amd64\",\"cmdline\":\"x\","
				     "\"cpuCount\":\"two\"}";
	assert_int_equal(vm_config_parse(badcpu, strlen(badcpu), &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "cpuCount"));
	free(err);
}

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

#define GOOD_HEAD                                                                          \
	"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"                \
	"\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\""

/* Hostile documents: each is refused with a message naming the problem, or parsed sanely. */
static void test_parse_hostile(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		const char *needle; /* NULL: must parse */
	} cases[] = {
		{"{\"version\":1e400}", "JSON"},
		{"{\"version\":123456789012345678901234567890}", "JSON"},
		{GOOD_HEAD ",\"cpuCount\":2}", "JSON"}, /* duplicate key */
		{GOOD_HEAD ",\"version\":2}", "JSON"},
		{"{\"version\":\"1\"}", "version"},
		{"{\"version\":-1}", "version"},
		{"{\"version\":1.5}", "version"},
		{"{\"version\":null}", "version"},
		{"{\"version\":true}", "version"},
		{"{\"version\":{}}", "version"},
		{"{\"version\":1,\"os\":7}", "os"},
		{"{\"version\":1,\"arch\":\"x86_64\"}", "arch"},
		{"{\"version\":1,\"arch\":[\"arm64\"]}", "arch"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":65536,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\"}",
		 "cpuCount"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":0,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\"}",
		 "cpuCount"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":18446744073709551615,\"macAddress\":\"02:00:00:00:00:01\"}",
		 "JSON"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":1e300,\"macAddress\":\"02:00:00:00:00:01\"}",
		 "memorySize"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":1024,\"macAddress\":\"02:00:00:00:00:01\"}",
		 "memorySize"},
		{GOOD_HEAD ",\"display\":{\"width\":\"1\",\"height\":2}}", "display"},
		{GOOD_HEAD ",\"display\":{\"width\":-1,\"height\":2}}", "display"},
		{GOOD_HEAD ",\"display\":[]}", "display"},
		{GOOD_HEAD ",\"display\":{\"width\":1,\"height\":2,\"unit\":\"cm\"}}", "display.unit"},
		{GOOD_HEAD ",\"displayRefit\":\"yes\"}", "displayRefit"},
		{GOOD_HEAD ",\"cmdline\":5}", "cmdline"},
		{GOOD_HEAD ",\"x\":\"a\\u0000b\"}", "JSON"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01:02\"}",
		 "macAddress"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":\" 2:00:00:00:00:01\"}",
		 "macAddress"},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":1,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":5}",
		 "macAddress"},
		{"\"just a string\"", "JSON"},
		{"{", "JSON"},
		{"{}}", "JSON"},
		/* accepted: unknown keys, unknown disk formats (raw, as Tart), null unit, floats */
		{GOOD_HEAD ",\"diskFormat\":\"vhdx\",\"future\":{\"a\":[1,{\"b\":null}]}}", NULL},
		{GOOD_HEAD ",\"diskFormat\":7,\"display\":{\"width\":1,\"height\":2,\"unit\":null}}",
		 NULL},
		{"{\"version\":1,\"cpuCountMin\":1,\"cpuCount\":4.0,\"memorySizeMin\":1,"
		 "\"memorySize\":1048576,\"macAddress\":\"02:00:00:00:00:01\"}",
		 NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct vm_config c;
		char *err = NULL;
		int r = vm_config_parse(cases[i].doc, strlen(cases[i].doc), &c, &err);
		if (!cases[i].needle) {
			if (r != 0)
				fail_msg("case %zu refused: %s", i, err);
			assert_string_equal(c.disk_format, "raw");
			vm_config_release(&c);
			continue;
		}
		if (r != -EBADMSG || !err || !strstr(err, cases[i].needle))
			fail_msg("case %zu: r=%d err='%s', want '%s'", i, r, err ? err : "",
				 cases[i].needle);
		free(err);
	}
}

/* Nesting far beyond any config: refused by the parser's depth limit, no stack overflow. */
static void test_parse_deep(void **state)
{
	(void)state;
	size_t depth = 100000;
	char *doc = malloc(2 * depth + 64);
	assert_non_null(doc);
	size_t n = (size_t)sprintf(doc, "{\"version\":1,\"x\":");
	for (size_t i = 0; i < depth; i++)
		doc[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		doc[n++] = ']';
	doc[n++] = '}';
	struct vm_config c;
	char *err = NULL;
	assert_int_equal(vm_config_parse(doc, n, &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "JSON"));
	free(err);
	free(doc);
}

/* Files: a raw NUL byte, and a 2 MiB document (over the 1 MiB cap) are refused. */
static void test_load_hostile_files(void **state)
{
	(void)state;
	char path[] = "/tmp/tart-test-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char nul_doc[] = GOOD_HEAD "}\0";
	char buf[sizeof(nul_doc) + 1];
	memcpy(buf, nul_doc, sizeof(nul_doc));
	buf[sizeof(nul_doc) - 2] = '\0';
	buf[sizeof(nul_doc) - 1] = '}';
	assert_int_equal(write(fd, buf, sizeof(nul_doc)), (ssize_t)sizeof(nul_doc));
	struct vm_config c;
	char *err = NULL;
	assert_int_equal(vm_config_load(path, &c, &err), -EBADMSG);
	free(err);
	err = NULL;
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	size_t big = 2u << 20;
	char *doc = malloc(big);
	assert_non_null(doc);
	memset(doc, ' ', big);
	memcpy(doc, GOOD_HEAD "}", strlen(GOOD_HEAD "}"));
	assert_int_equal(write(fd, doc, big), (ssize_t)big);
	assert_int_equal(vm_config_load(path, &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "larger than 1 MiB"));
	free(err);
	free(doc);
	close(fd);
	unlink(path);
	assert_int_equal(vm_config_load(path, &c, NULL), -ENOENT);
}

/*
 * Random mutations of a valid document (byte flips, truncations, insertions), seeded: the
 * parser returns 0 or -EBADMSG with a message, and whatever it accepts formats and re-parses.
 */
static void test_parse_mutations(void **state)
{
	(void)state;
	static const char charset[] = "{}[]\":,0123456789-.eE \\u\x01\xff";
	size_t len = strlen(tart_linux);
	char *doc = malloc(len + 16);
	assert_non_null(doc);
	srand(42);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(doc, tart_linux, len);
		size_t n = len;
		for (int k = 0; k < 1 + rand() % 3; k++) {
			size_t at = (size_t)rand() % n;
			switch (rand() % 3) {
			case 0:
				doc[at] = charset[rand() % (int)(sizeof(charset) - 1)];
				break;
			case 1:
				n = at;
				break;
			default:
				memmove(doc + at + 1, doc + at, n - at);
				doc[at] = charset[rand() % (int)(sizeof(charset) - 1)];
				n++;
			}
			if (n == 0)
				break;
		}
		struct vm_config c;
		char *err = NULL;
		int r = vm_config_parse(doc, n, &c, &err);
		if (r == 0) {
			char *s = vm_config_format(&c, true);
			struct vm_config c2;
			assert_int_equal(vm_config_parse(s, strlen(s), &c2, NULL), 0);
			assert_string_equal(c2.mac, c.mac);
			assert_int_equal(c2.cpu_count, c.cpu_count);
			vm_config_release(&c2);
			free(s);
			vm_config_release(&c);
		} else {
			assert_int_equal(r, -EBADMSG);
			assert_non_null(err);
			free(err);
		}
	}
	free(doc);
}

/* Random names: valid ones are exactly those a directory entry under vms/ can safely have. */
static void test_names_random(void **state)
{
	(void)state;
	srand(7);
	for (int iter = 0; iter < 20000; iter++) {
		char name[300];
		size_t n = (size_t)(rand() % 258);
		for (size_t i = 0; i < n; i++) {
			int c = rand() % 256;
			name[i] = (char)(c == 0 ? '.' : c);
		}
		name[n] = '\0';
		const char *why = NULL;
		bool ok = n > 0 && n <= 255 && !strchr(name, '/') && !streq(name, ".") &&
			  !streq(name, "..");
		for (size_t i = 0; i < n; i++)
			ok = ok && (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
		int r = vm_name_validate(name, &why);
		assert_int_equal(r, ok ? 0 : -EINVAL);
		if (r < 0)
			assert_non_null(why);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_tart),
		cmocka_unit_test(test_parse_vetu),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_defaults_and_mac),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_parse_hostile),
		cmocka_unit_test(test_parse_deep),
		cmocka_unit_test(test_load_hostile_files),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_names_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
