/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A client of etcd's v3 API through its JSON gateway (/v3/kv/range, /v3/kv/put, /v3/kv/txn,
 * /v3/kv/deleterange, /v3/lease/grant|keepalive|revoke, /v3/watch) over libcurl. Keys and
 * values travel base64-encoded, revisions and lease IDs as decimal strings, as the gateway
 * wants them. Thread-safe: any number of calls in parallel on one client.
 *
 * Failover: the client holds a list of member endpoints. A call goes to the member that last
 * answered; when it cannot be reached (refused, reset, timed out) or answers that it has no
 * leader or is unavailable (HTTP 503, gRPC codes 14 and 4), the next member is tried, until
 * every member has been tried once. A member that failed so is tried last for 30 s, so a hung
 * one costs one timeout, not one per call; a watch on it ends once a call has found it
 * failing (or when it does not confirm the watch within the call timeout). Then the call fails with
 * -ENOTCONN, which the API turns into 503. A call that may have been applied by a member that then
 * stopped answering can be retried on another: writes that matter are compare-and-swap
 * transactions, whose retry fails its comparison instead of applying twice.
 *
 * Never logs; a failure's description goes to the optional *ret_error of the calls that take
 * one, or is dropped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct etcd;

struct etcd_kv {
	char *key;
	char *value; /* NUL-terminated (values are JSON text here) */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease;
};

struct etcd_kvs {
	struct etcd_kv *v;
	size_t n;
	bool more;	  /* the range was cut by its limit */
	int64_t revision; /* the store's revision the range was read at */
};

/*
 * endpoints: "http://127.0.0.1:2379,http://10.0.0.2:2379" (a missing scheme means http://).
 * timeout_s bounds each unary call (0: 5 s).
 */
int etcd_new(const char *endpoints, long timeout_s, struct etcd **ret);
void etcd_free(struct etcd *e);
/* The number of members and the one currently used (for diagnostics). */
size_t etcd_endpoint_count(const struct etcd *e);
const char *etcd_endpoint(const struct etcd *e, size_t i);

void etcd_kvs_release(struct etcd_kvs *kvs);
void etcd_kv_release(struct etcd_kv *kv);

/* "/p/" -> "/p0": the range_end that covers every key with this prefix. Allocated. */
char *etcd_prefix_end(const char *prefix);

/*
 * Range [key, range_end) (range_end NULL: the one key) at `revision` (0: the latest),
 * at most `limit` keys (0: all), sorted by key (descending with `descend`). keys_only leaves
 * values empty.
 */
int etcd_range(struct etcd *e, const char *key, const char *range_end, int64_t revision,
	       int64_t limit, bool keys_only, bool descend, struct etcd_kvs *ret);
/* One key: -ENOENT when absent. ret_revision (may be NULL) gets the header revision. */
int etcd_get(struct etcd *e, const char *key, struct etcd_kv *ret, int64_t *ret_revision);
int etcd_put(struct etcd *e, const char *key, const char *value, size_t len, int64_t lease,
	     int64_t *ret_revision);
/* Delete [key, range_end) (range_end NULL: one key); *ret_deleted may be NULL. */
int etcd_delete(struct etcd *e, const char *key, const char *range_end, int64_t *ret_deleted);

/*
 * A transaction, built up then committed. Comparisons are ANDed. Operations are puts and
 * deletes (success branch only: a failed comparison changes nothing and the caller re-reads).
 */
struct etcd_txn {
	json_t *compare;
	json_t *success;
};
void etcd_txn_init(struct etcd_txn *t);
void etcd_txn_release(struct etcd_txn *t);
/* The key's mod_revision equals rev (0: the key does not exist). */
void etcd_txn_cmp_mod(struct etcd_txn *t, const char *key, int64_t rev);
/* The key's create_revision equals rev: it is still the object created then, modified or
 * not (0: the key does not exist). */
void etcd_txn_cmp_create(struct etcd_txn *t, const char *key, int64_t rev);
/* The key exists (create_revision != 0). */
void etcd_txn_cmp_exists(struct etcd_txn *t, const char *key);
void etcd_txn_put(struct etcd_txn *t, const char *key, const char *value, size_t len,
		  int64_t lease);
void etcd_txn_delete(struct etcd_txn *t, const char *key, const char *range_end);
/* 0 with *ret_succeeded telling whether the comparisons held; ret_revision may be NULL. */
int etcd_txn_commit(struct etcd *e, const struct etcd_txn *t, bool *ret_succeeded,
		    int64_t *ret_revision);
/* Commit and release t: 0, `failed` (a negative errno) when its comparisons did not hold, or
 * the error of the call. */
int etcd_txn_finish(struct etcd *e, struct etcd_txn *t, int failed);

int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *ret_id);
/* *ret_ttl <= 0 when the lease has expired or never existed. */
int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ret_ttl);
int etcd_lease_revoke(struct etcd *e, int64_t id);

/*
 * ETCD_EVENT_UNPARSABLE: an event whose key or value does not decode; only kv.mod_revision is
 * set (the caller skips it, and the watch goes on past it instead of stopping there forever).
 */
enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE, ETCD_EVENT_UNPARSABLE };
struct etcd_event {
	enum etcd_event_type type;
	struct etcd_kv kv;	/* for a delete: key and mod_revision only */
	struct etcd_kv prev_kv; /* the value before (when there was one) */
	bool has_prev;
};

/*
 * Called for every event, in revision order; returning < 0 ends the watch with that value.
 * `revision` is the event's mod_revision.
 */
typedef int (*etcd_watch_fn)(void *userdata, const struct etcd_event *ev);
/*
 * Watch [key, range_end) from start_revision (0: from now on), blocking, calling fn per event.
 * Returns when the stream ends: -ENOTCONN when no member could be reached, -ECONNRESET when
 * the member went away (the caller resumes from the last revision + 1 and gets the next
 * member), -ERANGE when start_revision was compacted (*ret_compact_revision tells the oldest
 * one left: the caller re-reads and restarts from there), or fn's value.
 */
int etcd_watch(struct etcd *e, const char *key, const char *range_end, int64_t start_revision,
	       etcd_watch_fn fn, void *userdata, int64_t *ret_compact_revision);
