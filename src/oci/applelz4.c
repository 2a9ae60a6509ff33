// SPDX-License-Identifier: Apache-2.0
#include "oci/applelz4.h"

#include <errno.h>
#include <lz4.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/cpustat.h"
#include "util/macro.h"

#define WINDOW (64u << 10)
#define ENC_BLOCK (64u << 10)
#define FRAME_OUT (4u << 20)

static const char MAGIC_LZ4[4] = {'b', 'v', '4', '1'};
static const char MAGIC_RAW[4] = {'b', 'v', '4', '-'};
static const char MAGIC_END[4] = {'b', 'v', '4', '$'};

enum dec_state { ST_MAGIC, ST_HDR_LZ4, ST_HDR_RAW, ST_PAYLOAD, ST_END };

/*
 * Decoded output collects in one buffer and goes to the sink in pieces of about EMIT_BYTES:
 * few, large writes. Each block decodes in place right after the previous one (its 64 KiB
 * dictionary is simply the bytes before it), and the buffer keeps output byte n at an address
 * congruent to n modulo OCI_LZ4_OUT_ALIGN, so a sink writing at page-aligned file offsets can
 * use O_DIRECT straight from it.
 */
#define EMIT_BYTES (1u << 20)

struct oci_lz4_dec {
	enum oci_lz4_format fmt;
	uint64_t max_output;
	uint64_t produced; /* handed to the sink */
	uint64_t decoded;  /* produced + what waits in out[emit_from, pos) */
	uint64_t consumed; /* compressed bytes taken in */
	uint64_t boundary; /* compressed bytes up to the end of the last whole block */
	oci_lz4_write_fn write;
	void *userdata;
	/* Apple */
	enum dec_state st;
	unsigned char hdr[12];
	size_t hdr_len, hdr_need;
	bool compressed;
	uint32_t dec_size, enc_size;
	unsigned char *payload; /* a block's encoded bytes when they arrive in several pieces */
	size_t payload_len, payload_alloc;
	unsigned char *out; /* OCI_LZ4_OUT_ALIGN-aligned */
	size_t out_alloc, pos, emit_from;
	size_t hist_len; /* dictionary bytes before out[pos] (0 at the start of a stream) */
	/* frame */
	LZ4F_dctx *fctx;
	bool seen_block;
	bool frame_done;
};

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct oci_lz4_dec *oci_lz4_dec_new(enum oci_lz4_format fmt, uint64_t max_output,
				    oci_lz4_write_fn write, void *userdata)
{
	struct oci_lz4_dec *d = xcalloc(1, sizeof(*d));
	d->fmt = fmt;
	d->max_output = max_output;
	d->write = write;
	d->userdata = userdata;
	d->st = ST_MAGIC;
	d->hdr_need = 4;
	if (fmt == OCI_LZ4_FRAME) {
		if (LZ4F_isError(LZ4F_createDecompressionContext(&d->fctx, LZ4F_VERSION)))
			abort();
		d->out_alloc = OCI_LZ4_OUT_ALIGN + FRAME_OUT;
		d->out = xmalloc_aligned(OCI_LZ4_OUT_ALIGN, d->out_alloc);
		d->frame_done = true; /* an empty stream is no frame at all: finish() rejects it */
	}
	return d;
}

void oci_lz4_dec_free(struct oci_lz4_dec *d)
{
	if (!d)
		return;
	if (d->fctx)
		LZ4F_freeDecompressionContext(d->fctx);
	free(d->payload);
	free(d->out);
	free(d);
}

uint64_t oci_lz4_dec_output(const struct oci_lz4_dec *d)
{
	return d->produced;
}

static int emit(struct oci_lz4_dec *d, const void *p, size_t n)
{
	if (n > d->max_output - d->produced)
		return -EFBIG;
	d->produced += n;
	cpustat_push(CPUSTAT_OTHER); /* the sink's time is its own */
	int r = d->write(d->userdata, p, n);
	cpustat_pop();
	return r;
}

static int emit_pending(struct oci_lz4_dec *d)
{
	size_t n = d->pos - d->emit_from;
	d->emit_from = d->pos;
	return n ? emit(d, d->out + d->pos - n, n) : 0;
}

/*
 * Room for n more decoded bytes at out[pos]: when the buffer is full, hand what waits to the
 * sink and move the dictionary to the front, keeping the address congruence.
 */
static int make_room(struct oci_lz4_dec *d, size_t n)
{
	if (d->out && d->pos + n <= d->out_alloc)
		return 0;
	int r = emit_pending(d);
	if (r < 0)
		return r;
	size_t pos = WINDOW + (size_t)(d->decoded % OCI_LZ4_OUT_ALIGN);
	size_t need = MAX(pos + n, (size_t)WINDOW + OCI_LZ4_OUT_ALIGN + EMIT_BYTES);
	unsigned char *out = d->out;
	if (d->out_alloc < need) {
		d->out_alloc = (need + OCI_LZ4_OUT_ALIGN - 1) & ~((size_t)OCI_LZ4_OUT_ALIGN - 1);
		out = xmalloc_aligned(OCI_LZ4_OUT_ALIGN, d->out_alloc);
	}
	if (d->hist_len)
		memmove(out + pos - d->hist_len, d->out + d->pos - d->hist_len, d->hist_len);
	if (out != d->out) {
		free(d->out);
		d->out = out;
	}
	d->pos = d->emit_from = pos;
	return 0;
}

/* Decode the block whose encoded bytes are at src (enc_size of them). */
static int finish_block(struct oci_lz4_dec *d, const unsigned char *src)
{
	int r = make_room(d, d->dec_size);
	if (r < 0)
		return r;
	unsigned char *dst = d->out + d->pos;
	if (d->compressed) {
		int n = LZ4_decompress_safe_usingDict(
		    (const char *)src, (char *)dst, (int)d->enc_size, (int)d->dec_size,
		    (const char *)dst - d->hist_len, (int)d->hist_len);
		if (n < 0 || (uint32_t)n != d->dec_size)
			return -EBADMSG;
	} else if (d->dec_size > 0) {
		memcpy(dst, src, d->dec_size);
	}
	d->pos += d->dec_size;
	d->decoded += d->dec_size;
	d->hist_len = MIN(d->hist_len + d->dec_size, (size_t)WINDOW);
	d->boundary = d->consumed;
	/* full for a usual block: hand it over now, at a block boundary (see
	 * oci_lz4_dec_at_boundary) */
	if (d->out_alloc - d->pos < ENC_BLOCK)
		return emit_pending(d);
	return 0;
}

static void expect_magic(struct oci_lz4_dec *d)
{
	d->st = ST_MAGIC;
	d->hdr_len = 0;
	d->hdr_need = 4;
}

static int apple_header_done(struct oci_lz4_dec *d)
{
	switch (d->st) {
	case ST_MAGIC:
		if (memcmp(d->hdr, MAGIC_LZ4, 4) == 0) {
			d->st = ST_HDR_LZ4;
			d->hdr_need = 12;
		} else if (memcmp(d->hdr, MAGIC_RAW, 4) == 0) {
			d->st = ST_HDR_RAW;
			d->hdr_need = 8;
		} else if (memcmp(d->hdr, MAGIC_END, 4) == 0) {
			d->st = ST_END;
			d->hdr_len = 0;
			d->hdr_need = 4;
			d->boundary = d->consumed;
			return emit_pending(d);
		} else {
			return -EBADMSG;
		}
		return 0;
	case ST_HDR_LZ4:
	case ST_HDR_RAW:
		d->compressed = d->st == ST_HDR_LZ4;
		d->dec_size = le32(d->hdr + 4);
		d->enc_size = d->compressed ? le32(d->hdr + 8) : d->dec_size;
		if (d->dec_size > OCI_LZ4_BLOCK_MAX)
			return -EBADMSG;
		if (d->compressed && (d->enc_size == 0 ||
				      d->enc_size > (uint32_t)LZ4_compressBound((int)d->dec_size)))
			return -EBADMSG;
		if (d->dec_size > d->max_output - d->decoded)
			return -EFBIG; /* before decoding anything of it */
		d->payload_len = 0;
		d->st = ST_PAYLOAD;
		if (d->enc_size == 0) {
			expect_magic(d);
			return finish_block(d, NULL);
		}
		return 0;
	default:
		return -EBADMSG;
	}
}

static int apple_update(struct oci_lz4_dec *d, const unsigned char *p, size_t len)
{
	while (len > 0) {
		if (d->st == ST_PAYLOAD) {
			const unsigned char *src = p;
			size_t n = (size_t)d->enc_size - d->payload_len;
			if (d->payload_len > 0 || len < n) {
				/* the block spans pieces: collect it */
				if (d->payload_alloc < d->enc_size) {
					free(d->payload);
					d->payload = xmalloc(d->enc_size);
					d->payload_alloc = d->enc_size;
				}
				n = MIN(len, n);
				memcpy(d->payload + d->payload_len, p, n);
				d->payload_len += n;
				src = d->payload;
			}
			p += n;
			len -= n;
			d->consumed += n;
			if (src != d->payload || d->payload_len == d->enc_size) {
				expect_magic(d); /* before the sink sees the block: a boundary */
				int r = finish_block(d, src);
				if (r < 0)
					return r;
			}
			continue;
		}
		if (d->st == ST_END) {
			/* Only another concatenated stream may follow the end marker. */
			d->st = ST_MAGIC;
			d->hist_len = 0;
		}
		size_t n = MIN(len, d->hdr_need - d->hdr_len);
		memcpy(d->hdr + d->hdr_len, p, n);
		d->hdr_len += n;
		d->consumed += n;
		p += n;
		len -= n;
		if (d->hdr_len == d->hdr_need) {
			int r = apple_header_done(d);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int frame_update(struct oci_lz4_dec *d, const unsigned char *p, size_t len)
{
	while (len > 0) {
		/* keep the congruence of output offsets and addresses (see EMIT_BYTES) */
		unsigned char *dst = d->out + d->produced % OCI_LZ4_OUT_ALIGN;
		size_t in = len, out = FRAME_OUT;
		size_t hint = LZ4F_decompress(d->fctx, dst, &out, p, &in, NULL);
		if (LZ4F_isError(hint))
			return -EBADMSG;
		d->seen_block = true;
		d->frame_done = hint == 0;
		p += in;
		len -= in;
		d->consumed += in;
		if (out > 0) {
			d->decoded += out;
			int r = emit(d, dst, out);
			if (r < 0)
				return r;
		}
		if (in == 0 && out == 0)
			return -EBADMSG;
	}
	return 0;
}

int oci_lz4_dec_update(struct oci_lz4_dec *d, const void *data, size_t len)
{
	cpustat_push(CPUSTAT_DECOMPRESS);
	int r = d->fmt == OCI_LZ4_FRAME ? frame_update(d, data, len) : apple_update(d, data, len);
	cpustat_pop();
	return r;
}

int oci_lz4_dec_finish(struct oci_lz4_dec *d)
{
	if (d->fmt == OCI_LZ4_FRAME)
		return d->seen_block && d->frame_done ? 0 : -EBADMSG;
	int r = emit_pending(d);
	if (r < 0)
		return r;
	return d->st == ST_END ? 0 : -EBADMSG;
}

bool oci_lz4_dec_at_boundary(const struct oci_lz4_dec *d, uint64_t *ret_consumed,
			     uint64_t *ret_decoded)
{
	if (d->fmt != OCI_LZ4_APPLE || d->st != ST_MAGIC || d->hdr_len != 0 ||
	    d->produced != d->decoded)
		return false;
	*ret_consumed = d->boundary;
	*ret_decoded = d->decoded;
	return true;
}

int oci_lz4_dec_resume(struct oci_lz4_dec *d, const void *window, size_t wlen, uint64_t consumed,
		       uint64_t decoded)
{
	if (d->fmt != OCI_LZ4_APPLE || d->consumed != 0 || wlen > WINDOW || wlen > decoded ||
	    decoded > d->max_output)
		return -EINVAL;
	d->decoded = d->produced = decoded;
	d->consumed = d->boundary = consumed;
	d->hist_len = 0;
	int r = make_room(d, 0);
	if (r < 0)
		return r;
	memcpy(d->out + d->pos - wlen, window, wlen);
	d->hist_len = wlen;
	return 0;
}

struct oci_lz4_enc {
	oci_lz4_write_fn write;
	void *userdata;
	LZ4_stream_t *stream;
	unsigned char *ring; /* two ENC_BLOCK halves: the previous block stays addressable */
	unsigned int half;
	size_t fill;
	unsigned char *cbuf;
	bool finished;
};

struct oci_lz4_enc *oci_lz4_enc_new(oci_lz4_write_fn write, void *userdata)
{
	struct oci_lz4_enc *e = xcalloc(1, sizeof(*e));
	e->write = write;
	e->userdata = userdata;
	e->stream = LZ4_createStream();
	if (!e->stream)
		abort();
	e->ring = xmalloc(2 * ENC_BLOCK);
	e->cbuf = xmalloc(12 + (size_t)LZ4_compressBound(ENC_BLOCK));
	return e;
}

void oci_lz4_enc_free(struct oci_lz4_enc *e)
{
	if (!e)
		return;
	LZ4_freeStream(e->stream);
	free(e->ring);
	free(e->cbuf);
	free(e);
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static int enc_out(struct oci_lz4_enc *e, const void *p, size_t n)
{
	cpustat_push(CPUSTAT_OTHER); /* the sink's time is its own */
	int r = e->write(e->userdata, p, n);
	cpustat_pop();
	return r;
}

/* Compress one block of n bytes at src (its dictionary: the block before, wherever it is). */
static int enc_block(struct oci_lz4_enc *e, const unsigned char *src, size_t n)
{
	int c = LZ4_compress_fast_continue(e->stream, (const char *)src, (char *)e->cbuf + 12,
					   (int)n, LZ4_compressBound(ENC_BLOCK), 1);
	if (c > 0 && (size_t)c < n) {
		memcpy(e->cbuf, MAGIC_LZ4, 4);
		put32(e->cbuf + 4, (uint32_t)n);
		put32(e->cbuf + 8, (uint32_t)c);
		return enc_out(e, e->cbuf, 12 + (size_t)c);
	}
	unsigned char hdr[8];
	memcpy(hdr, MAGIC_RAW, 4);
	put32(hdr + 4, (uint32_t)n);
	int r = enc_out(e, hdr, 8);
	return r < 0 ? r : enc_out(e, src, n);
}

/* Compress what the ring holds. */
static int enc_flush(struct oci_lz4_enc *e)
{
	if (e->fill == 0)
		return 0;
	int r = enc_block(e, e->ring + (size_t)e->half * ENC_BLOCK, e->fill);
	e->half ^= 1;
	e->fill = 0;
	return r < 0 ? r : 0;
}

/*
 * Every block goes through the ring, even when the caller has it whole: compressing in place
 * would save a copy but change the blocks' dictionary mode, and with it the bytes (and digests)
 * of every pushed layer.
 */
static int enc_update(struct oci_lz4_enc *e, const unsigned char *p, size_t len)
{
	while (len > 0) {
		size_t n = MIN(len, (size_t)ENC_BLOCK - e->fill);
		memcpy(e->ring + (size_t)e->half * ENC_BLOCK + e->fill, p, n);
		e->fill += n;
		p += n;
		len -= n;
		if (e->fill == ENC_BLOCK) {
			int r = enc_flush(e);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int oci_lz4_enc_update(struct oci_lz4_enc *e, const void *data, size_t len)
{
	cpustat_push(CPUSTAT_COMPRESS);
	int r = enc_update(e, data, len);
	cpustat_pop();
	return r;
}

int oci_lz4_enc_finish(struct oci_lz4_enc *e)
{
	cpustat_push(CPUSTAT_COMPRESS);
	int r = enc_flush(e);
	cpustat_pop();
	if (r < 0)
		return r;
	e->finished = true;
	return enc_out(e, MAGIC_END, 4);
}
