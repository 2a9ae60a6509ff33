/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict unsigned decimal parse: digits only, no sign, no spaces, no overflow, <= max. */
int parse_u64(const char *s, uint64_t max, uint64_t *ret);
/* Strict signed decimal parse in [min, max]. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret);
/* "WxH" with an optional "px"/"pt" suffix; unit is "" when absent. */
int parse_display(const char *s, uint64_t *ret_w, uint64_t *ret_h, char ret_unit[3]);
/* Format a byte count the way Foundation's ByteCountFormatter does for file sizes ("1.5 GB"). */
void format_bytes_decimal(uint64_t n, char *buf, size_t len);
