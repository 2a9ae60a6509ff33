// SPDX-License-Identifier: Apache-2.0
#include "oci/digest.h"

/*
 * SHA256_CTX rather than EVP: a pull saves its running digests to resume a layer in another
 * process, and OpenSSL 3.0's EVP has no way to export a running state. Same SHA-NI code.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/cpustat.h"
#include "util/macro.h"

_Static_assert(sizeof(SHA256_CTX) * 2 + 1 == OCI_DIGEST_STATE_STRLEN, "SHA256_CTX size");

static const char hex[] = "0123456789abcdef";

void oci_digest_init(struct oci_digest *d)
{
	SHA256_CTX *c = xmalloc(sizeof(*c));
	if (SHA256_Init(c) != 1)
		abort();
	d->ctx = c;
}

void oci_digest_update(struct oci_digest *d, const void *data, size_t len)
{
	if (len == 0)
		return;
	cpustat_push(CPUSTAT_HASH);
	if (SHA256_Update(d->ctx, data, len) != 1)
		abort();
	cpustat_pop();
}

void oci_digest_final(struct oci_digest *d, char ret[OCI_DIGEST_STRLEN])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	if (SHA256_Final(md, d->ctx) != 1)
		abort();
	memcpy(ret, "sha256:", 7);
	for (unsigned int i = 0; i < 32; i++) {
		ret[7 + 2 * i] = hex[md[i] >> 4];
		ret[8 + 2 * i] = hex[md[i] & 15];
	}
	ret[71] = 0;
	oci_digest_release(d);
}

void oci_digest_release(struct oci_digest *d)
{
	free(d->ctx);
	d->ctx = NULL;
}

void oci_digest_save(const struct oci_digest *d, char ret[OCI_DIGEST_STATE_STRLEN])
{
	const unsigned char *p = d->ctx;
	for (size_t i = 0; i < sizeof(SHA256_CTX); i++) {
		ret[2 * i] = hex[p[i] >> 4];
		ret[2 * i + 1] = hex[p[i] & 15];
	}
	ret[2 * sizeof(SHA256_CTX)] = 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int oci_digest_restore(struct oci_digest *d, const char *state)
{
	SHA256_CTX c;
	unsigned char *p = (unsigned char *)&c;
	if (strlen(state) != 2 * sizeof(c))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(c); i++) {
		int hi = unhex(state[2 * i]), lo = unhex(state[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	/* what SHA256_Update relies on: a partial block shorter than a block, the output size */
	if (c.num >= SHA256_CBLOCK || c.md_len != SHA256_DIGEST_LENGTH)
		return -EINVAL;
	oci_digest_release(d);
	oci_digest_init(d);
	memcpy(d->ctx, &c, sizeof(c));
	return 0;
}

void oci_digest_buf(const void *data, size_t len, char ret[OCI_DIGEST_STRLEN])
{
	struct oci_digest d;
	oci_digest_init(&d);
	oci_digest_update(&d, data, len);
	oci_digest_final(&d, ret);
}

int oci_digest_fd_range(int fd, uint64_t offset, uint64_t len, char ret[OCI_DIGEST_STRLEN])
{
	enum { BUF = 4 << 20 };
	_cleanup_free_ char *buf = malloc(BUF);
	if (!buf)
		return -ENOMEM;
	struct oci_digest d;
	oci_digest_init(&d);
	while (len > 0) {
		ssize_t n = pread(fd, buf, MIN((uint64_t)BUF, len), (off_t)offset);
		if (n <= 0) {
			oci_digest_release(&d);
			return n < 0 ? -errno : -EIO;
		}
		oci_digest_update(&d, buf, (size_t)n);
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	oci_digest_final(&d, ret);
	return 0;
}

/* sha256 of 536 870 912 zero bytes (Tart's chunk): checked by test-oci-digest */
#define ZEROS_512MIB "sha256:9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"

void oci_digest_zeros(uint64_t n, char ret[OCI_DIGEST_STRLEN])
{
	static const unsigned char zero[1u << 16];
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t memo_size = UINT64_MAX;
	static char memo[OCI_DIGEST_STRLEN];
	if (n == 512ull << 20) {
		memcpy(ret, ZEROS_512MIB, OCI_DIGEST_STRLEN);
		return;
	}
	pthread_mutex_lock(&lock);
	if (memo_size != n) {
		struct oci_digest d;
		oci_digest_init(&d);
		for (uint64_t left = n; left > 0;) {
			size_t k = (size_t)MIN((uint64_t)sizeof(zero), left);
			oci_digest_update(&d, zero, k);
			left -= k;
		}
		oci_digest_final(&d, memo);
		memo_size = n;
	}
	memcpy(ret, memo, OCI_DIGEST_STRLEN);
	pthread_mutex_unlock(&lock);
}
