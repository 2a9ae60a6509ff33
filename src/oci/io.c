// SPDX-License-Identifier: Apache-2.0
#include "oci/io.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/macro.h"
#include "util/strbuf.h"

int64_t oci_strbuf_source(void *userdata, uint64_t offset, void *buf, size_t len)
{
	const struct strbuf *sb = userdata;
	if (offset >= sb->len)
		return 0;
	size_t n = MIN(len, sb->len - (size_t)offset);
	memcpy(buf, sb->buf + offset, n);
	return (int64_t)n;
}

int64_t oci_fd_source(void *userdata, uint64_t offset, void *buf, size_t len)
{
	int fd = *(int *)userdata;
	ssize_t n = pread(fd, buf, len, (off_t)offset);
	return n < 0 ? -errno : n;
}

int oci_stream_fd(int fd, int (*sink)(void *userdata, const void *data, size_t len), void *userdata)
{
	enum { PIECE = 1 << 20 };
	_cleanup_free_ char *buf = xmalloc(PIECE);
	for (;;) {
		ssize_t n = read(fd, buf, PIECE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		int r = sink(userdata, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

void oci_run_workers(void *(*fn)(void *), void *arg, unsigned n)
{
	n = MAX(n, 1u);
	pthread_t *th = xcalloc(n, sizeof(*th));
	unsigned started = 0;
	for (; started < n; started++)
		if (pthread_create(&th[started], NULL, fn, arg) != 0)
			break;
	if (started == 0)
		fn(arg);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
}
