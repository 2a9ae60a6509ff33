/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Small pieces of Orchard's wire and CLI conventions that the worker and the CLI share (the
 * controller's resources and their validation live in orchard/resource.h): JSON field access,
 * pflag's "k=v,k=v" maps, go-humanize's relative times and uitable's tables. Pure functions,
 * unit-tested in tests/unit/test-orchard-api.c.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/strbuf.h"

/* Seconds since the epoch of a JSON time field; 0 when absent, zero-time or malformed. */
time_t orchard_json_time(const json_t *obj, const char *key);

/* go-humanize's RelTime(then, now, "ago", "in the future"): "now", "5 minutes ago", ... */
void orchard_reltime(time_t then, time_t now, char *buf, size_t len);

/* The on-disk name of a VM resource (name, uid, restart_count): orchard_local_name(). */
char *orchard_odn_of(const json_t *vm);

/*
 * pflag's StringToString syntax "k=v,k2=v2" (repeatable flags add up) into obj: values as JSON
 * strings, or as unsigned integers with u64 (Orchard's resources). -EINVAL with *ret_error.
 */
int orchard_kv_parse(const char *s, bool u64, json_t *obj, char **ret_error);

/* Field getters that tolerate absence: "" / 0 / false. */
const char *orchard_str(const json_t *obj, const char *key);
uint64_t orchard_u64(const json_t *obj, const char *key);
bool orchard_bool(const json_t *obj, const char *key);

/*
 * Conditions [{type, state:"true"|"false"}]: set one (true when that changed the array), read
 * one (-1 when absent).
 */
bool orchard_condition_set(json_t *vm, const char *type, bool state);
int orchard_condition_get(const json_t *vm, const char *type);

/*
 * gosuri/uitable as Orchard configures it: every cell right-padded to its column's widest line,
 * cells joined by a tab, a cell with several lines spreads over several lines (the other cells
 * blank there). cells: rows*ncols strings, row-major. Appends to out without a final newline.
 */
void orchard_table(const char *const *cells, size_t rows, size_t ncols, struct strbuf *out);
