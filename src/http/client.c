// SPDX-License-Identifier: Apache-2.0
#include "http/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "util/alloc.h"
#include "util/cpustat.h"

#define DEFAULT_BODY_CAP (64 * 1024)

struct http_client {
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	struct http_client_options opts;
	char *user_agent;
	char *ca_file, *ca_path;
	struct curl_blob ca_blob;
	struct curl_slist *connect_to;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userdata)
{
	(void)h;
	(void)access;
	struct http_client *c = userdata;
	pthread_mutex_lock(&c->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userdata)
{
	(void)h;
	struct http_client *c = userdata;
	pthread_mutex_unlock(&c->locks[data]);
}

int http_client_new(const struct http_client_options *opts, struct http_client **ret)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return -ENOMEM;
	struct http_client *c = xcalloc(1, sizeof(*c));
	if (opts)
		c->opts = *opts;
	if (c->opts.user_agent)
		c->user_agent = xstrdup(c->opts.user_agent);
	c->opts.user_agent = c->user_agent;
	c->ca_file = c->opts.ca_file ? xstrdup(c->opts.ca_file) : NULL;
	c->ca_path = c->opts.ca_path ? xstrdup(c->opts.ca_path) : NULL;
	if (c->opts.ca_blob && c->opts.ca_blob_len) {
		void *copy = xmalloc(c->opts.ca_blob_len);
		memcpy(copy, c->opts.ca_blob, c->opts.ca_blob_len);
		c->ca_blob = (struct curl_blob){copy, c->opts.ca_blob_len, CURL_BLOB_NOCOPY};
	}
	c->opts.ca_blob = NULL;
	if (c->opts.connect_to)
		c->connect_to = curl_slist_append(NULL, c->opts.connect_to);
	c->opts.connect_to = NULL;
	if (c->opts.connect_timeout_s <= 0)
		c->opts.connect_timeout_s = 30;
	if (c->opts.low_speed_limit <= 0)
		c->opts.low_speed_limit = 1;
	if (c->opts.low_speed_time_s <= 0)
		c->opts.low_speed_time_s = 60;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	c->share = curl_share_init();
	if (!c->share) {
		http_client_free(c);
		return -ENOMEM;
	}
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	*ret = c;
	return 0;
}

struct http_client *http_client_free(struct http_client *c)
{
	if (!c)
		return NULL;
	if (c->share)
		curl_share_cleanup(c->share);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->user_agent);
	free(c->ca_file);
	free(c->ca_path);
	free(c->ca_blob.data);
	curl_slist_free_all(c->connect_to);
	free(c);
	return NULL;
}

struct transfer {
	const struct http_client_options *opts;
	const struct http_request *req;
	struct http_response *resp;
	CURL *h;
	int cb_error; /* a callback's failure, reported instead of curl's code */
	/* in-memory request body position */
	size_t body_pos;
	uint64_t read_pos;
	long status;
	bool status_known;
	bool stream;
	/* stall_timeout_s */
	bool headers_done;   /* the final (non-1xx) header block has ended */
	bool informational;  /* the header block being read is a 1xx one */
	uint64_t sent_ms;    /* when the request was seen fully sent; 0: not yet */
	uint64_t moved_ms;   /* when a byte last moved either way */
	curl_off_t moved;    /* bytes moved so far, both ways */
	const char *stalled; /* why the transfer was aborted, NULL when it was not */
	bool cancelled;	     /* progress_fn asked for the end */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Enforces stall_timeout_s: curl calls this about once a second even when nothing moves. */
static int xferinfo_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	struct transfer *t = userdata;
	if (t->req->progress_fn && t->req->progress_fn(t->req->progress_userdata)) {
		t->cancelled = true;
		return 1;
	}
	if (t->opts->stall_timeout_s <= 0)
		return 0;
	uint64_t now = now_ms(), limit = (uint64_t)t->opts->stall_timeout_s * 1000;
	if (!t->moved_ms || dlnow + ulnow != t->moved) {
		t->moved = dlnow + ulnow;
		t->moved_ms = now;
	} else if (now - t->moved_ms > limit) {
		t->stalled = HTTP_STALL_TEXT;
		return 1;
	}
	if (t->headers_done)
		return 0;
	if (ultotal > 0 && ulnow < ultotal) {
		t->sent_ms = 0; /* still sending: the server's turn has not come */
		return 0;
	}
	if (!t->sent_ms)
		t->sent_ms = now;
	if (now - t->sent_ms <= limit)
		return 0;
	t->stalled = HTTP_HEADER_TIMEOUT_TEXT;
	return 1;
}

static size_t header_cb(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * n;
	/* A new status line (after 100 Continue, say) starts a new header set. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		strvec_clear(&t->resp->headers);
		const char *sp = memchr(data, ' ', len);
		t->informational = sp && (size_t)(sp - data) + 1 < len && sp[1] == '1';
		t->headers_done = false;
		return len;
	}
	size_t l = len;
	while (l > 0 && (data[l - 1] == '\r' || data[l - 1] == '\n'))
		l--;
	if (l == 0) {
		t->headers_done = !t->informational;
		return len;
	}
	if (t->resp->headers.nr >= 200) /* a cap on what a server may make us keep */
		return len;
	char *line = xstrndup(data, l);
	strvec_push(&t->resp->headers, line);
	free(line);
	return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * n;
	if (!t->status_known) {
		curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &t->status);
		t->stream = t->req->write_fn && t->status >= 200 && t->status < 300;
		t->status_known = true;
	}
	if (t->stream) {
		cpustat_push(CPUSTAT_OTHER); /* the caller's time is its own */
		int r = t->req->write_fn(t->req->write_userdata, t->status, data, len);
		cpustat_pop();
		if (r < 0) {
			t->cb_error = r;
			return CURL_WRITEFUNC_ERROR;
		}
		return len;
	}
	if (strbuf_add(&t->resp->body, data, len) < 0) {
		if (t->req->body_cap_strict) {
			t->cb_error = -EFBIG;
			return CURL_WRITEFUNC_ERROR;
		}
		/* keep the head of an oversized error body: it says what went wrong */
		size_t room = t->resp->body.cap - t->resp->body.len;
		if (room > 0)
			(void)!strbuf_add(&t->resp->body, data, MIN(room, len));
	}
	return len;
}

static size_t read_cb(char *buf, size_t size, size_t n, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * n;
	const struct http_request *q = t->req;
	if (q->read_fn) {
		uint64_t left = q->read_len - t->read_pos;
		if (left == 0)
			return 0;
		if (len > left)
			len = (size_t)left;
		cpustat_push(CPUSTAT_OTHER); /* the caller's time is its own */
		int64_t got = q->read_fn(q->read_userdata, buf, len);
		cpustat_pop();
		if (got < 0 || (got == 0 && left > 0)) {
			t->cb_error = got < 0 ? (int)got : -EIO;
			return CURL_READFUNC_ABORT;
		}
		t->read_pos += (uint64_t)got;
		return (size_t)got;
	}
	size_t left = q->body_len - t->body_pos;
	if (len > left)
		len = left;
	memcpy(buf, (const char *)q->body + t->body_pos, len);
	t->body_pos += len;
	return len;
}

static int seek_cb(void *userdata, curl_off_t offset, int origin)
{
	/* Rewinds happen when curl resends a body (e.g. after a 401 on an auth retry). */
	struct transfer *t = userdata;
	if (origin != SEEK_SET || offset != 0 || t->req->read_fn)
		return CURL_SEEKFUNC_CANTSEEK;
	t->body_pos = 0;
	return CURL_SEEKFUNC_OK;
}

static int map_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -EPROTO;
	default:
		/* RECV/SEND errors, GOT_NOTHING, PARTIAL_FILE and the rest: the connection broke */
		return -ECONNRESET;
	}
}

static void set_method(CURL *h, const struct http_request *q)
{
	const char *m = q->method;
	bool has_body = q->read_fn || q->body || q->body_len;
	if (streq(m, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		return;
	}
	if (streq(m, "GET") && !has_body)
		return;
	if (streq(m, "PUT") || streq(m, "PATCH") || streq(m, "POST") || has_body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)(q->read_fn ? q->read_len : q->body_len));
		if (!streq(m, "PUT"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
		return;
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

int http_perform(struct http_client *c, const struct http_request *q, struct http_response *resp)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hl = NULL;
	int r;

	http_response_release(resp);
	strbuf_init(&resp->body, q->body_cap ? q->body_cap : DEFAULT_BODY_CAP);

	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	struct transfer t = {.opts = &c->opts, .req = q, .resp = resp, .h = h};

	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->opts.connect_timeout_s);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, c->opts.low_speed_limit);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->opts.low_speed_time_s);
	if (q->timeout_s > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, q->timeout_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/*
	 * HTTP/1.1: parallel transfers use parallel connections anyway, and curl 7.88's HTTP/2
	 * uploads are window-limited (slow multi-GB pushes).
	 */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* bigger pieces than curl's 16 KiB/64 KiB defaults: fewer callbacks and syscalls */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL); /* bytes as stored: digests match */
	if (c->opts.user_agent)
		curl_easy_setopt(h, CURLOPT_USERAGENT, c->opts.user_agent);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (c->ca_path)
		curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path);
	if (c->ca_blob.data) {
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &c->ca_blob);
		/* instead of the system CAs, not besides them: the blob replaces the CA bundle, but
		 * the CA directory built into libcurl (Debian: /etc/ssl/certs) would still be
		 * searched, and any CA there could vouch for an impostor */
		if (!c->ca_path)
			curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (c->connect_to)
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, &t);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
	if (c->opts.stall_timeout_s > 0 || q->progress_fn) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	set_method(h, q);

	hl = curl_slist_append(hl, "Expect:");
	for (size_t i = 0; q->headers && i < q->headers->nr; i++)
		hl = curl_slist_append(hl, q->headers->v[i]);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);

	cpustat_push(CPUSTAT_NET);
	CURLcode rc = curl_easy_perform(h);
	cpustat_pop();
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		r = 0;
	} else if (t.cancelled) {
		r = -ECANCELED;
		resp->error = xstrdup("cancelled by its owner");
	} else if (t.stalled) {
		r = -ETIMEDOUT;
		resp->error = xasprintf("%s (%ld s)", t.stalled, c->opts.stall_timeout_s);
	} else {
		r = t.cb_error < 0 ? t.cb_error : map_curl_error(rc);
		resp->error = xstrdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return r;
}

void http_response_release(struct http_response *resp)
{
	strbuf_release(&resp->body);
	strvec_clear(&resp->headers);
	free(resp->error);
	resp->error = NULL;
	resp->status = 0;
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < resp->headers.nr; i++) {
		const char *l = resp->headers.v[i];
		if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
			l += n + 1;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
	}
	return NULL;
}

long http_retry_after(const struct http_response *resp)
{
	const char *v = http_response_header(resp, "Retry-After");
	if (!v || !*v)
		return -1;
	char *end = NULL;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end != v && (*end == 0 || *end == ' ' || *end == '\r') && errno == 0)
		return n < 0 ? 0 : n;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	time_t now = time(NULL);
	return when > now ? (long)(when - now) : 0;
}

char *http_escape(const char *s)
{
	pthread_once(&global_once, global_init);
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		return xstrdup("");
	char *r = xstrdup(e);
	curl_free(e);
	return r;
}

static char *url_get(CURLU *u, CURLUPart part, unsigned flags)
{
	char *v = NULL;
	if (curl_url_get(u, part, &v, flags) != CURLUE_OK)
		return NULL;
	char *r = xstrdup(v);
	curl_free(v);
	return r;
}

static CURLU *url_parse(const char *url)
{
	pthread_once(&global_once, global_init);
	CURLU *u = curl_url();
	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		return NULL;
	}
	return u;
}

char *http_url_resolve(const char *base, const char *ref)
{
	CURLU *u = url_parse(base);
	if (!u)
		return NULL;
	char *r = NULL;
	if (curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK)
		r = url_get(u, CURLUPART_URL, 0);
	curl_url_cleanup(u);
	return r;
}

char *http_url_origin(const char *url)
{
	CURLU *u = url_parse(url);
	if (!u)
		return NULL;
	char *scheme = url_get(u, CURLUPART_SCHEME, 0);
	char *host = url_get(u, CURLUPART_HOST, 0);
	char *port = url_get(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
	curl_url_cleanup(u);
	char *r = NULL;
	if (scheme && host && port) {
		for (char *p = host; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		r = xasprintf("%s://%s:%s", scheme, host, port);
	}
	free(scheme);
	free(host);
	free(port);
	return r;
}
