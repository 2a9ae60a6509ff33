// SPDX-License-Identifier: Apache-2.0
/*
 * How controllers reach workers and each other through etcd (docs/orchard.md, "Several
 * controllers"):
 *
 *  - live/controllers/<id>  {"url", "cert"} of every running controller, on its lease;
 *  - live/watchers/<worker> the id of the controller holding the worker's watch channel;
 *  - live/notify/<worker>/<id>  an instruction for the worker: whichever controller holds
 *    the worker's channel sends it (every controller watches live/);
 *  - live/sessions/<id>     the controller waiting for a dial-back with this session;
 *  - live/answers/<id>      a worker's answer to resolveIP, for whoever waits for it.
 *
 * Keys written here hang on this controller's lease, so a controller that dies leaves
 * nothing behind for long. The lease keeper thread renews it and, after etcd comes back
 * from an outage that let it expire, takes a new one and writes those keys again.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchard/controller/internal.h"
#include "orchard/controller/sched.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

#define LEASE_TTL_S 10

static int64_t current_lease(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	int64_t l = c->lease;
	pthread_mutex_unlock(&c->lock);
	return l;
}

static int put_json(struct controller *c, const char *key, json_t *j, bool on_lease)
{
	char *v = orchard_json_dump(j);
	json_decref(j);
	int64_t lease = on_lease ? current_lease(c) : 0;
	int r = on_lease && !lease ? -ENOTCONN
				   : etcd_put(store_etcd(c->store), key, v, strlen(v), lease, NULL);
	free(v);
	return r;
}

int rpc_notify(struct controller *c, const char *worker, const char *id,
	       const struct orchard_watch_instruction *wi)
{
	_cleanup_free_ char *k = store_key(c->store, "live/notify/%s/%s", worker, id);
	return put_json(c, k, orchard_watch_instruction_to_json(wi), true);
}

int rpc_unnotify(struct controller *c, const char *worker, const char *id)
{
	_cleanup_free_ char *k = store_key(c->store, "live/notify/%s/%s", worker, id);
	return etcd_delete(store_etcd(c->store), k, NULL, NULL);
}

int rpc_worker_reachable(struct controller *c, const char *worker, bool *ret)
{
	_cleanup_free_ char *k = store_key(c->store, "live/watchers/%s", worker);
	struct etcd_kv kv;
	int r = etcd_get(store_etcd(c->store), k, &kv, NULL);
	if (r == -ENOENT) {
		*ret = false;
		return 0;
	}
	if (r < 0)
		return r;
	etcd_kv_release(&kv);
	*ret = true;
	return 0;
}

int rpc_session_register(struct controller *c, const char *session)
{
	_cleanup_free_ char *k = store_key(c->store, "live/sessions/%s", session);
	json_t *j = json_pack("{s:s}", "controller", c->id);
	return put_json(c, k, j, true);
}

void rpc_session_unregister(struct controller *c, const char *session)
{
	_cleanup_free_ char *k = store_key(c->store, "live/sessions/%s", session);
	_cleanup_free_ char *a = store_key(c->store, "live/answers/%s", session);
	(void)etcd_delete(store_etcd(c->store), k, NULL, NULL);
	(void)etcd_delete(store_etcd(c->store), a, NULL, NULL);
}

static int get_json(struct controller *c, const char *key, json_t **ret)
{
	struct etcd_kv kv;
	int r = etcd_get(store_etcd(c->store), key, &kv, NULL);
	if (r < 0)
		return r;
	*ret = json_loadb(kv.value, kv.value_len, 0, NULL);
	etcd_kv_release(&kv);
	return *ret ? 0 : -EBADMSG;
}

int rpc_session_owner(struct controller *c, const char *session, char **ret_url,
		      char **ret_cert_pem)
{
	_cleanup_free_ char *k = store_key(c->store, "live/sessions/%s", session);
	json_t *s, *ctl;
	int r = get_json(c, k, &s);
	if (r < 0)
		return r;
	const char *id = json_string_value(json_object_get(s, "controller"));
	bool ours = id && streq(id, c->id);
	_cleanup_free_ char *ck = id ? store_key(c->store, "live/controllers/%s", id) : NULL;
	json_decref(s);
	if (!ck)
		return -EBADMSG;
	if (ours) {
		/* a session of ours that no longer waits here (its removal failed while etcd was
		 * away): relaying to ourselves would loop, so it is stale; clean it up */
		(void)etcd_delete(store_etcd(c->store), k, NULL, NULL);
		return -ENOENT;
	}
	r = get_json(c, ck, &ctl);
	if (r < 0)
		return r;
	const char *url = json_string_value(json_object_get(ctl, "url"));
	const char *cert = json_string_value(json_object_get(ctl, "cert"));
	if (!url) {
		json_decref(ctl);
		return -EBADMSG;
	}
	*ret_url = xstrdup(url);
	*ret_cert_pem = cert && *cert ? xstrdup(cert) : NULL;
	json_decref(ctl);
	return 0;
}

int rpc_answer(struct controller *c, const char *session, const char *ip, const char *error)
{
	_cleanup_free_ char *k = store_key(c->store, "live/sessions/%s", session);
	struct etcd_kv kv;
	int r = etcd_get(store_etcd(c->store), k, &kv, NULL);
	if (r < 0)
		return r; /* -ENOENT: nobody waits for it (Orchard answers 404 too) */
	int64_t lease = kv.lease, mod = kv.mod_revision;
	etcd_kv_release(&kv);
	_cleanup_free_ char *a = store_key(c->store, "live/answers/%s", session);
	json_t *j = json_pack("{s:s,s:s}", "ip", ip, "errorMessage", error);
	char *v = orchard_json_dump(j);
	json_decref(j);
	/*
	 * On the waiting controller's lease: it goes away with that controller. And only while
	 * the session is still the one read: a waiter that gave up in between has deleted its
	 * answer key already, and a blind put would leave this one behind for the lifetime of
	 * that controller.
	 */
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, k, mod);
	etcd_txn_put(&t, a, v, strlen(v), lease);
	r = etcd_txn_finish(store_etcd(c->store), &t, -ENOENT);
	free(v);
	return r;
}

static int put_watcher(struct controller *c, const char *worker)
{
	_cleanup_free_ char *k = store_key(c->store, "live/watchers/%s", worker);
	int64_t lease = current_lease(c);
	if (!lease)
		return -ENOTCONN;
	return etcd_put(store_etcd(c->store), k, c->id, strlen(c->id), lease, NULL);
}

int rpc_hold_worker(struct controller *c, const char *worker)
{
	pthread_mutex_lock(&c->lock);
	orchard_strv_push(&c->held_workers, worker);
	pthread_mutex_unlock(&c->lock);
	return put_watcher(c, worker);
}

void rpc_release_worker(struct controller *c, const char *worker)
{
	bool still = false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->held_workers.n; i++) {
		if (!streq(c->held_workers.v[i], worker))
			continue;
		free(c->held_workers.v[i]);
		memmove(&c->held_workers.v[i], &c->held_workers.v[i + 1],
			(c->held_workers.n - i - 1) * sizeof(char *));
		c->held_workers.n--;
		break;
	}
	still = orchard_strv_contains(&c->held_workers, worker);
	pthread_mutex_unlock(&c->lock);
	if (still)
		return;
	/* delete only our own claim: the worker may already have reconnected elsewhere */
	_cleanup_free_ char *k = store_key(c->store, "live/watchers/%s", worker);
	struct etcd_kv kv;
	if (etcd_get(store_etcd(c->store), k, &kv, NULL) < 0)
		return;
	bool ours = streq(kv.value, c->id);
	int64_t mod = kv.mod_revision;
	etcd_kv_release(&kv);
	if (!ours)
		return;
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, k, mod);
	etcd_txn_delete(&t, k, NULL);
	bool ok;
	(void)etcd_txn_commit(store_etcd(c->store), &t, &ok, NULL);
	etcd_txn_release(&t);
}

/* ---- the lease keeper ---- */

static int register_controller(struct controller *c, int64_t lease)
{
	_cleanup_free_ char *k = store_key(c->store, "live/controllers/%s", c->id);
	json_t *j = json_pack("{s:s,s:s}", "url", c->url, "cert", c->cert_pem ? c->cert_pem : "");
	char *v = orchard_json_dump(j);
	json_decref(j);
	int r = etcd_put(store_etcd(c->store), k, v, strlen(v), lease, NULL);
	free(v);
	return r;
}

static void *lease_keeper(void *userdata)
{
	struct controller *c = userdata;
	for (;;) {
		int64_t lease = current_lease(c);
		int64_t ttl = 0;
		int r = lease ? etcd_lease_keepalive(store_etcd(c->store), lease, &ttl) : -ENOENT;
		if (r == 0 && ttl > 0) {
			sleep_usec(LEASE_TTL_S * 1000000 / 3);
			continue;
		}
		if (r == -ENOTCONN) {
			/* etcd away: keep the lease id; it may still be alive when etcd returns */
			sleep_usec(1000000);
			continue;
		}
		/* expired or never had one: a new lease, then everything that hangs on it */
		int64_t nl;
		if (etcd_lease_grant(store_etcd(c->store), LEASE_TTL_S, &nl) < 0 ||
		    register_controller(c, nl) < 0) {
			sleep_usec(1000000);
			continue;
		}
		pthread_mutex_lock(&c->lock);
		c->lease = nl;
		c->lease_generation++;
		struct orchard_strv held = {0};
		for (size_t i = 0; i < c->held_workers.n; i++)
			orchard_strv_push(&held, c->held_workers.v[i]);
		pthread_mutex_unlock(&c->lock);
		for (size_t i = 0; i < held.n; i++)
			(void)put_watcher(c, held.v[i]);
		orchard_strv_release(&held);
		if (lease)
			log_notice("controller lease renewed after an etcd outage");
	}
	return NULL;
}

int lease_keeper_start(struct controller *c)
{
	/* the first lease now, so that the API can rely on it from the start */
	int64_t lease;
	int r = etcd_lease_grant(store_etcd(c->store), LEASE_TTL_S, &lease);
	if (r == 0)
		r = register_controller(c, lease);
	if (r == 0) {
		pthread_mutex_lock(&c->lock);
		c->lease = lease;
		pthread_mutex_unlock(&c->lock);
	} else {
		log_warning_errno(r, "cannot register with etcd yet; retrying in the background");
	}
	pthread_t t;
	r = -pthread_create(&t, NULL, lease_keeper, c);
	if (r == 0)
		pthread_detach(t);
	return r;
}

/* ---- the watchers ---- */

struct watcher {
	struct controller *c;
	enum ctl_event_source source;
	const char *sub; /* "vms/" or "live/" */
	int64_t next;
	bool warned_unparsable;
};

/*
 * Whether a VM version calls for a scheduling round now: one waiting for a worker, or a failed
 * one (health checks). Workers report state often; those reports wait for the next tick.
 */
static bool vm_needs_scheduler(const char *value, size_t len)
{
	json_t *j = json_loadb(value, len, 0, NULL);
	struct orchard_vm vm = {0};
	bool r = j && orchard_vm_from_json(j, 0, &vm, NULL) == 0 &&
		 (sched_is_pending(&vm) || orchard_vm_is_failed(&vm));
	json_decref(j);
	orchard_vm_release(&vm);
	return r;
}

static int on_event(void *userdata, const struct etcd_event *ev)
{
	struct watcher *w = userdata;
	struct controller *c = w->c;
	size_t pl = strlen(store_prefix(c->store));
	if (ev->kv.mod_revision >= w->next)
		w->next = ev->kv.mod_revision + 1;
	if (ev->type == ETCD_EVENT_UNPARSABLE) {
		/* skipped: waiting for it again would stop this watch for good */
		if (!w->warned_unparsable)
			log_warning("the %s watch skips an etcd event it cannot decode (revision "
				    "%lld); later ones like it are skipped silently",
				    w->sub, (long long)ev->kv.mod_revision);
		w->warned_unparsable = true;
		return 0;
	}
	if (!ev->kv.key || strlen(ev->kv.key) < pl)
		return 0;
	struct ctl_event *e = xcalloc(1, sizeof(*e));
	e->source = w->source;
	e->deleted = ev->type == ETCD_EVENT_DELETE;
	e->key = xstrdup(ev->kv.key + pl);
	const struct etcd_kv *kv = e->deleted && ev->has_prev ? &ev->prev_kv : &ev->kv;
	e->value = xmalloc(kv->value_len + 1);
	memcpy(e->value, kv->value ? kv->value : "", kv->value_len);
	e->value[kv->value_len] = 0;
	e->len = kv->value_len;
	e->mod_revision = ev->kv.mod_revision;
	pthread_mutex_lock(&c->lock);
	*c->events_tail = e;
	c->events_tail = &e->next;
	pthread_mutex_unlock(&c->lock);
	if (w->source == CTL_EVENT_VMS && !e->deleted && vm_needs_scheduler(e->value, e->len))
		scheduler_kick_local(c);
	/* a standby passed a kick on, or the scheduler's leader went: a round, or a campaign */
	else if (w->source == CTL_EVENT_LIVE &&
		 (streq(e->key, SCHED_KICK_KEY) || (e->deleted && streq(e->key, SCHED_LEADER_KEY))))
		scheduler_kick_local(c);
	controller_wake(c);
	return 0;
}

static void *watcher_thread(void *userdata)
{
	struct watcher *w = userdata;
	_cleanup_free_ char *k = store_key(w->c->store, "%s", w->sub);
	_cleanup_free_ char *end = etcd_prefix_end(k);
	bool warned = false;
	for (;;) {
		int64_t compact = 0;
		int r = etcd_watch(store_etcd(w->c->store), k, end, w->next, on_event, w, &compact);
		if (r == -ERANGE && compact) {
			log_warning(
			    "etcd compacted past revision %lld: resuming the %s watch at %lld",
			    (long long)w->next, w->sub, (long long)compact);
			w->next = compact;
			continue;
		}
		if (r == -ENOTCONN && !warned) {
			log_warning("etcd unreachable: the %s watch waits for it", w->sub);
			warned = true;
		} else if (r != -ENOTCONN) {
			warned = false;
		}
		sleep_usec(r == -ECONNRESET ? 100000 : 1000000);
	}
	return NULL;
}

int watchers_start(struct controller *c)
{
	static const struct {
		enum ctl_event_source source;
		const char *sub;
	} kinds[] = {{CTL_EVENT_VMS, "vms/"}, {CTL_EVENT_LIVE, "live/"}};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct watcher *w = xcalloc(1, sizeof(*w));
		w->c = c;
		w->source = kinds[i].source;
		w->sub = kinds[i].sub;
		w->next = i == 0 ? c->vms_watch_from : c->live_watch_from;
		pthread_t t;
		int r = -pthread_create(&t, NULL, watcher_thread, w);
		if (r < 0)
			return r;
		pthread_detach(t);
	}
	return 0;
}

struct ctl_event *controller_take_events(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	struct ctl_event *e = c->events;
	c->events = NULL;
	c->events_tail = &c->events;
	pthread_mutex_unlock(&c->lock);
	return e;
}

void ctl_event_free(struct ctl_event *e)
{
	if (!e)
		return;
	free(e->key);
	free(e->value);
	free(e);
}

void controller_wake(struct controller *c)
{
	pthread_mutex_lock(&c->lws_lock);
	if (c->lws && !c->lws_gone)
		lws_cancel_service(c->lws);
	pthread_mutex_unlock(&c->lws_lock);
}
