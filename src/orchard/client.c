// SPDX-License-Identifier: Apache-2.0
#include "orchard/client.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "http/client.h"
#include "oci/auth.h"
#include "util/alloc.h"
#include "util/json.h"

#define REPLY_CAP (256u << 20) /* a list of many thousand VMs still fits */

/* One controller of the comma-separated list a client may be given. */
struct base {
	struct http_client *http;
	char *req_base; /* what request URLs start with (the TLS name instead of the host) */
	char *host;	/* to connect to */
	int port;
	bool tls;
	char *prefix; /* path before /v1, without a trailing '/' */
};

struct orchard_client {
	struct base *bases;
	size_t n;
	_Atomic size_t cur; /* the one that answered last */
	char *url;	    /* normalised, as given (comma-separated for several) */
	char *server_name;  /* first DNS name of the pinned certificate */
	char *auth;	    /* "Basic ..." */
	char *cert_pem;
	size_t cert_pem_len;
	long timeout_s;
};

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup, curlu_cleanupp)

static char *url_part(CURLU *u, CURLUPart what)
{
	char *v = NULL;
	if (curl_url_get(u, what, &v, 0) != CURLUE_OK)
		return NULL;
	char *r = xstrdup(v);
	curl_free(v);
	return r;
}

int orchard_url_normalize(const char *in, char **ret)
{
	if (!in || !*in)
		return -EINVAL;
	_cleanup_free_ char *s = strstr(in, "://") ? xstrdup(in) : xasprintf("https://%s", in);
	_cleanup_(curlu_cleanupp) CURLU *u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK)
		return -EINVAL;
	_cleanup_free_ char *scheme = url_part(u, CURLUPART_SCHEME);
	if (!scheme || (!streq(scheme, "http") && !streq(scheme, "https")))
		return -EINVAL;
	_cleanup_free_ char *port = url_part(u, CURLUPART_PORT);
	if (!port) {
		char p[16];
		snprintf(p, sizeof(p), "%d", ORCHARD_DEFAULT_PORT);
		if (curl_url_set(u, CURLUPART_PORT, p, 0) != CURLUE_OK)
			return -EINVAL;
	}
	_cleanup_free_ char *out = url_part(u, CURLUPART_URL);
	if (!out)
		return -EINVAL;
	/* curl adds "/" as the path of a bare host: Orchard's URLs have none */
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = 0;
	*ret = TAKE_PTR(out);
	return 0;
}

static X509 *cert_parse(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return NULL;
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	return x;
}

int orchard_cert_first_dns_name(const char *pem, size_t len, char **ret)
{
	X509 *x = cert_parse(pem, len);
	if (!x)
		return -EINVAL;
	int r = -ENOENT;
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != GEN_DNS)
			continue;
		const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
		int dl = ASN1_STRING_length(g->d.dNSName);
		if (dl > 0 && dl < 256 && !memchr(d, 0, (size_t)dl)) {
			*ret = xstrndup((const char *)d, (size_t)dl);
			r = 0;
		}
		break;
	}
	GENERAL_NAMES_free(names);
	X509_free(x);
	return r;
}

int orchard_cert_fingerprint(const char *pem, size_t len, char **ret)
{
	X509 *x = cert_parse(pem, len);
	if (!x)
		return -EINVAL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int ok = X509_digest(x, EVP_sha256(), md, &mdlen);
	X509_free(x);
	if (!ok)
		return -EINVAL;
	struct strbuf sb = STRBUF_INIT;
	for (unsigned i = 0; i < mdlen; i++)
		strbuf_putf(&sb, i ? " %02X" : "%02X", md[i]);
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

char *orchard_escape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			strbuf_putc(&sb, (char)*p);
		else
			strbuf_putf(&sb, "%%%02X", *p);
	}
	return strbuf_detach(&sb, NULL);
}

void orchard_client_free(struct orchard_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		http_client_free(c->bases[i].http);
		free(c->bases[i].req_base);
		free(c->bases[i].host);
		free(c->bases[i].prefix);
	}
	free(c->bases);
	free(c->url);
	free(c->server_name);
	if (c->auth)
		explicit_bzero(c->auth, strlen(c->auth));
	free(c->auth);
	free(c->cert_pem);
	free(c);
}

const char *orchard_client_url(const struct orchard_client *c)
{
	return c->url;
}

static int base_init(struct orchard_client *c, const char *url, struct base *b)
{
	_cleanup_(curlu_cleanupp) CURLU *u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return -EINVAL;
	_cleanup_free_ char *scheme = url_part(u, CURLUPART_SCHEME);
	_cleanup_free_ char *port = url_part(u, CURLUPART_PORT);
	b->host = url_part(u, CURLUPART_HOST);
	b->prefix = url_part(u, CURLUPART_PATH);
	if (!scheme || !port || !b->host || !b->prefix)
		return -EINVAL;
	size_t pl = strlen(b->prefix);
	while (pl > 0 && b->prefix[pl - 1] == '/')
		b->prefix[--pl] = 0;
	b->port = atoi(port);
	b->tls = streq(scheme, "https");

	struct http_client_options ho = {
	    .connect_timeout_s = 10,
	    .low_speed_time_s = 60,
	    .user_agent = ORCHARD_USER_AGENT,
	    .ca_blob = c->cert_pem,
	    .ca_blob_len = c->cert_pem_len,
	};
	_cleanup_free_ char *connect_to = NULL;
	if (b->tls && c->server_name) {
		/* TLS name and Host header: the certificate's; the socket: the URL's host */
		b->req_base = xasprintf("https://%s:%d%s", c->server_name, b->port, b->prefix);
		connect_to = xasprintf("%s:%d:%s:%d", c->server_name, b->port, b->host, b->port);
		ho.connect_to = connect_to;
	} else {
		b->req_base = xasprintf("%s://%s:%d%s", scheme, b->host, b->port, b->prefix);
	}
	return http_client_new(&ho, &b->http);
}

int orchard_client_new(const struct orchard_client_options *o, struct orchard_client **ret,
		       char **ret_error)
{
	_cleanup_(orchard_client_freep) struct orchard_client *c = xcalloc(1, sizeof(*c));
	c->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
	if (o->sa_name && *o->sa_name)
		c->auth = oci_basic_credentials(o->sa_name, o->sa_token ? o->sa_token : "");
	if (o->cert_pem && o->cert_pem_len) {
		c->cert_pem = xmalloc(o->cert_pem_len + 1);
		memcpy(c->cert_pem, o->cert_pem, o->cert_pem_len);
		c->cert_pem[o->cert_pem_len] = 0;
		c->cert_pem_len = o->cert_pem_len;
		int r = orchard_cert_first_dns_name(c->cert_pem, c->cert_pem_len, &c->server_name);
		if (r == -EINVAL) {
			*ret_error = xstrdup("the trusted certificate does not parse as PEM");
			return r;
		}
	}
	/* several controllers of one fleet: "URL1,URL2" */
	_cleanup_free_ char *list = xstrdup(o->url ? o->url : "");
	struct strbuf norm = STRBUF_INIT;
	char *save = NULL;
	for (char *one = strtok_r(list, ",", &save); one; one = strtok_r(NULL, ",", &save)) {
		_cleanup_free_ char *url = NULL;
		int r = orchard_url_normalize(one, &url);
		if (r == 0) {
			c->bases = xrealloc(c->bases, (c->n + 1) * sizeof(*c->bases));
			c->bases[c->n] = (struct base){0};
			r = base_init(c, url, &c->bases[c->n++]);
		}
		if (r < 0) {
			strbuf_release(&norm);
			*ret_error =
			    xasprintf("invalid controller URL '%s': only http and https URLs "
				      "are supported",
				      one);
			return r;
		}
		strbuf_putf(&norm, "%s%s", norm.len ? "," : "", url);
	}
	if (!c->n) {
		*ret_error = xstrdup("no controller URL");
		return -EINVAL;
	}
	c->url = strbuf_detach(&norm, NULL);
	*ret = TAKE_PTR(c);
	return 0;
}

void orchard_client_endpoint(const struct orchard_client *c, size_t idx,
			     struct orchard_endpoint *ret)
{
	const struct base *b = &c->bases[(c->cur + idx) % c->n];
	*ret = (struct orchard_endpoint){
	    .tls = b->tls,
	    .host = b->host,
	    .port = b->port,
	    .server_name = b->tls ? c->server_name : NULL,
	    .prefix = b->prefix,
	    .auth_header = c->auth,
	    .cert_pem = c->cert_pem,
	    .cert_pem_len = c->cert_pem_len,
	};
}

size_t orchard_client_endpoints(const struct orchard_client *c)
{
	return c->n;
}

void orchard_client_prefer(struct orchard_client *c, size_t idx)
{
	c->cur = (c->cur + idx) % c->n;
}

const char *orchard_status_text(long s)
{
	static const struct {
		long s;
		const char *t;
	} tab[] = {
	    {400, "Bad Request"},
	    {401, "Unauthorized"},
	    {403, "Forbidden"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {408, "Request Timeout"},
	    {409, "Conflict"},
	    {412, "Precondition Failed"},
	    {413, "Request Entity Too Large"},
	    {417, "Expectation Failed"},
	    {422, "Unprocessable Entity"},
	    {429, "Too Many Requests"},
	    {500, "Internal Server Error"},
	    {502, "Bad Gateway"},
	    {503, "Service Unavailable"},
	    {504, "Gateway Timeout"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(tab); i++)
		if (tab[i].s == s)
			return tab[i].t;
	return "";
}

int orchard_status_errno(long s)
{
	switch (s) {
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 401:
		return -EACCES;
	case 403:
		return -EPERM;
	case 400:
	case 412:
	case 422:
		return -EINVAL;
	case 408:
		return -ETIMEDOUT;
	case 503:
		return -EAGAIN;
	default:
		return -EPROTO;
	}
}

/* Orchard's detailsFromErrorResponseBody: " (message)" from {"message": ...}. */
static char *error_details(const struct strbuf *body)
{
	_cleanup_json_ json_t *j = NULL;
	const char *m = NULL;
	if (body->len && json_parse_buf(body->buf, body->len, &j) == 0 &&
	    json_get_string(j, "message", &m) == 0 && *m)
		return xasprintf(" (%s)", m);
	return xstrdup("");
}

bool orchard_transport_error(int r)
{
	return r == -ECONNREFUSED || r == -ECONNRESET || r == -ETIMEDOUT || r == -EHOSTUNREACH;
}

static int call_one(struct orchard_client *c, const struct base *b, const struct orchard_call *q,
		    json_t **ret_json, long *ret_status, char **ret_header, char **ret_error);

int orchard_client_call(struct orchard_client *c, const struct orchard_call *q, json_t **ret_json,
			long *ret_status, char **ret_header, char **ret_error)
{
	/* the controller that answered last first, the others when it cannot be reached */
	int r = -EINVAL;
	size_t start = c->cur;
	for (size_t i = 0; i < c->n; i++) {
		size_t k = (start + i) % c->n;
		if (ret_error && *ret_error) {
			free(*ret_error);
			*ret_error = NULL;
		}
		r = call_one(c, &c->bases[k], q, ret_json, ret_status, ret_header, ret_error);
		if (!orchard_transport_error(r)) {
			c->cur = k;
			break;
		}
	}
	return r;
}

static int call_one(struct orchard_client *c, const struct base *b, const struct orchard_call *q,
		    json_t **ret_json, long *ret_status, char **ret_header, char **ret_error)
{
	_cleanup_free_ char *url =
	    xasprintf("%s/v1/%s%s%s", b->req_base, q->path, q->query && *q->query ? "?" : "",
		      q->query && *q->query ? q->query : "");
	_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
	_cleanup_free_ char *body = NULL;
	if (c->auth)
		strvec_pushf(&hdrs, "Authorization: %s", c->auth);
	strvec_push(&hdrs, "Accept: application/json");
	if (q->body) {
		body = json_dumps(q->body, JSON_COMPACT);
		if (!body)
			return -ENOMEM;
		strvec_push(&hdrs, "Content-Type: application/json");
	}
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	struct http_request req = {
	    .method = q->method,
	    .url = url,
	    .headers = &hdrs,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .body_cap = REPLY_CAP,
	    .body_cap_strict = true,
	    .timeout_s = q->timeout_s > 0 ? q->timeout_s : c->timeout_s,
	};
	int r = http_perform(b->http, &req, &resp);
	if (ret_status)
		*ret_status = r < 0 ? 0 : resp.status;
	if (r < 0) {
		if (ret_error)
			*ret_error =
			    xasprintf("API client failed to make a request: %s %s: %s", q->method,
				      url, resp.error ? resp.error : strerror(-r));
		return r;
	}
	if (resp.status != 200) {
		if (ret_error) {
			_cleanup_free_ char *d = error_details(&resp.body);
			*ret_error =
			    xasprintf("API client encountered an error while attempting to "
				      "make a request: %ld %s%s",
				      resp.status, orchard_status_text(resp.status), d);
		}
		return orchard_status_errno(resp.status);
	}
	if (ret_json) {
		*ret_json = NULL;
		if (resp.body.len) {
			r = json_parse_buf(resp.body.buf, resp.body.len, ret_json);
			if (r < 0) {
				if (ret_error)
					*ret_error =
					    xstrdup("API client encountered an error while "
						    "attempting to unmarshal response body");
				return r;
			}
		}
	}
	if (ret_header && q->header_name) {
		const char *h = http_response_header(&resp, q->header_name);
		*ret_header = h && *h ? xstrdup(h) : NULL;
	}
	return 0;
}

int orchard_get(struct orchard_client *c, const char *path, const char *query, json_t **ret,
		char **ret_error)
{
	struct orchard_call q = {.method = "GET", .path = path, .query = query};
	return orchard_client_call(c, &q, ret, NULL, NULL, ret_error);
}

int orchard_send(struct orchard_client *c, const char *method, const char *path, const json_t *body,
		 json_t **ret, char **ret_error)
{
	struct orchard_call q = {.method = method, .path = path, .body = body};
	return orchard_client_call(c, &q, ret, NULL, NULL, ret_error);
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
	(void)p;
	(void)u;
	return s * n;
}

int orchard_probe_certificate(const char *url, char **ret_pem, char **ret_error)
{
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	char errbuf[CURL_ERROR_SIZE] = "";
	_cleanup_free_ char *u = xasprintf("%s/v1/", url);
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	CURLcode rc = curl_easy_perform(h);
	int r = -EPROTO;
	if (rc != CURLE_OK) {
		*ret_error = xasprintf("cannot probe the controller's certificate: %s",
				       errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else {
		struct curl_certinfo *ci = NULL;
		if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
		    ci->num_of_certs > 0) {
			for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next)
				if (strncmp(s->data, "Cert:", 5) == 0) {
					*ret_pem = xstrdup(s->data + 5);
					r = 0;
				}
		}
		if (r < 0)
			*ret_error = xstrdup("controller presented no certificates, expected at "
					     "least one");
	}
	curl_easy_cleanup(h);
	return r;
}
