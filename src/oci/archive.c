// SPDX-License-Identifier: Apache-2.0
#include "oci/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/io.h"
#include "oci/manifest.h"
#include "oci/pull.h"
#include "oci/ref.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/macro.h"

#define BLOCK 512
#define IO_PIECE (1u << 20)
#define SMALL_FILE_MAX (1u << 20)
#define BLOBS_DIR "blobs"

/* ---- tar writer (ustar, base-256 sizes past 8 GiB) ---- */

struct tar_writer {
	int fd;
	pthread_mutex_t lock;
	char **written; /* digests already in the archive */
	size_t nwritten;
};

static void octal(char *dst, size_t width, uint64_t v)
{
	snprintf(dst, width, "%0*" PRIo64, (int)width - 1, v);
}

static void tar_header(unsigned char h[BLOCK], const char *name, uint64_t size, char type)
{
	memset(h, 0, BLOCK);
	snprintf((char *)h, 100, "%s", name);
	octal((char *)h + 100, 8, type == '5' ? 0755 : 0644);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	if (size < (1ULL << 33)) {
		octal((char *)h + 124, 12, size);
	} else {
		h[124] = 0x80;
		for (int i = 11; i >= 1; i--, size >>= 8)
			h[124 + i] = (unsigned char)(size & 0xff);
	}
	octal((char *)h + 136, 12, (uint64_t)time(NULL));
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

static int tar_entry(struct tar_writer *w, const char *name, uint64_t size, char type,
		     oci_blob_source src, void *src_ud)
{
	unsigned char h[BLOCK];
	tar_header(h, name, size, type);
	int r = fs_write_all(w->fd, h, BLOCK);
	if (r < 0 || size == 0)
		return r;
	_cleanup_free_ char *buf = xmalloc(IO_PIECE);
	for (uint64_t off = 0; off < size;) {
		int64_t n = src(src_ud, off, buf, (size_t)MIN((uint64_t)IO_PIECE, size - off));
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		r = fs_write_all(w->fd, buf, (size_t)n);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
	static const char pad[BLOCK];
	size_t rem = (size_t)(size % BLOCK);
	return rem ? fs_write_all(w->fd, pad, BLOCK - rem) : 0;
}

static bool tar_has(struct tar_writer *w, const char *digest)
{
	for (size_t i = 0; i < w->nwritten; i++)
		if (streq(w->written[i], digest))
			return true;
	return false;
}

static int tar_exists(void *userdata, const char *digest)
{
	struct tar_writer *w = userdata;
	pthread_mutex_lock(&w->lock);
	bool has = tar_has(w, digest);
	pthread_mutex_unlock(&w->lock);
	return has;
}

static int tar_put(void *userdata, const char *digest, uint64_t size, oci_blob_source src,
		   void *src_ud)
{
	struct tar_writer *w = userdata;
	int r = 0;
	pthread_mutex_lock(&w->lock);
	if (!tar_has(w, digest)) {
		_cleanup_free_ char *name = xasprintf(BLOBS_DIR "/sha256/%s", digest + 7);
		r = tar_entry(w, name, size, '0', src, src_ud);
		if (r >= 0) {
			w->written = xrealloc(w->written, (w->nwritten + 1) * sizeof(char *));
			w->written[w->nwritten++] = xstrdup(digest);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}

static int tar_small(struct tar_writer *w, const char *name, const struct strbuf *sb)
{
	return tar_entry(w, name, sb->len, '0', oci_strbuf_source, (void *)sb);
}

static int export_body(struct tar_writer *w, const char *dir, const struct oci_push_options *o)
{
	struct strbuf layout = STRBUF_INIT, index = STRBUF_INIT, manifest = STRBUF_INIT;
	char digest[OCI_DIGEST_STRLEN];
	strbuf_puts(&layout, "{\"imageLayoutVersion\":\"1.0.0\"}");
	int r = tar_small(w, "oci-layout", &layout);
	if (r >= 0)
		r = tar_entry(w, BLOBS_DIR "/", 0, '5', NULL, NULL);
	if (r >= 0)
		r = tar_entry(w, BLOBS_DIR "/sha256/", 0, '5', NULL, NULL);
	struct oci_blob_target t = {.exists = tar_exists, .put = tar_put, .userdata = w};
	if (r >= 0)
		r = oci_image_write(&t, dir, o, &manifest, digest);
	if (r >= 0)
		r = tar_put(w, digest, manifest.len, oci_strbuf_source, &manifest);
	if (r >= 0) {
		strbuf_putf(
		    &index,
		    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
		    "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":"
		    "\"latest\"}}]}",
		    OCI_MT_MANIFEST, digest, manifest.len);
		r = tar_small(w, "index.json", &index);
	}
	if (r >= 0) {
		static const char end[2 * BLOCK];
		r = fs_write_all(w->fd, end, sizeof(end));
	}
	strbuf_release(&layout);
	strbuf_release(&index);
	strbuf_release(&manifest);
	return r;
}

int oci_archive_export(const char *dir, const char *path, const struct oci_push_options *o)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	struct tar_writer w = {.fd = mkostemp(tmp, O_CLOEXEC)};
	if (w.fd < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", tmp);
	(void)fchmod(w.fd, 0644);
	pthread_mutex_init(&w.lock, NULL);
	int r = export_body(&w, dir, o);
	if (r >= 0 && fsync(w.fd) < 0)
		r = negerrno();
	close(w.fd);
	if (r >= 0 && rename(tmp, path) < 0)
		r = negerrno();
	if (r < 0) {
		(void)unlink(tmp);
		log_error_errno(r, "cannot export to '%s'", path);
	} else {
		(void)fs_fsync_parent(path);
	}
	for (size_t i = 0; i < w.nwritten; i++)
		free(w.written[i]);
	free(w.written);
	pthread_mutex_destroy(&w.lock);
	return r;
}

/* ---- tar reader with validation ---- */

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EBADMSG; /* truncated archive */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int parse_size(const unsigned char *f, uint64_t *ret)
{
	uint64_t v = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -EBADMSG;
		for (int i = 1; i < 12; i++) {
			if (v >> 56)
				return -EBADMSG;
			v = v << 8 | f[i];
		}
	} else {
		int i = 0;
		while (i < 12 && f[i] == ' ')
			i++;
		for (; i < 12 && f[i] >= '0' && f[i] <= '7'; i++)
			v = v * 8 + (uint64_t)(f[i] - '0');
		if (i < 12 && f[i] != 0 && f[i] != ' ')
			return -EBADMSG;
	}
	*ret = v;
	return 0;
}

static bool header_checksum_ok(const unsigned char h[BLOCK])
{
	unsigned sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	unsigned stored = 0;
	int i = 148;
	while (i < 156 && h[i] == ' ')
		i++;
	for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
		stored = stored * 8 + (unsigned)(h[i] - '0');
	return sum == stored;
}

static bool is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Only the layout's own entries are accepted; returns the blob hex or "" for other files. */
enum entry_kind { ENTRY_DIR, ENTRY_LAYOUT, ENTRY_INDEX, ENTRY_BLOB, ENTRY_BAD };

static enum entry_kind classify(const char *name, char type, const char **ret_hex)
{
	while (strneq(name, "./", 2))
		name += 2;
	if (type == '5') {
		static const char *const dirs[] = {
		    "", ".", BLOBS_DIR, BLOBS_DIR "/", BLOBS_DIR "/sha256", BLOBS_DIR "/sha256/"};
		for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
			if (streq(name, dirs[i]))
				return ENTRY_DIR;
		return ENTRY_BAD;
	}
	if (type != '0' && type != '\0')
		return ENTRY_BAD;
	if (streq(name, "oci-layout"))
		return ENTRY_LAYOUT;
	if (streq(name, "index.json"))
		return ENTRY_INDEX;
	if (strneq(name, BLOBS_DIR "/sha256/", 13) && is_hex64(name + 13)) {
		*ret_hex = name + 13;
		return ENTRY_BLOB;
	}
	return ENTRY_BAD;
}

static int skip_bytes(int fd, uint64_t n)
{
	char buf[BLOCK];
	while (n > 0) {
		size_t k = (size_t)MIN((uint64_t)sizeof(buf), n);
		int r = read_full(fd, buf, k);
		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

/* Copy `size` bytes of the entry to blobs/<hex> and verify the digest. */
static int extract_blob(int fd, const char *staging, const char *hex, uint64_t size)
{
	_cleanup_free_ char *dir = path_join(staging, BLOBS_DIR);
	_cleanup_free_ char *p = path_join(dir, hex);
	_cleanup_close_ int out = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		if (errno == EEXIST)
			return log_error_errno(-EBADMSG,
					       "blob sha256:%s appears twice in the archive", hex);
		return log_error_errno(negerrno(), "cannot create '%s'", p);
	}
	_cleanup_free_ char *buf = xmalloc(IO_PIECE);
	struct oci_digest d;
	oci_digest_init(&d);
	int r = 0;
	for (uint64_t left = size; left > 0 && r >= 0;) {
		size_t n = (size_t)MIN((uint64_t)IO_PIECE, left);
		r = read_full(fd, buf, n);
		if (r >= 0)
			r = fs_write_all(out, buf, n);
		oci_digest_update(&d, buf, n);
		left -= n;
	}
	char got[OCI_DIGEST_STRLEN];
	oci_digest_final(&d, got);
	if (r == -EBADMSG)
		return log_error_errno(r, "the archive is truncated");
	if (r < 0)
		return log_error_errno(r, "cannot extract blob sha256:%s", hex);
	if (!streq(got + 7, hex))
		return log_error_errno(
		    -EBADMSG, "blob sha256:%s in the archive is corrupt (its content is %s)", hex,
		    got);
	return 0;
}

struct pax {
	char *path;
	bool has_size;
	uint64_t size;
};

static int parse_pax(const char *buf, size_t len, struct pax *px)
{
	size_t i = 0;
	while (i < len) {
		char *end;
		unsigned long rl = strtoul(buf + i, &end, 10);
		if (end == buf + i || *end != ' ' || rl == 0 || rl > len - i)
			return -EBADMSG;
		const char *kv = end + 1, *rec_end = buf + i + rl;
		const char *eq = memchr(kv, '=', (size_t)(rec_end - kv));
		if (!eq || rec_end[-1] != '\n')
			return -EBADMSG;
		size_t klen = (size_t)(eq - kv), vlen = (size_t)(rec_end - 1 - eq - 1);
		if (klen == 4 && strneq(kv, "path", 4)) {
			free(px->path);
			px->path = xstrndup(eq + 1, vlen);
		} else if (klen == 4 && strneq(kv, "size", 4)) {
			_cleanup_free_ char *v = xstrndup(eq + 1, vlen);
			char *e;
			px->size = strtoull(v, &e, 10);
			if (*e || !*v)
				return -EBADMSG;
			px->has_size = true;
		}
		i += rl;
	}
	return 0;
}

struct layout_files {
	struct strbuf layout, index;
};

static int read_entries(int fd, const char *staging, struct layout_files *lf)
{
	unsigned char h[BLOCK];
	struct pax px = {0};
	int r = 0;
	for (;;) {
		r = read_full(fd, h, BLOCK);
		if (r < 0) {
			r = log_error_errno(r, "the archive is truncated or unreadable");
			break;
		}
		static const unsigned char zero[BLOCK];
		if (memcmp(h, zero, BLOCK) == 0)
			break;
		if (!header_checksum_ok(h)) {
			r = log_error_errno(-EBADMSG,
					    "the archive is not a tar file (bad header checksum)");
			break;
		}
		uint64_t size;
		if (parse_size(h + 124, &size) < 0 || size > OCI_BLOB_SIZE_MAX) {
			r = log_error_errno(-EBADMSG, "the archive has an entry of invalid size");
			break;
		}
		char type = (char)h[156];
		if (type == 'x' || type == 'g') {
			if (size > SMALL_FILE_MAX) {
				r = log_error_errno(-EBADMSG,
						    "oversized extended header in the archive");
				break;
			}
			_cleanup_free_ char *buf = xmalloc((size_t)size + 1);
			r = read_full(fd, buf, (size_t)size);
			if (r >= 0)
				r = skip_bytes(fd, (BLOCK - size % BLOCK) % BLOCK);
			if (r >= 0 && type == 'x')
				r = parse_pax(buf, (size_t)size, &px);
			if (r < 0) {
				r = log_error_errno(-EBADMSG,
						    "malformed extended header in the archive");
				break;
			}
			continue;
		}
		char name[256 + 2];
		char nm[101], prefix[156];
		memcpy(nm, h, 100);
		nm[100] = 0;
		memcpy(prefix, h + 345, 155);
		prefix[155] = 0;
		if (memcmp(h + 257, "ustar", 5) == 0 && prefix[0])
			snprintf(name, sizeof(name), "%s/%s", prefix, nm);
		else
			snprintf(name, sizeof(name), "%s", nm);
		const char *ename = px.path ? px.path : name;
		if (px.has_size)
			size = px.size;
		const char *hex = NULL;
		enum entry_kind k = classify(ename, type, &hex);
		uint64_t pad = (BLOCK - size % BLOCK) % BLOCK;
		switch (k) {
		case ENTRY_BAD:
			r = log_error_errno(-EBADMSG,
					    "unexpected entry '%s' (type '%c') in the archive",
					    ename, type ? type : '0');
			break;
		case ENTRY_DIR:
			r = skip_bytes(fd, size + pad);
			break;
		case ENTRY_LAYOUT:
		case ENTRY_INDEX: {
			struct strbuf *sb = k == ENTRY_LAYOUT ? &lf->layout : &lf->index;
			if (size > SMALL_FILE_MAX || sb->len) {
				r = log_error_errno(-EBADMSG, "invalid '%s' in the archive", ename);
				break;
			}
			strbuf_putn(sb, "", 0);
			_cleanup_free_ char *buf = xmalloc((size_t)size + 1);
			r = read_full(fd, buf, (size_t)size);
			if (r >= 0) {
				strbuf_putn(sb, buf, (size_t)size);
				r = skip_bytes(fd, pad);
			}
			break;
		}
		case ENTRY_BLOB:
			r = extract_blob(fd, staging, hex, size);
			if (r >= 0)
				r = skip_bytes(fd, pad);
			break;
		}
		free(px.path);
		px = (struct pax){0};
		if (r < 0)
			break;
	}
	free(px.path);
	return r;
}

static int blob_get(void *userdata, const char *digest, uint64_t offset, oci_blob_sink sink,
		    void *sink_ud)
{
	const char *staging = userdata;
	if (!oci_digest_valid(digest))
		return -EINVAL;
	_cleanup_free_ char *dir = path_join(staging, BLOBS_DIR);
	_cleanup_free_ char *p = path_join(dir, digest + 7);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-ENOENT, "blob %s is missing from the archive", digest);
	if (lseek(fd, (off_t)offset, SEEK_SET) < 0)
		return -errno;
	return oci_stream_fd(fd, sink, sink_ud);
}

/* index.json: exactly one OCI manifest; returns its digest (in the archive, verified). */
static int pick_manifest(const struct strbuf *index, char ret[OCI_DIGEST_STRLEN])
{
	_cleanup_json_ json_t *j = NULL;
	if (json_parse_buf(index->buf, index->len, &j) < 0 || !json_is_object(j))
		return log_error_errno(-EBADMSG, "the archive's index.json is not valid JSON");
	json_t *ms = json_object_get(j, "manifests");
	if (!json_is_array(ms) || json_array_size(ms) != 1)
		return log_error_errno(-EBADMSG, "the archive must hold exactly one image");
	json_t *d = json_array_get(ms, 0);
	const char *mt, *dg;
	if (json_get_string(d, "mediaType", &mt) < 0 || !streq(mt, OCI_MT_MANIFEST) ||
	    json_get_string(d, "digest", &dg) < 0 || !oci_digest_valid(dg))
		return log_error_errno(
		    -EBADMSG, "the archive's index.json does not name an OCI image manifest");
	memcpy(ret, dg, OCI_DIGEST_STRLEN);
	return 0;
}

int oci_archive_import(const char *path, const char *staging, unsigned concurrency,
		       const struct oci_state_check *state)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", path);
	_cleanup_free_ char *blobs = path_join(staging, BLOBS_DIR);
	if (mkdir(blobs, 0755) < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", blobs);
	struct layout_files lf = {STRBUF_INIT, STRBUF_INIT};
	struct oci_manifest m = {0};
	_cleanup_free_ char *err = NULL;
	char digest[OCI_DIGEST_STRLEN];
	int r = read_entries(fd, staging, &lf);
	if (r >= 0 && !strstr(lf.layout.buf, "imageLayoutVersion"))
		r = log_error_errno(
		    -EBADMSG, "'%s' is not an OCI image layout archive (no oci-layout)", path);
	if (r >= 0 && lf.index.len == 0)
		r = log_error_errno(-EBADMSG, "'%s' has no index.json", path);
	if (r >= 0)
		r = pick_manifest(&lf.index, digest);
	_cleanup_strbuf_ struct strbuf body = STRBUF_INIT;
	if (r >= 0) {
		_cleanup_free_ char *mp = path_join(blobs, digest + 7);
		r = fs_read_full(mp, OCI_MANIFEST_MAX, &body);
		if (r < 0)
			log_error_errno(r, "the image manifest %s is missing from the archive",
					digest);
	}
	if (r >= 0) {
		r = oci_manifest_parse(body.buf, body.len, &m, &err);
		if (r < 0)
			log_error("invalid manifest in the archive: %s", err ? err : "malformed");
	}
	if (r >= 0) {
		struct oci_blob_fetcher f = {.get = blob_get, .userdata = (void *)staging};
		struct oci_pull_options po = {
		    .concurrency = concurrency, .quiet = true, .no_parts = true, .state = state};
		r = oci_pull_layers_from(&f, &m, staging, &po);
	}
	oci_manifest_release(&m);
	strbuf_release(&lf.layout);
	strbuf_release(&lf.index);
	(void)fs_rm_rf(blobs);
	_cleanup_free_ char *prog = path_join(staging, ".progress");
	(void)unlink(prog);
	return r;
}
