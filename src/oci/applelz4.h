/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * LZ4 stream codecs for OCI disk layers. Non-logging: errors are -errno only.
 *
 * Apple LZ4 (what Tart pushes, tart-facts §4.5): a sequence of blocks
 *   "bv41" u32le decoded_size u32le encoded_size <raw LZ4 block>  (may reference the previous
 *          64 KiB of decoded output)
 *   "bv4-" u32le size <size raw bytes>
 *   "bv4$" end of stream
 * The standard LZ4 frame format (lz4(1), Vetu's disk layers) has its own decoder below.
 *
 * Decoders are fed arbitrary pieces of the compressed stream and call `write` with decoded
 * data in order. They never hold more than one block (at most OCI_LZ4_BLOCK_MAX decoded bytes)
 * plus a 64 KiB window, and fail with -EFBIG once more than max_output bytes would be produced.
 * Malformed input is -EBADMSG; a stream that ends early is -EBADMSG from _finish().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCI_LZ4_BLOCK_MAX (128u << 20)

/* Receives output (decoded data for decoders, compressed bytes for the encoder). */
typedef int (*oci_lz4_write_fn)(void *userdata, const void *data, size_t len);

enum oci_lz4_format {
	OCI_LZ4_APPLE, /* bv41/bv4-/bv4$ */
	OCI_LZ4_FRAME, /* standard LZ4 frame(s) */
};

struct oci_lz4_dec;

struct oci_lz4_dec *oci_lz4_dec_new(enum oci_lz4_format fmt, uint64_t max_output,
				    oci_lz4_write_fn write, void *userdata);
/* Feed compressed bytes; returns 0 or -errno (the sink's own error is passed through). */
int oci_lz4_dec_update(struct oci_lz4_dec *d, const void *data, size_t len);
/* End of input: 0 when the stream was complete, -EBADMSG when truncated. */
int oci_lz4_dec_finish(struct oci_lz4_dec *d);
/* Decoded bytes produced so far. */
uint64_t oci_lz4_dec_output(const struct oci_lz4_dec *d);
void oci_lz4_dec_free(struct oci_lz4_dec *d);

/*
 * Apple LZ4 encoder: 64 KiB blocks compressed with dictionary chaining (each block may reference
 * the previous one), a stored "bv4-" block when a block does not shrink, "bv4$" at the end.
 */
struct oci_lz4_enc;

struct oci_lz4_enc *oci_lz4_enc_new(oci_lz4_write_fn write, void *userdata);
int oci_lz4_enc_update(struct oci_lz4_enc *e, const void *data, size_t len);
/* Flush the last block and write the end marker. */
int oci_lz4_enc_finish(struct oci_lz4_enc *e);
void oci_lz4_enc_free(struct oci_lz4_enc *e);
