/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The Orchard API client, as Orchard's pkg/client: REST under <url>/v1/ through libcurl
 * (http/client.h) with HTTP Basic auth of a service account, and the WebSocket endpoints
 * through libwebsockets (orchard/ws.h). With a trusted certificate (from a bootstrap token or a
 * context) TLS trusts that certificate only and checks the server against its first DNS name
 * (`orchard-controller` for the certificates Orchard's controller generates) whatever host the
 * URL names; without one the system CAs apply. One client may be used from several threads.
 *
 * Errors: 0 for HTTP 200, -errno otherwise. Transport failures keep http/'s codes
 * (-ECONNREFUSED, -ETIMEDOUT, ...); API answers map 404 -> -ENOENT, 409 -> -EEXIST,
 * 401 -> -EACCES, 403 -> -EPERM, 400/412/422 -> -EINVAL, 408 -> -ETIMEDOUT, 503 -> -EAGAIN,
 * anything else -> -EPROTO. When ret_error is given it receives Orchard's message for the
 * failure ("API client encountered an error while attempting to make a request: 404 Not Found
 * (...)"), allocated. Nothing here logs.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macro.h"
#include "util/strbuf.h"

#define ORCHARD_DEFAULT_PORT 6120
#define ORCHARD_USER_AGENT "Orchard/" TART_VERSION "-tart-linux"

struct orchard_client;

struct orchard_client_options {
	const char *url;     /* as the user wrote it: normalised with orchard_url_normalize() */
	const char *sa_name; /* service account; NULL or "": no Authorization */
	const char *sa_token;
	const char *cert_pem; /* trusted certificate (PEM), NULL: system PKI */
	size_t cert_pem_len;
	long timeout_s; /* per request; 0: 30 s (Orchard's) */
};

/*
 * Orchard's NormalizeAddress: "https://" when there is no scheme, port 6120 when there is none.
 * Only http and https are accepted. Allocates; -EINVAL for a URL that does not parse.
 */
int orchard_url_normalize(const char *in, char **ret);

int orchard_client_new(const struct orchard_client_options *o, struct orchard_client **ret,
		       char **ret_error);
void orchard_client_free(struct orchard_client *c);
DEFINE_CLEANUP_FUNC(struct orchard_client *, orchard_client_free, orchard_client_freep)
#define _cleanup_orchard_client_ _cleanup_(orchard_client_freep)

/* The normalised URL the client talks to. */
const char *orchard_client_url(const struct orchard_client *c);

/*
 * One API call: METHOD <url>/v1/<path>[?query] with body (JSON, may be NULL). On 200 the reply
 * is parsed into *ret_json when given (an empty body gives NULL). ret_status (may be NULL) gets
 * the HTTP status even on failure (0 when none arrived). ret_header/header_name fetch one
 * response header (X-Next-Cursor).
 */
struct orchard_call {
	const char *method;
	const char *path;  /* "vms/x/state", already escaped (orchard_escape) */
	const char *query; /* "filter=worker%3Dw1", NULL */
	const json_t *body;
	const char *header_name;
	long timeout_s; /* 0: the client's */
};
int orchard_client_call(struct orchard_client *c, const struct orchard_call *q, json_t **ret_json,
			long *ret_status, char **ret_header, char **ret_error);

/* Shorthands without body-less/with-body distinctions. */
int orchard_get(struct orchard_client *c, const char *path, const char *query, json_t **ret,
		char **ret_error);
int orchard_send(struct orchard_client *c, const char *method, const char *path, const json_t *body,
		 json_t **ret, char **ret_error);

/* The errno for an HTTP status (see above) and its reason phrase ("" when unknown). */
int orchard_status_errno(long status);
const char *orchard_status_text(long status);

/* Percent-escape a path segment or query value (RFC 3986 unreserved kept). Allocates. */
char *orchard_escape(const char *s);

/* For orchard/ws.c: what a WebSocket connection needs to reach the same controller. */
struct orchard_endpoint {
	bool tls;
	const char *host; /* to connect to */
	int port;
	const char *server_name; /* TLS name and Host header, or NULL: host */
	const char *prefix;	 /* path prefix before /v1, "" when none */
	const char *auth_header; /* "Basic ..." or NULL */
	const char *cert_pem;	 /* NULL: system CAs */
	size_t cert_pem_len;
};
/* The idx-th controller to try, starting from the one that answered last. */
void orchard_client_endpoint(const struct orchard_client *c, size_t idx,
			     struct orchard_endpoint *ret);
size_t orchard_client_endpoints(const struct orchard_client *c);
/* Remember that the idx-th (as orchard_client_endpoint counts) answered. */
void orchard_client_prefer(struct orchard_client *c, size_t idx);
/* The failures worth another controller: refused, reset, timed out, unreachable. */
bool orchard_transport_error(int r);

/*
 * The first DNS name of a PEM certificate (allocated), -EINVAL when it does not parse, -ENOENT
 * when it has none. And the SHA-256 fingerprint of its DER form as Orchard prints it:
 * upper-case hex bytes joined by spaces ("AB 01 ...").
 */
int orchard_cert_first_dns_name(const char *pem, size_t len, char **ret);
int orchard_cert_fingerprint(const char *pem, size_t len, char **ret);

/*
 * Connect to an https URL without verifying anything and return the certificate the server
 * presents (PEM, allocated): for `context create` to show its fingerprint and ask.
 */
int orchard_probe_certificate(const char *url, char **ret_pem, char **ret_error);
