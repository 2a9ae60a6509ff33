// SPDX-License-Identifier: Apache-2.0
#include "orchard/store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/macro.h"

struct store {
	struct etcd *etcd;
	char *prefix;
};

int store_open(const char *endpoints, const char *prefix, struct store **ret)
{
	struct store *s = xcalloc(1, sizeof(*s));
	int r = etcd_new(endpoints, 5, &s->etcd);
	if (r < 0) {
		free(s);
		return r;
	}
	s->prefix = xstrdup(prefix ? prefix : STORE_DEFAULT_PREFIX);
	*ret = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	etcd_free(s->etcd);
	free(s->prefix);
	free(s);
}

struct etcd *store_etcd(struct store *s)
{
	return s->etcd;
}

const char *store_prefix(const struct store *s)
{
	return s->prefix;
}

char *store_key(const struct store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *rest = xvasprintf(fmt, ap);
	va_end(ap);
	char *k = xasprintf("%s%s", s->prefix, rest);
	free(rest);
	return k;
}

/* ---- generic helpers: typed parse of a stored value ---- */

typedef int (*parse_fn)(const json_t *j, unsigned flags, void *ret, char **ret_error);

static int parse_value(const struct etcd_kv *kv, parse_fn fn, void *ret)
{
	json_t *j = json_loadb(kv->value, kv->value_len, 0, NULL);
	if (!j)
		return -EBADMSG;
	int r = fn(j, 0, ret, NULL);
	json_decref(j);
	return r;
}

static char *dump_new(json_t *j)
{
	char *s = orchard_json_dump(j);
	json_decref(j);
	return s;
}

/* Get one object and parse it; *ret_mod its mod_revision. */
static int get_parsed_kv(struct store *s, const char *key, parse_fn fn, void *ret, int64_t *ret_mod,
			 int64_t *ret_create)
{
	struct etcd_kv kv;
	int r = etcd_get(s->etcd, key, &kv, NULL);
	if (r < 0)
		return r;
	r = parse_value(&kv, fn, ret);
	if (r == 0 && ret_mod)
		*ret_mod = kv.mod_revision;
	if (r == 0 && ret_create)
		*ret_create = kv.create_revision;
	etcd_kv_release(&kv);
	return r;
}

static int get_parsed(struct store *s, const char *key, parse_fn fn, void *ret, int64_t *ret_mod)
{
	return get_parsed_kv(s, key, fn, ret, ret_mod, NULL);
}

/* Range a prefix at a revision. */
static int range_prefix(struct store *s, const char *sub, int64_t revision, struct etcd_kvs *ret)
{
	_cleanup_free_ char *k = store_key(s, "%s", sub);
	_cleanup_free_ char *end = etcd_prefix_end(k);
	return etcd_range(s->etcd, k, end, revision, 0, false, false, ret);
}

/* ---- VMs ---- */

char *store_vm_serialize(const struct orchard_vm *vm)
{
	json_t *j = orchard_vm_to_json(vm);
	json_object_del(j, "version");
	return dump_new(j);
}

int store_vm_get(struct store *s, const char *name, struct orchard_vm *ret, int64_t *ret_mod)
{
	_cleanup_free_ char *k = store_key(s, "vms/%s", name);
	int64_t mod = 0;
	int r = get_parsed(s, k, (parse_fn)orchard_vm_from_json, ret, &mod);
	if (r == 0) {
		ret->meta.version = (uint64_t)mod;
		if (ret_mod)
			*ret_mod = mod;
	}
	return r;
}

int store_vm_list(struct store *s, int64_t revision, struct orchard_vm **ret, size_t *ret_n,
		  int64_t **ret_mods, int64_t *ret_revision)
{
	struct etcd_kvs kvs;
	int r = range_prefix(s, "vms/", revision, &kvs);
	if (r < 0)
		return r;
	struct orchard_vm *v = kvs.n ? xcalloc(kvs.n, sizeof(*v)) : NULL;
	int64_t *mods = kvs.n ? xcalloc(kvs.n, sizeof(*mods)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < kvs.n; i++) {
		/* an object that does not parse is skipped rather than hiding all the others */
		if (parse_value(&kvs.v[i], (parse_fn)orchard_vm_from_json, &v[n]) < 0)
			continue;
		v[n].meta.version = (uint64_t)kvs.v[i].mod_revision;
		mods[n++] = kvs.v[i].mod_revision;
	}
	if (ret_revision)
		*ret_revision = kvs.revision;
	etcd_kvs_release(&kvs);
	*ret = v;
	*ret_n = n;
	if (ret_mods)
		*ret_mods = mods;
	else
		free(mods);
	return 0;
}

static int put_if_mod(struct store *s, const char *key, const char *value, int64_t mod)
{
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, key, mod);
	etcd_txn_put(&t, key, value, strlen(value), 0);
	return etcd_txn_finish(s->etcd, &t, -EAGAIN);
}

int store_vm_create(struct store *s, const struct orchard_vm *vm)
{
	_cleanup_free_ char *k = store_key(s, "vms/%s", vm->meta.name);
	_cleanup_free_ char *v = store_vm_serialize(vm);
	int r = put_if_mod(s, k, v, 0);
	return r == -EAGAIN ? -EEXIST : r;
}

int store_vm_cas(struct store *s, const struct orchard_vm *vm, int64_t mod)
{
	_cleanup_free_ char *k = store_key(s, "vms/%s", vm->meta.name);
	_cleanup_free_ char *v = store_vm_serialize(vm);
	return put_if_mod(s, k, v, mod);
}

int store_vm_update(struct store *s, const char *name, store_vm_mutate_fn fn, void *userdata,
		    struct orchard_vm *ret)
{
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct orchard_vm vm = {0};
		int64_t mod;
		int r = store_vm_get(s, name, &vm, &mod);
		if (r < 0)
			return r;
		r = fn(&vm, userdata);
		if (r < 0) {
			orchard_vm_release(&vm);
			return r;
		}
		if (r > 0) {
			r = store_vm_cas(s, &vm, mod);
			if (r == -EAGAIN) {
				orchard_vm_release(&vm);
				continue;
			}
			if (r < 0) {
				orchard_vm_release(&vm);
				return r;
			}
		}
		if (ret) {
			/* the version a client sees next is what etcd gave the write; re-read it */
			orchard_vm_release(&vm);
			int g = store_vm_get(s, name, ret, NULL);
			return g == -ENOENT ? -EAGAIN : g;
		}
		orchard_vm_release(&vm);
		return 0;
	}
	return -EAGAIN;
}

int store_vm_delete(struct store *s, const char *name)
{
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct orchard_vm vm = {0};
		int64_t mod;
		int r = store_vm_get(s, name, &vm, &mod);
		if (r < 0)
			return r;
		_cleanup_free_ char *k = store_key(s, "vms/%s", name);
		_cleanup_free_ char *ev = store_key(s, "events/%s/", vm.uid ? vm.uid : "");
		_cleanup_free_ char *ev_end = etcd_prefix_end(ev);
		orchard_vm_release(&vm);
		struct etcd_txn t;
		etcd_txn_init(&t);
		etcd_txn_cmp_mod(&t, k, mod);
		etcd_txn_delete(&t, k, NULL);
		etcd_txn_delete(&t, ev, ev_end);
		r = etcd_txn_finish(s->etcd, &t, -EAGAIN);
		if (r != -EAGAIN)
			return r;
	}
	return -EAGAIN;
}

/* ---- workers ---- */

static int64_t seen_from_kv(const struct etcd_kv *kv)
{
	int64_t ns = 0;
	if (kv && orchard_time_parse(kv->value, &ns) < 0)
		ns = 0;
	return ns;
}

int store_worker_get(struct store *s, const char *name, struct orchard_worker *ret,
		     bool *ret_online)
{
	_cleanup_free_ char *k = store_key(s, "workers/%s", name);
	struct etcd_kv kv;
	int64_t rev;
	int r = etcd_get(s->etcd, k, &kv, &rev);
	if (r < 0)
		return r;
	struct orchard_worker w = {0};
	r = parse_value(&kv, (parse_fn)orchard_worker_from_json, &w);
	etcd_kv_release(&kv);
	if (r < 0)
		return r;
	_cleanup_free_ char *seen = store_key(s, "live/seen/%s", name);
	_cleanup_free_ char *alive = store_key(s, "live/alive/%s", name);
	struct etcd_kvs kvs;
	r = etcd_range(s->etcd, seen, NULL, rev, 0, false, false, &kvs);
	if (r == 0) {
		if (kvs.n && seen_from_kv(&kvs.v[0]) > w.last_seen)
			w.last_seen = seen_from_kv(&kvs.v[0]);
		etcd_kvs_release(&kvs);
		if (ret_online) {
			r = etcd_range(s->etcd, alive, NULL, rev, 0, true, false, &kvs);
			if (r == 0) {
				*ret_online = kvs.n > 0;
				etcd_kvs_release(&kvs);
			}
		}
	}
	if (r < 0) {
		orchard_worker_release(&w);
		return r;
	}
	*ret = w;
	return 0;
}

static ssize_t find_kv(const struct etcd_kvs *kvs, const char *key)
{
	size_t lo = 0, hi = kvs->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(kvs->v[mid].key, key);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int store_worker_list(struct store *s, int64_t revision, struct orchard_worker **ret, size_t *ret_n,
		      struct store_worker_info **ret_info, int64_t *ret_revision)
{
	struct etcd_kvs kvs = {0}, seen = {0}, alive = {0}, alloc = {0};
	int r = range_prefix(s, "workers/", revision, &kvs);
	if (r < 0)
		return r;
	revision = kvs.revision;
	if ((r = range_prefix(s, "live/seen/", revision, &seen)) < 0 ||
	    (r = range_prefix(s, "live/alive/", revision, &alive)) < 0 ||
	    (r = range_prefix(s, "live/alloc/", revision, &alloc)) < 0) {
		etcd_kvs_release(&kvs);
		etcd_kvs_release(&seen);
		etcd_kvs_release(&alive);
		etcd_kvs_release(&alloc);
		return r;
	}
	struct orchard_worker *v = kvs.n ? xcalloc(kvs.n, sizeof(*v)) : NULL;
	struct store_worker_info *info = kvs.n ? xcalloc(kvs.n, sizeof(*info)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < kvs.n; i++) {
		if (parse_value(&kvs.v[i], (parse_fn)orchard_worker_from_json, &v[n]) < 0)
			continue;
		const char *name = v[n].meta.name ? v[n].meta.name : "";
		_cleanup_free_ char *ks = store_key(s, "live/seen/%s", name);
		_cleanup_free_ char *ka = store_key(s, "live/alive/%s", name);
		_cleanup_free_ char *kl = store_key(s, "live/alloc/%s", name);
		ssize_t si = find_kv(&seen, ks), li = find_kv(&alloc, kl);
		if (si >= 0 && seen_from_kv(&seen.v[si]) > v[n].last_seen)
			v[n].last_seen = seen_from_kv(&seen.v[si]);
		info[n].online = find_kv(&alive, ka) >= 0;
		info[n].mod = kvs.v[i].mod_revision;
		info[n].alloc_mod = li >= 0 ? alloc.v[li].mod_revision : 0;
		n++;
	}
	etcd_kvs_release(&kvs);
	etcd_kvs_release(&seen);
	etcd_kvs_release(&alive);
	etcd_kvs_release(&alloc);
	*ret = v;
	*ret_n = n;
	if (ret_info)
		*ret_info = info;
	else
		free(info);
	if (ret_revision)
		*ret_revision = revision;
	return 0;
}

/*
 * Add the puts that record last_seen and mark a worker alive (a fresh lease). A heartbeat
 * whose last_seen is older than the offline timeout already (a late or replayed one) is
 * recorded but marks nothing alive: Orchard would count that worker offline too.
 */
static int add_alive(struct store *s, struct etcd_txn *t, const char *name, int64_t last_seen,
		     int64_t ttl_s)
{
	char ts[ORCHARD_TIME_MAX];
	orchard_time_format(last_seen, ts);
	_cleanup_free_ char *ks = store_key(s, "live/seen/%s", name);
	_cleanup_free_ char *ka = store_key(s, "live/alive/%s", name);
	etcd_txn_put(t, ks, ts, strlen(ts), 0);
	if (ttl_s <= 0)
		ttl_s = 1;
	if (last_seen < orchard_now() - ttl_s * 1000000000)
		return 0;
	int64_t lease;
	int r = etcd_lease_grant(s->etcd, ttl_s, &lease);
	if (r < 0)
		return r;
	/* the key moves to the new lease; the old one expires with nothing attached */
	etcd_txn_put(t, ka, ts, strlen(ts), lease);
	return 0;
}

int store_worker_register(struct store *s, const struct orchard_worker *w, int64_t ttl_s,
			  struct orchard_worker *ret)
{
	_cleanup_free_ char *k = store_key(s, "workers/%s", w->meta.name);
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct etcd_kv kv;
		struct orchard_worker cur = {0};
		int64_t mod = 0;
		int r = etcd_get(s->etcd, k, &kv, NULL);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == 0) {
			mod = kv.mod_revision;
			r = parse_value(&kv, (parse_fn)orchard_worker_from_json, &cur);
			etcd_kv_release(&kv);
			if (r < 0)
				return r;
			if (!streq(cur.machine_id ? cur.machine_id : "",
				   w->machine_id ? w->machine_id : "")) {
				orchard_worker_release(&cur);
				return -EEXIST;
			}
			/* keep scheduling_paused, createdAt, name; take the rest */
			struct orchard_worker next;
			orchard_worker_copy(w, &next);
			next.scheduling_paused = cur.scheduling_paused;
			next.meta.created_at = cur.meta.created_at;
			orchard_worker_release(&cur);
			cur = next;
		} else {
			orchard_worker_copy(w, &cur);
		}
		_cleanup_free_ char *v = dump_new(orchard_worker_to_json(&cur));
		struct etcd_txn t;
		etcd_txn_init(&t);
		etcd_txn_cmp_mod(&t, k, mod);
		etcd_txn_put(&t, k, v, strlen(v), 0);
		r = add_alive(s, &t, w->meta.name, cur.last_seen, ttl_s);
		bool ok = false;
		if (r == 0)
			r = etcd_txn_commit(s->etcd, &t, &ok, NULL);
		etcd_txn_release(&t);
		if (r < 0) {
			orchard_worker_release(&cur);
			return r;
		}
		if (ok) {
			if (ret)
				*ret = cur;
			else
				orchard_worker_release(&cur);
			return 0;
		}
		orchard_worker_release(&cur);
	}
	return -EAGAIN;
}

int store_worker_update(struct store *s, const struct orchard_worker *w, int64_t ttl_s,
			struct orchard_worker *ret)
{
	_cleanup_free_ char *k = store_key(s, "workers/%s", w->meta.name ? w->meta.name : "");
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct orchard_worker cur = {0};
		int64_t mod = 0;
		int r = get_parsed(s, k, (parse_fn)orchard_worker_from_json, &cur, &mod);
		if (r < 0)
			return r;
		struct etcd_txn t;
		etcd_txn_init(&t);
		etcd_txn_cmp_mod(&t, k, mod);
		if (cur.scheduling_paused != w->scheduling_paused) {
			cur.scheduling_paused = w->scheduling_paused;
			_cleanup_free_ char *v = dump_new(orchard_worker_to_json(&cur));
			etcd_txn_put(&t, k, v, strlen(v), 0);
		}
		if (w->last_seen) {
			cur.last_seen = w->last_seen;
			r = add_alive(s, &t, w->meta.name, w->last_seen, ttl_s);
		}
		bool ok = false;
		if (r == 0)
			r = etcd_txn_commit(s->etcd, &t, &ok, NULL);
		etcd_txn_release(&t);
		if (r < 0 || !ok) {
			orchard_worker_release(&cur);
			if (r < 0)
				return r;
			continue;
		}
		if (ret) {
			orchard_worker_release(&cur);
			return store_worker_get(s, w->meta.name, ret, NULL);
		}
		orchard_worker_release(&cur);
		return 0;
	}
	return -EAGAIN;
}

int store_worker_delete(struct store *s, const char *name)
{
	_cleanup_free_ char *k = store_key(s, "workers/%s", name);
	_cleanup_free_ char *ks = store_key(s, "live/seen/%s", name);
	_cleanup_free_ char *ka = store_key(s, "live/alive/%s", name);
	_cleanup_free_ char *kl = store_key(s, "live/alloc/%s", name);
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_exists(&t, k);
	etcd_txn_delete(&t, k, NULL);
	etcd_txn_delete(&t, ks, NULL);
	etcd_txn_delete(&t, ka, NULL);
	etcd_txn_delete(&t, kl, NULL);
	return etcd_txn_finish(s->etcd, &t, -ENOENT);
}

/* ---- service accounts ---- */

int store_sa_get(struct store *s, const char *name, struct orchard_service_account *ret)
{
	_cleanup_free_ char *k = store_key(s, "service-accounts/%s", name);
	return get_parsed(s, k, (parse_fn)orchard_service_account_from_json, ret, NULL);
}

int store_sa_list(struct store *s, struct orchard_service_account **ret, size_t *ret_n)
{
	struct etcd_kvs kvs;
	int r = range_prefix(s, "service-accounts/", 0, &kvs);
	if (r < 0)
		return r;
	struct orchard_service_account *v = kvs.n ? xcalloc(kvs.n, sizeof(*v)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < kvs.n; i++)
		if (parse_value(&kvs.v[i], (parse_fn)orchard_service_account_from_json, &v[n]) == 0)
			n++;
	etcd_kvs_release(&kvs);
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_sa_count(struct store *s, size_t *ret)
{
	_cleanup_free_ char *k = store_key(s, "service-accounts/");
	_cleanup_free_ char *end = etcd_prefix_end(k);
	struct etcd_kvs kvs;
	int r = etcd_range(s->etcd, k, end, 0, 0, true, false, &kvs);
	if (r < 0)
		return r;
	*ret = kvs.n;
	etcd_kvs_release(&kvs);
	return 0;
}

int store_sa_put(struct store *s, const struct orchard_service_account *sa, bool overwrite)
{
	_cleanup_free_ char *k = store_key(s, "service-accounts/%s", sa->meta.name);
	_cleanup_free_ char *v = dump_new(orchard_service_account_to_json(sa));
	if (overwrite)
		return etcd_put(s->etcd, k, v, strlen(v), 0, NULL);
	int r = put_if_mod(s, k, v, 0);
	return r == -EAGAIN ? -EEXIST : r;
}

int store_sa_update(struct store *s, const struct orchard_service_account *sa,
		    struct orchard_service_account *ret)
{
	_cleanup_free_ char *k = store_key(s, "service-accounts/%s", sa->meta.name);
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct orchard_service_account cur = {0};
		int64_t mod = 0;
		int r = get_parsed(s, k, (parse_fn)orchard_service_account_from_json, &cur, &mod);
		if (r < 0)
			return r;
		free(cur.token);
		cur.token = xstrdup(sa->token ? sa->token : "");
		orchard_strv_release(&cur.roles);
		for (size_t i = 0; i < sa->roles.n; i++)
			orchard_strv_push(&cur.roles, sa->roles.v[i]);
		_cleanup_free_ char *v = dump_new(orchard_service_account_to_json(&cur));
		r = put_if_mod(s, k, v, mod);
		if (r == 0 && ret) {
			*ret = cur;
			return 0;
		}
		orchard_service_account_release(&cur);
		if (r != -EAGAIN)
			return r;
	}
	return -EAGAIN;
}

int store_sa_delete(struct store *s, const char *name)
{
	_cleanup_free_ char *k = store_key(s, "service-accounts/%s", name);
	int64_t n = 0;
	int r = etcd_delete(s->etcd, k, NULL, &n);
	if (r < 0)
		return r;
	return n ? 0 : -ENOENT;
}

/* ---- cluster settings ---- */

int store_cluster_settings_get(struct store *s, struct orchard_cluster_settings *ret)
{
	_cleanup_free_ char *k = store_key(s, "cluster-settings");
	struct etcd_kv kv;
	int r = etcd_get(s->etcd, k, &kv, NULL);
	if (r == -ENOENT) {
		*ret = (struct orchard_cluster_settings){0};
		ret->scheduler_profile = xstrdup(ORCHARD_PROFILE_OPTIMIZE_UTILIZATION);
		return 0;
	}
	if (r < 0)
		return r;
	r = parse_value(&kv, (parse_fn)orchard_cluster_settings_from_json, ret);
	etcd_kv_release(&kv);
	return r;
}

int store_cluster_settings_put(struct store *s, const struct orchard_cluster_settings *cs)
{
	_cleanup_free_ char *k = store_key(s, "cluster-settings");
	_cleanup_free_ char *v = dump_new(orchard_cluster_settings_to_json(cs));
	return etcd_put(s->etcd, k, v, strlen(v), 0, NULL);
}

/* ---- events ---- */

int store_events_append(struct store *s, const char *vm_name, const struct orchard_event *ev,
			size_t n)
{
	for (int attempt = 0; attempt < STORE_RETRIES; attempt++) {
		struct orchard_vm vm = {0};
		int64_t created;
		_cleanup_free_ char *k = store_key(s, "vms/%s", vm_name);
		int r = get_parsed_kv(s, k, (parse_fn)orchard_vm_from_json, &vm, NULL, &created);
		if (r < 0)
			return r;
		int64_t injected = orchard_now();
		struct etcd_txn t;
		etcd_txn_init(&t);
		/*
		 * The VM still exists and is the one we read (deleted and recreated, it has another
		 * uid and another create_revision). Its state may have changed meanwhile: workers
		 * report it often, and comparing the mod_revision made appends lose to those
		 * reports.
		 */
		etcd_txn_cmp_create(&t, k, created);
		for (size_t i = 0; i < n; i++) {
			int64_t ts = ev[i].timestamp < 0 ? 0 : ev[i].timestamp;
			_cleanup_free_ char *ek =
			    store_key(s, "events/%s/%020" PRId64 "-%020" PRId64 "-%06zu",
				      vm.uid ? vm.uid : "", ts, injected, i);
			_cleanup_free_ char *v = dump_new(orchard_event_to_json(&ev[i]));
			etcd_txn_put(&t, ek, v, strlen(v), 0);
		}
		orchard_vm_release(&vm);
		r = etcd_txn_finish(s->etcd, &t, -EAGAIN);
		if (r != -EAGAIN)
			return r;
	}
	return -EAGAIN;
}

int store_events_list(struct store *s, const char *vm_uid, size_t limit, bool descending,
		      const char *cursor, struct store_events_page *ret)
{
	_cleanup_free_ char *prefix = store_key(s, "events/%s/", vm_uid);
	_cleanup_free_ char *pend = etcd_prefix_end(prefix);
	_cleanup_free_ char *from = NULL, *to = NULL;
	if (!descending) {
		/* keys after the cursor: [prefix+cursor+"\0", end) */
		if (cursor)
			from = xasprintf("%s%s%c", prefix, cursor, 1);
		else
			from = xstrdup(prefix);
		/* "\1" sorts right after the cursor key itself: no key of ours contains \0 or \1 */
		to = xstrdup(pend);
	} else {
		from = xstrdup(prefix);
		to = cursor ? xasprintf("%s%s", prefix, cursor) : xstrdup(pend);
	}
	/* one more than asked shows whether there is a next page; a limit no range can reach
	 * (?limit=9223372036854775807) is no limit, not a signed overflow */
	int64_t want = limit && limit < (size_t)INT64_MAX ? (int64_t)limit + 1 : 0;
	struct etcd_kvs kvs;
	int r = etcd_range(s->etcd, from, to, 0, want, false, descending, &kvs);
	if (r < 0)
		return r;
	struct store_events_page p = {0};
	size_t take = limit && kvs.n > limit ? limit : kvs.n;
	p.items = take ? xcalloc(take, sizeof(*p.items)) : NULL;
	for (size_t i = 0; i < take; i++)
		if (parse_value(&kvs.v[i], (parse_fn)orchard_event_from_json, &p.items[p.n]) == 0)
			p.n++;
	if (limit && kvs.n > limit)
		p.next_cursor = xstrdup(kvs.v[take - 1].key + strlen(prefix));
	etcd_kvs_release(&kvs);
	*ret = p;
	return 0;
}

void store_events_page_release(struct store_events_page *p)
{
	orchard_event_list_free(p->items, p->n);
	free(p->next_cursor);
	*p = (struct store_events_page){0};
}
