/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Registry authentication pieces, pure except oci_auth_fetch_token (one HTTP GET). Nothing
 * here logs; secrets are never put into error texts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http/client.h"
#include "util/strvec.h"

/*
 * A WWW-Authenticate challenge as Tart parses it: `<scheme> k=v, k="v", ...` (quote-aware:
 * commas and escaped quotes inside "..." belong to the value). The scheme alone, an empty
 * parameter list or a parameter without '=' is malformed (-EBADMSG): `Whatever`, `Bearer `,
 * `Bearer whatever` are rejected, as in Tart's WWWAuthenticateTests.
 */
struct oci_www_auth {
	char *scheme;
	struct strvec keys;   /* as written */
	struct strvec values; /* unquoted */
};
#define OCI_WWW_AUTH_INIT {.keys = STRVEC_INIT, .values = STRVEC_INIT}

int oci_www_auth_parse(const char *header, struct oci_www_auth *ret);
/* Value of a parameter (case-insensitive key), NULL when absent. */
const char *oci_www_auth_get(const struct oci_www_auth *a, const char *key);
void oci_www_auth_release(struct oci_www_auth *a);

/*
 * A token-service answer: JSON with "token" (or "access_token"), optional "expires_in"
 * (seconds, default 60) and "issued_at" (ISO-8601, default now). Valid until
 * issued_at + expires_in.
 */
struct oci_token {
	char *token;
	time_t expires_at;
};
int oci_token_parse(const char *buf, size_t len, time_t now, struct oci_token *ret);
bool oci_token_valid(const struct oci_token *t, time_t now);
void oci_token_release(struct oci_token *t);

/*
 * The token request URL for a Bearer challenge: the realm with its query replaced by the
 * challenge's scope and service (only those present). NULL without a realm or when it is not
 * an http(s) URL.
 */
char *oci_token_url(const struct oci_www_auth *a);

/* Base64 (standard alphabet, padded). decode returns -EBADMSG on malformed input. */
char *oci_base64_encode(const void *data, size_t len);
int oci_base64_decode(const char *s, char **ret, size_t *ret_len);
/* The same for input of up to max characters (oci_base64_decode: 1 MiB, for headers). */
int oci_base64_decode_max(const char *s, size_t max, char **ret, size_t *ret_len);
/* "Basic <base64(user:pass)>" (allocated). */
char *oci_basic_credentials(const char *user, const char *pass);

/*
 * GET the token URL of a Bearer challenge, with Basic credentials when user is not NULL.
 * Expects 200 and a token JSON. On failure *ret_err (allocated, may be NULL) says why,
 * including the first 1000 bytes of the service's answer.
 */
int oci_auth_fetch_token(struct http_client *c, const struct oci_www_auth *challenge,
			 const char *user, const char *pass, struct oci_token *ret, char **ret_err);

/*
 * What a registry or token service said, for a person (allocated, capped at 300 bytes, NULL
 * when there is nothing readable): the code and message of each entry of a distribution-spec
 * error body ({"errors":[{"code":..,"message":..}]}), token services' "details", "message",
 * "error", "error_description", else the first line of a plain-text body. HTML, binary (a
 * gzip bomb) and empty bodies give NULL.
 */
char *oci_error_text(const char *body, size_t len);

/* "https://host/v2/x" style absolutization of a Location against a base (allocated). */
char *oci_url_absolutize(const char *base, const char *location);
