/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

#include "vm/dir.h"

/*
 * Stage a replacement disk: creates tmp/set-disk-<UUID> (empty, flock'ed so the tmp/ GC
 * spares it). Returns the lock fd; the caller fills the file, then calls vm_disk_install.
 */
int vm_disk_stage(char **ret_path);
/* Atomically replace disk.img with the staged file (fsync + rename). Logging. */
int vm_disk_install(const struct vm_dir *d, const char *staged);
/*
 * Grow disk.img to new_bytes (sparse). Tart's error when it would shrink:
 * "new disk size of X should be larger than the current disk size of Y". Logging.
 */
int vm_disk_grow(const struct vm_dir *d, uint64_t new_bytes);
