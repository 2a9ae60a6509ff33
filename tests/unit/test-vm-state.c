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

#include "util/alloc.h"
#include "util/fs.h"
#include "vm/state.h"

/* The beginning of a QEMU 7.2 migration stream: QEVM, version 3, configuration section. */
static const unsigned char qevm[] = {'Q', 'E', 'V', 'M', 0,   0,   0,	3,   7,	  0,   0,  0,
				     10,  'p', 'c', '-', 'q', '3', '5', '-', '7', '.', '2'};

struct fixture {
	char dir[64];
	char *state, *disk;
	struct vm_state_info info;
};

/* A state file (header + stream) and a disk it belongs to, in a temp directory. */
static int setup(void **st)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/test-vm-state.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->state = path_join(f->dir, "state.vzvmsave");
	f->disk = path_join(f->dir, "disk.img");
	assert_int_equal(fs_write_atomic(f->disk, "disk", 4, 0644), 0);
	int fd = open(f->state, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	unsigned char stream[8192];
	memset(stream, 0x5a, sizeof(stream));
	memcpy(stream, qevm, sizeof(qevm));
	assert_int_equal(fs_pwrite_all(fd, stream, sizeof(stream), VM_STATE_HEADER_SIZE), 0);
	struct vm_state_info *i = &f->info;
	strcpy(i->arch, "amd64");
	strcpy(i->qemu_version, "7.2.22");
	strcpy(i->qemu_package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
	assert_int_equal(
	    vm_state_stream_machine(fd, VM_STATE_HEADER_SIZE, i->machine, sizeof(i->machine)), 0);
	i->devices = xstrdup("-machine q35\n-m 1024\n");
	oci_digest_buf(i->devices, strlen(i->devices), i->devices_digest);
	i->memory_size = 1ULL << 30;
	i->cpu_count = 2;
	strcpy(i->mac, "52:54:00:12:34:56");
	i->agent = true;
	i->stream_size = sizeof(stream);
	oci_digest_buf(stream, sizeof(stream), i->stream_digest);
	assert_int_equal(vm_state_disk_fingerprint(f->disk, &i->disk_size, &i->disk_mtime_ns), 0);
	strcpy(i->created, "2026-12-06T22:39:55Z");
	assert_int_equal(vm_state_write_header(fd, i), 0);
	close(fd);
	*st = f;
	return 0;
}

static int teardown(void **st)
{
	struct fixture *f = *st;
	(void)fs_rm_rf(f->dir);
	free(f->state);
	free(f->disk);
	vm_state_info_release(&f->info);
	free(f);
	return 0;
}

static void test_round_trip(void **st)
{
	struct fixture *f = *st;
	struct vm_state_info r;
	char *why = NULL;
	assert_int_equal(vm_state_read(f->state, &r, &why), 0);
	assert_string_equal(r.machine, "pc-q35-7.2");
	assert_string_equal(r.devices, f->info.devices);
	assert_string_equal(r.stream_digest, f->info.stream_digest);
	assert_int_equal(r.disk_mtime_ns, f->info.disk_mtime_ns);
	assert_true(r.agent);
	assert_string_equal(r.disk_digest, "");
	vm_state_info_release(&r);
	assert_false(vm_state_keeps_mac(f->dir));
}

static void expect_refused(const char *path, const char *reason)
{
	struct vm_state_info r;
	char *why = NULL;
	assert_int_equal(vm_state_read(path, &r, &why), -EBADMSG);
	assert_non_null(why);
	if (!strstr(why, reason))
		fail_msg("'%s' does not say '%s'", why, reason);
	free(why);
}

static void test_damage(void **st)
{
	struct fixture *f = *st;
	struct stat s;
	assert_int_equal(stat(f->state, &s), 0);
	/* cut short, then one byte too long */
	assert_int_equal(truncate(f->state, s.st_size - 1), 0);
	expect_refused(f->state, "truncated");
	assert_int_equal(truncate(f->state, s.st_size + 1), 0);
	expect_refused(f->state, "too long");
	assert_int_equal(truncate(f->state, s.st_size), 0);
	/* a device list that does not match its digest */
	int fd = open(f->state, O_RDWR | O_CLOEXEC);
	char buf[VM_STATE_HEADER_SIZE];
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	char *p = strstr(buf, "-m 1024");
	assert_non_null(p);
	p[3] = '2';
	assert_int_equal(fs_pwrite_all(fd, buf, sizeof(buf), 0), 0);
	expect_refused(f->state, "device digest");
	/* broken JSON, then no header at all */
	p = strchr(buf, '{');
	*p = '[';
	assert_int_equal(fs_pwrite_all(fd, buf, sizeof(buf), 0), 0);
	expect_refused(f->state, "damaged");
	assert_int_equal(fs_pwrite_all(fd, "QEVM", 4, 0), 0);
	expect_refused(f->state, "no header");
	close(fd);
	/* a stream that does not start like QEMU's */
	fd = open(f->state, O_RDONLY | O_CLOEXEC);
	char m[64];
	assert_int_equal(vm_state_stream_machine(fd, 0, m, sizeof(m)), -EBADMSG);
	close(fd);
}

static void test_restamp(void **st)
{
	struct fixture *f = *st;
	/* a copy with a newer disk: stamped for that disk */
	struct timespec t[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
	assert_int_equal(utimensat(AT_FDCWD, f->disk, t, 0), 0);
	assert_int_equal(vm_state_restamp(f->state, f->disk), 0);
	struct vm_state_info r;
	assert_int_equal(vm_state_read(f->state, &r, NULL), 0);
	assert_int_equal(r.disk_mtime_ns, 1000000000LL * 1000000000LL);
	assert_string_equal(r.stream_digest, f->info.stream_digest);
	vm_state_info_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restamp, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
