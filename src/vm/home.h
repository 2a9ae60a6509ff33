/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

/*
 * TART_HOME (default ~/.tart) and its fixed sub-directories. home_init() must run first: it
 * resolves the path and creates cache/ and tmp/ as Tart does on every invocation. Logging.
 */
int home_init(void);
/* The absolute TART_HOME path; valid after home_init(). */
const char *home_dir(void);
/* Allocated "<TART_HOME>/<sub>". */
char *home_path(const char *sub);

/*
 * The global lock: flock on the TART_HOME directory, held for short critical sections (MAC
 * uniqueness checks and moves into vms/). Returns an fd to close, or -errno.
 */
int home_lock_global(void);

/*
 * Garbage-collect tmp/: delete every entry nobody holds a flock on. Entries younger than a
 * few seconds are spared (their creator may not have locked them yet). Failures print
 * "Failed to perform garbage collection: ..." and are otherwise ignored.
 */
void home_gc_tmp(void);

/*
 * Create a staging directory tmp/<UUID>, flock'ed. Returns the lock fd (close it to release)
 * and the path in ret_path.
 */
int home_make_staging(char **ret_path);
