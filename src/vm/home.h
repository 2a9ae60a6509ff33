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
 * tmp/ entries and their garbage collection. Protocol: a creator holds a shared flock on tmp/
 * from before it creates its entry until it holds an exclusive flock on the entry itself; the
 * GC holds an exclusive flock on tmp/ while it scans. So when the GC can lock one of our
 * entries, nobody is using it, however young it is: no grace period and no race. Entries
 * created by other means (names not made by home_tmp_create) are spared for 10 seconds after
 * their creation, as they may not be locked yet.
 */

/*
 * Delete every tmp/ entry nobody holds a flock on (see above). Failures print
 * "Failed to perform garbage collection: ..." and are otherwise ignored.
 */
void home_gc_tmp(void);

/*
 * Create tmp/<prefix><UUID> (a directory, or an empty regular file opened read-write),
 * flock'ed under the protocol above. prefix must be one home.c knows ("" or "set-disk-").
 * Returns the locked fd (close it to release; the entry stays until deleted) and the
 * allocated path in ret_path. Logging.
 */
int home_tmp_create(const char *prefix, bool directory, char **ret_path);

/* home_tmp_create("", true, ret_path): staging directory tmp/<UUID> of create/clone/import. */
int home_make_staging(char **ret_path);
