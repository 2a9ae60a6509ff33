/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Pulled images in the OCI cache (tart-facts §4.4 with verification, resume and sharing):
 * the glue between oci/pull (layers into a staging directory) and the cache layout.
 * Logging.
 */

#include <stdbool.h>

#include "oci/digest.h"
#include "oci/ref.h"
#include "util/strbuf.h"

struct vm_pull_options {
	bool insecure;
	unsigned concurrency;
};

/*
 * Pull `name` (a remote name) into cache/OCIs. Staging is tmp/<md5 of "host/ns:ref">, flock'ed:
 * a second pull of the same reference waits for the first and then finds the image cached;
 * a killed pull resumes from its verified layers. Already cached and linked: prints Tart's
 * message and returns 0.
 */
int vm_pull(const char *name, const struct vm_pull_options *o);

/* True when the remote name is in the cache (tag linked to an initialized digest dir). */
bool vm_cache_has(const struct oci_ref *ref);

/*
 * `push --populate-cache`: copy (never move) the VM directory src_dir into the cache as
 * <repo>/<digest> with manifest.json, and link tag (NULL for none) to it.
 */
int vm_cache_populate(const struct oci_ref *ref, const char *digest, const char *src_dir,
		      const struct strbuf *manifest);

/* Link ref's tag to the already cached digest directory (or mark a digest explicit). */
int vm_cache_link(const struct oci_ref *ref, const char *digest);
