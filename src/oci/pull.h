/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Fetch the layers of a parsed manifest into a staging directory (tart-facts §4.4, with
 * verification): config.json, nvram.bin (Tart), kernel/initramfs (Vetu) and disk.img.
 * Disk layers are downloaded in parallel and decoded while streaming straight into a sparse
 * disk.img at their offsets; zero runs are not written. Every compressed digest and every
 * uncompressed content digest is verified (-EBADMSG on mismatch). Verified layers are recorded
 * in <staging>/.progress (after the data is fsync'ed), so a later call on the same staging
 * directory resumes with the layers that are still missing; a layer in flight keeps a resume
 * point in <staging>/.layer-<n>.part (the compressed offset, the decoded offset and both
 * running digests, about every MiB), so that layer resumes with a Range request (and restarts
 * from its first byte if the resume point turns out stale). Layers whose digests match a layer
 * of a local image are copied from that image instead of downloaded. The disk is written with
 * O_DIRECT where the filesystem allows it (oci/io.h). Logging.
 */

#include <stdbool.h>
#include <stddef.h>

#include "oci/manifest.h"
#include "oci/registry.h"

struct oci_pull_local {
	const char *disk_path; /* disk.img of a cached image */
	const struct oci_manifest *manifest;
};

/*
 * A saved state in the image (OCI_LAYER_STATE) is pulled only when the caller can judge it:
 * check(userdata, m, NULL, 0) before the download (1: fetch it, 0: leave it out, having said
 * why), then check(userdata, m, staging, result) with the download's result (0, or -EBADMSG
 * when its layers did not verify): the caller keeps staging/OCI_STATE_FILE or deletes it, and
 * returns 0 (or -errno to fail the whole pull).
 */
struct oci_state_check {
	int (*check)(void *userdata, const struct oci_manifest *m, const char *staging, int result);
	void *userdata;
};

struct oci_pull_options {
	unsigned concurrency; /* >= 1 */
	const struct oci_pull_local *locals;
	size_t nlocals;
	bool quiet;    /* no "pulling disk/NVRAM..." lines (import); progress is still shown */
	bool no_parts; /* do not keep partial layers for a later process (local sources) */
	const struct oci_state_check *state; /* NULL: a saved state in the image is ignored */
	/*
	 * Called with the path of the verified config.json before any disk layer is fetched
	 * (NULL: none); a negative return (logged by it) ends the pull with that code.
	 */
	int (*check_config)(const char *path, void *userdata);
	void *check_userdata;
};

int oci_pull_layers(struct oci_registry *r, const struct oci_manifest *m, const char *staging,
		    const struct oci_pull_options *o);

/* Where blobs come from: a registry, or the blobs of an OCI layout (import). Thread-safe. */
struct oci_blob_fetcher {
	/* the blob's bytes from offset on, like oci_registry_get_blob() */
	int (*get)(void *userdata, const char *digest, uint64_t offset, oci_blob_sink sink,
		   void *sink_userdata);
	void *userdata;
	bool reports_errors; /* get() has printed its own failures (the registry client does) */
};
int oci_pull_layers_from(const struct oci_blob_fetcher *f, const struct oci_manifest *m,
			 const char *staging, const struct oci_pull_options *o);
