/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * CONTRACT (written before the implementation, shared by push/pull): the OCI distribution
 * client. One `struct oci_registry` per (host, namespace); thread-safe for concurrent blob
 * transfers (each call uses its own curl easy handle from a shared pool / share handle; the
 * auth token cache is protected by a mutex). Logging: failures are logged once here with the
 * registry's response body (first 1000 bytes), then returned as -errno:
 *   401/403 -> -EACCES, 404 -> -ENOENT, 416 -> -ERANGE, digest mismatch -> -EBADMSG,
 *   size cap -> -EFBIG, other 4xx -> -EPROTO, 5xx/429 after retries -> -EAGAIN,
 *   transport errors after retries -> -ECONNRESET (or -ETIMEDOUT).
 * Retries with backoff on transport errors, 5xx and 429 (honouring Retry-After); a 401 is
 * retried once after (re)authenticating; tokens expiring mid-transfer are renewed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"

struct oci_registry;

struct oci_registry_options {
	bool insecure;          /* plain HTTP */
	const char *user_agent; /* NULL: "Tart/<version> (Linux <release>; <machine>)" */
	/* Explicit credentials (login validation); NULL: look them up (env, Docker config). */
	const char *username;
	const char *password;
};

/* host as in the reference ("127.0.0.1:5000"; docker.io is mapped to its API host). */
int oci_registry_new(const char *host, const char *namespace,
		     const struct oci_registry_options *opts, struct oci_registry **ret);
struct oci_registry *oci_registry_free(struct oci_registry *r);

/* GET /v2/ through the auth flow; 0 when the registry answers 200. */
int oci_registry_ping(struct oci_registry *r);

/*
 * GET a manifest by tag or digest, Accept: OCI manifest (and Docker v2 for errors). body is
 * capped at 4 MiB; ret_digest gets "sha256:<hex>" of the exact bytes (allocated). When the
 * reference is a digest the bytes are verified against it (-EBADMSG otherwise).
 */
int oci_registry_get_manifest(struct oci_registry *r, const char *reference, struct strbuf *body,
			      char **ret_media_type, char **ret_digest);
/* PUT a manifest under a tag (or digest); expects 201. */
int oci_registry_put_manifest(struct oci_registry *r, const char *reference,
			      const char *media_type, const void *body, size_t len);

/* HEAD a blob: 1 present, 0 absent, -errno on error. ret_size optional. */
int oci_registry_blob_exists(struct oci_registry *r, const char *digest, uint64_t *ret_size);

/*
 * Streaming blob download. The sink gets the bytes in order, starting at `offset` (a Range
 * request resumes there; offset 0 requires 200, offset > 0 requires 206). Returning a
 * negative value from the sink aborts the transfer with that value. Transport failures
 * mid-blob are retried from the last byte delivered, so the sink sees each byte once.
 * Redirects are followed; Authorization is never sent to another host.
 */
typedef int (*oci_blob_sink)(void *userdata, const void *data, size_t len);
int oci_registry_get_blob(struct oci_registry *r, const char *digest, uint64_t offset,
			  oci_blob_sink sink, void *userdata);

/*
 * Upload a blob of `size` bytes produced by `source` (called to fill buf with up to len bytes
 * at the given offset; returns bytes written or -errno; it may be called again for the same
 * offsets on retry, so it must be re-readable). chunk_size 0 = monolithic POST + PUT;
 * otherwise PATCH chunks of chunk_size bytes with the last one in the final PUT.
 * When mount_from is a repository name on the same registry, a cross-repository mount is
 * tried first (201 = done, 202 = fall back to upload).
 */
/*
 * The same transfer without the digest check, for callers that hash every byte themselves
 * anyway (pull hashes each layer to verify it and to resume it): one SHA-256 pass, not two.
 */
int oci_registry_get_blob_unverified(struct oci_registry *r, const char *digest, uint64_t offset,
				     oci_blob_sink sink, void *userdata);

typedef int64_t (*oci_blob_source)(void *userdata, uint64_t offset, void *buf, size_t len);
int oci_registry_push_blob(struct oci_registry *r, const char *digest, uint64_t size,
			   uint64_t chunk_size, const char *mount_from, oci_blob_source source,
			   void *userdata);

/*
 * IMPLEMENTATION NOTES (src/oci/registry.c; the signatures and semantics above are unchanged):
 * - oci_registry_get_blob verifies the sha256 of the streamed bytes when offset is 0 and
 *   returns -EBADMSG at the end on a mismatch (the sink has seen the bytes by then: callers
 *   must discard them). With offset > 0 nothing is verified here (the prefix is not seen).
 *   A server that ignores Range and answers 200 is tolerated: the prefix is skipped, the
 *   sink still starts at offset. A 206 whose Content-Range does not start at the requested
 *   offset is -ERANGE.
 * - Transfers that break after delivering bytes restart their attempt count (each retry
 *   must make progress); a stalled transfer (under 1 byte/s for 60 s, env
 *   TART_REGISTRY_STALL_TIMEOUT=<s> to change) is a transport error and retried.
 * - Uploads are retried from the POST (a new session) on transport errors, 5xx, 429 and a
 *   lost session (404 on PATCH/PUT); a 202 whose Range differs from what was sent is
 *   retried the same way. The mount is only tried on the first attempt.
 * - Backoff: 0.5 s doubling up to 30 s (env TART_REGISTRY_RETRY_DELAY_MS for the first
 *   step), or Retry-After (capped at 120 s); 5 attempts.
 * - Progress of retries is logged at info level ("... retrying in N ms").
 * - Not retried: TLS failures (untrusted certificate: -EPROTO), authentication failures
 *   (-EACCES, or -EPROTO for an unsupported WWW-Authenticate scheme, -EBADMSG for a
 *   malformed one), sink/source errors (their own code).
 * - Authorization is sent to the registry's origin and to upload Locations it hands out;
 *   never across a redirect to another origin. SSL_CERT_FILE / SSL_CERT_DIR select a
 *   private CA. HTTP/1.1 only.
 */
