/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `tart export` / `tart import` glue (format in oci/archive.h). Logging.
 */

/* Export the local or cached VM `name` to path. */
int vm_export(const char *name, const char *path);

/* Import the archive at path as the new local VM `name` (staged in tmp/, then moved). */
int vm_import(const char *path, const char *name);
