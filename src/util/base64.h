/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

/* Standard base64 (RFC 4648, padded) through libcrypto. Non-logging. */

/* Allocated, NUL-terminated encoding of data. */
char *base64_encode(const void *data, size_t len);
/*
 * Decode the n characters at s into an allocated buffer (NUL-terminated for convenience).
 * -EBADMSG for malformed input, -EFBIG when the result would exceed cap bytes.
 */
int base64_decode(const char *s, size_t n, size_t cap, char **ret, size_t *ret_len);
