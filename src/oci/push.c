// SPDX-License-Identifier: Apache-2.0
#include "oci/push.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/applelz4.h"
#include "oci/io.h"
#include "oci/manifest.h"
#include "oci/progress.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"

#define READ_PIECE (2u << 20) /* two in memory per chunk: one read ahead */
#define WRITE_SLOT (1u << 20)

struct chunk_result {
	struct oci_layer layer;
	bool ready;
};

struct push_job {
	const struct oci_blob_target *t;
	const struct oci_push_options *o;
	enum oci_layer_kind kind; /* the disk, or the saved state: both are chunked alike */
	int disk_fd;
	struct oci_direct disk; /* reads of disk_fd */
	uint64_t disk_size, chunk;
	size_t nchunks;
	atomic_size_t next;
	atomic_int err;
	struct chunk_result *results;
	struct oci_progress progress;
	/* A chunk that is a hole from end to end compresses to the same blob every time. */
	pthread_mutex_t memo_lock;
	bool memo_valid;
	uint64_t memo_len;
	struct oci_layer memo;
};

/*
 * Compressed bytes go to the temporary file through the background writer (oci/io.h): O_DIRECT
 * (no copy into the page cache, and none back out of it when the blob is uploaded) while the
 * compression goes on.
 */
struct enc_sink {
	struct oci_writer *out;
	uint64_t written;
	struct oci_digest digest;
};

static int enc_write(void *userdata, const void *data, size_t len)
{
	struct enc_sink *s = userdata;
	oci_digest_update(&s->digest, data, len);
	int r = oci_writer_write(s->out, data, len, s->written);
	s->written += len;
	return r;
}

static int open_tmp(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != ENOENT))
		return fd >= 0 ? fd : -errno;
	_cleanup_free_ char *tmpl = path_join(dir, "push-XXXXXX");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)unlink(tmpl);
	return fd;
}

/*
 * Compress one chunk into the temporary file behind out; fills l (digests, sizes). A chunk that
 * is one hole (zeros) takes the known digest of zeros instead of hashing them.
 */
static int compress_chunk(struct push_job *j, uint64_t off, uint64_t len, bool hole,
			  struct oci_direct *out, struct oci_layer *l)
{
	static const char zeros[READ_PIECE];
	struct oci_prefetch *in = oci_prefetch_new(&j->disk, off, off + len, READ_PIECE, true);
	struct enc_sink sink = {.out = oci_writer_new(out, WRITE_SLOT)};
	oci_digest_init(&sink.digest);
	struct oci_digest ud;
	oci_digest_init(&ud);
	struct oci_lz4_enc *enc = oci_lz4_enc_new(enc_write, &sink);
	int r = 0;
	while (r >= 0 && atomic_load(&j->err) == 0) {
		const void *data;
		size_t n;
		uint64_t pos = off;
		r = oci_prefetch_next(in, &data, &n, &pos);
		if (r <= 0) {
			if (r < 0)
				log_error_errno(r, "cannot read the disk at offset %" PRIu64, pos);
			break;
		}
		if (!data)
			data = zeros; /* a hole: not read */
		if (!hole)
			oci_digest_update(&ud, data, n);
		r = oci_lz4_enc_update(enc, data, n);
		oci_progress_add(&j->progress, n);
	}
	oci_prefetch_free(in);
	if (r >= 0)
		r = oci_lz4_enc_finish(enc);
	int wr = oci_writer_finish(sink.out);
	if (r >= 0)
		r = wr;
	oci_lz4_enc_free(enc);
	if (r < 0 || atomic_load(&j->err) != 0) {
		if (r < 0 && r != -EIO)
			log_error_errno(r, "cannot compress a disk chunk");
		oci_digest_release(&sink.digest);
		oci_digest_release(&ud);
		return r < 0 ? r : -ECANCELED;
	}
	l->kind = j->kind;
	l->size = sink.written;
	l->has_uncompressed = true;
	l->uncompressed_size = len;
	oci_digest_final(&sink.digest, l->digest);
	if (hole) {
		oci_digest_release(&ud);
		oci_digest_zeros(len, l->uncompressed_digest);
	} else {
		oci_digest_final(&ud, l->uncompressed_digest);
	}
	return 0;
}

static int upload_file(struct push_job *j, struct oci_direct *out, const struct oci_layer *l)
{
	int r = j->t->exists(j->t->userdata, l->digest);
	if (r < 0)
		return r;
	if (r > 0) {
		log_debug("blob %s already exists, skipping", l->digest);
		return 0;
	}
	struct oci_direct_reader rd = {.d = out, .size = l->size};
	r = j->t->put(j->t->userdata, l->digest, l->size, oci_direct_source, &rd);
	oci_direct_reader_release(&rd);
	return r;
}

/* Compress chunk i into a temporary file and upload it unless the target has it. */
static int compress_upload(struct push_job *j, uint64_t off, uint64_t len, bool hole,
			   struct oci_layer *l)
{
	_cleanup_close_ int fd = open_tmp(j->o->tmp_dir);
	if (fd < 0)
		return log_error_errno(fd, "cannot create a temporary file in '%s'", j->o->tmp_dir);
	struct oci_direct out;
	oci_direct_init(&out, fd, true);
	int r = compress_chunk(j, off, len, hole, &out, l);
	if (r >= 0)
		r = upload_file(j, &out, l);
	oci_direct_release(&out);
	return r;
}

static int push_chunk(struct push_job *j, size_t i)
{
	uint64_t off = (uint64_t)i * j->chunk;
	uint64_t len = MIN(j->chunk, j->disk_size - off);
	struct oci_layer *l = &j->results[i].layer;
	if (!oci_range_is_hole(j->disk_fd, off, len))
		return compress_upload(j, off, len, false, l);
	/* the first hole chunk of a size is compressed and uploaded while the others wait */
	pthread_mutex_lock(&j->memo_lock);
	int r = 0;
	if (j->memo_valid && j->memo_len == len) {
		*l = j->memo;
		oci_progress_add(&j->progress, len);
	} else {
		r = compress_upload(j, off, len, true, l);
		if (r >= 0) {
			j->memo = *l;
			j->memo_len = len;
			j->memo_valid = true;
		}
	}
	pthread_mutex_unlock(&j->memo_lock);
	return r;
}

static void *push_worker(void *arg)
{
	struct push_job *j = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->nchunks || atomic_load(&j->err) != 0)
			break;
		int r = push_chunk(j, i);
		if (r < 0) {
			int zero = 0;
			atomic_compare_exchange_strong(&j->err, &zero, r);
			break;
		}
		j->results[i].ready = true;
	}
	return NULL;
}

static int push_chunked(const struct oci_blob_target *t, const char *path, enum oci_layer_kind kind,
			const struct oci_push_options *o, struct oci_layer **ret_layers,
			size_t *ret_n, uint64_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", path);
	struct push_job j = {
	    .t = t,
	    .o = o,
	    .kind = kind,
	    .disk_fd = fd,
	    .disk_size = (uint64_t)st.st_size,
	    .chunk = o->disk_chunk ? o->disk_chunk : OCI_DISK_CHUNK,
	};
	j.nchunks = (size_t)((j.disk_size + j.chunk - 1) / j.chunk);
	if (j.nchunks == 0)
		return log_error_errno(-EINVAL, "'%s' is empty", path);
	j.results = xcalloc(j.nchunks, sizeof(*j.results));
	oci_direct_init(&j.disk, fd, false);
	pthread_mutex_init(&j.memo_lock, NULL);
	oci_progress_init(&j.progress, j.disk_size);
	oci_run_workers(push_worker, &j, (unsigned)MIN((size_t)MAX(o->concurrency, 1u), j.nchunks));
	int err = atomic_load(&j.err);
	if (err == 0)
		oci_progress_finish(&j.progress);
	oci_progress_release(&j.progress);
	pthread_mutex_destroy(&j.memo_lock);
	oci_direct_release(&j.disk);
	if (err < 0) {
		free(j.results);
		return err;
	}
	struct oci_layer *layers = xcalloc(j.nchunks, sizeof(*layers));
	for (size_t i = 0; i < j.nchunks; i++)
		layers[i] = j.results[i].layer;
	free(j.results);
	*ret_layers = layers;
	*ret_n = j.nchunks;
	*ret_size = j.disk_size;
	return 0;
}

/* Upload a small blob held in memory; fills its descriptor. */
static int push_small(const struct oci_blob_target *t, const struct strbuf *data,
		      enum oci_layer_kind kind, struct oci_layer *l, bool check_exists)
{
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->size = data->len;
	oci_digest_buf(data->buf, data->len, l->digest);
	if (check_exists) {
		int e = t->exists(t->userdata, l->digest);
		if (e != 0)
			return e < 0 ? e : 0;
	}
	return t->put(t->userdata, l->digest, l->size, oci_strbuf_source, (void *)data);
}

/* A whole file (kernel, initramfs) as one blob, streamed: digest first, then upload. */
static int push_file(const struct oci_blob_target *t, const char *dir, const char *file,
		     enum oci_layer_kind kind, struct oci_layer *l)
{
	_cleanup_free_ char *p = path_join(dir, file);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", p);
	if ((uint64_t)st.st_size > OCI_BOOT_BLOB_MAX)
		return log_error_errno(-EFBIG, "'%s' is larger than %llu bytes", p,
				       OCI_BOOT_BLOB_MAX);
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->size = (uint64_t)st.st_size;
	int r = oci_digest_fd_range(fd, 0, l->size, l->digest);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s'", p);
	r = t->exists(t->userdata, l->digest);
	if (r != 0)
		return r < 0 ? r : 0;
	return t->put(t->userdata, l->digest, l->size, oci_fd_source, &fd);
}

/*
 * A direct-boot VM's kernel and initramfs (Vetu's media types, which Tart skips) and, when
 * the caller accepts it, the saved state: appended to the layers.
 */
static int push_extras(const struct oci_blob_target *t, const char *dir,
		       const struct oci_push_options *o, const struct oci_layer *disk, size_t ndisk,
		       struct oci_layer **layers, size_t *n)
{
	static const struct {
		const char *file;
		enum oci_layer_kind kind;
	} boot[] = {{"kernel", OCI_LAYER_KERNEL}, {"initramfs", OCI_LAYER_INITRAMFS}};
	for (size_t i = 0; i < ARRAY_SIZE(boot); i++) {
		_cleanup_free_ char *p = path_join(dir, boot[i].file);
		if (!fs_exists(p))
			continue;
		if (!o->quiet)
			log_info("pushing %s...", boot[i].file);
		*layers = xrealloc(*layers, (*n + 1) * sizeof(**layers));
		int r = push_file(t, dir, boot[i].file, boot[i].kind, &(*layers)[*n]);
		if (r < 0)
			return r;
		(*n)++;
	}
	_cleanup_free_ char *st = path_join(dir, OCI_STATE_FILE);
	struct oci_state_meta meta;
	if (!o->state_hook || !fs_exists(st) ||
	    o->state_hook(o->state_userdata, disk, ndisk, &meta) <= 0)
		return 0;
	if (!o->quiet)
		log_info("pushing saved state...");
	struct oci_layer *sl = NULL;
	size_t ns = 0;
	uint64_t size;
	int r = push_chunked(t, st, OCI_LAYER_STATE, o, &sl, &ns, &size);
	if (r < 0)
		return r;
	*layers = xrealloc(*layers, (*n + ns) * sizeof(**layers));
	for (size_t i = 0; i < ns; i++) {
		sl[i].state = meta;
		(*layers)[(*n)++] = sl[i];
	}
	free(sl);
	return 0;
}

static int read_small(const char *dir, const char *file, struct strbuf *sb)
{
	_cleanup_free_ char *p = path_join(dir, file);
	int r = fs_read_full(p, OCI_SMALL_BLOB_MAX, sb);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s'", p);
	return 0;
}

int oci_image_write(const struct oci_blob_target *t, const char *dir,
		    const struct oci_push_options *o, struct strbuf *ret_manifest,
		    char ret_digest[OCI_DIGEST_STRLEN])
{
	_cleanup_strbuf_ struct strbuf cfg = STRBUF_INIT, nvram = STRBUF_INIT, stub = STRBUF_INIT;
	struct oci_manifest m = {0};
	struct oci_layer cfg_layer, nvram_layer, stub_layer;
	struct oci_layer *disk = NULL;
	size_t ndisk = 0;
	int rc = read_small(dir, "config.json", &cfg);
	if (rc >= 0)
		rc = read_small(dir, "nvram.bin", &nvram);
	if (rc < 0)
		return rc;
	if (!o->quiet)
		log_info("pushing config...");
	rc = push_small(t, &cfg, OCI_LAYER_CONFIG, &cfg_layer, false);
	if (rc < 0)
		return rc;
	if (!o->quiet)
		log_info("pushing disk... this will take a while...");
	_cleanup_free_ char *disk_path = path_join(dir, "disk.img");
	rc = push_chunked(t, disk_path, OCI_LAYER_DISK, o, &disk, &ndisk, &m.disk_size);
	if (rc < 0)
		return rc;
	oci_progress_cpu_summary();
	if (!o->quiet)
		log_info("pushing NVRAM...");
	rc = push_small(t, &nvram, OCI_LAYER_NVRAM, &nvram_layer, false);
	if (rc < 0)
		goto finish;
	oci_config_stub_build(o->arch, o->os, o->disk_format, o->labels, o->nlabels, &stub);
	rc = push_small(t, &stub, OCI_LAYER_CONFIG, &stub_layer, true);
	if (rc < 0)
		goto finish;
	memcpy(m.config_digest, stub_layer.digest, OCI_DIGEST_STRLEN);
	m.config_size = stub_layer.size;
	m.nlayers = ndisk + 2;
	m.layers = xcalloc(m.nlayers, sizeof(*m.layers));
	m.layers[0] = cfg_layer;
	memcpy(m.layers + 1, disk, ndisk * sizeof(*disk));
	m.layers[ndisk + 1] = nvram_layer;
	rc = push_extras(t, dir, o, disk, ndisk, &m.layers, &m.nlayers);
	if (rc < 0)
		goto finish;
	size_t start = ret_manifest->len;
	oci_manifest_build(&m, ret_manifest);
	oci_digest_buf(ret_manifest->buf + start, ret_manifest->len - start, ret_digest);
finish:
	oci_manifest_release(&m);
	free(disk);
	return rc;
}

struct registry_target {
	struct oci_registry *r;
	const struct oci_push_options *o;
};

static int registry_exists(void *userdata, const char *digest)
{
	struct registry_target *rt = userdata;
	return oci_registry_blob_exists(rt->r, digest, NULL);
}

static int registry_put(void *userdata, const char *digest, uint64_t size, oci_blob_source src,
			void *src_userdata)
{
	struct registry_target *rt = userdata;
	return oci_registry_push_blob(rt->r, digest, size, rt->o->upload_chunk, rt->o->mount_from,
				      src, src_userdata);
}

int oci_push_blobs(struct oci_registry *r, const char *dir, const struct oci_push_options *o,
		   struct strbuf *ret_manifest, char ret_digest[OCI_DIGEST_STRLEN])
{
	struct registry_target rt = {.r = r, .o = o};
	struct oci_blob_target t = {
	    .exists = registry_exists, .put = registry_put, .userdata = &rt};
	return oci_image_write(&t, dir, o, ret_manifest, ret_digest);
}

int oci_push_tags(struct oci_registry *r, const struct strbuf *manifest, char *const *tags,
		  size_t ntags)
{
	for (size_t i = 0; i < ntags; i++) {
		log_info("pushing manifest for %s...", tags[i]);
		int rc = oci_registry_put_manifest(r, tags[i], OCI_MT_MANIFEST, manifest->buf,
						   manifest->len);
		if (rc < 0)
			return rc;
	}
	return 0;
}
