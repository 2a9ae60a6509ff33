// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/table.h"
#include "util/time.h"

static void test_strbuf_cap(void **state)
{
	(void)state;
	struct strbuf sb;
	strbuf_init(&sb, 8);
	assert_int_equal(strbuf_addstr(&sb, "12345678"), 0);
	assert_int_equal(strbuf_addch(&sb, '9'), -EFBIG);
	assert_string_equal(sb.buf, "12345678");
	assert_int_equal(sb.len, 8);
	strbuf_release(&sb);
	assert_string_equal(sb.buf, "");
	assert_int_equal(strbuf_addf(&sb, "%d-%s", 42, "x"), 0);
	assert_string_equal(sb.buf, "42-x");
	size_t len;
	char *s = strbuf_detach(&sb, &len);
	assert_int_equal(len, 4);
	free(s);
}

static void test_strvec(void **state)
{
	(void)state;
	struct strvec sv = STRVEC_INIT;
	assert_null(sv.v[0]);
	strvec_pushl(&sv, "qemu", "-m", NULL);
	strvec_pushf(&sv, "%d", 512);
	assert_int_equal(sv.nr, 3);
	assert_null(sv.v[3]);
	char *j = strvec_join(&sv, " ");
	assert_string_equal(j, "qemu -m 512");
	free(j);
	strvec_clear(&sv);
	assert_int_equal(sv.nr, 0);
}

static void test_parse(void **state)
{
	(void)state;
	uint64_t v;
	int64_t i;
	assert_int_equal(parse_u64("50", 100, &v), 0);
	assert_int_equal(v, 50);
	assert_int_equal(parse_u64("101", 100, &v), -ERANGE);
	assert_int_equal(parse_u64("-1", 100, &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", 100, &v), -EINVAL);
	assert_int_equal(parse_u64("", 100, &v), -EINVAL);
	assert_int_equal(parse_u64("99999999999999999999999", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_i64("-5", -10, 10, &i), 0);
	assert_int_equal(i, -5);
	uint64_t w, h;
	char unit[3];
	assert_int_equal(parse_display("1234x5678", &w, &h, unit), 0);
	assert_int_equal(w, 1234);
	assert_int_equal(h, 5678);
	assert_string_equal(unit, "");
	assert_int_equal(parse_display("800x600pt", &w, &h, unit), 0);
	assert_string_equal(unit, "pt");
	assert_int_equal(parse_display("800x600px", &w, &h, unit), 0);
	assert_string_equal(unit, "px");
	assert_int_equal(parse_display("800600", &w, &h, unit), -EINVAL);
	assert_int_equal(parse_display("x600", &w, &h, unit), -EINVAL);
	assert_int_equal(parse_display("800x600em", &w, &h, unit), -EINVAL);
	char buf[32];
	format_bytes_decimal(50000000000ULL, buf, sizeof(buf));
	assert_string_equal(buf, "50.0 GB");
}

static void test_json_swift(void **state)
{
	(void)state;
	json_t *o = json_object();
	json_object_set_new(o, "b", json_string("a/b"));
	json_object_set_new(o, "a", json_integer(1));
	json_t *arr = json_array();
	json_array_append_new(arr, json_true());
	json_object_set_new(o, "c", arr);
	struct strbuf sb = STRBUF_INIT;
	json_dump_swift(o, JSON_SWIFT_PRETTY, &sb);
	assert_string_equal(sb.buf, "{\n  \"b\" : \"a\\/b\",\n  \"a\" : 1,\n  \"c\" : [\n    true\n  ]\n}");
	strbuf_reset(&sb);
	json_dump_swift(o, JSON_SWIFT_SORTED, &sb);
	assert_string_equal(sb.buf, "{\"a\":1,\"b\":\"a\\/b\",\"c\":[true]}");
	strbuf_release(&sb);
	json_decref(o);
}

static void test_table(void **state)
{
	(void)state;
	const char *cells[] = {"Source", "Name", "State", "local", "a-long-name", "stopped",
			       "local", "b", "running"};
	struct strbuf sb = STRBUF_INIT;
	table_format(cells, 3, 3, &sb);
	assert_string_equal(sb.buf, "Source Name        State  \n"
				    "local  a-long-name stopped\n"
				    "local  b           running");
	strbuf_release(&sb);
}

static void test_time(void **state)
{
	(void)state;
	char buf[64];
	format_iso8601_utc(0x6565da9e, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-28T12:18:38Z");
	time_t t;
	assert_int_equal(parse_iso8601("2023-11-28T12:18:38Z", &t), 0);
	assert_int_equal(t, 0x6565da9e);
	assert_int_equal(parse_iso8601("2023-11-28T13:18:38.5+01:00", &t), 0);
	assert_int_equal(t, 0x6565da9e);
	assert_int_equal(parse_iso8601("yesterday", &t), -EINVAL);
}

static time_t utc(const char *iso)
{
	time_t t;
	assert_int_equal(parse_iso8601(iso, &t), 0);
	return t;
}

/* Foundation's RelativeDateTimeFormatter (.full) wording and unit choice, in UTC. */
static void test_time_relative(void **state)
{
	(void)state;
	static const struct {
		const char *then, *now, *want;
	} cases[] = {
		{"2026-06-12T09:00:00Z", "2026-06-12T09:00:00Z", "in 0 seconds"},
		{"2026-06-12T09:00:05Z", "2026-06-12T09:00:00Z", "in 5 seconds"},
		{"2026-06-12T08:59:59Z", "2026-06-12T09:00:00Z", "1 second ago"},
		{"2026-06-12T08:55:00Z", "2026-06-12T09:00:00Z", "5 minutes ago"},
		{"2026-06-12T08:58:31Z", "2026-06-12T09:00:00Z", "1 minute ago"},
		{"2026-06-12T08:58:30Z", "2026-06-12T09:00:00Z", "2 minutes ago"},
		{"2026-06-12T08:00:00Z", "2026-06-12T09:00:00Z", "1 hour ago"},
		{"2026-06-12T07:20:00Z", "2026-06-12T09:00:00Z", "2 hours ago"},
		{"2026-06-11T20:00:00Z", "2026-06-12T09:00:00Z", "13 hours ago"},
		{"2026-06-11T10:30:00Z", "2026-06-12T09:00:00Z", "23 hours ago"},
		{"2026-06-11T09:30:00Z", "2026-06-12T09:00:00Z", "24 hours ago"},
		{"2026-06-11T03:00:00Z", "2026-06-12T09:00:00Z", "1 day ago"},
		{"2026-06-10T20:00:00Z", "2026-06-12T09:00:00Z", "2 days ago"},
		{"2026-06-14T10:00:00Z", "2026-06-12T09:00:00Z", "in 2 days"},
		{"2026-05-30T12:00:00Z", "2026-06-12T09:00:00Z", "2 weeks ago"},
		{"2026-01-31T00:00:00Z", "2026-03-01T00:00:00Z", "2 months ago"},
		{"2025-06-12T09:00:00Z", "2026-06-12T09:00:00Z", "1 year ago"},
		{"1970-01-01T00:00:00Z", "2026-11-27T04:00:00Z", "56 years ago"},
	};
	char buf[64];
	setenv("TZ", "UTC", 1);
	tzset();
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		format_relative(utc(cases[i].then), utc(cases[i].now), buf, sizeof(buf));
		if (!streq(buf, cases[i].want))
			fail_msg("%s seen at %s: got '%s', want '%s'", cases[i].then, cases[i].now,
				 buf, cases[i].want);
	}
}

/* A sparse copy keeps data identical and holes as holes. */
static void test_fs_copy_sparse(void **state)
{
	(void)state;
	char dir[] = "/tmp/tart-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *src = path_join(dir, "src"), *dst = path_join(dir, "dst");
	int fd = open(src, O_RDWR | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	char data[4096];
	memset(data, 0xab, sizeof(data));
	assert_int_equal(pwrite(fd, data, sizeof(data), 32 << 20), (ssize_t)sizeof(data));
	close(fd);
	enum fs_copy_method m;
	assert_int_equal(fs_copy_file(src, dst, &m), 0);
	uint64_t ap, al;
	assert_int_equal(fs_file_sizes(dst, &ap, &al), 0);
	assert_int_equal(ap, 64 << 20);
	assert_true(al < (1 << 20)); /* holes kept */
	fd = open(dst, O_RDONLY);
	char back[4096];
	assert_int_equal(pread(fd, back, sizeof(back), 32 << 20), (ssize_t)sizeof(back));
	assert_memory_equal(back, data, sizeof(data));
	close(fd);
	assert_int_equal(fs_write_atomic(src, "x", 1, 0600), 0);
	struct strbuf sb = STRBUF_INIT;
	assert_int_equal(fs_read_full(src, 0, &sb), 0);
	assert_string_equal(sb.buf, "x");
	strbuf_reset(&sb);
	assert_int_equal(fs_write_atomic(src, "toolong", 7, 0600), 0);
	assert_int_equal(fs_read_full(src, 3, &sb), -EFBIG);
	strbuf_release(&sb);
	assert_int_equal(fs_rm_rf(dir), 0);
	assert_false(fs_exists(dir));
	free(src);
	free(dst);
}

/* Hostile files: a FIFO must not block, a directory or device is refused. */
static void test_fs_read_full_not_regular(void **state)
{
	(void)state;
	char dir[] = "/tmp/tart-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *fifo = path_join(dir, "leases.json");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	struct strbuf sb = STRBUF_INIT;
	assert_int_equal(fs_read_full(fifo, 0, &sb), -EINVAL);
	assert_int_equal(fs_read_full(dir, 0, &sb), -EISDIR);
	assert_int_equal(fs_read_full("/dev/zero", 4096, &sb), -EINVAL);
	char *dst = path_join(dir, "copy");
	assert_int_equal(fs_copy_file(fifo, dst, NULL), -EINVAL);
	assert_false(fs_exists(dst));
	free(dst);
	assert_int_equal(fs_read_full("/proc/self/stat", 8192, &sb), 0); /* proc files are regular */
	assert_true(sb.len > 0);
	strbuf_release(&sb);
	assert_int_equal(fs_rm_rf(dir), 0);
	free(fifo);
}

/* Numbers we read are written back as int64: reals beyond it are out of range. */
static void test_json_u64_range(void **state)
{
	(void)state;
	static const struct {
		const char *doc;
		int want;
		uint64_t value;
	} cases[] = {
	    {"{\"v\": 0}", 0, 0},
	    {"{\"v\": 9223372036854775807}", 0, 9223372036854775807ULL},
	    {"{\"v\": 4096.0}", 0, 4096},
	    {"{\"v\": -1}", -EBADMSG, 0},
	    {"{\"v\": 1.5}", -EBADMSG, 0},
	    {"{\"v\": 9.3e18}", -EBADMSG, 0},
	    {"{\"v\": 1.8e19}", -EBADMSG, 0},
	    {"{\"v\": 1e300}", -EBADMSG, 0},
	    {"{\"v\": \"1\"}", -EBADMSG, 0},
	    {"{}", -ENOENT, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = NULL;
		uint64_t v = 0;
		assert_int_equal(json_parse_buf(cases[i].doc, strlen(cases[i].doc), &j), 0);
		int r = json_get_u64(j, "v", &v);
		if (r != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].doc, r, cases[i].want);
		if (r == 0)
			assert_true(v == cases[i].value);
		json_decref(j);
	}
}

/* A registry body or helper output quoted in a message cannot drive the terminal. */
static void test_log_strips_control_sequences(void **state)
{
	(void)state;
	char path[] = "/tmp/tart-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	assert_int_equal(dup2(fd, 2), 2);
	log_error("body: %s", "\x1b]0;owned\x07\x1b[2Jok\ttab\x7f");
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	char buf[256] = {0};
	assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	close(fd);
	unlink(path);
	assert_string_equal(buf, "body: ?]0;owned??[2Jok\ttab?\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf_cap),   cmocka_unit_test(test_strvec),
		cmocka_unit_test(test_parse),        cmocka_unit_test(test_json_swift),
		cmocka_unit_test(test_table),        cmocka_unit_test(test_time), cmocka_unit_test(test_time_relative),
		cmocka_unit_test(test_fs_copy_sparse),
		cmocka_unit_test(test_fs_read_full_not_regular),
		cmocka_unit_test(test_json_u64_range),
		cmocka_unit_test(test_log_strips_control_sequences),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
