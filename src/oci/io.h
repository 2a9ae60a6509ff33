/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Small I/O and threading helpers shared by push, pull and the archive code. Non-logging. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* oci_blob_source over a struct strbuf (userdata) and over a file descriptor (int *userdata). */
int64_t oci_strbuf_source(void *userdata, uint64_t offset, void *buf, size_t len);
int64_t oci_fd_source(void *userdata, uint64_t offset, void *buf, size_t len);

/* Read fd from its current position to the end, handing each piece to sink; 0 or -errno. */
int oci_stream_fd(int fd, int (*sink)(void *userdata, const void *data, size_t len),
		  void *userdata);

/* True when [off, off+len) of fd holds no data (one hole; SEEK_DATA). */
bool oci_range_is_hole(int fd, uint64_t off, uint64_t len);

/* Run fn(arg) on n threads (at least one) and wait for them; runs inline if none can start. */
void oci_run_workers(void *(*fn)(void *), void *arg, unsigned n);

/*
 * Bulk writes and reads that bypass the page cache. Copying into and out of the page cache is
 * most of the CPU cost of buffered I/O for multi-GB blobs and disks, and the data goes to the
 * disk anyway (pull syncs the disk; push reads its temporary file back once). The whole pages of
 * a transfer whose memory address and file offset agree modulo OCI_IO_ALIGN go through an
 * O_DIRECT descriptor of the same file; the rest, and everything where the filesystem refuses
 * O_DIRECT (or TART_NO_DIRECT_IO is set), through the ordinary descriptor. Thread-safe.
 */
#define OCI_IO_ALIGN 4096u

struct oci_direct {
	int fd;		 /* the ordinary descriptor (not owned) */
	_Atomic int dfd; /* an O_DIRECT descriptor of the same file (owned), -1 when none */
};

/* Set up d for fd (read-write when write is set). Never fails: without O_DIRECT, d->dfd is -1. */
void oci_direct_init(struct oci_direct *d, int fd, bool write);
void oci_direct_release(struct oci_direct *d);
/* Like fs_pwrite_all(); 0 or -errno. */
int oci_direct_pwrite(struct oci_direct *d, const void *data, size_t len, uint64_t offset);
/* Read up to len bytes at offset, fewer only at the end of the file: the count or -errno. */
int64_t oci_direct_pread(struct oci_direct *d, void *buf, size_t len, uint64_t offset);

/*
 * An ordered background writer over an oci_direct: oci_writer_write() copies the data into one
 * of two aligned buffers of `slot` bytes (a multiple of OCI_IO_ALIGN) and returns, and a thread
 * writes each filled buffer while the caller goes on decoding, compressing or hashing: the disk's
 * latency (O_DIRECT writes wait for the device) is not on the caller's path. A note (a small record
 * for another file: a resume point) is written once everything queued before it is written. Without
 * a thread (pthread_create failed) everything is written in the calling thread. Errors are sticky:
 * the first one is returned by every later write and by finish.
 */
struct oci_writer;

struct oci_writer *oci_writer_new(struct oci_direct *d, size_t slot);
int oci_writer_write(struct oci_writer *w, const void *data, size_t len, uint64_t offset);
/* Write text at offset 0 of fd (replacing a record of the same length) after what is queued. */
void oci_writer_note(struct oci_writer *w, int fd, const char *text);
/* Write everything queued, stop the thread, free w: 0 or the first error. */
int oci_writer_finish(struct oci_writer *w);

/*
 * Sequential O_DIRECT reads with the next piece read ahead by a thread, so the device's
 * latency overlaps the caller's work (hashing, compressing, sending). Pieces of `piece` bytes
 * (a multiple of OCI_IO_ALIGN) cover [offset, end); with skip_holes, a piece that is all hole
 * comes back as NULL data (zeros) without being read. Without a thread, pieces are read when
 * asked for.
 */
struct oci_prefetch;

struct oci_prefetch *oci_prefetch_new(struct oci_direct *d, uint64_t offset, uint64_t end,
				      size_t piece, bool skip_holes);
/*
 * The next piece: *ret_data (valid until the next call; NULL for a hole) and *ret_len, its
 * offset *ret_offset; 1 for a piece, 0 at the end, -errno (-EIO: the file is shorter).
 */
int oci_prefetch_next(struct oci_prefetch *p, const void **ret_data, size_t *ret_len,
		      uint64_t *ret_offset);
void oci_prefetch_free(struct oci_prefetch *p);

/*
 * An oci_blob_source over the first `size` bytes of a file, read through an oci_prefetch: the
 * next piece is on its way while the current one is sent. Sequential calls are the fast case; a
 * call at another offset (an upload that starts again) restarts the read-ahead there. Set d and
 * size; release when done.
 */
struct oci_direct_reader {
	struct oci_direct *d;
	uint64_t size;
	struct oci_prefetch *ahead;
	const unsigned char *data; /* the current piece: [at, at + len) */
	size_t len;
	uint64_t at;
};
int64_t oci_direct_source(void *userdata, uint64_t offset, void *buf, size_t len);
void oci_direct_reader_release(struct oci_direct_reader *r);
