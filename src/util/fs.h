/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/strbuf.h"

/* Filesystem helpers. Non-logging: every function returns -errno and prints nothing. */

/* write/pwrite the whole buffer, retrying on EINTR and short writes; 0 or -errno. */
int fs_write_all(int fd, const void *data, size_t len);
int fs_pwrite_all(int fd, const void *data, size_t len, uint64_t offset);
/* Write data to path through a temp file in the same directory, fsync, rename, fsync dir. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/*
 * Read a whole regular file into sb (appending); -EFBIG when it is larger than cap (0 = no
 * cap), -EISDIR for a directory, -EINVAL for anything else that is not a regular file (a FIFO
 * or device would block or never end).
 */
int fs_read_full(const char *path, size_t cap, struct strbuf *sb);
/* mkdir -p; mode for every created component. */
int fs_mkdir_p(const char *path, mode_t mode);
/* rm -rf without following symlinks; missing path is success. */
int fs_rm_rf(const char *path);
/* fsync a directory (for renames to be durable). */
int fs_fsync_dir(const char *path);
/* fsync the directory that holds path. */
int fs_fsync_parent(const char *path);
bool fs_exists(const char *path);
bool fs_is_dir(const char *path);

enum fs_copy_method { FS_COPY_REFLINK, FS_COPY_SPARSE };
/*
 * Copy src to dst (created or truncated, mode of src): FICLONE when the filesystem supports
 * it, otherwise an in-kernel copy of the data regions only (SEEK_DATA/SEEK_HOLE +
 * copy_file_range), so holes stay holes. The data is fsync'ed. ret_method may be NULL.
 * src must be a regular file (-EISDIR / -EINVAL otherwise, dst untouched).
 */
int fs_copy_file(const char *src, const char *dst, enum fs_copy_method *ret_method);
/* Same on open descriptors; dst must be empty and will be sized to src's length. */
int fs_copy_fd(int src_fd, int dst_fd, enum fs_copy_method *ret_method);
/* Create dst as a reflink (copy-on-write clone) of src: 0, or -errno (-EOPNOTSUPP, -EXDEV...)
 * and no dst. */
int fs_reflink_file(const char *src, const char *dst);

/* Apparent (st_size) and allocated (st_blocks*512) size of a file. */
int fs_file_sizes(const char *path, uint64_t *ret_apparent, uint64_t *ret_allocated);

/* flock(2) on an open descriptor; nonblock returns -EWOULDBLOCK when held elsewhere. */
int fs_flock(int fd, bool exclusive, bool nonblock);
/* Open path (file or directory) read-only and flock it exclusively; returns the fd. */
int fs_open_flock(const char *path, bool nonblock);
/* The same with a choice of shared or exclusive lock. */
int fs_open_lock(const char *path, bool exclusive, bool nonblock);

/* A random RFC 4122 version-4 UUID in upper case, as Foundation's UUID prints it. */
void fs_random_uuid(char ret[37]);
/* Fill buf with random bytes from getrandom(2). */
int fs_random_bytes(void *buf, size_t len);

/* Join two path components with exactly one '/'. Allocates. */
char *path_join(const char *a, const char *b);
