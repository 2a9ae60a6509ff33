// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/io.h"
#include "util/alloc.h"

#define A OCI_IO_ALIGN
#define SLOT (256u * 1024)

/* A scratch file on a real filesystem (O_DIRECT: tmpfs may refuse it), unlinked. */
static int scratch(void)
{
	char path[] = "/var/tmp/test-oci-io-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/*
 * A filesystem that accepts an O_DIRECT open and then refuses the transfers (EINVAL): pwrite and
 * pread on this descriptor fail as such a filesystem's do (linked with --wrap, meson.build).
 */
static int refused_fd = -2;

ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t offset);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t offset);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t offset);

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t offset)
{
	if (fd == refused_fd) {
		errno = EINVAL;
		return -1;
	}
	return __real_pwrite64(fd, buf, n, offset);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t offset)
{
	if (fd == refused_fd) {
		errno = EINVAL;
		return -1;
	}
	return __real_pread64(fd, buf, n, offset);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 31 + (i >> 9));
}

/*
 * Writes whose address and offset line up (whole pages direct, ragged ends buffered), whose
 * do not (all buffered), shorter than a page, and reads back through both read paths: the
 * file always holds what was written.
 */
static void check_roundtrip(void)
{
	int fd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	size_t n = 3 * 1024 * 1024;
	unsigned char *src = xmalloc_aligned(A, n + 2 * A);
	unsigned char *want = calloc(1, n + 2 * A);
	fill(src, n + 2 * A, 7);
	struct {
		size_t mem, len;
		uint64_t off;
	} w[] = {
	    {0, 1024 * 1024, 0},	     /* aligned */
	    {100, 5000, 1024 * 1024 + 100},  /* congruent, ragged head and tail */
	    {7, 300000, 1200000 + 3},	     /* not congruent: buffered */
	    {0, 100, 2 * 1024 * 1024},	     /* under a page */
	    {A - 1, 2 * A + 2, 2500000 - 1}, /* congruent, one page in the middle */
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		assert_int_equal(oci_direct_pwrite(&d, src + w[i].mem, w[i].len, w[i].off), 0);
		memcpy(want + w[i].off, src + w[i].mem, w[i].len);
	}
	uint64_t size = 2500000 - 1 + 2 * A + 2;
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)size);

	unsigned char *got = xmalloc_aligned(A, size + A);
	/* aligned buffer and offset: the direct path; the length runs past the end */
	assert_int_equal(oci_direct_pread(&d, got, size + A, 0), (int64_t)size);
	assert_memory_equal(got, want, size);
	/* unaligned: buffered */
	assert_int_equal(oci_direct_pread(&d, got + 1, 1000, 4097), 1000);
	assert_memory_equal(got + 1, want + 4097, 1000);
	/* the upload source, at odd offsets and lengths, up to and past the end */
	struct oci_direct_reader rd = {.d = &d, .size = size};
	/* forwards, then back to the start (an upload tried again) */
	uint64_t offs[] = {0, 1, 4095, 1024 * 1024 + 77, size - 10, size, 5};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		size_t len = 700001;
		int64_t r = oci_direct_source(&rd, offs[i], got, len);
		int64_t expect = (int64_t)(size - offs[i] < len ? size - offs[i] : len);
		assert_int_equal(r, expect);
		assert_memory_equal(got, want + offs[i], (size_t)r);
	}
	oci_direct_reader_release(&rd);
	oci_direct_release(&d);
	close(fd);
	free(got);
	free(src);
	free(want);
}

/*
 * The background writer: runs with gaps, ragged and slot-sized pieces all land where they
 * belong; a note is written after what was queued before it; an error is sticky.
 */
static void check_writer(void)
{
	int fd = scratch(), nfd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	size_t n = 5 * SLOT;
	unsigned char *src = malloc(n), *want = calloc(1, n), *got = malloc(n);
	fill(src, n, 3);
	struct oci_writer *w = oci_writer_new(&d, SLOT);
	struct {
		uint64_t off;
		size_t len;
	} runs[] = {
	    {0, 3 * A},
	    {3 * A, 5},
	    {3 * A + 5, SLOT + 17}, /* contiguous, across a slot */
	    {2 * SLOT + 100, 4000}, /* after a gap */
	    {3 * SLOT, 2 * SLOT},
	};
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		assert_int_equal(oci_writer_write(w, src + runs[i].off, runs[i].len, runs[i].off),
				 0);
		memcpy(want + runs[i].off, src + runs[i].off, runs[i].len);
		char note[32];
		snprintf(note, sizeof(note), "note %zu", i);
		oci_writer_note(w, nfd, note);
	}
	assert_int_equal(oci_writer_finish(w), 0);
	assert_int_equal(pread(fd, got, n, 0), (ssize_t)n);
	assert_memory_equal(got, want, n);
	char note[32] = "";
	assert_true(pread(nfd, note, sizeof(note) - 1, 0) > 0);
	assert_string_equal(note, "note 4");
	oci_direct_release(&d);
	close(fd);

	/* a descriptor that cannot be written: the error comes back and stays */
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	oci_direct_init(&d, ro, false);
	w = oci_writer_new(&d, SLOT);
	int r = 0;
	for (int i = 0; i < 8 && r == 0; i++)
		r = oci_writer_write(w, src, SLOT, (uint64_t)i * SLOT);
	assert_int_equal(oci_writer_finish(w), -EBADF);
	oci_direct_release(&d);
	close(ro);
	close(nfd);
	free(src);
	free(want);
	free(got);
}

/* Read-ahead in pieces: holes come back unread (NULL), a short file is -EIO at its end. */
static void check_prefetch(void)
{
	int fd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	size_t piece = 256 * 1024, n = 8 * piece;
	unsigned char *src = malloc(n), *got = calloc(1, n);
	fill(src, n, 9);
	/* data in pieces 0, 1 and 5 (partly); pieces 2-4 and 6-7 are holes */
	assert_int_equal(oci_direct_pwrite(&d, src, 2 * piece, 0), 0);
	assert_int_equal(oci_direct_pwrite(&d, src + 5 * piece + 100, 1000, 5 * piece + 100), 0);
	assert_int_equal(ftruncate(fd, (off_t)n), 0);
	struct oci_prefetch *p = oci_prefetch_new(&d, 0, n, piece, true);
	const void *data;
	size_t len;
	uint64_t at, expect = 0;
	int holes = 0, k;
	while ((k = oci_prefetch_next(p, &data, &len, &at)) == 1) {
		assert_int_equal(at, expect);
		assert_int_equal(len, piece);
		if (data)
			memcpy(got + at, data, len);
		else
			holes++;
		expect += len;
	}
	assert_int_equal(k, 0);
	assert_int_equal(expect, n);
	assert_int_equal(holes, 5);
	assert_memory_equal(got, src, 2 * piece);
	assert_memory_equal(got + 5 * piece + 100, src + 5 * piece + 100, 1000);
	oci_prefetch_free(p);
	/* past the end of the file */
	p = oci_prefetch_new(&d, 0, n + piece, piece, false);
	while ((k = oci_prefetch_next(p, &data, &len, &at)) == 1)
		;
	assert_int_equal(k, -EIO);
	assert_int_equal(at, n);
	oci_prefetch_free(p);
	/* freed half-way, with a piece still being read ahead */
	p = oci_prefetch_new(&d, 0, n, piece, false);
	assert_int_equal(oci_prefetch_next(p, &data, &len, &at), 1);
	oci_prefetch_free(p);
	oci_direct_release(&d);
	close(fd);
	free(src);
	free(got);
}

static void test_direct(void **state)
{
	(void)state;
	unsetenv("TART_NO_DIRECT_IO");
	int fd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	bool direct = d.dfd >= 0;
	oci_direct_release(&d);
	close(fd);
	if (!direct) {
		print_message(
		    "SKIP: /var/tmp refuses O_DIRECT, the direct path is not tested here\n");
		skip();
	}
	check_roundtrip();
	check_writer();
	check_prefetch();
}

static void test_buffered(void **state)
{
	(void)state;
	setenv("TART_NO_DIRECT_IO", "1", 1);
	int fd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	assert_int_equal(d.dfd, -1);
	oci_direct_release(&d);
	close(fd);
	check_roundtrip();
	check_writer();
	check_prefetch();
	unsetenv("TART_NO_DIRECT_IO");
}

/* Give d a direct descriptor whose transfers fail with EINVAL. */
static void refuse_transfers(struct oci_direct *d)
{
	oci_direct_release(d);
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", d->fd);
	refused_fd = open(p, O_RDWR | O_CLOEXEC);
	assert_true(refused_fd >= 0);
	d->dfd = refused_fd;
}

/*
 * The O_DIRECT descriptor opened, but the filesystem refuses its first write (or read) with
 * EINVAL: that transfer and every later one take the ordinary descriptor, nothing is lost.
 */
static void test_refused_at_first_transfer(void **state)
{
	(void)state;
	unsetenv("TART_NO_DIRECT_IO");
	int fd = scratch();
	struct oci_direct d;
	oci_direct_init(&d, fd, true);
	refuse_transfers(&d);
	size_t n = 3 * SLOT;
	unsigned char *src = xmalloc_aligned(A, n), *got = xmalloc_aligned(A, n);
	fill(src, n, 5);
	/* the pull's path: the writer's slots are aligned, so its first write is direct */
	struct oci_writer *w = oci_writer_new(&d, SLOT);
	assert_int_equal(oci_writer_write(w, src, n, 0), 0);
	assert_int_equal(oci_writer_finish(w), 0);
	assert_int_equal(d.dfd, -1);
	assert_int_equal(pread(fd, got, n, 0), (ssize_t)n);
	assert_memory_equal(got, src, n);
	/* a plain aligned write, then reads: the push's paths */
	refuse_transfers(&d);
	assert_int_equal(oci_direct_pwrite(&d, src, SLOT, n), 0);
	assert_int_equal(d.dfd, -1);
	refuse_transfers(&d);
	memset(got, 0, n);
	assert_int_equal(oci_direct_pread(&d, got, n, 0), (int64_t)n);
	assert_int_equal(d.dfd, -1);
	assert_memory_equal(got, src, n);
	refuse_transfers(&d);
	struct oci_prefetch *p = oci_prefetch_new(&d, 0, n + SLOT, SLOT, false);
	const void *data;
	size_t len;
	uint64_t at;
	memset(got, 0, n);
	while (oci_prefetch_next(p, &data, &len, &at) == 1 && at < n)
		memcpy(got + at, data, len);
	oci_prefetch_free(p);
	assert_int_equal(d.dfd, -1);
	assert_memory_equal(got, src, n);
	refused_fd = -2;
	close(fd);
	free(src);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_direct),
	    cmocka_unit_test(test_buffered),
	    cmocka_unit_test(test_refused_at_first_transfer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
