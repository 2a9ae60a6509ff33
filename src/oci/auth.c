// SPDX-License-Identifier: Apache-2.0
#include "oci/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/time.h"

#define TOKEN_BODY_CAP (1024 * 1024)
#define ERROR_TEXT_MAX 300
#define TOKEN_LIFETIME_MAX (24 * 3600) /* a token is fetched again after a day at most */

void oci_www_auth_release(struct oci_www_auth *a)
{
	free(a->scheme);
	strvec_clear(&a->keys);
	strvec_clear(&a->values);
	a->scheme = NULL;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

int oci_www_auth_parse(const char *header, struct oci_www_auth *ret)
{
	struct oci_www_auth a = OCI_WWW_AUTH_INIT;
	_cleanup_strbuf_ struct strbuf val = STRBUF_INIT;
	const char *p = skip_ws(header);
	const char *sp = strchr(p, ' ');
	if (!sp || sp == p)
		return -EBADMSG;
	a.scheme = xstrndup(p, (size_t)(sp - p));
	p = skip_ws(sp);
	if (!*p)
		goto fail;
	while (*p) {
		const char *k = p;
		while (*p && *p != '=' && *p != ',' && *p != ' ')
			p++;
		if (*p != '=' || p == k)
			goto fail;
		char *key = xstrndup(k, (size_t)(p - k));
		strvec_push(&a.keys, key);
		free(key);
		p++;
		strbuf_reset(&val);
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				strbuf_putc(&val, *p++);
			}
			if (*p != '"')
				goto fail;
			p++;
		} else {
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				strbuf_putc(&val, *p++);
		}
		strvec_push(&a.values, val.buf);
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p)
			goto fail;
	}
	*ret = a;
	return 0;
fail:
	oci_www_auth_release(&a);
	return -EBADMSG;
}

const char *oci_www_auth_get(const struct oci_www_auth *a, const char *key)
{
	for (size_t i = 0; i < a->keys.nr; i++)
		if (strcasecmp(a->keys.v[i], key) == 0)
			return a->values.v[i];
	return NULL;
}

int oci_token_parse(const char *buf, size_t len, time_t now, struct oci_token *ret)
{
	_cleanup_json_ json_t *j = NULL;
	const char *tok = NULL, *issued = NULL;
	int r = json_parse_buf(buf, len, &j);
	if (r < 0)
		return r;
	if (!json_is_object(j))
		return -EBADMSG;
	if (json_get_string(j, "token", &tok) < 0 || !*tok) {
		if (json_get_string(j, "access_token", &tok) < 0 || !*tok)
			return -EBADMSG;
	}
	json_int_t expires_in = 60;
	json_t *e = json_object_get(j, "expires_in");
	/* Clamped before any arithmetic: a server's huge number must not overflow the sum. */
	if (json_is_integer(e))
		expires_in = MIN(json_integer_value(e), (json_int_t)TOKEN_LIFETIME_MAX);
	else if (json_is_real(e))
		expires_in = json_real_value(e) >= (double)TOKEN_LIFETIME_MAX
				 ? TOKEN_LIFETIME_MAX
				 : (json_int_t)MAX(json_real_value(e), 0.0);
	else if (e && !json_is_null(e))
		return -EBADMSG;
	if (expires_in <= 0)
		expires_in = 60;
	time_t issued_at = now;
	if (json_get_string(j, "issued_at", &issued) == 0 && parse_iso8601(issued, &issued_at) < 0)
		return -EBADMSG;
	ret->token = xstrdup(tok);
	ret->expires_at = issued_at + (time_t)expires_in;
	return 0;
}

bool oci_token_valid(const struct oci_token *t, time_t now)
{
	return t->token && now < t->expires_at;
}

void oci_token_release(struct oci_token *t)
{
	if (t->token) {
		explicit_bzero(t->token, strlen(t->token));
		free(t->token);
	}
	t->token = NULL;
	t->expires_at = 0;
}

char *oci_token_url(const struct oci_www_auth *a)
{
	const char *realm = oci_www_auth_get(a, "realm");
	const char *scope = oci_www_auth_get(a, "scope");
	const char *service = oci_www_auth_get(a, "service");
	if (!realm || (strncasecmp(realm, "https://", 8) != 0 && strncasecmp(realm, "http://", 7) != 0))
		return NULL;
	_cleanup_strbuf_ struct strbuf q = STRBUF_INIT;
	if (scope) {
		_cleanup_free_ char *e = http_escape(scope);
		strbuf_putf(&q, "scope=%s", e);
	}
	if (service) {
		_cleanup_free_ char *e = http_escape(service);
		strbuf_putf(&q, "%sservice=%s", q.len ? "&" : "", e);
	}
	/* replaced textually: a URL parser would re-normalise the escapes */
	_cleanup_free_ char *origin = http_url_origin(realm);
	if (!origin)
		return NULL;
	size_t keep = strcspn(realm, "?#");
	return xasprintf("%.*s%s%s", (int)keep, realm, q.len ? "?" : "", q.buf);
}

char *oci_base64_encode(const void *data, size_t len)
{
	return base64_encode(data, len);
}

int oci_base64_decode(const char *s, char **ret, size_t *ret_len)
{
	return oci_base64_decode_max(s, 1024 * 1024, ret, ret_len);
}

int oci_base64_decode_max(const char *s, size_t max, char **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	if (n > max)
		return -EBADMSG;
	/* the input's length bounds the output; only malformed input fails */
	int r = base64_decode(s, n, n / 4 * 3 + 3, ret, ret_len);
	return r == -EFBIG ? -EBADMSG : r;
}

char *oci_basic_credentials(const char *user, const char *pass)
{
	_cleanup_free_ char *plain = xasprintf("%s:%s", user, pass ? pass : "");
	_cleanup_free_ char *enc = oci_base64_encode(plain, strlen(plain));
	explicit_bzero(plain, strlen(plain));
	return xasprintf("Basic %s", enc);
}

static bool printable_text(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			return false;
	}
	return n > 0;
}

char *oci_error_text(const char *body, size_t len)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	strbuf_init(&sb, ERROR_TEXT_MAX);
	_cleanup_json_ json_t *j = NULL;
	if (len > 0 && json_parse_buf(body, len, &j) >= 0) {
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(j, "errors"), i, e)
		{
			const char *code = json_string_value(json_object_get(e, "code"));
			const char *msg = json_string_value(json_object_get(e, "message"));
			if (code || msg)
				strbuf_putf(&sb, "%s%s%s%s", sb.len ? "; " : "", code ? code : "",
					    code && msg ? ": " : "", msg ? msg : "");
		}
		/* token services: {"details": ...} (Docker Hub), OAuth's error fields */
		static const char *const keys[] = {"details", "message", "error",
						   "error_description"};
		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			const char *v = json_string_value(json_object_get(j, keys[k]));
			if (v)
				strbuf_putf(&sb, "%s%s", sb.len ? "; " : "", v);
		}
		return sb.len && printable_text(sb.buf, sb.len) ? strbuf_detach(&sb, NULL) : NULL;
	}
	size_t n = 0;
	while (n < len && n < ERROR_TEXT_MAX && body[n] != '\r' && body[n] != '\n')
		n++;
	if (!printable_text(body, n) || body[0] == '<')
		return NULL;
	return xstrndup(body, n);
}

int oci_auth_fetch_token(struct http_client *c, const struct oci_www_auth *challenge,
			 const char *user, const char *pass, struct oci_token *ret, char **ret_err)
{
	_cleanup_free_ char *url = oci_token_url(challenge);
	_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	if (!url) {
		*ret_err = xstrdup("the Bearer challenge has no usable realm");
		return -EBADMSG;
	}
	if (user) {
		_cleanup_free_ char *b = oci_basic_credentials(user, pass);
		strvec_pushf(&hdrs, "Authorization: %s", b);
		explicit_bzero(b, strlen(b));
	}
	struct http_request q = {
		.method = "GET",
		.url = url,
		.headers = &hdrs,
		.body_cap = TOKEN_BODY_CAP,
		.body_cap_strict = true,
		.timeout_s = 120,
	};
	int r = http_perform(c, &q, &resp);
	for (size_t i = 0; i < hdrs.nr; i++)
		explicit_bzero(hdrs.v[i], strlen(hdrs.v[i]));
	if (r < 0) {
		*ret_err = xasprintf("token request to '%s' failed: %s", url,
				     resp.error ? resp.error : strerror(-r));
		return r;
	}
	if (resp.status != 200) {
		_cleanup_free_ char *said = oci_error_text(resp.body.buf, resp.body.len);
		*ret_err = xasprintf("token service '%s' answered HTTP %ld%s%s", url, resp.status,
				     said ? ": " : "", said ? said : "");
		return resp.status == 401 || resp.status == 403 ? -EACCES : -EPROTO;
	}
	r = oci_token_parse(resp.body.buf, resp.body.len, time(NULL), ret);
	explicit_bzero(resp.body.buf, resp.body.len);
	if (r < 0) {
		*ret_err = xasprintf("token service '%s' answered with a malformed token response", url);
		return r;
	}
	return 0;
}

char *oci_url_absolutize(const char *base, const char *location)
{
	return http_url_resolve(base, location);
}
