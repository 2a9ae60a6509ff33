/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

/*
 * A remote image name as Tart parses it: host[:port]/namespace[:tag|@sha256:hex].
 * host is alnum components joined by '-' or '.', port is digits; namespace is '/'-separated
 * components, each alnum runs optionally joined by one of '.', '-', '_' (so "..", leading or
 * doubled separators are rejected). No tag and no digest means tag "latest". ASCII only.
 */
struct oci_ref {
	char *host;      /* "127.0.0.1:5000", as written (port kept) */
	char *namespace; /* "org/image" */
	char *tag;       /* "latest"; NULL when digest is set */
	char *digest;    /* "sha256:<hex>"; NULL when tag is set */
};

#define OCI_REF_INIT {0}

/*
 * Parse s. On failure returns -EINVAL and, when ret_err is given, a message of the form Tart
 * prints after "failed to parse remote name: " (allocated).
 */
int oci_ref_parse(const char *s, struct oci_ref *ret, char **ret_err);
/* True when s parses as a remote name (contains a host and a namespace). */
bool oci_ref_is_remote(const char *s);
void oci_ref_release(struct oci_ref *ref);
static inline void oci_ref_releasep(struct oci_ref *ref)
{
	oci_ref_release(ref);
}
#define _cleanup_oci_ref_ __attribute__((cleanup(oci_ref_releasep)))

/* "host/namespace:tag" or "host/namespace@sha256:..." (allocated). */
char *oci_ref_to_string(const struct oci_ref *ref);
/* The reference part alone: the tag or the digest. */
const char *oci_ref_reference(const struct oci_ref *ref);
/* True when d is "sha256:" followed by 64 lowercase hex digits. */
bool oci_digest_valid(const char *d);
