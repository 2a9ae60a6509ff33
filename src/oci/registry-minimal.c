// SPDX-License-Identifier: Apache-2.0
/*
 * TEMPORARY minimal implementation of oci/registry.h, built only with
 * `-Dminimal_registry=true`: anonymous access, no retries, one curl easy handle per call.
 * It exists so push/pull can be developed and tested before the real client (branch
 * oci-client) lands; drop this file when merging that one.
 */
#include "oci/registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "oci/digest.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"

struct oci_registry {
	char *base; /* "http://host" */
	char *ns;
	char *ua;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int oci_registry_new(const char *host, const char *namespace,
		     const struct oci_registry_options *opts, struct oci_registry **ret)
{
	pthread_once(&curl_once, curl_init_once);
	struct oci_registry *r = xcalloc(1, sizeof(*r));
	r->base = xasprintf("%s://%s", opts && opts->insecure ? "http" : "https", host);
	r->ns = xstrdup(namespace);
	r->ua = xstrdup(opts && opts->user_agent ? opts->user_agent : "Tart/" TART_VERSION " (Linux)");
	*ret = r;
	return 0;
}

struct oci_registry *oci_registry_free(struct oci_registry *r)
{
	if (r) {
		free(r->base);
		free(r->ns);
		free(r->ua);
		free(r);
	}
	return NULL;
}

struct req {
	CURL *c;
	struct curl_slist *hdrs;
	struct strbuf body; /* error bodies and small responses, capped */
	char *location;
	char *content_type;
	char *docker_digest;
	oci_blob_sink sink;
	void *ud;
	int sink_err;
	long want_stream_code;
	/* upload */
	oci_blob_source source;
	void *src_ud;
	uint64_t up_off, up_end;
	int src_err;
};

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct req *q = ud;
	size_t len = sz * n;
	char **dst = NULL;
	size_t skip = 0;
	if (len > 9 && strncasecmp(p, "Location:", 9) == 0)
		dst = &q->location, skip = 9;
	else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0)
		dst = &q->content_type, skip = 13;
	if (dst) {
		const char *v = p + skip;
		size_t vl = len - skip;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		free(*dst);
		*dst = xstrndup(v, vl);
	}
	return len;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct req *q = ud;
	size_t len = sz * n;
	long code = 0;
	curl_easy_getinfo(q->c, CURLINFO_RESPONSE_CODE, &code);
	if (q->sink && code == q->want_stream_code) {
		int r = q->sink(q->ud, p, len);
		if (r < 0) {
			q->sink_err = r;
			return 0;
		}
		return len;
	}
	if (strbuf_add(&q->body, p, len) < 0) {
		q->sink_err = -EFBIG;
		return 0;
	}
	return len;
}

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
	struct req *q = ud;
	size_t want = MIN(sz * n, (size_t)(q->up_end - q->up_off));
	if (want == 0)
		return 0;
	int64_t got = q->source(q->src_ud, q->up_off, buf, want);
	if (got <= 0) {
		q->src_err = got < 0 ? (int)got : -EIO;
		return CURL_READFUNC_ABORT;
	}
	q->up_off += (uint64_t)got;
	return (size_t)got;
}

static void req_init(struct req *q, struct oci_registry *r, const char *url, size_t cap)
{
	memset(q, 0, sizeof(*q));
	strbuf_init(&q->body, cap);
	q->c = curl_easy_init();
	if (!q->c)
		abort();
	curl_easy_setopt(q->c, CURLOPT_URL, url);
	curl_easy_setopt(q->c, CURLOPT_USERAGENT, r->ua);
	curl_easy_setopt(q->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(q->c, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(q->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(q->c, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(q->c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(q->c, CURLOPT_CONNECTTIMEOUT, 30L);
}

static void req_release(struct req *q)
{
	curl_slist_free_all(q->hdrs);
	curl_easy_cleanup(q->c);
	strbuf_release(&q->body);
	free(q->location);
	free(q->content_type);
	free(q->docker_digest);
}

static void req_header(struct req *q, const char *h)
{
	q->hdrs = curl_slist_append(q->hdrs, h);
}

static int map_status(struct oci_registry *r, struct req *q, long code, const char *what)
{
	log_error("%s: registry %s answered HTTP %ld: %.1000s", what, r->base, code, q->body.buf);
	if (code == 401 || code == 403)
		return -EACCES;
	if (code == 404)
		return -ENOENT;
	if (code == 416)
		return -ERANGE;
	if (code >= 500 || code == 429)
		return -EAGAIN;
	return -EPROTO;
}

/* Perform; returns the status code or -errno (logged). */
static long req_perform(struct oci_registry *r, struct req *q, const char *what)
{
	if (q->hdrs)
		curl_easy_setopt(q->c, CURLOPT_HTTPHEADER, q->hdrs);
	CURLcode cc = curl_easy_perform(q->c);
	if (q->sink_err)
		return q->sink_err;
	if (q->src_err)
		return q->src_err;
	if (cc != CURLE_OK) {
		log_error("%s: %s: %s", what, r->base, curl_easy_strerror(cc));
		return -ECONNRESET;
	}
	long code = 0;
	curl_easy_getinfo(q->c, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

int oci_registry_ping(struct oci_registry *r)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/", r->base);
	struct req q;
	req_init(&q, r, url, 65536);
	long code = req_perform(r, &q, "ping");
	int ret = code < 0 ? (int)code : code == 200 ? 0 : map_status(r, &q, code, "ping");
	req_release(&q);
	return ret;
}

int oci_registry_get_manifest(struct oci_registry *r, const char *reference, struct strbuf *body,
			      char **ret_media_type, char **ret_digest)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/%s/manifests/%s", r->base, r->ns, reference);
	struct req q;
	req_init(&q, r, url, 4u << 20);
	req_header(&q, "Accept: application/vnd.oci.image.manifest.v1+json");
	long code = req_perform(r, &q, "cannot fetch manifest");
	int ret;
	if (code < 0) {
		ret = (int)code;
	} else if (code != 200) {
		ret = map_status(r, &q, code, "cannot fetch manifest");
	} else {
		char dg[OCI_DIGEST_STRLEN];
		oci_digest_buf(q.body.buf, q.body.len, dg);
		if (strncmp(reference, "sha256:", 7) == 0 && !streq(reference, dg)) {
			log_error("manifest digest mismatch: expected %s, got %s", reference, dg);
			ret = -EBADMSG;
		} else {
			strbuf_putn(body, q.body.buf, q.body.len);
			if (ret_media_type)
				*ret_media_type = xstrdup(q.content_type ? q.content_type : "");
			if (ret_digest)
				*ret_digest = xstrdup(dg);
			ret = 0;
		}
	}
	req_release(&q);
	return ret;
}

int oci_registry_put_manifest(struct oci_registry *r, const char *reference,
			      const char *media_type, const void *body, size_t len)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/%s/manifests/%s", r->base, r->ns, reference);
	_cleanup_free_ char *ct = xasprintf("Content-Type: %s", media_type);
	struct req q;
	req_init(&q, r, url, 65536);
	req_header(&q, ct);
	curl_easy_setopt(q.c, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(q.c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(q.c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	long code = req_perform(r, &q, "cannot push manifest");
	int ret = code < 0 ? (int)code : code == 201 ? 0 : map_status(r, &q, code, "cannot push manifest");
	req_release(&q);
	return ret;
}

int oci_registry_blob_exists(struct oci_registry *r, const char *digest, uint64_t *ret_size)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/%s/blobs/%s", r->base, r->ns, digest);
	struct req q;
	req_init(&q, r, url, 65536);
	curl_easy_setopt(q.c, CURLOPT_NOBODY, 1L);
	long code = req_perform(r, &q, "cannot check blob");
	int ret;
	if (code < 0) {
		ret = (int)code;
	} else if (code == 200) {
		curl_off_t cl = -1;
		curl_easy_getinfo(q.c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (ret_size)
			*ret_size = cl >= 0 ? (uint64_t)cl : 0;
		ret = 1;
	} else if (code == 404) {
		ret = 0;
	} else {
		ret = map_status(r, &q, code, "cannot check blob");
	}
	req_release(&q);
	return ret;
}

int oci_registry_get_blob(struct oci_registry *r, const char *digest, uint64_t offset,
			  oci_blob_sink sink, void *userdata)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/%s/blobs/%s", r->base, r->ns, digest);
	struct req q;
	req_init(&q, r, url, 65536);
	curl_easy_setopt(q.c, CURLOPT_FOLLOWLOCATION, 1L);
	q.sink = sink;
	q.ud = userdata;
	q.want_stream_code = offset ? 206 : 200;
	_cleanup_free_ char *range = NULL;
	if (offset) {
		range = xasprintf("Range: bytes=%" PRIu64 "-", offset);
		req_header(&q, range);
	}
	long code = req_perform(r, &q, "cannot fetch blob");
	int ret = code < 0 ? (int)code
		  : code == q.want_stream_code ? 0
					       : map_status(r, &q, code, "cannot fetch blob");
	req_release(&q);
	return ret;
}

static char *absolute(struct oci_registry *r, const char *loc)
{
	if (strstr(loc, "://"))
		return xstrdup(loc);
	return xasprintf("%s%s%s", r->base, loc[0] == '/' ? "" : "/v2/", loc);
}

static int upload_step(struct oci_registry *r, const char *url, const char *method,
		       const char *content_range, uint64_t start, uint64_t end,
		       oci_blob_source source, void *ud, long *ret_code, char **ret_location)
{
	struct req q;
	req_init(&q, r, url, 65536);
	curl_easy_setopt(q.c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(q.c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(q.c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(end - start));
	q.source = source;
	q.src_ud = ud;
	q.up_off = start;
	q.up_end = end;
	curl_easy_setopt(q.c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(q.c, CURLOPT_READDATA, &q);
	req_header(&q, "Content-Type: application/octet-stream");
	req_header(&q, "Expect:");
	_cleanup_free_ char *cr = content_range ? xasprintf("Content-Range: %s", content_range) : NULL;
	if (cr)
		req_header(&q, cr);
	long code = req_perform(r, &q, "cannot upload blob");
	int ret = 0;
	if (code < 0) {
		ret = (int)code;
	} else if (code != 201 && code != 202) {
		ret = map_status(r, &q, code, "cannot upload blob");
	} else {
		*ret_code = code;
		*ret_location = q.location ? absolute(r, q.location) : NULL;
	}
	req_release(&q);
	return ret;
}

int oci_registry_push_blob(struct oci_registry *r, const char *digest, uint64_t size,
			   uint64_t chunk_size, const char *mount_from, oci_blob_source source,
			   void *userdata)
{
	_cleanup_free_ char *url = NULL;
	if (mount_from)
		url = xasprintf("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", r->base, r->ns, digest,
				mount_from);
	else
		url = xasprintf("%s/v2/%s/blobs/uploads/", r->base, r->ns);
	struct req q;
	req_init(&q, r, url, 65536);
	curl_easy_setopt(q.c, CURLOPT_POST, 1L);
	curl_easy_setopt(q.c, CURLOPT_POSTFIELDSIZE, 0L);
	long code = req_perform(r, &q, "cannot start blob upload");
	if (code < 0) {
		req_release(&q);
		return (int)code;
	}
	if (code == 201 && mount_from) {
		req_release(&q);
		return 0;
	}
	if (code != 202 || !q.location) {
		int ret = map_status(r, &q, code, "cannot start blob upload");
		req_release(&q);
		return ret;
	}
	char *loc = absolute(r, q.location);
	req_release(&q);
	uint64_t off = 0;
	while (chunk_size > 0 && size - off > chunk_size) {
		_cleanup_free_ char *range =
			xasprintf("%" PRIu64 "-%" PRIu64, off, off + chunk_size - 1);
		char *next = NULL;
		long c;
		int ret = upload_step(r, loc, "PATCH", range, off, off + chunk_size, source, userdata,
				      &c, &next);
		free(loc);
		if (ret < 0)
			return ret;
		if (!next)
			return log_error_errno(-EPROTO, "registry gave no upload location");
		loc = next;
		off += chunk_size;
	}
	_cleanup_free_ char *put = xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
	free(loc);
	long c = 0;
	char *next = NULL;
	int ret = upload_step(r, put, "PUT", NULL, off, size, source, userdata, &c, &next);
	free(next);
	if (ret < 0)
		return ret;
	if (c != 201)
		return log_error_errno(-EPROTO, "blob upload finished with HTTP %ld", c);
	return 0;
}
