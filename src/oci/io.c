// SPDX-License-Identifier: Apache-2.0
#include "oci/io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/cpustat.h"
#include "util/fs.h"
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

static bool direct_disabled(void)
{
	const char *v = getenv("TART_NO_DIRECT_IO");
	return v && *v && strcmp(v, "0") != 0;
}

void oci_direct_init(struct oci_direct *d, int fd, bool write)
{
	d->fd = fd;
	atomic_init(&d->dfd, -1);
	if (direct_disabled())
		return;
	/* a second open file description: O_DIRECT must not change the ordinary descriptor */
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	atomic_store(&d->dfd, open(p, (write ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC));
}

void oci_direct_release(struct oci_direct *d)
{
	int dfd = atomic_exchange(&d->dfd, -1);
	if (dfd >= 0)
		close(dfd);
}

/* The filesystem refused O_DIRECT (EINVAL): every later transfer takes the ordinary path. */
static void direct_refused(struct oci_direct *d, int dfd)
{
	if (atomic_compare_exchange_strong(&d->dfd, &dfd, -1))
		close(dfd);
}

/* The page-aligned middle of [offset, offset+len) when memory and file line up there. */
static bool direct_span(const struct oci_direct *d, const void *data, size_t len, uint64_t offset,
			size_t *ret_head, size_t *ret_body)
{
	if (atomic_load(&d->dfd) < 0 || ((uintptr_t)data - offset) % OCI_IO_ALIGN != 0)
		return false;
	size_t head = (size_t)((OCI_IO_ALIGN - offset % OCI_IO_ALIGN) % OCI_IO_ALIGN);
	if (head >= len)
		return false;
	*ret_head = head;
	*ret_body = (len - head) & ~((size_t)OCI_IO_ALIGN - 1);
	return *ret_body > 0;
}

static int direct_pwrite(struct oci_direct *d, const void *data, size_t len, uint64_t offset)
{
	const char *p = data;
	size_t head, body;
	if (direct_span(d, data, len, offset, &head, &body)) {
		int dfd = atomic_load(&d->dfd);
		int r = fs_pwrite_all(d->fd, p, head, offset);
		if (r < 0)
			return r;
		r = dfd >= 0 ? fs_pwrite_all(dfd, p + head, body, offset + head) : -EINVAL;
		if (r == -EINVAL)
			direct_refused(d, dfd);
		else if (r < 0)
			return r;
		else
			head += body;
		p += head;
		len -= head;
		offset += head;
	}
	return fs_pwrite_all(d->fd, p, len, offset);
}

/* pread until len bytes or the end of the file */
static int64_t pread_full(int fd, char *buf, size_t len, uint64_t offset)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(offset + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (int64_t)got;
}

int oci_direct_pwrite(struct oci_direct *d, const void *data, size_t len, uint64_t offset)
{
	cpustat_push(CPUSTAT_WRITE);
	int r = direct_pwrite(d, data, len, offset);
	cpustat_pop();
	return r;
}

static int64_t direct_pread(struct oci_direct *d, void *buf, size_t len, uint64_t offset)
{
	char *p = buf;
	size_t head, body;
	int64_t done = 0;
	if (direct_span(d, buf, len, offset, &head, &body)) {
		int dfd = atomic_load(&d->dfd);
		int64_t n = pread_full(d->fd, p, head, offset);
		if (n < (int64_t)head)
			return n;
		n = dfd >= 0 ? pread_full(dfd, p + head, body, offset + head) : -EINVAL;
		if (n == -EINVAL) {
			direct_refused(d, dfd);
			n = 0;
		} else if (n < 0) {
			return n;
		} else if (n < (int64_t)body) {
			return (int64_t)head + n; /* the end of the file */
		}
		done = (int64_t)head + n;
	}
	int64_t n = pread_full(d->fd, p + done, len - (size_t)done, offset + (uint64_t)done);
	return n < 0 ? n : done + n;
}

int64_t oci_direct_pread(struct oci_direct *d, void *buf, size_t len, uint64_t offset)
{
	cpustat_push(CPUSTAT_READ);
	int64_t r = direct_pread(d, buf, len, offset);
	cpustat_pop();
	return r;
}

struct writer_slot {
	unsigned char *buf; /* OCI_IO_ALIGN + slot bytes */
	size_t skew;	    /* data starts at buf + skew, congruent with off */
	size_t len;
	uint64_t off;
	int note_fd;
	char *note;
};

struct oci_writer {
	struct oci_direct *d;
	size_t slot_size;
	pthread_t thread;
	bool threaded;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct writer_slot slot[2];
	unsigned filling; /* the slot the caller fills */
	bool queued;	  /* the other slot waits for, or is being written by, the thread */
	bool stop;
	int err;
};

static int slot_write(struct oci_direct *d, struct writer_slot *s)
{
	int r = s->len ? oci_direct_pwrite(d, s->buf + s->skew, s->len, s->off) : 0;
	/* a resume point is an optimisation: the transfer goes on without it */
	if (r >= 0 && s->note)
		(void)!pwrite(s->note_fd, s->note, strlen(s->note), 0);
	s->len = 0;
	free(s->note);
	s->note = NULL;
	return r;
}

static void *writer_thread(void *arg)
{
	struct oci_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queued && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->queued)
			break;
		struct writer_slot *s = &w->slot[w->filling ^ 1];
		pthread_mutex_unlock(&w->lock);
		int r = slot_write(w->d, s);
		pthread_mutex_lock(&w->lock);
		if (r < 0 && w->err == 0)
			w->err = r;
		w->queued = false;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct oci_writer *oci_writer_new(struct oci_direct *d, size_t slot)
{
	struct oci_writer *w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->slot_size = slot;
	for (int i = 0; i < 2; i++)
		w->slot[i].buf = xmalloc_aligned(OCI_IO_ALIGN, OCI_IO_ALIGN + slot);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threaded = pthread_create(&w->thread, NULL, writer_thread, w) == 0;
	return w;
}

/* Hand the filling slot to the thread (after the previous one is written); 0 or the error. */
static int writer_submit(struct oci_writer *w)
{
	struct writer_slot *s = &w->slot[w->filling];
	if (s->len == 0 && !s->note)
		return w->err;
	if (!w->threaded) {
		int r = slot_write(w->d, s);
		if (r < 0 && w->err == 0)
			w->err = r;
		return w->err;
	}
	pthread_mutex_lock(&w->lock);
	while (w->queued)
		pthread_cond_wait(&w->cond, &w->lock);
	w->queued = true;
	w->filling ^= 1;
	pthread_cond_broadcast(&w->cond);
	int r = w->err;
	pthread_mutex_unlock(&w->lock);
	return r;
}

int oci_writer_write(struct oci_writer *w, const void *data, size_t len, uint64_t offset)
{
	const unsigned char *p = data;
	while (len > 0) {
		struct writer_slot *s = &w->slot[w->filling];
		if (s->len && (offset != s->off + s->len || s->skew + s->len == w->slot_size)) {
			int r = writer_submit(w);
			if (r < 0)
				return r;
			continue;
		}
		if (s->len == 0) {
			s->off = offset;
			s->skew = (size_t)(offset % OCI_IO_ALIGN);
		}
		size_t n = MIN(len, w->slot_size - s->skew - s->len);
		memcpy(s->buf + s->skew + s->len, p, n);
		s->len += n;
		p += n;
		len -= n;
		offset += n;
	}
	pthread_mutex_lock(&w->lock);
	int r = w->err;
	pthread_mutex_unlock(&w->lock);
	return r;
}

void oci_writer_note(struct oci_writer *w, int fd, const char *text)
{
	struct writer_slot *s = &w->slot[w->filling];
	free(s->note);
	s->note = xstrdup(text);
	s->note_fd = fd;
}

int oci_writer_finish(struct oci_writer *w)
{
	int r = writer_submit(w);
	if (w->threaded) {
		pthread_mutex_lock(&w->lock);
		while (w->queued)
			pthread_cond_wait(&w->cond, &w->lock);
		w->stop = true;
		pthread_cond_broadcast(&w->cond);
		r = w->err;
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	for (int i = 0; i < 2; i++) {
		free(w->slot[i].buf);
		free(w->slot[i].note);
	}
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
	return r;
}

struct prefetch_buf {
	unsigned char *data; /* piece bytes, OCI_IO_ALIGN-aligned */
	size_t len;
	uint64_t offset;
	bool hole, ready;
	int err;
};

struct oci_prefetch {
	struct oci_direct *d;
	uint64_t next_read; /* the thread's position */
	uint64_t next_take; /* the caller's */
	uint64_t end;
	size_t piece;
	bool skip_holes;
	pthread_t thread;
	bool threaded, stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct prefetch_buf buf[2];
	unsigned consume; /* the buffer the caller takes next */
	bool handed;	  /* buf[consume ^ 1] is the caller's until the next call */
};

bool oci_range_is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		return errno == ENXIO;
	return (uint64_t)d >= off + len;
}

/* Fill b with the piece at offset (never past end). */
static void prefetch_read(struct oci_prefetch *p, struct prefetch_buf *b, uint64_t offset)
{
	b->offset = offset;
	b->len = (size_t)MIN((uint64_t)p->piece, p->end - offset);
	b->err = 0;
	b->hole = p->skip_holes && oci_range_is_hole(p->d->fd, offset, b->len);
	if (b->hole)
		return;
	int64_t n = oci_direct_pread(p->d, b->data, b->len, offset);
	if (n != (int64_t)b->len)
		b->err = n < 0 ? (int)n : -EIO;
}

static void *prefetch_thread(void *arg)
{
	struct oci_prefetch *p = arg;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0;; i ^= 1) {
		/* buffers are filled in turn: wait until buffer i is free again */
		while (!p->stop && (p->buf[i].ready || (p->handed && p->consume == (i ^ 1))))
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop || p->next_read >= p->end)
			break;
		uint64_t offset = p->next_read;
		p->next_read = MIN(p->end, offset + p->piece);
		pthread_mutex_unlock(&p->lock);
		prefetch_read(p, &p->buf[i], offset);
		pthread_mutex_lock(&p->lock);
		p->buf[i].ready = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct oci_prefetch *oci_prefetch_new(struct oci_direct *d, uint64_t offset, uint64_t end,
				      size_t piece, bool skip_holes)
{
	struct oci_prefetch *p = xcalloc(1, sizeof(*p));
	p->d = d;
	p->next_read = p->next_take = offset;
	p->end = MAX(offset, end);
	p->piece = piece;
	p->skip_holes = skip_holes;
	for (int i = 0; i < 2; i++)
		p->buf[i].data = xmalloc_aligned(OCI_IO_ALIGN, piece);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->threaded = pthread_create(&p->thread, NULL, prefetch_thread, p) == 0;
	return p;
}

int oci_prefetch_next(struct oci_prefetch *p, const void **ret_data, size_t *ret_len,
		      uint64_t *ret_offset)
{
	struct prefetch_buf *b = &p->buf[p->consume];
	if (!p->threaded) {
		if (p->next_read >= p->end)
			return 0;
		prefetch_read(p, b, p->next_read);
		p->next_read = MIN(p->end, p->next_read + p->piece);
	} else {
		pthread_mutex_lock(&p->lock);
		if (p->handed) {
			p->buf[p->consume ^ 1].ready = false; /* the caller is done with it */
			p->handed = false;
			pthread_cond_broadcast(&p->cond);
		}
		while (!b->ready && p->next_take < p->end)
			pthread_cond_wait(&p->cond, &p->lock);
		bool have = b->ready;
		if (have) {
			p->handed = true;
			p->consume ^= 1;
			p->next_take += b->len;
		}
		pthread_mutex_unlock(&p->lock);
		if (!have)
			return 0;
	}
	*ret_offset = b->offset;
	if (b->err < 0)
		return b->err;
	*ret_data = b->hole ? NULL : b->data;
	*ret_len = b->len;
	return 1;
}

void oci_prefetch_free(struct oci_prefetch *p)
{
	if (!p)
		return;
	if (p->threaded) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	for (int i = 0; i < 2; i++)
		free(p->buf[i].data);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

#define SOURCE_PIECE (1u << 20)

static int64_t direct_source(struct oci_direct_reader *r, uint64_t offset, void *buf, size_t len)
{
	if (offset >= r->size || len == 0)
		return 0;
	if (!r->ahead || offset < r->at) {
		oci_prefetch_free(r->ahead);
		r->at = offset & ~(uint64_t)(OCI_IO_ALIGN - 1);
		r->len = 0;
		r->ahead = oci_prefetch_new(r->d, r->at, r->size, SOURCE_PIECE, false);
	}
	while (offset >= r->at + r->len) {
		const void *data;
		int k = oci_prefetch_next(r->ahead, &data, &r->len, &r->at);
		if (k <= 0)
			return k < 0 ? k : -EIO; /* shorter than size */
		r->data = data;
	}
	size_t n = (size_t)MIN((uint64_t)len, r->at + r->len - offset);
	memcpy(buf, r->data + (offset - r->at), n);
	return (int64_t)n;
}

int64_t oci_direct_source(void *userdata, uint64_t offset, void *buf, size_t len)
{
	cpustat_push(CPUSTAT_READ);
	int64_t r = direct_source(userdata, offset, buf, len);
	cpustat_pop();
	return r;
}

void oci_direct_reader_release(struct oci_direct_reader *r)
{
	oci_prefetch_free(r->ahead);
	r->ahead = NULL;
	r->data = NULL;
	r->len = 0;
}
