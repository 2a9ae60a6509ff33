/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Small I/O and threading helpers shared by push, pull and the archive code. Non-logging. */

#include <stddef.h>
#include <stdint.h>

/* oci_blob_source over a struct strbuf (userdata) and over a file descriptor (int *userdata). */
int64_t oci_strbuf_source(void *userdata, uint64_t offset, void *buf, size_t len);
int64_t oci_fd_source(void *userdata, uint64_t offset, void *buf, size_t len);

/* Read fd from its current position to the end, handing each piece to sink; 0 or -errno. */
int oci_stream_fd(int fd, int (*sink)(void *userdata, const void *data, size_t len),
		  void *userdata);

/* Run fn(arg) on n threads (at least one) and wait for them; runs inline if none can start. */
void oci_run_workers(void *(*fn)(void *), void *arg, unsigned n);
