/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A thin libcurl wrapper: one request at a time per call, any number of calls in parallel on
 * one client. It knows nothing about OCI and never logs.
 *
 * - Redirects are NOT followed: a 3xx comes back to the caller with its Location header, so
 *   the caller decides which headers (Authorization) may travel to the new host.
 * - Connections, DNS and TLS sessions are shared between the requests of one client (a CURLSH
 *   with pthread locks), so sequential and concurrent requests to a host reuse connections.
 * - HTTP/1.1 only. Cookies are disabled (Harbor CSRF quirk); system CAs are used;
 *   "Expect: 100-continue" is never sent; proxies from the usual environment variables apply.
 * - A stalled transfer is aborted: the client's low-speed limit (bytes/s over seconds).
 * - Transport failures map to -errno: -ETIMEDOUT (timeouts, stalls), -ECONNREFUSED,
 *   -EHOSTUNREACH (resolution), -ECONNRESET (connection dropped, short body, empty reply),
 *   -EPROTO (TLS and protocol errors), -EFBIG (response body over its cap), or whatever a
 *   body callback returned. The curl message is copied into the response's `error`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/strbuf.h"
#include "util/strvec.h"

struct http_client;

#define HTTP_HEADER_TIMEOUT_TEXT "response headers did not arrive in time"
#define HTTP_STALL_TEXT "no data moved"

struct http_client_options {
	long connect_timeout_s; /* 0: 30 s */
	long low_speed_limit;	/* bytes/s; 0: 1 */
	long low_speed_time_s;	/* 0: 60 s */
	/*
	 * 0: none. Otherwise a transfer fails with -ETIMEDOUT when no byte has moved for this
	 * long (error text with HTTP_STALL_TEXT; sooner and more exact than curl's low-speed
	 * average), or when the response headers are not complete this long after the request
	 * was sent (HTTP_HEADER_TIMEOUT_TEXT: a server trickling its headers stays above any
	 * low-speed limit).
	 */
	long stall_timeout_s;
	const char *user_agent; /* NULL: none */
	const char *ca_file;	/* NULL: the system CA bundle */
	const char *ca_path;	/* NULL: the system CA directory */
	/* PEM certificates trusted instead of the system CAs (pinning); copied */
	const void *ca_blob;
	size_t ca_blob_len;
	/* curl's CONNECT_TO entry "HOST:PORT:CONNECT-HOST:CONNECT-PORT" (a TLS name that is not
	 * the address); copied */
	const char *connect_to;
};

int http_client_new(const struct http_client_options *opts, struct http_client **ret);
struct http_client *http_client_free(struct http_client *c);

/*
 * Streaming body callbacks. A negative return aborts the transfer with that value. The write
 * callback gets the response status (always 2xx, see below) and, through the response being
 * filled, its headers, which are complete before the first call.
 */
typedef int (*http_write_fn)(void *userdata, long status, const void *data, size_t len);
/* Fill buf with up to len bytes; return the count (0 = end) or -errno. */
typedef int64_t (*http_read_fn)(void *userdata, void *buf, size_t len);

struct http_request {
	const char *method; /* "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE" */
	const char *url;
	const struct strvec *headers; /* "Name: value" lines, may be NULL */
	/* Request body: either in memory, or streamed from read_fn (body_len bytes exactly). */
	const void *body;
	size_t body_len;
	http_read_fn read_fn;
	void *read_userdata;
	uint64_t read_len;
	/*
	 * Response body: when write_fn is set and the status is 2xx, the body is streamed to it;
	 * otherwise (and for every non-2xx answer) it goes to response.body, capped at
	 * body_cap bytes (0: 64 KiB); past the cap the rest is dropped, or -EFBIG when
	 * body_cap_strict is set.
	 */
	http_write_fn write_fn;
	void *write_userdata;
	size_t body_cap;
	bool body_cap_strict;
	long timeout_s; /* whole request; 0 = none (the low-speed limit still applies) */
	/*
	 * Called about once a second while the transfer runs (NULL: never); a non-zero return
	 * aborts it with -ECANCELED. For long-lived streams whose owner may want them gone.
	 */
	int (*progress_fn)(void *userdata);
	void *progress_userdata;
};

struct http_response {
	long status;
	struct strbuf body;    /* non-streamed body (see above) */
	struct strvec headers; /* "Name: value" lines of the final response, CR/LF stripped */
	char *error;	       /* transport error text, NULL when none */
};

#define HTTP_RESPONSE_INIT                                                                         \
	{                                                                                          \
		.body = STRBUF_INIT, .headers = STRVEC_INIT                                        \
	}

/*
 * Perform the request. Returns 0 when an HTTP response was received (any status; see
 * resp->status), -errno on transport failure (resp->error says why). resp must be
 * initialised with HTTP_RESPONSE_INIT; it is reset first.
 */
int http_perform(struct http_client *c, const struct http_request *req, struct http_response *resp);
void http_response_release(struct http_response *resp);
/* Value of the first header with that name (case-insensitive), leading spaces skipped. */
const char *http_response_header(const struct http_response *resp, const char *name);

static inline void http_response_releasep(struct http_response *r)
{
	http_response_release(r);
}
#define _cleanup_http_response_ _cleanup_(http_response_releasep)

/* Retry-After in seconds (delta-seconds or an HTTP date), -1 when absent or unparsable. */
long http_retry_after(const struct http_response *resp);

/* URL-escape a query component (allocated). */
char *http_escape(const char *s);

/*
 * URL helpers (curl's URL parser). All return allocated strings, or NULL when a URL does not
 * parse.
 *
 * http_url_resolve: `ref` (absolute, or relative like "/v2/x?_state=..." or "uuid") resolved
 * against `base` as a browser would.
 * http_url_origin: "scheme://host:port" with a lower-case host and the port always present,
 * for "same host?" checks.
 */
char *http_url_resolve(const char *base, const char *ref);
char *http_url_origin(const char *url);
