/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Streaming SHA-256 in the OCI spelling "sha256:<64 lowercase hex>". Non-logging.
 */

#include <stddef.h>
#include <stdint.h>

#define OCI_DIGEST_STRLEN (7 + 64 + 1)
/* A running digest saved as text (oci_digest_save): 112 bytes of state in hex, NUL-terminated. */
#define OCI_DIGEST_STATE_STRLEN (2 * 112 + 1)

struct oci_digest {
	void *ctx; /* SHA256_CTX */
};

/* Start a digest; aborts on OOM. */
void oci_digest_init(struct oci_digest *d);
void oci_digest_update(struct oci_digest *d, const void *data, size_t len);
/* Finish into ret ("sha256:..."), then release the context. */
void oci_digest_final(struct oci_digest *d, char ret[OCI_DIGEST_STRLEN]);
/* Release without finishing (safe on a released or zeroed digest). */
void oci_digest_release(struct oci_digest *d);

/*
 * The running state of d as text, so that another process (of the same build: the layout is
 * libcrypto's) continues the digest with oci_digest_restore(). Restore re-initialises d;
 * -EINVAL when the text is not a saved state.
 */
void oci_digest_save(const struct oci_digest *d, char ret[OCI_DIGEST_STATE_STRLEN]);
int oci_digest_restore(struct oci_digest *d, const char *state);

void oci_digest_buf(const void *data, size_t len, char ret[OCI_DIGEST_STRLEN]);
/* Digest len bytes of fd from offset (pread, holes read as zeros); -errno, -EIO on short file. */
int oci_digest_fd_range(int fd, uint64_t offset, uint64_t len, char ret[OCI_DIGEST_STRLEN]);
/*
 * Digest of n zero bytes (a hole, an empty disk chunk). Known for Tart's 512 MiB chunk size,
 * computed once per process and size otherwise. Thread-safe.
 */
void oci_digest_zeros(uint64_t n, char ret[OCI_DIGEST_STRLEN]);
