// SPDX-License-Identifier: Apache-2.0
#include "orchard/store/etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/client.h"
#include "oci/auth.h"
#include "util/alloc.h"
#include "util/macro.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/time.h"

/* A range answer holding every VM of a big fleet must fit; 256 MiB is far beyond that. */
#define RESPONSE_CAP (256u << 20)
#define WATCH_LINE_CAP (64u << 20)
/* A member that failed a call is tried last for this long (unless it is the only hope). */
#define FAILED_FOR_USEC (30 * 1000000ULL)

struct etcd {
	struct strvec endpoints;
	atomic_size_t current;		/* the member that answered last */
	_Atomic uint64_t *failed_until; /* per member: when it failed a call, + FAILED_FOR_USEC */
	long timeout_s;
	struct http_client *http;	/* unary calls */
	struct http_client *http_watch; /* long-lived streams: no stall limit to speak of */
};

int etcd_new(const char *endpoints, long timeout_s, struct etcd **ret)
{
	struct etcd *e = xcalloc(1, sizeof(*e));
	strvec_init(&e->endpoints);
	const char *p = endpoints;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *next = comma ? comma + 1 : NULL;
		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == '/' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n) {
			if (memmem(p, n, "://", 3))
				strvec_pushf(&e->endpoints, "%.*s", (int)n, p);
			else
				strvec_pushf(&e->endpoints, "http://%.*s", (int)n, p);
		}
		p = next;
	}
	if (e->endpoints.nr == 0) {
		etcd_free(e);
		return -EINVAL;
	}
	e->timeout_s = timeout_s > 0 ? timeout_s : 5;
	e->failed_until = xcalloc(e->endpoints.nr, sizeof(*e->failed_until));
	struct http_client_options o = {.connect_timeout_s = 2, .user_agent = "orchard-etcd"};
	int r = http_client_new(&o, &e->http);
	if (r < 0) {
		etcd_free(e);
		return r;
	}
	o.low_speed_time_s = 365L * 24 * 3600;
	r = http_client_new(&o, &e->http_watch);
	if (r < 0) {
		etcd_free(e);
		return r;
	}
	*ret = e;
	return 0;
}

void etcd_free(struct etcd *e)
{
	if (!e)
		return;
	strvec_clear(&e->endpoints);
	free(e->failed_until);
	http_client_free(e->http);
	http_client_free(e->http_watch);
	free(e);
}

size_t etcd_endpoint_count(const struct etcd *e)
{
	return e->endpoints.nr;
}

const char *etcd_endpoint(const struct etcd *e, size_t i)
{
	return i < e->endpoints.nr ? e->endpoints.v[i] : NULL;
}

/* ---- encoding ---- */

static char *b64(const void *data, size_t len)
{
	return oci_base64_encode(data, len);
}

static int unb64(const char *s, char **ret, size_t *ret_len)
{
	/* values as large as etcd stores (its request limit, 1.5 MiB by default, or more when
	 * raised): oci_base64_decode's 1 MiB cap is for HTTP headers, and one VM over it made
	 * every range over vms/ fail and stopped the watches for good */
	return oci_base64_decode_max(s, RESPONSE_CAP, ret, ret_len);
}

static json_t *json_b64(const char *s, size_t len)
{
	char *e = b64(s, len);
	json_t *j = json_string(e);
	free(e);
	return j;
}

static json_t *json_rev(int64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

/* The gateway writes int64 as strings and leaves zero values out. */
static int64_t get_i64(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

char *etcd_prefix_end(const char *prefix)
{
	char *end = xstrdup(prefix);
	size_t n = strlen(end);
	while (n > 0) {
		if ((unsigned char)end[n - 1] < 0xff) {
			end[n - 1]++;
			end[n] = 0;
			return end;
		}
		n--;
	}
	free(end);
	return xstrdup("\0"); /* every key: the gateway reads "AA==" as "\0" */
}

void etcd_kv_release(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	*kv = (struct etcd_kv){0};
}

void etcd_kvs_release(struct etcd_kvs *kvs)
{
	for (size_t i = 0; i < kvs->n; i++)
		etcd_kv_release(&kvs->v[i]);
	free(kvs->v);
	*kvs = (struct etcd_kvs){0};
}

static int parse_kv(const json_t *j, struct etcd_kv *ret)
{
	struct etcd_kv kv = {0};
	size_t klen;
	const char *k = json_string_value(json_object_get(j, "key"));
	const char *v = json_string_value(json_object_get(j, "value"));
	if (!k || unb64(k, &kv.key, &klen) < 0)
		return -EBADMSG;
	if (unb64(v ? v : "", &kv.value, &kv.value_len) < 0) {
		free(kv.key);
		return -EBADMSG;
	}
	kv.create_revision = get_i64(j, "create_revision");
	kv.mod_revision = get_i64(j, "mod_revision");
	kv.version = get_i64(j, "version");
	kv.lease = get_i64(j, "lease");
	*ret = kv;
	return 0;
}

/* ---- transport ---- */

/*
 * Which member to ask. A hung member (SIGSTOPped, partitioned) costs one timeout, once: the
 * call then goes on to the next member, which answers and becomes `current`, and the hung
 * one is marked failed, so that no later call starts there (nor passes by it first) for
 * FAILED_FOR_USEC. The order: from the member that answered last, those not marked failed,
 * then the failed ones (all failed: every member is tried anyway).
 */
static bool endpoint_failed(struct etcd *e, size_t i, usec_t now)
{
	return atomic_load(&e->failed_until[i]) > now;
}

static void endpoint_mark_failed(struct etcd *e, size_t i)
{
	atomic_store(&e->failed_until[i], now_monotonic_usec() + FAILED_FOR_USEC);
}

static void endpoint_answered(struct etcd *e, size_t i)
{
	atomic_store(&e->failed_until[i], 0);
	atomic_store(&e->current, i);
}

/* order[0..n) gets the members in the order to try them. Allocated. */
static size_t *endpoint_order(struct etcd *e)
{
	size_t n = e->endpoints.nr, start = atomic_load(&e->current) % n, k = 0;
	size_t *order = xcalloc(n, sizeof(*order));
	usec_t now = now_monotonic_usec();
	for (int failed = 0; failed <= 1; failed++)
		for (size_t a = 0; a < n; a++) {
			size_t idx = (start + a) % n;
			if (endpoint_failed(e, idx, now) == (bool)failed)
				order[k++] = idx;
		}
	return order;
}

static bool is_failover_status(long status, const json_t *body)
{
	if (status == 503 || status == 502 || status == 504)
		return true;
	int64_t code = get_i64(body, "code");
	return code == 14 /* Unavailable */ || code == 4 /* DeadlineExceeded */;
}

static int map_grpc_error(const json_t *body)
{
	switch (get_i64(body, "code")) {
	case 5:
		return -ENOENT;
	case 11:
		return -ERANGE;
	case 3:
		return -EINVAL;
	case 9:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/*
 * POST a JSON request to path on a member, failing over. Returns the parsed answer of a 200
 * in *ret; -ENOTCONN when no member answered usefully; a mapped error for an etcd error.
 */
static int call(struct etcd *e, const char *path, json_t *req, json_t **ret)
{
	_cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
	if (!body)
		return -ENOMEM;
	_cleanup_free_ size_t *order = endpoint_order(e);
	for (size_t attempt = 0; attempt < e->endpoints.nr; attempt++) {
		size_t idx = order[attempt];
		_cleanup_free_ char *url = xasprintf("%s%s", e->endpoints.v[idx], path);
		struct strvec headers = STRVEC_INIT;
		strvec_push(&headers, "Content-Type: application/json");
		struct http_request q = {.method = "POST",
					 .url = url,
					 .headers = &headers,
					 .body = body,
					 .body_len = strlen(body),
					 .body_cap = RESPONSE_CAP,
					 .body_cap_strict = true,
					 .timeout_s = e->timeout_s};
		struct http_response resp = HTTP_RESPONSE_INIT;
		int r = http_perform(e->http, &q, &resp);
		strvec_clear(&headers);
		if (r < 0) {
			http_response_release(&resp);
			if (r == -EFBIG)
				return r;
			endpoint_mark_failed(e, idx);
			continue;
		}
		json_t *j = json_loadb(resp.body.buf, resp.body.len, 0, NULL);
		long status = resp.status;
		http_response_release(&resp);
		if (status == 200 && j) {
			endpoint_answered(e, idx);
			*ret = j;
			return 0;
		}
		if (!j || is_failover_status(status, j)) {
			json_decref(j);
			endpoint_mark_failed(e, idx);
			continue;
		}
		r = map_grpc_error(j);
		json_decref(j);
		endpoint_answered(e, idx);
		return r;
	}
	return -ENOTCONN;
}

/* ---- kv ---- */

static json_t *range_request(const char *key, const char *range_end, int64_t revision,
			     int64_t limit, bool keys_only, bool descend)
{
	json_t *req = json_object();
	json_object_set_new(req, "key", json_b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(req, "range_end",
				    json_b64(range_end, *range_end ? strlen(range_end) : 1));
	if (revision)
		json_object_set_new(req, "revision", json_rev(revision));
	if (limit)
		json_object_set_new(req, "limit", json_rev(limit));
	if (keys_only)
		json_object_set_new(req, "keys_only", json_true());
	if (descend) {
		json_object_set_new(req, "sort_order", json_string("DESCEND"));
		json_object_set_new(req, "sort_target", json_string("KEY"));
	}
	return req;
}

static int parse_range(const json_t *j, struct etcd_kvs *ret)
{
	struct etcd_kvs kvs = {0};
	json_t *arr = json_object_get(j, "kvs");
	kvs.revision = get_i64(json_object_get(j, "header"), "revision");
	kvs.more = json_is_true(json_object_get(j, "more"));
	size_t n = json_array_size(arr);
	if (n) {
		kvs.v = xcalloc(n, sizeof(*kvs.v));
		for (size_t i = 0; i < n; i++) {
			int r = parse_kv(json_array_get(arr, i), &kvs.v[i]);
			if (r < 0) {
				etcd_kvs_release(&kvs);
				return r;
			}
			kvs.n = i + 1;
		}
	}
	*ret = kvs;
	return 0;
}

int etcd_range(struct etcd *e, const char *key, const char *range_end, int64_t revision,
	       int64_t limit, bool keys_only, bool descend, struct etcd_kvs *ret)
{
	json_t *req = range_request(key, range_end, revision, limit, keys_only, descend), *j = NULL;
	int r = call(e, "/v3/kv/range", req, &j);
	json_decref(req);
	if (r < 0)
		return r;
	r = parse_range(j, ret);
	json_decref(j);
	return r;
}

int etcd_get(struct etcd *e, const char *key, struct etcd_kv *ret, int64_t *ret_revision)
{
	struct etcd_kvs kvs;
	int r = etcd_range(e, key, NULL, 0, 0, false, false, &kvs);
	if (r < 0)
		return r;
	if (ret_revision)
		*ret_revision = kvs.revision;
	if (kvs.n == 0) {
		etcd_kvs_release(&kvs);
		return -ENOENT;
	}
	*ret = kvs.v[0];
	kvs.v[0] = (struct etcd_kv){0};
	etcd_kvs_release(&kvs);
	return 0;
}

static int64_t header_revision(const json_t *j)
{
	return get_i64(json_object_get(j, "header"), "revision");
}

int etcd_put(struct etcd *e, const char *key, const char *value, size_t len, int64_t lease,
	     int64_t *ret_revision)
{
	json_t *req = json_object(), *j = NULL;
	json_object_set_new(req, "key", json_b64(key, strlen(key)));
	json_object_set_new(req, "value", json_b64(value, len));
	if (lease)
		json_object_set_new(req, "lease", json_rev(lease));
	int r = call(e, "/v3/kv/put", req, &j);
	json_decref(req);
	if (r < 0)
		return r;
	if (ret_revision)
		*ret_revision = header_revision(j);
	json_decref(j);
	return 0;
}

int etcd_delete(struct etcd *e, const char *key, const char *range_end, int64_t *ret_deleted)
{
	json_t *req = json_object(), *j = NULL;
	json_object_set_new(req, "key", json_b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(req, "range_end",
				    json_b64(range_end, *range_end ? strlen(range_end) : 1));
	int r = call(e, "/v3/kv/deleterange", req, &j);
	json_decref(req);
	if (r < 0)
		return r;
	if (ret_deleted)
		*ret_deleted = get_i64(j, "deleted");
	json_decref(j);
	return 0;
}

/* ---- transactions ---- */

void etcd_txn_init(struct etcd_txn *t)
{
	t->compare = json_array();
	t->success = json_array();
}

void etcd_txn_release(struct etcd_txn *t)
{
	json_decref(t->compare);
	json_decref(t->success);
	t->compare = t->success = NULL;
}

/* A comparison of a key's revision: target "MOD" or "CREATE", result "EQUAL" or "NOT_EQUAL". */
static void txn_cmp(struct etcd_txn *t, const char *key, const char *target, const char *result,
		    int64_t rev)
{
	json_t *c = json_object();
	json_object_set_new(c, "key", json_b64(key, strlen(key)));
	json_object_set_new(c, "target", json_string(target));
	json_object_set_new(c, "result", json_string(result));
	json_object_set_new(c, streq(target, "MOD") ? "mod_revision" : "create_revision",
			    json_rev(rev));
	json_array_append_new(t->compare, c);
}

void etcd_txn_cmp_mod(struct etcd_txn *t, const char *key, int64_t rev)
{
	txn_cmp(t, key, "MOD", "EQUAL", rev);
}

void etcd_txn_cmp_create(struct etcd_txn *t, const char *key, int64_t rev)
{
	txn_cmp(t, key, "CREATE", "EQUAL", rev);
}

void etcd_txn_cmp_exists(struct etcd_txn *t, const char *key)
{
	txn_cmp(t, key, "CREATE", "NOT_EQUAL", 0);
}

void etcd_txn_put(struct etcd_txn *t, const char *key, const char *value, size_t len, int64_t lease)
{
	json_t *p = json_object(), *op = json_object();
	json_object_set_new(p, "key", json_b64(key, strlen(key)));
	json_object_set_new(p, "value", json_b64(value, len));
	if (lease)
		json_object_set_new(p, "lease", json_rev(lease));
	json_object_set_new(op, "request_put", p);
	json_array_append_new(t->success, op);
}

void etcd_txn_delete(struct etcd_txn *t, const char *key, const char *range_end)
{
	json_t *d = json_object(), *op = json_object();
	json_object_set_new(d, "key", json_b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(d, "range_end",
				    json_b64(range_end, *range_end ? strlen(range_end) : 1));
	json_object_set_new(op, "request_delete_range", d);
	json_array_append_new(t->success, op);
}

int etcd_txn_commit(struct etcd *e, const struct etcd_txn *t, bool *ret_succeeded,
		    int64_t *ret_revision)
{
	json_t *req = json_object(), *j = NULL;
	json_object_set(req, "compare", t->compare);
	json_object_set(req, "success", t->success);
	int r = call(e, "/v3/kv/txn", req, &j);
	json_decref(req);
	if (r < 0)
		return r;
	*ret_succeeded = json_is_true(json_object_get(j, "succeeded"));
	if (ret_revision)
		*ret_revision = header_revision(j);
	json_decref(j);
	return 0;
}

int etcd_txn_finish(struct etcd *e, struct etcd_txn *t, int failed)
{
	bool ok = false;
	int r = etcd_txn_commit(e, t, &ok, NULL);
	etcd_txn_release(t);
	if (r < 0)
		return r;
	return ok ? 0 : failed;
}

/* ---- leases ---- */

/* POST {key: v} to a lease endpoint. */
static int lease_call(struct etcd *e, const char *path, const char *key, int64_t v, json_t **ret)
{
	json_t *req = json_object();
	json_object_set_new(req, key, json_rev(v));
	int r = call(e, path, req, ret);
	json_decref(req);
	return r;
}

int etcd_lease_grant(struct etcd *e, int64_t ttl_s, int64_t *ret_id)
{
	json_t *j = NULL;
	int r = lease_call(e, "/v3/lease/grant", "TTL", ttl_s, &j);
	if (r < 0)
		return r;
	int64_t id = get_i64(j, "ID");
	json_decref(j);
	if (id == 0)
		return -EIO;
	*ret_id = id;
	return 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ret_ttl)
{
	json_t *j = NULL;
	int r = lease_call(e, "/v3/lease/keepalive", "ID", id, &j);
	if (r < 0)
		return r;
	/* a stream of one message: {"result": {...}}; no TTL means the lease is gone */
	*ret_ttl = get_i64(json_object_get(j, "result"), "TTL");
	json_decref(j);
	return 0;
}

int etcd_lease_revoke(struct etcd *e, int64_t id)
{
	json_t *j = NULL;
	int r = lease_call(e, "/v3/lease/revoke", "ID", id, &j);
	if (r == -ENOENT)
		return 0;
	json_decref(j);
	return r;
}

/* ---- watch ---- */

struct watch_state {
	struct strbuf line;
	etcd_watch_fn fn;
	void *userdata;
	int64_t compact_revision;
	int64_t last_revision;
	bool created;
	int error;
	struct etcd *e;
	size_t idx; /* the member watched */
	usec_t started;
};

/*
 * A watch stream is idle while nothing changes, so a member that hangs (not dies) would hold
 * it forever, silently. It ends when the member has not even confirmed the watch within the
 * call timeout (marked failed: the next member is tried), or when a unary call has found
 * this member failing and moved on (the caller resumes on the member that answers).
 */
static int watch_progress(void *userdata)
{
	struct watch_state *w = userdata;
	struct etcd *e = w->e;
	usec_t now = now_monotonic_usec();
	if (!w->created && now - w->started > (usec_t)e->timeout_s * 1000000) {
		endpoint_mark_failed(e, w->idx);
		return 1;
	}
	return atomic_load(&e->current) != w->idx && endpoint_failed(e, w->idx, now);
}

static int watch_message(struct watch_state *w, const json_t *msg)
{
	json_t *res = json_object_get(msg, "result");
	if (!res) {
		w->error = -ECONNRESET; /* {"error": ...}: the stream broke on the server side */
		return w->error;
	}
	if (json_is_true(json_object_get(res, "created")))
		w->created = true;
	int64_t compact = get_i64(res, "compact_revision");
	if (compact) {
		w->compact_revision = compact;
		w->error = -ERANGE;
		return w->error;
	}
	if (json_is_true(json_object_get(res, "canceled"))) {
		w->error = -ECONNRESET;
		return w->error;
	}
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(res, "events"), i, ev)
	{
		struct etcd_event e = {0};
		const char *type = json_string_value(json_object_get(ev, "type"));
		e.type = type && streq(type, "DELETE") ? ETCD_EVENT_DELETE : ETCD_EVENT_PUT;
		json_t *kvj = json_object_get(ev, "kv");
		if (parse_kv(kvj, &e.kv) < 0) {
			e = (struct etcd_event){.type = ETCD_EVENT_UNPARSABLE};
			e.kv.mod_revision = get_i64(kvj, "mod_revision");
		}
		json_t *prev = json_object_get(ev, "prev_kv");
		if (prev && e.type != ETCD_EVENT_UNPARSABLE && parse_kv(prev, &e.prev_kv) == 0)
			e.has_prev = true;
		w->last_revision = e.kv.mod_revision;
		int r = w->fn(w->userdata, &e);
		etcd_kv_release(&e.kv);
		etcd_kv_release(&e.prev_kv);
		if (r < 0) {
			w->error = r;
			return r;
		}
	}
	return 0;
}

static int watch_write(void *userdata, long status, const void *data, size_t len)
{
	(void)status;
	struct watch_state *w = userdata;
	const char *p = data, *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (strbuf_add(&w->line, p, n) < 0)
			return -EFBIG;
		p += n;
		if (!nl)
			break;
		p++;
		json_t *msg = json_loadb(w->line.buf, w->line.len, 0, NULL);
		strbuf_reset(&w->line);
		if (!msg)
			continue;
		int r = watch_message(w, msg);
		json_decref(msg);
		if (r < 0)
			return r;
	}
	return 0;
}

int etcd_watch(struct etcd *e, const char *key, const char *range_end, int64_t start_revision,
	       etcd_watch_fn fn, void *userdata, int64_t *ret_compact_revision)
{
	json_t *cr = json_object(), *req = json_object();
	json_object_set_new(cr, "key", json_b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(cr, "range_end",
				    json_b64(range_end, *range_end ? strlen(range_end) : 1));
	if (start_revision)
		json_object_set_new(cr, "start_revision", json_rev(start_revision));
	json_object_set_new(cr, "prev_kv", json_true());
	json_object_set_new(req, "create_request", cr);
	_cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);

	_cleanup_free_ size_t *order = endpoint_order(e);
	for (size_t attempt = 0; attempt < e->endpoints.nr; attempt++) {
		size_t idx = order[attempt];
		_cleanup_free_ char *url = xasprintf("%s/v3/watch", e->endpoints.v[idx]);
		struct strvec headers = STRVEC_INIT;
		strvec_push(&headers, "Content-Type: application/json");
		struct watch_state w = {.fn = fn,
					.userdata = userdata,
					.e = e,
					.idx = idx,
					.started = now_monotonic_usec()};
		strbuf_init(&w.line, WATCH_LINE_CAP);
		struct http_request q = {.method = "POST",
					 .url = url,
					 .headers = &headers,
					 .body = body,
					 .body_len = strlen(body),
					 .write_fn = watch_write,
					 .write_userdata = &w,
					 .progress_fn = watch_progress,
					 .progress_userdata = &w};
		struct http_response resp = HTTP_RESPONSE_INIT;
		int r = http_perform(e->http_watch, &q, &resp);
		long status = resp.status;
		http_response_release(&resp);
		strvec_clear(&headers);
		strbuf_release(&w.line);
		if (w.error == -ERANGE) {
			if (ret_compact_revision)
				*ret_compact_revision = w.compact_revision;
			return -ERANGE;
		}
		if (w.error < 0 && w.error != -ECONNRESET)
			return w.error;
		if (r < 0 && r != -ECANCELED)
			endpoint_mark_failed(e, idx); /* refused, reset, or not even created */
		if (w.created || w.last_revision)
			return -ECONNRESET; /* it ran, then ended: the caller resumes after it */
		(void)status;
	}
	return -ENOTCONN;
}
