/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `tart export` / `tart import` as an OCI image-layout tar (oci-layout, index.json,
 * blobs/sha256/<hex>) holding exactly the manifest and blobs `tart push` would upload, so
 * `skopeo copy oci-archive:<file> docker://...` can push it anywhere. (Tart's own .tvm is an
 * Apple Archive compressed with LZFSE, which Linux tools cannot read.) Logging.
 */

#include "oci/pull.h"
#include "oci/push.h"

/* Write the image of VM directory dir to path (temp file beside it, fsync, rename). */
int oci_archive_export(const char *dir, const char *path, const struct oci_push_options *o);

/*
 * Read an archive into staging (an existing, locked, empty directory): every entry name is
 * validated (only the layout's own files; no links, devices, absolute or ".." paths), every
 * blob's digest is verified, the single Tart image in index.json is decoded into
 * staging/{config.json,disk.img,nvram.bin}. On failure staging may hold partial files.
 */
int oci_archive_import(const char *path, const char *staging, unsigned concurrency,
		       const struct oci_state_check *state);
