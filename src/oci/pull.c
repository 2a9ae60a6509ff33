// SPDX-License-Identifier: Apache-2.0
#include "oci/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/applelz4.h"
#include "oci/digest.h"
#include "oci/io.h"
#include "oci/progress.h"
#include "util/alloc.h"
#include "util/cpustat.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"

#define PAGE 4096u
#define PIECE (4u << 20)
/* disk writes: 2 MiB requests beat 1 and 4 MiB ones on the test machine's shared disk */
#define WRITE_SLOT (2u << 20)
#define PROGRESS_FILE ".progress"
#define STATE_PROGRESS_FILE ".progress-state"

struct pull_job {
	const struct oci_blob_fetcher *f;
	const char *staging;
	const struct oci_manifest *m;
	const struct oci_pull_options *o;
	/* what is pulled: the disk (errors are errors), or the saved state (the caller decides) */
	enum oci_layer_kind kind;
	const char *what;
	enum log_level err_level;
	int disk_fd;
	struct oci_direct disk; /* writes of disk_fd */
	int progress_fd;
	bool punch_ok;
	size_t *disk_idx;  /* manifest indices of disk layers */
	uint64_t *offsets; /* per disk layer */
	bool *done;
	size_t ndisk;
	atomic_size_t next;
	atomic_int err;
	pthread_mutex_t lock;
	struct oci_progress progress;
};

/*
 * Decoded bytes land here: hashed, zero pages skipped, the rest queued for the background
 * writer (oci/io.h) to write at off.
 */
struct disk_writer {
	struct pull_job *j;
	uint64_t start, off, end;
	struct oci_digest digest;
	struct oci_writer *out;
	bool nonzero; /* data seen: before that, zeros are neither written nor hashed */
};

static void writer_init(struct disk_writer *w, struct pull_job *j, uint64_t off, uint64_t len)
{
	*w = (struct disk_writer){.j = j, .start = off, .off = off, .end = off + len};
	oci_digest_init(&w->digest);
	w->out = oci_writer_new(&j->disk, WRITE_SLOT);
	w->nonzero = !j->punch_ok; /* zeros must be written: take the plain path */
}

static const unsigned char zero_buf[1u << 20];

/* What the registry sent is not what its manifest promised: one "Error:" line, -EBADMSG. */
_printf_(1, 2) static int bad_data(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_error("Error: %s", buf);
	return -EBADMSG;
}

/*
 * A layer that cannot be used: one "Error:" line for the disk, a debug line for the saved state
 * (its caller says in one notice that it is left out), a warning where a retry follows.
 */
_printf_(3, 4) static int layer_failed(enum log_level level, int r, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, "%s%s", level == LOG_ERR ? "Error: " : "", buf);
	return r;
}

static void hash_zeros(struct oci_digest *d, uint64_t n)
{
	while (n > 0) {
		size_t k = (size_t)MIN((uint64_t)sizeof(zero_buf), n);
		oci_digest_update(d, zero_buf, k);
		n -= k;
	}
}

/* Wait for the writes, then the content digest; 0 or the first write error. */
static int writer_final(struct disk_writer *w, char ret[OCI_DIGEST_STRLEN])
{
	int r = oci_writer_finish(w->out);
	w->out = NULL;
	if (w->nonzero) {
		oci_digest_final(&w->digest, ret);
	} else {
		oci_digest_release(&w->digest);
		oci_digest_zeros(w->off - w->start, ret);
	}
	return r;
}

static bool page_is_zero(const unsigned char *p, size_t n)
{
	static const unsigned char zero[PAGE];
	return memcmp(p, zero, n) == 0;
}

static int writer_write(void *userdata, const void *data, size_t len)
{
	struct disk_writer *w = userdata;
	const unsigned char *p = data;
	if (len > w->end - w->off)
		return -EFBIG;
	if (!w->nonzero) {
		size_t z = 0;
		while (z < len && page_is_zero(p + z, MIN((size_t)PAGE, len - z)))
			z += MIN((size_t)PAGE, len - z);
		if (z == len) {
			w->off += len;
			return 0;
		}
		hash_zeros(&w->digest, w->off - w->start);
		w->nonzero = true;
	}
	oci_digest_update(&w->digest, data, len);
	size_t i = 0;
	while (i < len) {
		/* pages are counted from the file offset, so holes align with the filesystem */
		size_t step = MIN(len - i, (size_t)(PAGE - (w->off + i) % PAGE));
		if (page_is_zero(p + i, step) && w->j->punch_ok) {
			i += step;
			continue;
		}
		size_t run = step;
		while (i + run < len) {
			size_t s = MIN(len - i - run, (size_t)PAGE);
			if (w->j->punch_ok && page_is_zero(p + i + run, s))
				break;
			run += s;
		}
		int r = oci_writer_write(w->out, p + i, run, w->off + i);
		if (r < 0)
			return r;
		i += run;
	}
	w->off += len;
	return 0;
}

/* Make [off, off+len) read as zeros before a layer is (re)written over stale data. */
static int clear_range(struct pull_job *j, uint64_t off, uint64_t len)
{
	if (j->punch_ok && fallocate(j->disk_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     (off_t)off, (off_t)len) == 0)
		return 0;
	j->punch_ok = false; /* zeros must now be written explicitly */
	return 0;
}

static const struct oci_layer *find_local(const struct pull_job *j, const struct oci_layer *l,
					  const char **ret_path, uint64_t *ret_off)
{
	for (size_t c = 0; c < j->o->nlocals; c++) {
		const struct oci_manifest *lm = j->o->locals[c].manifest;
		uint64_t off = 0;
		if (j->kind != OCI_LAYER_DISK)
			break;
		for (size_t i = 0; i < lm->nlayers; i++) {
			const struct oci_layer *x = &lm->layers[i];
			if (x->kind != OCI_LAYER_DISK)
				continue;
			if (streq(x->digest, l->digest) && x->has_uncompressed &&
			    streq(x->uncompressed_digest, l->uncompressed_digest) &&
			    x->uncompressed_size == l->uncompressed_size) {
				*ret_path = j->o->locals[c].disk_path;
				*ret_off = off;
				return x;
			}
			off += x->uncompressed_size;
		}
	}
	return NULL;
}

/*
 * n zero bytes at the writer's position without materialising them: nothing to write (the
 * range was cleared and reads as zeros) unless zeros must be written explicitly; hashed only
 * once data has been seen (an all-zero layer takes the memoized digest in writer_final).
 */
static int writer_zeros(struct disk_writer *w, uint64_t n)
{
	if (n > w->end - w->off)
		return -EFBIG;
	if (!w->j->punch_ok) {
		while (n > 0) {
			size_t k = (size_t)MIN((uint64_t)sizeof(zero_buf), n);
			int r = writer_write(w, zero_buf, k);
			if (r < 0)
				return r;
			n -= k;
		}
		return 0;
	}
	if (w->nonzero)
		hash_zeros(&w->digest, n);
	w->off += n;
	return 0;
}

/* Copy [src_off, src_off+len) of a cached image's disk through the writer; holes are not read. */
static int copy_local(struct disk_writer *w, const char *path, uint64_t src_off, uint64_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	_cleanup_free_ unsigned char *buf = xmalloc_aligned(OCI_IO_ALIGN, PIECE);
	uint64_t end = src_off + len;
	while (src_off < end) {
		off_t data = lseek(fd, (off_t)src_off, SEEK_DATA);
		uint64_t hole_end = data < 0 ? end : MIN((uint64_t)data, end);
		if (data < 0 && errno != ENXIO)
			hole_end = src_off; /* no SEEK_DATA: read everything */
		if (hole_end > src_off) {
			int r = writer_zeros(w, hole_end - src_off);
			if (r < 0)
				return r;
			src_off = hole_end;
			continue;
		}
		off_t hole = lseek(fd, (off_t)src_off, SEEK_HOLE);
		uint64_t data_end = hole < 0 ? end : MIN((uint64_t)hole, end);
		if (data_end <= src_off)
			data_end = end;
		while (src_off < data_end) {
			size_t n = (size_t)MIN((uint64_t)PIECE, data_end - src_off);
			cpustat_push(CPUSTAT_READ);
			ssize_t got = pread(fd, buf, n, (off_t)src_off);
			cpustat_pop();
			if (got != (ssize_t)n)
				return got < 0 ? -errno : -EIO;
			int r = writer_write(w, buf, n);
			if (r < 0)
				return r;
			src_off += n;
		}
	}
	return 0;
}

static bool same_disk_layers(const struct oci_manifest *a, const struct oci_manifest *b)
{
	size_t i = 0, k = 0;
	for (;;) {
		while (i < a->nlayers && a->layers[i].kind != OCI_LAYER_DISK)
			i++;
		while (k < b->nlayers && b->layers[k].kind != OCI_LAYER_DISK)
			k++;
		if (i == a->nlayers || k == b->nlayers)
			return i == a->nlayers && k == b->nlayers;
		const struct oci_layer *x = &a->layers[i++], *y = &b->layers[k++];
		if (!streq(x->digest, y->digest) || x->uncompressed_size != y->uncompressed_size ||
		    !streq(x->uncompressed_digest, y->uncompressed_digest))
			return false;
	}
}

/*
 * A disk made of exactly the layers of a cached image (the same VM pushed again, under another
 * tag or with another config) is that image's disk: share it instead of copying and hashing
 * gigabytes. A reflink where the filesystem has them, else a hard link: nothing writes a cached
 * disk in place (clone and run copy it) and pull_disk never writes a staging disk.img that has
 * another link. Its content was verified when that image was pulled.
 */
static bool share_local_disk(const struct pull_job *j, const char *disk, uint64_t total)
{
	for (size_t c = 0; c < j->o->nlocals; c++) {
		const char *src = j->o->locals[c].disk_path;
		struct stat st;
		if (!same_disk_layers(j->m, j->o->locals[c].manifest) || lstat(src, &st) < 0 ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != total)
			continue;
		if (fs_reflink_file(src, disk) == 0 || link(src, disk) == 0) {
			log_info("the disk is the one of a cached image, sharing it: %s", src);
			return true;
		}
	}
	return false;
}

/* What identifies a verified layer in .progress: its content digest (or blob digest). */
static const char *layer_key(const struct oci_layer *l)
{
	return l->uncompressed_digest[0] ? l->uncompressed_digest : l->digest;
}

static int record_done(struct pull_job *j, size_t k)
{
	cpustat_push(CPUSTAT_WRITE);
	int r = fdatasync(j->disk_fd) < 0 ? -errno : 0;
	cpustat_pop();
	if (r < 0)
		return r;
	char line[128];
	int n =
	    snprintf(line, sizeof(line), "%zu %s\n", k, layer_key(&j->m->layers[j->disk_idx[k]]));
	pthread_mutex_lock(&j->lock);
	ssize_t w = write(j->progress_fd, line, (size_t)n);
	r = w == n ? 0 : -EIO;
	if (r == 0 && fdatasync(j->progress_fd) < 0)
		r = -errno;
	pthread_mutex_unlock(&j->lock);
	return r;
}

static char *part_path(const struct pull_job *j, size_t k)
{
	return xasprintf("%s/.%slayer-%zu.part", j->staging,
			 j->kind == OCI_LAYER_DISK ? "" : "state-", k);
}

/*
 * The resume point of a layer in flight, in <staging>/.layer-<n>.part: one line, rewritten in
 * place at decoder block boundaries (every ~1 MiB of output) after the data before it was
 * written. "<version> <blob digest> <compressed offset> <decoded offset> <running digest of the
 * compressed bytes> <running digest of the content, or - while it is all zeros>". Not synced:
 * after a crash of the machine a stale point shows up as a digest mismatch and the layer is
 * downloaded again from its first byte.
 */
#define PART_VERSION "tart-layer-1"

/* One disk layer in flight: compressed bytes in and hashed, decoded bytes out to the writer. */
struct layer_pull {
	struct pull_job *j;
	const struct oci_layer *l;
	struct disk_writer w;
	struct oci_lz4_dec *dec;
	struct oci_digest digest; /* of the compressed bytes [0, hashed) */
	uint64_t received, hashed;
	const unsigned char *piece; /* the piece being decoded: blob bytes [piece_at, received) */
	uint64_t piece_at;
	const char *part;
	int part_fd;
	int error; /* what blob_write returned to stop the transfer */
};

/* Hash the compressed bytes of the current piece up to blob offset end. */
static void hash_upto(struct layer_pull *lp, uint64_t end)
{
	if (end > lp->hashed) {
		oci_digest_update(&lp->digest, lp->piece + (lp->hashed - lp->piece_at),
				  end - lp->hashed);
		lp->hashed = end;
	}
}

static void save_part(struct layer_pull *lp)
{
	uint64_t consumed, decoded;
	if (lp->j->o->no_parts || !oci_lz4_dec_at_boundary(lp->dec, &consumed, &decoded) ||
	    consumed < lp->hashed || consumed > lp->received)
		return;
	hash_upto(lp, consumed); /* the rest of the piece is hashed after it was decoded */
	char c[OCI_DIGEST_STATE_STRLEN], u[OCI_DIGEST_STATE_STRLEN] = "-";
	oci_digest_save(&lp->digest, c);
	if (lp->w.nonzero)
		oci_digest_save(&lp->w.digest, u);
	if (lp->part_fd < 0)
		lp->part_fd = open(lp->part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (lp->part_fd < 0)
		return; /* resuming is an optimisation: the pull goes on without it */
	/* fixed width: each line overwrites the previous one entirely */
	_cleanup_free_ char *line =
	    xasprintf("%s %s %020" PRIu64 " %020" PRIu64 " %s %*s\n", PART_VERSION, lp->l->digest,
		      consumed, decoded, c, OCI_DIGEST_STATE_STRLEN - 1, u);
	oci_writer_note(lp->w.out, lp->part_fd, line); /* once the data before it is written */
}

/* Decoded bytes: to the disk, then a resume point when the decoder stands between blocks. */
static int layer_out(void *userdata, const void *data, size_t len)
{
	struct layer_pull *lp = userdata;
	int r = writer_write(&lp->w, data, len);
	if (r >= 0)
		save_part(lp);
	return r;
}

static int blob_write_unchecked(struct layer_pull *lp, const void *data, size_t len)
{
	if (atomic_load(&lp->j->err) != 0)
		return -ECANCELED; /* another layer failed: stop this one too */
	if (len > lp->l->size - lp->received)
		return -EFBIG;
	lp->piece = data;
	lp->piece_at = lp->received;
	lp->received += len;
	oci_progress_add(&lp->j->progress, len);
	int r = oci_lz4_dec_update(lp->dec, data, len);
	hash_upto(lp, lp->received);
	return r;
}

static int blob_write(void *userdata, const void *data, size_t len)
{
	struct layer_pull *lp = userdata;
	int r = blob_write_unchecked(lp, data, len);
	if (r < 0)
		lp->error = r;
	return r;
}

/*
 * Continue from the resume point a previous process saved, if it belongs to this blob: the
 * running digests, the writer's position and the decoder's dictionary (the last 64 KiB written).
 */
static void load_part(struct layer_pull *lp)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (fs_read_full(lp->part, 4096, &sb) < 0)
		return;
	char ver[32], dg[OCI_DIGEST_STRLEN + 1], c[OCI_DIGEST_STATE_STRLEN + 1];
	char u[OCI_DIGEST_STATE_STRLEN + 1];
	uint64_t consumed, decoded;
	if (sscanf(sb.buf, "%31s %72s %" SCNu64 " %" SCNu64 " %225s %225s", ver, dg, &consumed,
		   &decoded, c, u) != 6 ||
	    !streq(ver, PART_VERSION) || !streq(dg, lp->l->digest) || consumed == 0 ||
	    consumed >= lp->l->size || decoded > lp->l->uncompressed_size)
		return;
	struct oci_digest cd = {0}, ud = {0};
	unsigned char win[64 << 10];
	size_t wlen = (size_t)MIN((uint64_t)sizeof(win), decoded);
	uint64_t at = lp->w.start + decoded;
	if (oci_digest_restore(&cd, c) < 0 || (!streq(u, "-") && oci_digest_restore(&ud, u) < 0) ||
	    pread(lp->j->disk_fd, win, wlen, (off_t)(at - wlen)) != (ssize_t)wlen ||
	    oci_lz4_dec_resume(lp->dec, win, wlen, consumed, decoded) < 0) {
		oci_digest_release(&cd);
		oci_digest_release(&ud);
		return;
	}
	oci_digest_release(&lp->digest);
	lp->digest = cd;
	lp->received = lp->hashed = consumed;
	lp->w.off = at;
	if (ud.ctx) {
		oci_digest_release(&lp->w.digest);
		lp->w.digest = ud;
		lp->w.nonzero = true;
	} else if (lp->w.nonzero) {
		hash_zeros(&lp->w.digest, decoded); /* zeros are written explicitly from here on */
	}
}

/*
 * Download (or finish downloading) one disk layer into place and verify both digests.
 * *ret_resumed tells whether a resume point of an earlier process was used.
 */
static int download_layer(struct pull_job *j, size_t k, const struct oci_layer *l, uint64_t off,
			  bool use_part, bool *ret_resumed)
{
	_cleanup_free_ char *part = part_path(j, k);
	struct layer_pull lp = {.j = j, .l = l, .part = part, .part_fd = -1};
	writer_init(&lp.w, j, off, l->uncompressed_size);
	oci_digest_init(&lp.digest);
	enum oci_lz4_format fmt = j->m->vetu ? OCI_LZ4_FRAME : OCI_LZ4_APPLE;
	lp.dec = oci_lz4_dec_new(fmt, l->uncompressed_size, layer_out, &lp);
	if (use_part && !j->o->no_parts)
		load_part(&lp);
	uint64_t start = lp.received;
	*ret_resumed = start > 0;
	if (start == 0)
		(void)unlink(part); /* stale or foreign: the new resume points replace it */
	if (start > 0) {
		log_info("resuming %s layer %zu at byte %" PRIu64, j->what, k, start);
		oci_progress_add(&j->progress, start);
	}
	int r = clear_range(j, lp.w.off, lp.w.end - lp.w.off);
	bool reported = false;
	if (r >= 0) {
		r = j->f->get(j->f->userdata, l->digest, start, blob_write, &lp);
		/* the registry client reports its own failures; the sink's are ours to say */
		reported = r < 0 && r != lp.error && j->f->reports_errors;
	}
	if (r >= 0)
		r = oci_lz4_dec_finish(lp.dec);
	oci_lz4_dec_free(lp.dec);
	char cdg[OCI_DIGEST_STRLEN], udg[OCI_DIGEST_STRLEN];
	oci_digest_final(&lp.digest, cdg);
	int wr = writer_final(&lp.w, udg);
	if (r >= 0 && wr < 0)
		r = wr;
	if (lp.part_fd >= 0)
		close(lp.part_fd); /* after the writer: it writes the resume points */
	if (r == -ECANCELED)
		return r; /* the layer that failed has said why */
	if (reported)
		return r;
	/* Bad data after a resume point is retried from the first byte (pull_disk_layer). */
	enum log_level bad = start > 0 && j->err_level == LOG_ERR ? LOG_WARNING : j->err_level;
	if (r == -EBADMSG || r == -EFBIG)
		return layer_failed(
		    bad, -EBADMSG, "failed to decompress %s: layer %zu (%s) is corrupt%s", j->what, k,
		    l->digest, r == -EFBIG ? " (larger than its descriptor says)" : "");
	if (r < 0)
		return layer_failed(j->err_level, r, "cannot pull %s layer %zu (%s): %s", j->what, k,
				    l->digest, strerror(-r));
	if (lp.received != l->size || !streq(cdg, l->digest))
		return layer_failed(bad, -EBADMSG,
				    "%s layer %zu: digest mismatch (expected %s, got %s)", j->what,
				    k, l->digest, cdg);
	if (lp.w.off != lp.w.end ||
	    (l->uncompressed_digest[0] && !streq(udg, l->uncompressed_digest)))
		return layer_failed(bad, -EBADMSG,
				    "%s layer %zu: uncompressed content does not match %s", j->what,
				    k, l->uncompressed_digest);
	return 0;
}

static int pull_disk_layer(struct pull_job *j, size_t k)
{
	const struct oci_layer *l = &j->m->layers[j->disk_idx[k]];
	uint64_t off = j->offsets[k];
	const char *lpath;
	uint64_t loff;
	int r;
	if (find_local(j, l, &lpath, &loff)) {
		struct disk_writer w;
		writer_init(&w, j, off, l->uncompressed_size);
		r = clear_range(j, off, l->uncompressed_size);
		if (r >= 0)
			r = copy_local(&w, lpath, loff, l->uncompressed_size);
		char got[OCI_DIGEST_STRLEN];
		int wr = writer_final(&w, got);
		r = r < 0 ? r : wr;
		if (r >= 0 && (!l->uncompressed_digest[0] || streq(got, l->uncompressed_digest))) {
			oci_progress_add(&j->progress, l->size);
			return record_done(j, k);
		}
		log_warning("local copy of disk layer %zu did not verify, downloading it", k);
	}
	bool resumed;
	r = download_layer(j, k, l, off, true, &resumed);
	if (r == -EBADMSG && resumed) {
		/*
		 * The resume point may be stale (a crash of the machine): once more from scratch.
		 * Only for bad data: a network failure has spent the operation's retry budget
		 * already.
		 */
		log_warning("retrying %s layer %zu from its first byte", j->what, k);
		r = download_layer(j, k, l, off, false, &resumed);
	}
	_cleanup_free_ char *part = part_path(j, k);
	if (r < 0)
		return r;
	(void)unlink(part);
	return record_done(j, k);
}

static void *pull_worker(void *arg)
{
	struct pull_job *j = arg;
	for (;;) {
		size_t k = atomic_fetch_add(&j->next, 1);
		if (k >= j->ndisk || atomic_load(&j->err) != 0)
			break;
		if (j->done[k])
			continue;
		int r = pull_disk_layer(j, k);
		if (r < 0) {
			int zero = 0;
			atomic_compare_exchange_strong(&j->err, &zero, r);
			break;
		}
	}
	return NULL;
}

/* Read <staging>/.progress: "<disk layer index> <uncompressed digest>" per verified layer. */
static void load_progress(struct pull_job *j, const char *staging, const char *file)
{
	_cleanup_free_ char *p = path_join(staging, file);
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (fs_read_full(p, 1u << 20, &sb) < 0)
		return;
	char *save = NULL;
	for (char *line = strtok_r(sb.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t k;
		char dg[OCI_DIGEST_STRLEN + 1];
		if (sscanf(line, "%zu %72s", &k, dg) != 2 || k >= j->ndisk)
			continue;
		if (streq(dg, layer_key(&j->m->layers[j->disk_idx[k]])))
			j->done[k] = true;
	}
}

/* The chunked layers of one kind (disk.img, or the saved state) into staging/file. */
static int pull_chunks(const struct oci_blob_fetcher *f, const struct oci_manifest *m,
		       const char *staging, const struct oci_pull_options *o,
		       enum oci_layer_kind kind, const char *file, const char *progress)
{
	bool is_disk = kind == OCI_LAYER_DISK;
	struct pull_job j = {.f = f,
			     .staging = staging,
			     .m = m,
			     .o = o,
			     .kind = kind,
			     .what = is_disk ? "disk" : "state",
			     .err_level = is_disk ? LOG_ERR : LOG_DEBUG,
			     .punch_ok = true,
			     .disk_fd = -1,
			     .progress_fd = -1,
			     .disk = {.fd = -1, .dfd = -1}};
	j.disk_idx = xcalloc(m->nlayers, sizeof(*j.disk_idx));
	j.offsets = xcalloc(m->nlayers, sizeof(*j.offsets));
	j.done = xcalloc(m->nlayers, sizeof(*j.done));
	uint64_t total = 0, compressed = 0, todo = 0;
	for (size_t i = 0; i < m->nlayers; i++) {
		if (m->layers[i].kind != kind)
			continue;
		j.offsets[j.ndisk] = total;
		j.disk_idx[j.ndisk++] = i;
		total += m->layers[i].uncompressed_size;
		compressed += m->layers[i].size;
	}
	_cleanup_free_ char *disk = path_join(staging, file);
	_cleanup_free_ char *prog = path_join(staging, progress);
	struct stat st;
	if (lstat(disk, &st) == 0 && st.st_nlink > 1)
		(void)unlink(disk); /* shared with a cached image: never written, start over */
	bool resume = fs_exists(disk);
	int rc = 0;
	if (!resume && is_disk && share_local_disk(&j, disk, total))
		goto out;
	j.disk_fd = open(disk, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	j.progress_fd = open(prog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	oci_direct_init(&j.disk, j.disk_fd, true);
	if (j.disk_fd < 0 || j.progress_fd < 0 || fstat(j.disk_fd, &st) < 0) {
		rc = log_error_errno(negerrno(), "cannot create '%s'", disk);
		goto out;
	}
	if (resume && (uint64_t)st.st_size == total)
		load_progress(&j, staging, progress);
	if ((uint64_t)st.st_size != total && ftruncate(j.disk_fd, (off_t)total) < 0) {
		rc = log_error_errno(negerrno(), "cannot size '%s'", disk);
		goto out;
	}
	size_t ndone = 0;
	for (size_t k = 0; k < j.ndisk; k++)
		if (j.done[k]) {
			ndone++;
			continue;
		}
	for (size_t k = 0; k < j.ndisk; k++)
		if (!j.done[k])
			todo += m->layers[j.disk_idx[k]].size;
	if (ndone)
		log_info("resuming: %zu of %zu %s layers already verified", ndone, j.ndisk, j.what);
	if (!o->quiet)
		log_info("pulling %s (%.1f GB compressed)...", is_disk ? "disk" : "saved state",
			 (double)compressed / 1e9);
	pthread_mutex_init(&j.lock, NULL);
	oci_progress_init(&j.progress, todo);
	oci_run_workers(pull_worker, &j, (unsigned)MIN((size_t)MAX(o->concurrency, 1u), j.ndisk));
	rc = atomic_load(&j.err);
	if (rc == 0)
		oci_progress_finish(&j.progress);
	oci_progress_release(&j.progress);
	pthread_mutex_destroy(&j.lock);
	cpustat_push(CPUSTAT_WRITE);
	if (rc == 0 && fsync(j.disk_fd) < 0)
		rc = log_error_errno(negerrno(), "cannot sync '%s'", disk);
	cpustat_pop();
out:
	oci_direct_release(&j.disk);
	if (j.disk_fd >= 0)
		close(j.disk_fd);
	if (j.progress_fd >= 0)
		close(j.progress_fd);
	free(j.disk_idx);
	free(j.offsets);
	free(j.done);
	return rc;
}

struct file_sink {
	int fd;
	uint64_t received, limit;
	struct oci_digest digest;
};

static int file_write(void *userdata, const void *data, size_t len)
{
	struct file_sink *s = userdata;
	if (len > s->limit - s->received)
		return -EFBIG;
	s->received += len;
	oci_digest_update(&s->digest, data, len);
	return fs_write_all(s->fd, data, len);
}

/*
 * Download a whole blob (config, NVRAM, kernel, initramfs) into staging/file through a temp file:
 * verified, fsync'ed, then renamed into place. Never held in memory.
 */
static int pull_file(const struct oci_blob_fetcher *f, const struct oci_layer *l,
		     const char *staging, const char *file)
{
	_cleanup_free_ char *dst = path_join(staging, file);
	_cleanup_free_ char *tmp = xasprintf("%s/.%s.tmp", staging, file);
	struct file_sink s = {.limit = l->size};
	s.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s.fd < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", tmp);
	oci_digest_init(&s.digest);
	int rc = f->get(f->userdata, l->digest, 0, file_write, &s);
	char dg[OCI_DIGEST_STRLEN];
	oci_digest_final(&s.digest, dg);
	if (rc == -EFBIG)
		rc = bad_data("blob %s is larger than its descriptor says", l->digest);
	else if (rc >= 0 && (s.received != l->size || !streq(dg, l->digest)))
		rc = bad_data("%s: digest mismatch (expected %s, got %s)", file, l->digest, dg);
	if (rc >= 0 && fsync(s.fd) < 0)
		rc = log_error_errno(negerrno(), "cannot write '%s'", tmp);
	close(s.fd);
	if (rc >= 0 && rename(tmp, dst) < 0)
		rc = log_error_errno(negerrno(), "cannot write '%s'", dst);
	if (rc < 0)
		(void)unlink(tmp);
	return rc;
}

/* What a state download leaves in staging besides the state file: progress, resume points. */
static void state_leftovers(const struct oci_manifest *m, const char *staging, bool with_state)
{
	_cleanup_free_ char *prog = path_join(staging, STATE_PROGRESS_FILE);
	(void)unlink(prog);
	struct pull_job j = {.staging = staging, .kind = OCI_LAYER_STATE};
	for (size_t k = 0; k < m->nlayers; k++) {
		_cleanup_free_ char *part = part_path(&j, k);
		(void)unlink(part);
	}
	if (with_state) {
		_cleanup_free_ char *st = path_join(staging, OCI_STATE_FILE);
		(void)unlink(st);
	}
}

/*
 * The saved state: asked first whether it can apply here at all, downloaded like the disk,
 * then checked and accepted (or dropped) by the caller. A state that does not verify is left
 * out with the caller's notice; the image itself is fine without it.
 */
static int pull_state(const struct oci_blob_fetcher *f, const struct oci_manifest *m,
		      const char *staging, const struct oci_pull_options *o)
{
	if (o->state->check(o->state->userdata, m, NULL, 0) <= 0) {
		/* also what an interrupted earlier attempt may have left */
		state_leftovers(m, staging, true);
		return 0;
	}
	int r = pull_chunks(f, m, staging, o, OCI_LAYER_STATE, OCI_STATE_FILE, STATE_PROGRESS_FILE);
	if (r < 0 && r != -EBADMSG && r != -EFBIG)
		return r; /* the network: retried like any other layer */
	state_leftovers(m, staging, false);
	r = o->state->check(o->state->userdata, m, staging, r);
	return r < 0 ? r : 0;
}

static int registry_get(void *userdata, const char *digest, uint64_t offset, oci_blob_sink sink,
			void *sink_ud)
{
	/* download_layer hashes every compressed byte (received, or saved in its resume point) */
	return oci_registry_get_blob_unverified(userdata, digest, offset, sink, sink_ud);
}

int oci_pull_layers(struct oci_registry *r, const struct oci_manifest *m, const char *staging,
		    const struct oci_pull_options *o)
{
	struct oci_blob_fetcher f = {.get = registry_get, .userdata = r, .reports_errors = true};
	return oci_pull_layers_from(&f, m, staging, o);
}

int oci_pull_layers_from(const struct oci_blob_fetcher *f, const struct oci_manifest *m,
			 const char *staging, const struct oci_pull_options *o)
{
	static const struct {
		enum oci_layer_kind kind;
		const char *file;
	} small[] = {
	    {OCI_LAYER_CONFIG, "config.json"},
	    {OCI_LAYER_KERNEL, "kernel"},
	    {OCI_LAYER_INITRAMFS, "initramfs"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(small); i++) {
		const struct oci_layer *l = oci_manifest_find(m, small[i].kind);
		if (!l)
			continue;
		int r2 = pull_file(f, l, staging, small[i].file);
		if (r2 >= 0 && small[i].kind == OCI_LAYER_CONFIG && o->check_config) {
			_cleanup_free_ char *p = path_join(staging, small[i].file);
			r2 = o->check_config(p, o->check_userdata);
		}
		if (r2 < 0)
			return r2;
	}
	int rc = pull_chunks(f, m, staging, o, OCI_LAYER_DISK, "disk.img", PROGRESS_FILE);
	if (rc < 0)
		return rc;
	oci_progress_cpu_summary();
	const struct oci_layer *nv = oci_manifest_find(m, OCI_LAYER_NVRAM);
	if (nv) {
		if (!o->quiet)
			log_info("pulling NVRAM...");
		rc = pull_file(f, nv, staging, "nvram.bin");
	} else {
		/* Vetu images boot without an EFI variable store: leave an empty one. */
		_cleanup_free_ char *p = path_join(staging, "nvram.bin");
		rc = fs_write_atomic(p, "", 0, 0644);
	}
	if (rc >= 0 && o->state && oci_manifest_find(m, OCI_LAYER_STATE))
		rc = pull_state(f, m, staging, o);
	return rc;
}
