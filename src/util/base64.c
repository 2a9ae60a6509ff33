// SPDX-License-Identifier: Apache-2.0
#include "util/base64.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "util/alloc.h"

char *base64_encode(const void *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	/* EVP_EncodeBlock takes an int: encode in slices of a multiple of 3 bytes. */
	const size_t slice = 3u << 20;
	size_t o = 0;
	for (size_t i = 0; i < len; i += slice) {
		size_t k = len - i < slice ? len - i : slice;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o,
					     (const unsigned char *)data + i, (int)k);
	}
	out[o] = '\0';
	return out;
}

int base64_decode(const char *s, size_t n, size_t cap, char **ret, size_t *ret_len)
{
	if (n % 4 != 0)
		return -EBADMSG;
	if (n / 4 * 3 > cap + 2 || n > INT_MAX)
		return -EFBIG;
	char *out = xmalloc(n / 4 * 3 + 1);
	int m = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	if (m < 0) {
		free(out);
		return -EBADMSG;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (n >= 1 && s[n - 1] == '=')
		m--;
	if (n >= 2 && s[n - 2] == '=')
		m--;
	if ((size_t)m > cap) {
		free(out);
		return -EFBIG;
	}
	out[m] = 0;
	*ret = out;
	if (ret_len)
		*ret_len = (size_t)m;
	return 0;
}
