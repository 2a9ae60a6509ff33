/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/macro.h"
#include "util/strbuf.h"

DEFINE_CLEANUP_FUNC(json_t *, json_decref, tart_json_unrefp)
#define _cleanup_json_ _cleanup_(tart_json_unrefp)

/*
 * Serialize the way Swift's JSONEncoder does, so our files and outputs read like Tart's:
 * JSON_SWIFT_PRETTY gives 2-space indentation and `"key" : value`; without it the output is
 * compact. '/' is escaped as "\/" (Swift's default). Object keys keep insertion order unless
 * JSON_SWIFT_SORTED is given. Appends to sb.
 */
enum json_swift_flags {
	JSON_SWIFT_PRETTY = 1 << 0,
	JSON_SWIFT_SORTED = 1 << 1,
};
void json_dump_swift(const json_t *j, unsigned flags, struct strbuf *sb);

/* Parse a buffer (not NUL-terminated required) with jansson; -EBADMSG on malformed input. */
int json_parse_buf(const char *buf, size_t len, json_t **ret);

/* Typed field getters: -ENOENT when absent, -EBADMSG when of the wrong type or range. */
int json_get_string(const json_t *obj, const char *key, const char **ret);
int json_get_u64(const json_t *obj, const char *key, uint64_t *ret);
int json_get_bool(const json_t *obj, const char *key, bool *ret);
