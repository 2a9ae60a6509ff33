// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lz4frame.h>
#include <stdlib.h>
#include <string.h>

#include "oci/applelz4.h"
#include "util/macro.h"
#include "util/strbuf.h"

static int collect(void *userdata, const void *data, size_t len)
{
	strbuf_putn(userdata, data, len);
	return 0;
}

/* Decode buf fed in pieces of `step` bytes; returns the first error or finish's result. */
static int decode(enum oci_lz4_format fmt, const void *buf, size_t len, size_t step, uint64_t max,
		  struct strbuf *out)
{
	struct oci_lz4_dec *d = oci_lz4_dec_new(fmt, max, collect, out);
	const char *p = buf;
	int r = 0;
	for (size_t off = 0; off < len && r >= 0; off += step) {
		size_t n = len - off < step ? len - off : step;
		r = oci_lz4_dec_update(d, p + off, n);
	}
	if (r >= 0)
		r = oci_lz4_dec_finish(d);
	oci_lz4_dec_free(d);
	return r;
}

/* Hand-made stream: a stored block, a compressed block, a block referencing the previous. */
static const unsigned char vector[] = {
    'b',  'v', '4',  '-', 5,   0,    0,	  0,   'h', 'e',  'l', 'l', 'o', 'b', 'v', '4',
    '1',  21,  0,    0,	  0,   13,   0,	  0,   0,   0x48, 'a', 'b', 'c', 'd', 4,   0,
    0x50, '1', '2',  '3', '4', '5',  'b', 'v', '4', '1',  13,  0,   0,	 0,   9,   0,
    0,	  0,   0x04, 21,  0,   0x50, 'z', 'z', 'z', 'z',  'z', 'b', 'v', '4', '$',
};
static const char vector_out[] = "helloabcdabcdabcdabcd12345abcdabcdzzzzz";

static void test_vector(void **state)
{
	(void)state;
	size_t steps[] = {1, 3, 7, sizeof(vector)};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct strbuf out = STRBUF_INIT;
		assert_int_equal(
		    decode(OCI_LZ4_APPLE, vector, sizeof(vector), steps[i], 1 << 20, &out), 0);
		assert_int_equal(out.len, strlen(vector_out));
		assert_memory_equal(out.buf, vector_out, out.len);
		strbuf_release(&out);
	}
}

static void test_vector_damaged(void **state)
{
	(void)state;
	unsigned char v[sizeof(vector)];
	struct strbuf out = STRBUF_INIT;
	/* every strict prefix is truncated */
	for (size_t n = 0; n < sizeof(vector); n++) {
		strbuf_reset(&out);
		assert_int_equal(decode(OCI_LZ4_APPLE, vector, n, 4, 1 << 20, &out), -EBADMSG);
	}
	/* unknown magic */
	memcpy(v, vector, sizeof(v));
	v[3] = 'x';
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_APPLE, v, sizeof(v), 64, 1 << 20, &out), -EBADMSG);
	/* declared decoded size does not match the block */
	memcpy(v, vector, sizeof(v));
	v[17] = 22;
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_APPLE, v, sizeof(v), 64, 1 << 20, &out), -EBADMSG);
	/* match offset reaching before the start of the stream */
	memcpy(v, vector, sizeof(v));
	v[31] = 200;
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_APPLE, v, sizeof(v), 64, 1 << 20, &out), -EBADMSG);
	/* output cap */
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_APPLE, vector, sizeof(vector), 64, 10, &out), -EFBIG);
	/* trailing garbage after the end marker */
	unsigned char t[sizeof(vector) + 4];
	memcpy(t, vector, sizeof(vector));
	memcpy(t + sizeof(vector), "junk", 4);
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_APPLE, t, sizeof(t), 64, 1 << 20, &out), -EBADMSG);
	strbuf_release(&out);
}

static void test_block_caps(void **state)
{
	(void)state;
	struct strbuf out = STRBUF_INIT;
	/* a decoded size over 128 MiB is refused before any allocation */
	const unsigned char huge[] = {'b', 'v', '4', '1', 0, 0, 0, 0x10, 16, 0, 0, 0};
	assert_int_equal(decode(OCI_LZ4_APPLE, huge, sizeof(huge), 64, UINT64_MAX, &out), -EBADMSG);
	const unsigned char rawhuge[] = {'b', 'v', '4', '-', 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(decode(OCI_LZ4_APPLE, rawhuge, sizeof(rawhuge), 64, UINT64_MAX, &out),
			 -EBADMSG);
	/* an encoded size larger than LZ4 could ever produce for the decoded size */
	const unsigned char bad[] = {'b', 'v', '4', '1', 16, 0, 0, 0, 0, 1, 0, 0};
	assert_int_equal(decode(OCI_LZ4_APPLE, bad, sizeof(bad), 64, UINT64_MAX, &out), -EBADMSG);
	strbuf_release(&out);
}

static int enc_collect(void *userdata, const void *data, size_t len)
{
	strbuf_putn(userdata, data, len);
	return 0;
}

static void fill_sample(unsigned char *p, size_t n)
{
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		if (i < n / 3) {
			x = x * 1103515245 + 12345;
			p[i] = (unsigned char)(x >> 16); /* incompressible */
		} else if (i < 2 * n / 3) {
			p[i] = 0;
		} else {
			p[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
		}
	}
}

static void test_roundtrip(void **state)
{
	(void)state;
	size_t sizes[] = {0, 1, 65535, 65536, 65537, 1000003};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		unsigned char *in = malloc(n + 1);
		fill_sample(in, n);
		struct strbuf enc = STRBUF_INIT, out = STRBUF_INIT;
		struct oci_lz4_enc *e = oci_lz4_enc_new(enc_collect, &enc);
		/* odd piece sizes exercise block boundaries */
		for (size_t off = 0; off < n; off += 7777)
			assert_int_equal(
			    oci_lz4_enc_update(e, in + off, n - off < 7777 ? n - off : 7777), 0);
		assert_int_equal(oci_lz4_enc_finish(e), 0);
		oci_lz4_enc_free(e);
		assert_memory_equal(enc.buf + enc.len - 4, "bv4$", 4);
		if (n > 0)
			assert_true(memcmp(enc.buf, "bv4", 3) == 0);
		assert_int_equal(decode(OCI_LZ4_APPLE, enc.buf, enc.len, 4099, n, &out), 0);
		assert_int_equal(out.len, n);
		if (n)
			assert_memory_equal(out.buf, in, n);
		/* one byte less output allowed than the stream holds */
		if (n) {
			strbuf_reset(&out);
			assert_int_equal(
			    decode(OCI_LZ4_APPLE, enc.buf, enc.len, 65536, n - 1, &out), -EFBIG);
		}
		/* flipping a byte in the middle is detected or changes nothing silently wrong:
		 * the stream either fails to decode or decodes to different bytes */
		if (enc.len > 100) {
			enc.buf[enc.len / 2] ^= 0x55;
			strbuf_reset(&out);
			int r = decode(OCI_LZ4_APPLE, enc.buf, enc.len, 65536, n, &out);
			assert_true(r < 0 || out.len != n || memcmp(out.buf, in, n) != 0);
		}
		strbuf_release(&enc);
		strbuf_release(&out);
		free(in);
	}
}

static void test_zeros_compress(void **state)
{
	(void)state;
	size_t n = 8u << 20;
	unsigned char *in = calloc(1, n);
	struct strbuf enc = STRBUF_INIT;
	struct oci_lz4_enc *e = oci_lz4_enc_new(enc_collect, &enc);
	assert_int_equal(oci_lz4_enc_update(e, in, n), 0);
	assert_int_equal(oci_lz4_enc_finish(e), 0);
	oci_lz4_enc_free(e);
	assert_true(enc.len < n / 100);
	strbuf_release(&enc);
	free(in);
}

static void test_lz4_frame(void **state)
{
	(void)state;
	size_t n = 300000;
	unsigned char *in = malloc(n);
	fill_sample(in, n);
	size_t cap = LZ4F_compressFrameBound(n, NULL);
	char *c = malloc(cap);
	size_t clen = LZ4F_compressFrame(c, cap, in, n, NULL);
	assert_false(LZ4F_isError(clen));
	struct strbuf out = STRBUF_INIT;
	assert_int_equal(decode(OCI_LZ4_FRAME, c, clen, 1000, n, &out), 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.buf, in, n);
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_FRAME, c, clen - 3, 1000, n, &out), -EBADMSG);
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_FRAME, c, 0, 1000, n, &out), -EBADMSG);
	strbuf_reset(&out);
	assert_int_equal(decode(OCI_LZ4_FRAME, "garbage!", 8, 1000, n, &out), -EBADMSG);
	strbuf_release(&out);
	free(c);
	free(in);
}

/* Checks what the Apple decoder promises its sink, and remembers its first resume point. */
struct checked {
	struct strbuf out;
	struct oci_lz4_dec *dec;
	uint64_t at_consumed, at_decoded; /* the first boundary past 1 MiB of output */
	size_t calls;
};

static int checked_write(void *userdata, const void *data, size_t len)
{
	struct checked *c = userdata;
	/* output offset n lives at an address congruent to n: O_DIRECT-ready */
	assert_int_equal(((uintptr_t)data - c->out.len) % OCI_LZ4_OUT_ALIGN, 0);
	strbuf_putn(&c->out, data, len);
	c->calls++;
	uint64_t consumed, decoded;
	if (!c->at_consumed && c->out.len > (1u << 20) &&
	    oci_lz4_dec_at_boundary(c->dec, &consumed, &decoded)) {
		assert_int_equal(decoded, c->out.len);
		c->at_consumed = consumed;
		c->at_decoded = decoded;
	}
	return 0;
}

static void encode(const unsigned char *in, size_t n, struct strbuf *enc)
{
	struct oci_lz4_enc *e = oci_lz4_enc_new(enc_collect, enc);
	assert_int_equal(oci_lz4_enc_update(e, in, n), 0);
	assert_int_equal(oci_lz4_enc_finish(e), 0);
	oci_lz4_enc_free(e);
}

/*
 * Output comes in few large pieces, aligned; a second decoder resumes a stream from a boundary
 * the first one reported, given only the last 64 KiB of output; a stored block larger than the
 * output buffer (another encoder's choice) decodes too.
 */
static void test_resume_and_alignment(void **state)
{
	(void)state;
	size_t n = 5000000;
	unsigned char *in = malloc(n);
	fill_sample(in, n);
	struct strbuf enc = STRBUF_INIT;
	encode(in, n, &enc);
	size_t steps[] = {1000, 65536 + 12, 1u << 20};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct checked c = {.out = STRBUF_INIT};
		c.dec = oci_lz4_dec_new(OCI_LZ4_APPLE, n, checked_write, &c);
		for (size_t off = 0; off < enc.len; off += steps[s])
			assert_int_equal(
			    oci_lz4_dec_update(c.dec, enc.buf + off, MIN(steps[s], enc.len - off)),
			    0);
		assert_int_equal(oci_lz4_dec_finish(c.dec), 0);
		oci_lz4_dec_free(c.dec);
		assert_int_equal(c.out.len, n);
		assert_memory_equal(c.out.buf, in, n);
		assert_true(c.calls <= n / (512u << 10) + 2); /* not one call per 64 KiB block */
		assert_true(c.at_consumed > 0 && c.at_consumed < enc.len);

		struct checked r = {.out = STRBUF_INIT};
		strbuf_putn(&r.out, in, c.at_decoded); /* what the first one wrote */
		r.dec = oci_lz4_dec_new(OCI_LZ4_APPLE, n, checked_write, &r);
		r.at_consumed = 1; /* not looking for boundaries again */
		size_t w = (size_t)MIN(c.at_decoded, (uint64_t)(64u << 10));
		assert_int_equal(oci_lz4_dec_resume(r.dec, in + c.at_decoded - w, w, c.at_consumed,
						    c.at_decoded),
				 0);
		assert_int_equal(
		    oci_lz4_dec_update(r.dec, enc.buf + c.at_consumed, enc.len - c.at_consumed), 0);
		assert_int_equal(oci_lz4_dec_finish(r.dec), 0);
		oci_lz4_dec_free(r.dec);
		assert_int_equal(r.out.len, n);
		assert_memory_equal(r.out.buf, in, n);
		strbuf_release(&c.out);
		strbuf_release(&r.out);
	}
	/* resuming is refused for LZ4 frames and impossible positions */
	struct oci_lz4_dec *d = oci_lz4_dec_new(OCI_LZ4_FRAME, n, enc_collect, NULL);
	assert_int_equal(oci_lz4_dec_resume(d, in, 10, 5, 10), -EINVAL);
	oci_lz4_dec_free(d);
	d = oci_lz4_dec_new(OCI_LZ4_APPLE, 100, enc_collect, NULL);
	assert_int_equal(oci_lz4_dec_resume(d, in, 10, 5, 200), -EINVAL);
	oci_lz4_dec_free(d);

	/* one stored block of 3 MiB after a small one: the buffer grows, alignment holds */
	size_t big = 3u << 20;
	struct strbuf raw = STRBUF_INIT;
	unsigned char hdr[8] = {'b', 'v', '4', '-', 5, 0, 0, 0};
	strbuf_putn(&raw, hdr, 8);
	strbuf_putn(&raw, in, 5);
	hdr[4] = 0;
	hdr[5] = 0;
	hdr[6] = (unsigned char)(big >> 16);
	strbuf_putn(&raw, hdr, 8);
	strbuf_putn(&raw, in + 5, big);
	strbuf_putn(&raw, "bv4$", 4);
	struct checked c = {.out = STRBUF_INIT, .at_consumed = 1};
	c.dec = oci_lz4_dec_new(OCI_LZ4_APPLE, n, checked_write, &c);
	assert_int_equal(oci_lz4_dec_update(c.dec, raw.buf, raw.len), 0);
	assert_int_equal(oci_lz4_dec_finish(c.dec), 0);
	oci_lz4_dec_free(c.dec);
	assert_int_equal(c.out.len, big + 5);
	assert_memory_equal(c.out.buf, in, big + 5);
	strbuf_release(&c.out);
	strbuf_release(&raw);
	strbuf_release(&enc);
	free(in);
}

/* Random damage to a valid stream: never a crash, never more output than allowed. */
static void test_mutations(void **state)
{
	(void)state;
	size_t n = 300000;
	unsigned char *in = malloc(n);
	fill_sample(in, n);
	struct strbuf enc = STRBUF_INIT;
	struct oci_lz4_enc *e = oci_lz4_enc_new(enc_collect, &enc);
	assert_int_equal(oci_lz4_enc_update(e, in, n), 0);
	assert_int_equal(oci_lz4_enc_finish(e), 0);
	oci_lz4_enc_free(e);
	uint32_t x = 42;
	for (int iter = 0; iter < 3000; iter++) {
		unsigned char *m = malloc(enc.len);
		memcpy(m, enc.buf, enc.len);
		size_t len = enc.len;
		int flips = 1 + iter % 4;
		for (int f = 0; f < flips; f++) {
			x = x * 1103515245 + 12345;
			size_t pos = (x >> 8) % len;
			x = x * 1103515245 + 12345;
			m[pos] ^= (unsigned char)(1 + (x >> 16) % 255);
		}
		if (iter % 7 == 0)
			len = (x >> 4) % len;
		struct strbuf out = STRBUF_INIT;
		int r = decode(OCI_LZ4_APPLE, m, len, 1 + (x >> 20) % 70000, n, &out);
		assert_true(r == 0 || r == -EBADMSG || r == -EFBIG);
		assert_true(out.len <= n);
		strbuf_release(&out);
		free(m);
	}
	strbuf_release(&enc);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vector),	   cmocka_unit_test(test_vector_damaged),
	    cmocka_unit_test(test_block_caps),	   cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_zeros_compress), cmocka_unit_test(test_lz4_frame),
	    cmocka_unit_test(test_mutations),	   cmocka_unit_test(test_resume_and_alignment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
