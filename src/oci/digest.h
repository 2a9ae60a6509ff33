/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Streaming SHA-256 in the OCI spelling "sha256:<64 lowercase hex>". Non-logging.
 */

#include <stddef.h>
#include <stdint.h>

#define OCI_DIGEST_STRLEN (7 + 64 + 1)

struct oci_digest {
	void *ctx; /* EVP_MD_CTX */
};

/* Start a digest; aborts on OOM. */
void oci_digest_init(struct oci_digest *d);
void oci_digest_update(struct oci_digest *d, const void *data, size_t len);
/* Finish into ret ("sha256:..."), then release the context. */
void oci_digest_final(struct oci_digest *d, char ret[OCI_DIGEST_STRLEN]);
/* Release without finishing (safe on a released or zeroed digest). */
void oci_digest_release(struct oci_digest *d);

void oci_digest_buf(const void *data, size_t len, char ret[OCI_DIGEST_STRLEN]);
/* Digest len bytes of fd from offset (pread, holes read as zeros); -errno, -EIO on short file. */
int oci_digest_fd_range(int fd, uint64_t offset, uint64_t len, char ret[OCI_DIGEST_STRLEN]);
