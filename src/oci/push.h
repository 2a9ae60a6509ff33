/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Push a VM directory (config.json, disk.img, nvram.bin) as a Tart image (tart-facts §4.3).
 * The disk is cut into opts->disk_chunk uncompressed chunks; each is compressed with Apple
 * LZ4 into an unlinked temp file under opts->tmp_dir while both digests are computed, so
 * memory stays bounded whatever the chunk size. The disk is read and the temp file written and
 * read back with O_DIRECT where the filesystem allows it (oci/io.h): no page-cache copies. Up to
 * opts->concurrency chunks are processed and uploaded in parallel; a blob the registry already has
 * (HEAD) is not uploaded again. Prints Tart's progress lines. Logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/registry.h"
#include "util/strbuf.h"

struct oci_push_options {
	unsigned concurrency;	/* >= 1 */
	uint64_t upload_chunk;	/* --chunk-size in bytes; 0 = monolithic PUT */
	uint64_t disk_chunk;	/* 0 = OCI_DISK_CHUNK (512 MiB) */
	const char *tmp_dir;	/* where compressed chunks are staged */
	const char *mount_from; /* repository on the same registry to mount blobs from, or NULL */
	const char *arch, *os, *disk_format;
	char *const *labels; /* "key=value" */
	size_t nlabels;
	bool quiet; /* no "pushing ..." lines (export) */
	/*
	 * A saved state in the directory is pushed only when this accepts it, once the disk
	 * layers are known (the state is bound to them): 1 with the annotations in ret_meta, 0 to
	 * leave it out (it says why), -errno to fail. NULL: never pushed.
	 */
	int (*state_hook)(void *userdata, const struct oci_layer *disk, size_t ndisk,
			  struct oci_state_meta *ret_meta);
	void *state_userdata;
};

/*
 * Where the blobs of an image go: a registry (push) or an OCI layout archive (export).
 * exists: 1 present, 0 absent, -errno. put: store `size` bytes read through `src`.
 * Both are called from several threads at once.
 */
struct oci_blob_target {
	int (*exists)(void *userdata, const char *digest);
	int (*put)(void *userdata, const char *digest, uint64_t size, oci_blob_source src,
		   void *src_userdata);
	void *userdata;
};

/*
 * Build the image of VM directory `dir` into target t: every blob plus the OCI config stub;
 * the manifest bytes are appended to ret_manifest (not stored in t) with their digest.
 */
int oci_image_write(const struct oci_blob_target *t, const char *dir,
		    const struct oci_push_options *o, struct strbuf *ret_manifest,
		    char ret_digest[OCI_DIGEST_STRLEN]);

/*
 * Upload the blobs of the VM directory `dir` and build its manifest into ret_manifest
 * (appended) and ret_digest. No manifest is PUT: see oci_push_tags().
 */
int oci_push_blobs(struct oci_registry *r, const char *dir, const struct oci_push_options *o,
		   struct strbuf *ret_manifest, char ret_digest[OCI_DIGEST_STRLEN]);

/* PUT the manifest under every tag, printing "pushing manifest for <tag>...". */
int oci_push_tags(struct oci_registry *r, const struct strbuf *manifest, char *const *tags,
		  size_t ntags);
