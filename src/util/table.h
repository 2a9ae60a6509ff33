/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

#include "util/strbuf.h"

/*
 * Tart's "plain" text tables: a header row and one row per item, every column left-aligned
 * and padded to its widest cell, columns joined by one space, the whole output trimmed of
 * leading and trailing whitespace. cells is rows*ncols strings, row-major, header first.
 */
void table_format(const char *const *cells, size_t rows, size_t ncols, struct strbuf *out);
