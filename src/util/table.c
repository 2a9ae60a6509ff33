// SPDX-License-Identifier: Apache-2.0
#include "util/table.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

/* Display width in code points, so UTF-8 names pad like Swift's String.count does (roughly). */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void table_format(const char *const *cells, size_t rows, size_t ncols, struct strbuf *out)
{
	size_t *w = xcalloc(ncols, sizeof(size_t));
	struct strbuf sb = STRBUF_INIT;
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < ncols; c++)
			if (width(cells[r * ncols + c]) > w[c])
				w[c] = width(cells[r * ncols + c]);
	for (size_t r = 0; r < rows; r++) {
		if (r)
			strbuf_putc(&sb, '\n');
		for (size_t c = 0; c < ncols; c++) {
			const char *s = cells[r * ncols + c];
			if (c)
				strbuf_putc(&sb, ' ');
			strbuf_puts(&sb, s);
			for (size_t k = width(s); k < w[c]; k++)
				strbuf_putc(&sb, ' ');
		}
	}
	free(w);
	size_t start = 0;
	while (start < sb.len && isspace((unsigned char)sb.buf[start]))
		start++;
	strbuf_rtrim(&sb);
	strbuf_putn(out, sb.buf + start, sb.len - start);
	strbuf_release(&sb);
}
