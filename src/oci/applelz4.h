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
 * data in order, in pieces of about 1 MiB (the Apple decoder decodes in place into one buffer:
 * no copy between blocks). They never hold more than that buffer, or one block when it is
 * larger (at most OCI_LZ4_BLOCK_MAX decoded bytes), plus a 64 KiB window, and fail with -EFBIG
 * once more than max_output bytes would be produced. Malformed input is -EBADMSG; a stream
 * that ends early is -EBADMSG from _finish().
 *
 * The data handed to `write` for output offset n sits at an address congruent to n modulo
 * OCI_LZ4_OUT_ALIGN, so a sink writing at page-aligned offsets can use O_DIRECT from it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OCI_LZ4_BLOCK_MAX (128u << 20)
#define OCI_LZ4_OUT_ALIGN 4096u

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
 * Resuming an Apple LZ4 stream in another process. Inside `write`, or between updates:
 * true when every decoded byte has been handed over and the decoder stands between two blocks;
 * then *ret_consumed compressed bytes produced exactly *ret_decoded decoded ones, and a new
 * decoder given the last (up to 64 KiB) decoded bytes by oci_lz4_dec_resume() continues from
 * compressed offset *ret_consumed. Always false for LZ4 frames.
 */
bool oci_lz4_dec_at_boundary(const struct oci_lz4_dec *d, uint64_t *ret_consumed,
			     uint64_t *ret_decoded);
/* Before the first update: continue as described above; -EINVAL for LZ4 frames or bad sizes. */
int oci_lz4_dec_resume(struct oci_lz4_dec *d, const void *window, size_t wlen, uint64_t consumed,
		       uint64_t decoded);

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
