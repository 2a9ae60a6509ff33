// SPDX-License-Identifier: Apache-2.0
#include "oci/applelz4.h"

#include <errno.h>
#include <lz4.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/macro.h"

#define WINDOW (64u << 10)
#define ENC_BLOCK (64u << 10)

static const char MAGIC_LZ4[4] = {'b', 'v', '4', '1'};
static const char MAGIC_RAW[4] = {'b', 'v', '4', '-'};
static const char MAGIC_END[4] = {'b', 'v', '4', '$'};

enum dec_state { ST_MAGIC, ST_HDR_LZ4, ST_HDR_RAW, ST_PAYLOAD, ST_END };

struct oci_lz4_dec {
	enum oci_lz4_format fmt;
	uint64_t max_output;
	uint64_t produced;
	oci_lz4_write_fn write;
	void *userdata;
	/* Apple */
	enum dec_state st;
	unsigned char hdr[12];
	size_t hdr_len, hdr_need;
	bool compressed;
	uint32_t dec_size, enc_size;
	unsigned char *payload; /* enc_size bytes being collected */
	size_t payload_len, payload_alloc;
	unsigned char *out; /* WINDOW history followed by the block being decoded */
	size_t out_alloc;
	size_t hist_len;
	bool seen_block;
	/* frame */
	LZ4F_dctx *fctx;
	unsigned char *fbuf;
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
		d->fbuf = xmalloc(4u << 20);
		d->frame_done = true; /* an empty stream is no frame at all: finish() rejects it */
		d->seen_block = false;
	}
	return d;
}

void oci_lz4_dec_free(struct oci_lz4_dec *d)
{
	if (!d)
		return;
	if (d->fctx)
		LZ4F_freeDecompressionContext(d->fctx);
	free(d->fbuf);
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
	return d->write(d->userdata, p, n);
}

/* Keep the last WINDOW bytes of decoded output at the start of d->out. */
static void keep_window(struct oci_lz4_dec *d, size_t total)
{
	size_t keep = MIN(total, (size_t)WINDOW);
	memmove(d->out, d->out + total - keep, keep);
	d->hist_len = keep;
}

static int finish_block(struct oci_lz4_dec *d)
{
	size_t need = (size_t)WINDOW + d->dec_size;
	if (d->out_alloc < need) {
		d->out = xrealloc(d->out, need);
		d->out_alloc = need;
	}
	unsigned char *dst = d->out + d->hist_len;
	if (d->compressed) {
		int n = LZ4_decompress_safe_usingDict((const char *)d->payload, (char *)dst,
						      (int)d->enc_size, (int)d->dec_size,
						      (const char *)d->out, (int)d->hist_len);
		if (n < 0 || (uint32_t)n != d->dec_size)
			return -EBADMSG;
	} else {
		memcpy(dst, d->payload, d->dec_size);
	}
	int r = emit(d, dst, d->dec_size);
	if (r < 0)
		return r;
	keep_window(d, d->hist_len + d->dec_size);
	d->seen_block = true;
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
		if (d->payload_alloc < d->enc_size) {
			free(d->payload);
			d->payload = xmalloc(d->enc_size);
			d->payload_alloc = d->enc_size;
		}
		d->payload_len = 0;
		d->st = ST_PAYLOAD;
		if (d->enc_size == 0) {
			int r = finish_block(d);
			if (r < 0)
				return r;
			expect_magic(d);
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
			size_t n = MIN(len, (size_t)d->enc_size - d->payload_len);
			memcpy(d->payload + d->payload_len, p, n);
			d->payload_len += n;
			p += n;
			len -= n;
			if (d->payload_len == d->enc_size) {
				int r = finish_block(d);
				if (r < 0)
					return r;
				expect_magic(d);
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
		size_t in = len, out = 4u << 20;
		size_t hint = LZ4F_decompress(d->fctx, d->fbuf, &out, p, &in, NULL);
		if (LZ4F_isError(hint))
			return -EBADMSG;
		d->seen_block = true;
		d->frame_done = hint == 0;
		p += in;
		len -= in;
		if (out > 0) {
			int r = emit(d, d->fbuf, out);
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
	if (d->fmt == OCI_LZ4_FRAME)
		return frame_update(d, data, len);
	return apple_update(d, data, len);
}

int oci_lz4_dec_finish(struct oci_lz4_dec *d)
{
	if (d->fmt == OCI_LZ4_FRAME)
		return d->seen_block && d->frame_done ? 0 : -EBADMSG;
	return d->st == ST_END ? 0 : -EBADMSG;
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

static int enc_flush(struct oci_lz4_enc *e)
{
	if (e->fill == 0)
		return 0;
	const unsigned char *src = e->ring + (size_t)e->half * ENC_BLOCK;
	int n = LZ4_compress_fast_continue(e->stream, (const char *)src, (char *)e->cbuf + 12,
					   (int)e->fill, LZ4_compressBound(ENC_BLOCK), 1);
	int r;
	if (n > 0 && (size_t)n < e->fill) {
		memcpy(e->cbuf, MAGIC_LZ4, 4);
		put32(e->cbuf + 4, (uint32_t)e->fill);
		put32(e->cbuf + 8, (uint32_t)n);
		r = e->write(e->userdata, e->cbuf, 12 + (size_t)n);
	} else {
		unsigned char hdr[8];
		memcpy(hdr, MAGIC_RAW, 4);
		put32(hdr + 4, (uint32_t)e->fill);
		r = e->write(e->userdata, hdr, 8);
		if (r >= 0)
			r = e->write(e->userdata, src, e->fill);
	}
	e->half ^= 1;
	e->fill = 0;
	return r < 0 ? r : 0;
}

int oci_lz4_enc_update(struct oci_lz4_enc *e, const void *data, size_t len)
{
	const unsigned char *p = data;
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

int oci_lz4_enc_finish(struct oci_lz4_enc *e)
{
	int r = enc_flush(e);
	if (r < 0)
		return r;
	e->finished = true;
	return e->write(e->userdata, MAGIC_END, 4);
}
