// SPDX-License-Identifier: Apache-2.0
#include "oci/registry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>

#include "http/client.h"
#include "oci/auth.h"
#include "oci/credentials.h"
#include "oci/retry.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/time.h"

#define MANIFEST_CAP (4 * 1024 * 1024)
#define MAX_REDIRECTS 5
/* a transfer moving less than this many bytes/s for the stall timeout has stalled */
#define STALL_SPEED 1024
/* renew a token up to this long before it expires (a quarter of its life at most) */
#define TOKEN_MARGIN_S 5

#define OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define DOCKER_MANIFEST_TYPE "application/vnd.docker.distribution.manifest.v2+json"

struct oci_registry {
	char *host;	/* as in the reference: the credentials key */
	char *api_host; /* docker.io -> registry-1.docker.io */
	char *ns;
	char *base;   /* "https://<api_host>/v2/" */
	char *origin; /* for "same host?" checks before sending Authorization */
	struct http_client *http;

	pthread_mutex_t lock; /* protects everything below */
	bool explicit_creds;
	bool creds_looked_up;
	char *user, *pass;
	char *auth;		       /* "Bearer x" / "Basic y", NULL when none yet */
	time_t auth_expires;	       /* 0: never (Basic) */
	time_t auth_margin;	       /* renew this long before auth_expires */
	struct oci_www_auth challenge; /* the Bearer challenge behind `auth`, for renewal */
	bool have_challenge;
	char *auth_error; /* why authenticating failed last, for the error line */

	long stall_s;
	struct oci_retry budget; /* of the whole operation (a pull, a push): oci/retry.h */
};

/* ---------------------------------------------------------------------------------------- */
/* construction */

static char *default_user_agent(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return xasprintf("Tart/%s (Linux)", TART_VERSION);
	return xasprintf("Tart/%s (Linux %s; %s)", TART_VERSION, u.release, u.machine);
}

static long env_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end = NULL;
	long n = strtol(v, &end, 10);
	if (*end || n < min || n > max)
		return def;
	return n;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int oci_registry_new(const char *host, const char *namespace,
		     const struct oci_registry_options *opts, struct oci_registry **ret)
{
	struct oci_registry_options o = {0};
	if (opts)
		o = *opts;
	_cleanup_free_ char *ua = o.user_agent ? xstrdup(o.user_agent) : default_user_agent();
	long stall_s = env_long("TART_REGISTRY_STALL_TIMEOUT", 60, 1, 3600);
	struct http_client_options ho = {
	    .user_agent = ua,
	    /* how long a transfer may stall (also: wait for its headers) before it is retried */
	    .low_speed_limit = STALL_SPEED,
	    .low_speed_time_s = stall_s,
	    .stall_timeout_s = stall_s,
	    /* OpenSSL's variables for a private CA, as most Linux TLS clients honour them */
	    .ca_file = env_nonempty("SSL_CERT_FILE"),
	    .ca_path = env_nonempty("SSL_CERT_DIR"),
	};
	struct http_client *http = NULL;
	int r = http_client_new(&ho, &http);
	if (r < 0)
		return log_error_errno(r, "cannot initialise the HTTP client");

	struct oci_registry *reg = xcalloc(1, sizeof(*reg));
	reg->http = http;
	reg->stall_s = stall_s;
	/* test knob: the first retry delay, doubled per failure */
	oci_retry_init(&reg->budget,
		       (unsigned)env_long("TART_REGISTRY_RETRY_DELAY_MS", 500, 0, 60000));
	reg->host = xstrdup(host);
	bool hub = streq(host, "docker.io") || streq(host, "index.docker.io");
	reg->api_host = xstrdup(hub ? "registry-1.docker.io" : host);
	/* Docker Hub's implicit "library/" for official images */
	if (hub && namespace && *namespace && !strchr(namespace, '/'))
		reg->ns = xasprintf("library/%s", namespace);
	else
		reg->ns = xstrdup(namespace ? namespace : "");
	reg->base = xasprintf("%s://%s/v2/", o.insecure ? "http" : "https", reg->api_host);
	reg->origin = http_url_origin(reg->base);
	if (!reg->origin) {
		log_error("improperly formatted host \"%s\" was provided", host);
		oci_registry_free(reg);
		return -EINVAL;
	}
	pthread_mutex_init(&reg->lock, NULL);
	reg->challenge = (struct oci_www_auth)OCI_WWW_AUTH_INIT;
	if (o.username) {
		reg->explicit_creds = true;
		reg->creds_looked_up = true;
		reg->user = xstrdup(o.username);
		reg->pass = xstrdup(o.password ? o.password : "");
	}
	*ret = reg;
	return 0;
}

static void free_secret(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
	}
	*s = NULL;
}

struct oci_registry *oci_registry_free(struct oci_registry *r)
{
	if (!r)
		return NULL;
	http_client_free(r->http);
	free(r->host);
	free(r->api_host);
	free(r->ns);
	free(r->base);
	free(r->origin);
	free_secret(&r->user);
	free_secret(&r->pass);
	free_secret(&r->auth);
	oci_www_auth_release(&r->challenge);
	free(r->auth_error);
	oci_retry_release(&r->budget);
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* authentication */

/* With r->lock held: the credentials, looked up once. */
static void load_creds_locked(struct oci_registry *r)
{
	if (r->creds_looked_up)
		return;
	r->creds_looked_up = true;
	if (oci_credentials_lookup(r->host, &r->user, &r->pass) < 0) {
		r->user = NULL;
		r->pass = NULL;
	}
}

/* With r->lock held: remember why authenticating failed (for the error line); returns code. */
static int auth_failed_locked(struct oci_registry *r, int code, char *why)
{
	free(r->auth_error);
	r->auth_error = why;
	return code;
}

/* With r->lock held: fetch a token for challenge c and cache it. */
static int bearer_locked(struct oci_registry *r, const struct oci_www_auth *c)
{
	struct oci_token tok = {0};
	char *err = NULL;
	load_creds_locked(r);
	int k = oci_auth_fetch_token(r->http, c, r->user, r->pass, &tok, &err);
	if (k < 0)
		return auth_failed_locked(r, k, err ? err : xstrdup("the token request failed"));
	free(err);
	free_secret(&r->auth);
	r->auth = xasprintf("Bearer %s", tok.token);
	r->auth_expires = tok.expires_at;
	time_t life = tok.expires_at - time(NULL);
	r->auth_margin = life > 0 ? MIN((time_t)TOKEN_MARGIN_S, life / 4) : 0;
	oci_token_release(&tok);
	if (c != &r->challenge) {
		oci_www_auth_release(&r->challenge);
		r->challenge.scheme = xstrdup(c->scheme);
		for (size_t i = 0; i < c->keys.nr; i++) {
			strvec_push(&r->challenge.keys, c->keys.v[i]);
			strvec_push(&r->challenge.values, c->values.v[i]);
		}
		r->have_challenge = true;
	}
	return 0;
}

/* The Authorization value to send now (allocated, NULL for none); renews an expiring token. */
static int current_auth(struct oci_registry *r, char **ret)
{
	int k = 0;
	pthread_mutex_lock(&r->lock);
	if (r->auth && r->auth_expires && time(NULL) + r->auth_margin >= r->auth_expires) {
		free_secret(&r->auth);
		if (r->have_challenge)
			k = bearer_locked(r, &r->challenge);
	}
	*ret = k >= 0 && r->auth ? xstrdup(r->auth) : NULL;
	pthread_mutex_unlock(&r->lock);
	return k;
}

/* React to a 401: authenticate as the challenge asks; *ret gets the value to retry with. */
static int authenticate(struct oci_registry *r, const struct http_response *resp, char **ret)
{
	const char *h = http_response_header(resp, "WWW-Authenticate");
	struct oci_www_auth c = OCI_WWW_AUTH_INIT;
	int k;
	pthread_mutex_lock(&r->lock);
	if (!h) {
		k = auth_failed_locked(
		    r, -EACCES, xstrdup("it answered 401 without a WWW-Authenticate header"));
	} else if (oci_www_auth_parse(h, &c) < 0) {
		k = auth_failed_locked(
		    r, -EBADMSG,
		    xasprintf("it sent a malformed WWW-Authenticate header: %.200s", h));
	} else if (strcasecmp(c.scheme, "Bearer") == 0) {
		k = bearer_locked(r, &c);
	} else if (strcasecmp(c.scheme, "Basic") == 0) {
		load_creds_locked(r);
		free_secret(&r->auth);
		if (r->user)
			r->auth = oci_basic_credentials(r->user, r->pass);
		r->auth_expires = 0;
		k = 0;
	} else {
		k = auth_failed_locked(r, -EPROTO,
				       xasprintf("WWW-Authenticate header's authentication scheme "
						 "\"%.100s\" is unsupported, expected \"Bearer\" "
						 "scheme",
						 c.scheme));
	}
	*ret = k >= 0 && r->auth ? xstrdup(r->auth) : NULL;
	pthread_mutex_unlock(&r->lock);
	oci_www_auth_release(&c);
	return k;
}

/* ---------------------------------------------------------------------------------------- */
/* one exchange: auth, one 401 retry, redirects */

/* A request body streamed from the caller's source, restartable for re-sends. */
struct source_body {
	oci_blob_source fn;
	void *userdata;
	uint64_t start, len, pos;
	int error;
};

static int64_t source_read(void *ud, void *buf, size_t len)
{
	struct source_body *s = ud;
	if (len > s->len - s->pos)
		len = (size_t)(s->len - s->pos);
	int64_t n = s->fn(s->userdata, s->start + s->pos, buf, len);
	if (n < 0 || (uint64_t)n > len) {
		s->error = n < 0 ? (int)n : -EIO;
		return s->error;
	}
	s->pos += (uint64_t)n;
	return n;
}

struct exchange {
	const char *method;
	char *url;		      /* absolute; owned */
	const struct strvec *headers; /* without Authorization */
	const void *body;
	size_t body_len;
	struct source_body *source;
	http_write_fn write_fn;
	void *write_userdata;
	size_t body_cap;
	bool body_cap_strict;
	bool follow_redirects;
	/*
	 * Where Authorization may go: the registry's origin (NULL), or for upload-session steps
	 * the origin of the Location the registry handed out (Tart sends it there too). Redirect
	 * hops to any other origin never carry it.
	 */
	const char *auth_origin;
	bool auth_failed; /* set by exchange(): the failure came from authenticating, logged */
};

static bool is_redirect(long s)
{
	return s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
}

static int perform_once(struct oci_registry *r, struct exchange *x, const char *auth,
			struct http_response *resp)
{
	_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
	for (size_t i = 0; x->headers && i < x->headers->nr; i++)
		strvec_push(&hdrs, x->headers->v[i]);
	_cleanup_free_ char *origin = http_url_origin(x->url);
	const char *trusted = x->auth_origin ? x->auth_origin : r->origin;
	/* Authorization only ever goes to the registry itself, never to a redirect target */
	if (auth && origin && streq(origin, trusted))
		strvec_pushf(&hdrs, "Authorization: %s", auth);
	if (x->source) {
		x->source->pos = 0;
		x->source->error = 0;
	}
	struct http_request q = {
	    .method = x->method,
	    .url = x->url,
	    .headers = &hdrs,
	    .body = x->body,
	    .body_len = x->body_len,
	    .read_fn = x->source ? source_read : NULL,
	    .read_userdata = x->source,
	    .read_len = x->source ? x->source->len : 0,
	    .write_fn = x->write_fn,
	    .write_userdata = x->write_userdata,
	    .body_cap = x->body_cap,
	    .body_cap_strict = x->body_cap_strict,
	};
	int k = http_perform(r->http, &q, resp);
	for (size_t i = 0; i < hdrs.nr; i++)
		explicit_bzero(hdrs.v[i], strlen(hdrs.v[i]));
	return k;
}

static int exchange(struct oci_registry *r, struct exchange *x, struct http_response *resp)
{
	_cleanup_free_ char *auth = NULL;
	bool reauthed = false;
	x->auth_failed = false;
	int k = current_auth(r, &auth);
	if (k < 0) {
		x->auth_failed = true;
		return k;
	}
	for (int hops = 0;; hops++) {
		k = perform_once(r, x, auth, resp);
		if (k < 0)
			return k;
		if (resp->status == 401 && !reauthed) {
			_cleanup_free_ char *origin = http_url_origin(x->url);
			if (!origin || !streq(origin, x->auth_origin ? x->auth_origin : r->origin))
				return 0; /* not ours to answer */
			reauthed = true;
			free_secret(&auth);
			k = authenticate(r, resp, &auth);
			if (k < 0) {
				x->auth_failed = true;
				return k;
			}
			continue;
		}
		if (x->follow_redirects && is_redirect(resp->status) && hops < MAX_REDIRECTS) {
			const char *loc = http_response_header(resp, "Location");
			char *next = loc ? http_url_resolve(x->url, loc) : NULL;
			if (!next)
				return 0;
			free(x->url);
			x->url = next;
			continue;
		}
		return 0;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* errors and retries */

static int status_errno(long status)
{
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 404)
		return -ENOENT;
	if (status == 416)
		return -ERANGE;
	if (status == 413)
		return -EFBIG;
	if (status == 429 || status >= 500)
		return -EAGAIN;
	return -EPROTO;
}

/*
 * The operation's one error line, "Error: ...": printed by the failure that ends it; failures
 * that follow in other threads of the same pull or push go to the debug level only.
 */
_printf_(3, 4) static int report(struct oci_registry *r, int code, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (oci_retry_claim_report(&r->budget))
		log_error("Error: %s", buf);
	else
		log_debug("%s", buf);
	return code;
}

static bool have_credentials(struct oci_registry *r)
{
	pthread_mutex_lock(&r->lock);
	load_creds_locked(r);
	bool have = r->user != NULL;
	pthread_mutex_unlock(&r->lock);
	return have;
}

#define LOGIN_HINT "run 'tart login %s' or set TART_REGISTRY_USERNAME and TART_REGISTRY_PASSWORD"

/*
 * A final HTTP answer that is not the expected one: one line a person can act on, with the
 * registry's own message; its raw body only at the debug level (TART_LOG_LEVEL=debug).
 * missing names what a 404 says is not there ("image or tag 'ns:ref'"; NULL: generic).
 */
static int fail_status(struct oci_registry *r, const char *what, long expected, const char *missing,
		       const struct http_response *resp)
{
	long st = resp->status;
	int code = status_errno(st);
	int raw = (int)MIN(resp->body.len, (size_t)4096);
	log_debug("%s on '%s': HTTP %ld, body: %.*s", what, r->host, st, raw, resp->body.buf);
	_cleanup_free_ char *msg = oci_error_text(resp->body.buf, resp->body.len);
	_cleanup_free_ char *said = msg ? xasprintf(": %s", msg) : xstrdup("");
	unsigned n = oci_retry_failures(&r->budget);
	if (st == 401 && r->explicit_creds) /* `tart login` validating what it was given */
		return report(r, code, "%s: '%s' rejected the credentials (HTTP 401%s)", what,
			      r->host, said);
	if (st == 401)
		return report(r, code, "%s: '%s' %s (HTTP 401%s): " LOGIN_HINT, what, r->host,
			      have_credentials(r) ? "rejected the credentials it was given"
						  : "requires authentication",
			      said, r->host);
	if (st == 403)
		return report(r, code, "%s: '%s' denied access to repository '%s' (HTTP 403%s)",
			      what, r->host, r->ns, said);
	if (st == 404)
		return report(r, code, "%s: '%s' has no %s (HTTP 404%s)", what, r->host,
			      missing ? missing : "such resource", said);
	if (st == 429)
		return report(
		    r, code,
		    "%s: '%s' is rate-limiting this client (HTTP 429%s); gave up after %u "
		    "attempts that waited as its Retry-After asked",
		    what, r->host, said, n);
	if (st >= 500)
		return report(
		    r, code,
		    "%s: '%s' failed with an error of its own (HTTP %ld%s); gave up after "
		    "%u attempts",
		    what, r->host, st, said, n);
	if (st >= 300 && st < 400)
		return report(r, code, "%s: '%s' redirected more than %d times (a redirect loop?)",
			      what, r->host, MAX_REDIRECTS);
	return report(r, code, "%s: '%s' answered HTTP %ld, expected %ld%s", what, r->host, st,
		      expected, said);
}

/* What kind of stall a transport error text describes, NULL when it is not a stall. */
static const char *stall_kind(const char *text)
{
	if (text && strstr(text, "too slow"))
		return "less than 1 KiB/s";
	if (text && strstr(text, HTTP_HEADER_TIMEOUT_TEXT))
		return "no complete response headers";
	if (text && strstr(text, HTTP_STALL_TEXT))
		return "no data";
	return NULL;
}

/* Why a request failed without an answer (resp->error set) or with a retryable one. */
static char *failure_text(struct oci_registry *r, int k, const struct exchange *x,
			  const struct http_response *resp)
{
	if (x && x->auth_failed) {
		pthread_mutex_lock(&r->lock);
		const char *stall = stall_kind(r->auth_error);
		char *t = stall
			      ? xasprintf("cannot authenticate: its token service stalled (%s for "
					  "%ld s)",
					  stall, r->stall_s)
			      : xasprintf("cannot authenticate: %s",
					  r->auth_error ? r->auth_error : strerror(-k));
		pthread_mutex_unlock(&r->lock);
		return t;
	}
	const char *e = resp->error;
	const char *stall = stall_kind(e);
	if (stall)
		return xasprintf("the registry stalled (%s for %ld s)", stall, r->stall_s);
	if (k == -EFBIG)
		return xstrdup("the answer is larger than allowed");
	/* curl's word for a header line over its 100 KiB limit */
	if (k == -ENOMEM)
		return xasprintf("its answer was too large to take in (%s)",
				 e ? e : "out of memory");
	if (e)
		return xstrdup(e);
	if (k < 0)
		return xstrdup(strerror(-k));
	_cleanup_free_ char *msg = oci_error_text(resp->body.buf, resp->body.len);
	return xasprintf("HTTP %ld%s%s", resp->status, msg ? ": " : "", msg ? msg : "");
}

/*
 * Report a failed exchange and return the contract's code: network failures become
 * -ECONNRESET, timeouts stay -ETIMEDOUT, the rest (-EFBIG, -EPROTO, -EACCES, ...) pass
 * through.
 */
static int fail_transport(struct oci_registry *r, const char *what, int k, const struct exchange *x,
			  const struct http_response *resp)
{
	int mapped =
	    k == -ECONNREFUSED || k == -EHOSTUNREACH || k == -ECONNABORTED ? -ECONNRESET : k;
	_cleanup_free_ char *why = failure_text(r, k, x, resp);
	unsigned n = oci_retry_failures(&r->budget);
	if (x && x->auth_failed && k == -EACCES && !r->explicit_creds)
		return report(r, mapped, "%s: '%s': %s: " LOGIN_HINT, what, r->host, why, r->host);
	if (n > 1)
		return report(r, mapped, "%s on '%s' failed: %s; gave up after %u failed attempts",
			      what, r->host, why, n);
	return report(r, mapped, "%s on '%s' failed: %s", what, r->host, why);
}

/* Worth another attempt: the network failed, not the data, the credentials or TLS trust. */
static bool transport_retryable(int k)
{
	return k == -ECONNRESET || k == -ECONNREFUSED || k == -EHOSTUNREACH || k == -ETIMEDOUT ||
	       k == -ECONNABORTED;
}

static bool status_retryable(long s)
{
	return s == 429 || s >= 500;
}

/*
 * After a failed attempt that moved `progress` bytes: false when the operation's retry budget
 * is spent (the caller reports the failure), else one line saying why, the back-off (or the
 * registry's Retry-After), and true.
 */
static bool retry_after(struct oci_registry *r, const char *what, int k, const struct exchange *x,
			const struct http_response *resp, uint64_t progress)
{
	long ra = resp && !resp->error && resp->status ? http_retry_after(resp) : -1;
	unsigned n = 0;
	int64_t ms = oci_retry_failed(&r->budget, progress, ra, &n);
	if (ms < 0)
		return false;
	_cleanup_free_ char *why = failure_text(r, k, x, resp);
	log_info("%s on '%s': %s; retrying in %lld ms (%u of %d failures)", what, r->host, why,
		 (long long)ms, n, OCI_RETRY_FAILURES);
	sleep_usec((usec_t)ms * 1000);
	return true;
}

/*
 * An exchange retried on transport errors, 5xx and 429 within the operation's budget.
 * Returns 0 with the final response (any other status: the caller checks it), or -errno after
 * reporting.
 */
static int exchange_retrying(struct oci_registry *r, struct exchange *x, const char *what,
			     long expected, struct http_response *resp)
{
	_cleanup_free_ char *url0 = xstrdup(x->url);
	for (;;) {
		free(x->url);
		x->url = xstrdup(url0);
		int k = exchange(r, x, resp);
		bool src_err = x->source && x->source->error < 0;
		if (k < 0 && (src_err || !transport_retryable(k)))
			return src_err ? k : fail_transport(r, what, k, x, resp);
		if (k >= 0 && !status_retryable(resp->status))
			return 0;
		if (!retry_after(r, what, k, x, resp, 0))
			return k < 0 ? fail_transport(r, what, k, x, resp)
				     : fail_status(r, what, expected, NULL, resp);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* API */

/* "<base><ns>/<kind>/<arg>", e.g. kind "manifests", "blobs", "blobs/uploads" */
static char *api_url(struct oci_registry *r, const char *kind, const char *arg)
{
	return xasprintf("%s%s/%s/%s", r->base, r->ns, kind, arg);
}

int oci_registry_ping(struct oci_registry *r)
{
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	struct exchange x = {.method = "GET", .url = xstrdup(r->base), .follow_redirects = true};
	int k = exchange_retrying(r, &x, "GET /v2/", 200, &resp);
	free(x.url);
	if (k < 0)
		return k;
	if (resp.status != 200)
		return fail_status(r, "GET /v2/", 200,
				   "registry API at /v2/ (is this an OCI registry?)", &resp);
	return 0;
}

static char *sha256_digest(const void *data, size_t len)
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	char *s = xmalloc(7 + 64 + 1);
	memcpy(s, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(s + 7 + 2 * i, 3, "%02x", md[i]);
	return s;
}

int oci_registry_get_manifest(struct oci_registry *r, const char *reference, struct strbuf *body,
			      char **ret_media_type, char **ret_digest)
{
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
	bool by_digest = strncmp(reference, "sha256:", 7) == 0;
	_cleanup_free_ char *what =
	    xasprintf("GET manifest '%s%s%s'", r->ns, by_digest ? "@" : ":", reference);
	strvec_push(&hdrs, "Accept: " OCI_MANIFEST_TYPE ", " DOCKER_MANIFEST_TYPE);
	struct exchange x = {
	    .method = "GET",
	    .url = api_url(r, "manifests", reference),
	    .headers = &hdrs,
	    .body_cap = MANIFEST_CAP,
	    .body_cap_strict = true,
	    .follow_redirects = true,
	};
	int k = exchange_retrying(r, &x, what, 200, &resp);
	free(x.url);
	if (k < 0)
		return k;
	if (resp.status != 200) {
		_cleanup_free_ char *missing = xasprintf("such image or tag '%s%s%s'", r->ns,
							 by_digest ? "@" : ":", reference);
		return fail_status(r, what, 200, missing, &resp);
	}
	_cleanup_free_ char *digest = sha256_digest(resp.body.buf, resp.body.len);
	if (strncmp(reference, "sha256:", 7) == 0 && !streq(reference, digest))
		return report(r, -EBADMSG, "%s: '%s' returned content with digest %s", what,
			      r->host, digest);
	const char *ct = http_response_header(&resp, "Content-Type");
	k = strbuf_add(body, resp.body.buf, resp.body.len);
	if (k < 0)
		return report(r, k, "%s: the manifest is too large", what);
	if (ret_media_type)
		*ret_media_type = ct ? xstrndup(ct, strcspn(ct, "; \t")) : xstrdup("");
	if (ret_digest)
		*ret_digest = TAKE_PTR(digest);
	return 0;
}

int oci_registry_put_manifest(struct oci_registry *r, const char *reference, const char *media_type,
			      const void *body, size_t len)
{
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
	_cleanup_free_ char *what = xasprintf("PUT manifest '%s:%s'", r->ns, reference);
	strvec_pushf(&hdrs, "Content-Type: %s", media_type ? media_type : OCI_MANIFEST_TYPE);
	struct exchange x = {
	    .method = "PUT",
	    .url = api_url(r, "manifests", reference),
	    .headers = &hdrs,
	    .body = body,
	    .body_len = len,
	};
	int k = exchange_retrying(r, &x, what, 201, &resp);
	free(x.url);
	if (k < 0)
		return k;
	if (resp.status != 201) {
		_cleanup_free_ char *missing = xasprintf("repository '%s'", r->ns);
		return fail_status(r, what, 201, missing, &resp);
	}
	return 0;
}

int oci_registry_blob_exists(struct oci_registry *r, const char *digest, uint64_t *ret_size)
{
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	_cleanup_free_ char *what = xasprintf("HEAD blob '%s'", digest);
	struct exchange x = {
	    .method = "HEAD",
	    .url = api_url(r, "blobs", digest),
	    .follow_redirects = true,
	};
	int k = exchange_retrying(r, &x, what, 200, &resp);
	free(x.url);
	if (k < 0)
		return k;
	if (resp.status == 404)
		return 0;
	if (resp.status != 200)
		return fail_status(r, what, 200, NULL, &resp);
	if (ret_size) {
		const char *cl = http_response_header(&resp, "Content-Length");
		*ret_size = cl ? strtoull(cl, NULL, 10) : 0;
	}
	return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* blob download */

struct blob_get {
	struct oci_registry *r;
	oci_blob_sink sink;
	void *userdata;
	uint64_t pos;  /* next absolute offset the sink expects */
	uint64_t skip; /* bytes of a 200 answer to drop (the server ignored Range) */
	bool started;  /* first body byte of this attempt seen */
	struct http_response *resp;
	EVP_MD_CTX *md; /* hashing when the download started at 0 */
	int error;	/* the sink's or a protocol error: not retried */
};

/* "bytes START-END/TOTAL" -> START */
static int content_range_start(const char *v, uint64_t *ret)
{
	if (!v)
		return -EBADMSG;
	if (strncasecmp(v, "bytes", 5) == 0)
		v += 5;
	while (*v == ' ' || *v == '=')
		v++;
	char *end = NULL;
	unsigned long long s = strtoull(v, &end, 10);
	if (end == v || *end != '-')
		return -EBADMSG;
	*ret = s;
	return 0;
}

static int blob_write(void *ud, long status, const void *data, size_t len)
{
	struct blob_get *g = ud;
	if (!g->started) {
		g->started = true;
		g->skip = 0;
		if (status == 200) {
			g->skip = g->pos;
		} else if (status == 206) {
			uint64_t start = 0;
			if (content_range_start(http_response_header(g->resp, "Content-Range"),
						&start) < 0 ||
			    start != g->pos) {
				g->error = report(g->r, -ERANGE,
						  "'%s' answered a range request for offset %llu "
						  "with a different range",
						  g->r->host, (unsigned long long)g->pos);
				return g->error;
			}
		} else {
			g->error = report(g->r, -EPROTO, "'%s' answered a blob GET with HTTP %ld",
					  g->r->host, status);
			return g->error;
		}
	}
	const char *p = data;
	if (g->skip) {
		size_t s = (size_t)MIN((uint64_t)len, g->skip);
		g->skip -= s;
		p += s;
		len -= s;
	}
	if (len == 0)
		return 0;
	int k = g->sink(g->userdata, p, len);
	if (k < 0) {
		g->error = k;
		return k;
	}
	if (g->md)
		EVP_DigestUpdate(g->md, p, len);
	g->pos += len;
	return 0;
}

static int blob_verify(struct blob_get *g, const char *digest, const char *what)
{
	unsigned char md[32];
	unsigned int n = 0;
	char hex[65];
	EVP_DigestFinal_ex(g->md, md, &n);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (strncmp(digest, "sha256:", 7) == 0 && !streq(digest + 7, hex))
		return report(g->r, -EBADMSG, "%s: the downloaded content has digest sha256:%s",
			      what, hex);
	return 0;
}

static int get_blob(struct oci_registry *r, const char *digest, uint64_t offset, bool verify,
		    oci_blob_sink sink, void *userdata)
{
	_cleanup_free_ char *what = xasprintf("GET blob '%s'", digest);
	_cleanup_free_ char *url = api_url(r, "blobs", digest);
	_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
	struct blob_get g = {
	    .r = r, .sink = sink, .userdata = userdata, .pos = offset, .resp = &resp};
	int k = 0;
	if (offset == 0 && verify) {
		g.md = EVP_MD_CTX_new();
		if (!g.md || !EVP_DigestInit_ex(g.md, EVP_sha256(), NULL)) {
			EVP_MD_CTX_free(g.md);
			return log_error_errno(-ENOMEM, "cannot set up SHA-256");
		}
	}
	_cleanup_free_ char *missing = xasprintf("blob '%s' in repository '%s'", digest, r->ns);
	for (;;) {
		_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
		uint64_t pos0 = g.pos;
		if (g.pos > 0)
			strvec_pushf(&hdrs, "Range: bytes=%llu-", (unsigned long long)g.pos);
		g.started = false;
		struct exchange x = {
		    .method = "GET",
		    .url = xstrdup(url),
		    .headers = &hdrs,
		    .write_fn = blob_write,
		    .write_userdata = &g,
		    .follow_redirects = true,
		};
		k = exchange(r, &x, &resp);
		free(x.url);
		if (g.error < 0) {
			k = g.error;
			break;
		}
		if (k >= 0 && (resp.status == 200 || resp.status == 206)) {
			k = g.md ? blob_verify(&g, digest, what) : 0;
			break;
		}
		if (k >= 0 && !status_retryable(resp.status)) {
			k = fail_status(r, what, g.pos ? 206 : 200, missing, &resp);
			break;
		}
		if (k < 0 && !transport_retryable(k)) {
			k = fail_transport(r, what, k, &x, &resp);
			break;
		}
		/* the next attempt resumes at g.pos: bytes delivered are not fetched again */
		if (!retry_after(r, what, k, &x, &resp, g.pos - pos0)) {
			k = k < 0 ? fail_transport(r, what, k, &x, &resp)
				  : fail_status(r, what, 200, missing, &resp);
			break;
		}
	}
	EVP_MD_CTX_free(g.md);
	return k;
}

int oci_registry_get_blob(struct oci_registry *r, const char *digest, uint64_t offset,
			  oci_blob_sink sink, void *userdata)
{
	return get_blob(r, digest, offset, true, sink, userdata);
}

int oci_registry_get_blob_unverified(struct oci_registry *r, const char *digest, uint64_t offset,
				     oci_blob_sink sink, void *userdata)
{
	return get_blob(r, digest, offset, false, sink, userdata);
}

/* ---------------------------------------------------------------------------------------- */
/* blob upload */

/* Where the next upload request goes: Location resolved against /v2/ (relative ones are). */
static int next_location(struct oci_registry *r, const struct http_response *resp, const char *what,
			 char **location)
{
	const char *loc = http_response_header(resp, "Location");
	if (!loc) {
		if (*location)
			return 0; /* keep the current one */
		return report(r, -EPROTO, "%s on '%s': the answer has no Location header", what,
			      r->host);
	}
	char *abs = oci_url_absolutize(r->base, loc);
	if (!abs)
		return report(r, -EPROTO, "%s on '%s': malformed Location '%.200s'", what, r->host,
			      loc);
	free(*location);
	*location = abs;
	return 0;
}

/* Check a 202's Range ("0-<end>", "bytes=" tolerated) against what was sent. */
static int check_range(struct oci_registry *r, const struct http_response *resp, uint64_t end)
{
	const char *v = http_response_header(resp, "Range");
	if (!v)
		return 0;
	if (strncasecmp(v, "bytes=", 6) == 0)
		v += 6;
	unsigned long long a, b;
	if (sscanf(v, "%llu-%llu", &a, &b) != 2 || b != end)
		return log_msg_errno(LOG_WARNING, -EPROTO,
				     "'%s' acknowledged the upload range '%.100s', sent 0-%llu",
				     r->host, v, (unsigned long long)end);
	return 0;
}

/*
 * One step of an upload. Returns 0 when the status is one of the expected ones, -errno when
 * not (logged), and 1 when the step should be retried from the POST (transport failure, 5xx,
 * 429, or a lost upload session: 404); resp keeps the answer for Retry-After.
 */
static int upload_step(struct oci_registry *r, struct exchange *x, const char *what, long ok1,
		       long ok2, bool session, struct http_response *resp)
{
	int k = exchange(r, x, resp);
	if (k < 0) {
		if (x->source && x->source->error < 0)
			return x->source->error;
		if (!transport_retryable(k))
			return fail_transport(r, what, k, x, resp);
		return 1;
	}
	if (resp->status == ok1 || resp->status == ok2)
		return 0;
	if (status_retryable(resp->status) || (session && resp->status == 404))
		return 1;
	_cleanup_free_ char *missing = xasprintf("repository '%s'", r->ns);
	return fail_status(r, what, ok1, missing, resp);
}

static char *with_digest(const char *location, const char *digest)
{
	return xasprintf("%s%cdigest=%s", location, strchr(location, '?') ? '&' : '?', digest);
}

static int upload_once(struct oci_registry *r, const char *digest, uint64_t size,
		       uint64_t chunk_size, const char *mount_from, oci_blob_source source,
		       void *userdata, struct http_response *resp)
{
	_cleanup_free_ char *location = NULL;
	_cleanup_strvec_ struct strvec octet = STRVEC_INIT;
	strvec_push(&octet, "Content-Type: application/octet-stream");

	/* POST: start a session, or mount */
	struct exchange post = {.method = "POST"};
	if (mount_from) {
		_cleanup_free_ char *from = http_escape(mount_from);
		_cleanup_free_ char *path =
		    xasprintf("%s/blobs/uploads/?mount=%s&from=%s", r->ns, digest, from);
		post.url = xasprintf("%s%s", r->base, path);
	} else {
		post.url = api_url(r, "blobs/uploads", "");
	}
	int k = upload_step(r, &post, "POST blob upload", 202, mount_from ? 201 : 202, false, resp);
	free(post.url);
	if (k != 0)
		return k;
	if (resp->status == 201)
		return 0; /* mounted */
	k = next_location(r, resp, "POST blob upload", &location);
	if (k < 0)
		return k;

	uint64_t off = 0;
	if (chunk_size > 0) {
		while (size - off > chunk_size) {
			_cleanup_strvec_ struct strvec hdrs = STRVEC_INIT;
			uint64_t end = off + chunk_size - 1;
			strvec_push(&hdrs, "Content-Type: application/octet-stream");
			strvec_pushf(&hdrs, "Content-Range: %llu-%llu", (unsigned long long)off,
				     (unsigned long long)end);
			struct source_body src = {
			    .fn = source, .userdata = userdata, .start = off, .len = chunk_size};
			_cleanup_free_ char *lo = http_url_origin(location);
			struct exchange patch = {.method = "PATCH",
						 .url = xstrdup(location),
						 .headers = &hdrs,
						 .source = &src,
						 .auth_origin = lo};
			k = upload_step(r, &patch, "PATCH blob chunk", 202, 201, true, resp);
			free(patch.url);
			if (k == 0)
				k = check_range(r, resp, end) < 0 ? 1 : 0;
			if (k == 0)
				k = next_location(r, resp, "PATCH blob chunk", &location);
			if (k != 0)
				return k;
			off += chunk_size;
		}
	}
	/* the final PUT carries the last (or only) slice */
	struct source_body src = {
	    .fn = source, .userdata = userdata, .start = off, .len = size - off};
	_cleanup_free_ char *lo = http_url_origin(location);
	struct exchange put = {.method = "PUT",
			       .url = with_digest(location, digest),
			       .headers = &octet,
			       .source = &src,
			       .auth_origin = lo};
	k = upload_step(r, &put, "PUT blob", 201, 201, true, resp);
	free(put.url);
	return k;
}

int oci_registry_push_blob(struct oci_registry *r, const char *digest, uint64_t size,
			   uint64_t chunk_size, const char *mount_from, oci_blob_source source,
			   void *userdata)
{
	_cleanup_free_ char *what = xasprintf("upload of blob '%s'", digest);
	for (int attempt = 1;; attempt++) {
		_cleanup_http_response_ struct http_response resp = HTTP_RESPONSE_INIT;
		/* a mount that failed once is not tried again */
		int k = upload_once(r, digest, size, chunk_size, attempt == 1 ? mount_from : NULL,
				    source, userdata, &resp);
		if (k <= 0)
			return k;
		/* a new attempt starts a new upload session: nothing it sent counts as progress */
		if (!retry_after(r, what, resp.error ? -ECONNRESET : 0, NULL, &resp, 0)) {
			_cleanup_free_ char *why = failure_text(r, -ECONNRESET, NULL, &resp);
			return report(r, resp.error ? -ECONNRESET : status_errno(resp.status),
				      "%s to '%s' failed: %s; gave up after %u failed attempts",
				      what, r->host, why, oci_retry_failures(&r->budget));
		}
	}
}
