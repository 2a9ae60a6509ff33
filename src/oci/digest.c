// SPDX-License-Identifier: Apache-2.0
#include "oci/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macro.h"

void oci_digest_init(struct oci_digest *d)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		abort();
	d->ctx = ctx;
}

void oci_digest_update(struct oci_digest *d, const void *data, size_t len)
{
	if (len > 0 && EVP_DigestUpdate(d->ctx, data, len) != 1)
		abort();
}

void oci_digest_final(struct oci_digest *d, char ret[OCI_DIGEST_STRLEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(d->ctx, md, &n) != 1 || n != 32)
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
	if (d->ctx)
		EVP_MD_CTX_free(d->ctx);
	d->ctx = NULL;
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
