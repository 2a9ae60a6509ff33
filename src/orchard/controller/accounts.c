// SPDX-License-Identifier: Apache-2.0
/*
 * The service accounts mirrored in memory from etcd (a range, then a watch from its revision),
 * for the one decision that cannot wait for etcd: a WebSocket upgrade, which libwebsockets
 * makes us answer inside the event loop. HTTP requests authenticate against etcd itself, on
 * the API threads.
 *
 * The mirror lags etcd by a watch event (milliseconds). A change made through this controller
 * is waited for before its answer goes out (accounts_wait), so a client that creates or
 * rotates a token and then opens a WebSocket here sees its change. While no etcd member can
 * be reached, the mirror counts as stale and upgrades answer 503, as requests do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "orchard/controller/internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

/* How long a change made here waits for the mirror to show it. */
#define WAIT_USEC (2 * 1000000ULL)

struct accounts {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct orchard_service_account *v;
	size_t n;
	bool synced;  /* the mirror follows etcd (false: etcd unreachable) */
	int64_t next; /* the watch's next revision (its thread only) */
	bool warned;
};

static void mirror_clear(struct accounts *a)
{
	for (size_t i = 0; i < a->n; i++)
		orchard_service_account_release(&a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

static ssize_t mirror_find(const struct accounts *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].meta.name && streq(a->v[i].meta.name, name))
			return (ssize_t)i;
	return -1;
}

static void mirror_remove(struct accounts *a, const char *name)
{
	ssize_t i = mirror_find(a, name);
	if (i < 0)
		return;
	orchard_service_account_release(&a->v[i]);
	a->v[i] = a->v[a->n - 1];
	a->n--;
}

/* Put one account (parsed from its etcd value) in place of the one of that name; the name is
 * the key's. Lock held. */
static void mirror_put(struct accounts *a, const char *name, const char *value, size_t len)
{
	json_t *j = json_loadb(value, len, 0, NULL);
	struct orchard_service_account sa = {0};
	int r = j ? orchard_service_account_from_json(j, 0, &sa, NULL) : -EBADMSG;
	json_decref(j);
	mirror_remove(a, name);
	if (r < 0)
		return; /* an account that does not parse authenticates nobody, as in the store */
	free(sa.meta.name);
	sa.meta.name = xstrdup(name);
	a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = sa;
}

struct sa_watch {
	struct controller *c;
	size_t prefix_len;
};

static int on_event(void *userdata, const struct etcd_event *ev)
{
	struct sa_watch *w = userdata;
	struct accounts *a = w->c->accounts;
	if (ev->kv.mod_revision >= a->next)
		a->next = ev->kv.mod_revision + 1;
	if (ev->type == ETCD_EVENT_UNPARSABLE || !ev->kv.key || strlen(ev->kv.key) <= w->prefix_len)
		return 0;
	const char *name = ev->kv.key + w->prefix_len;
	pthread_mutex_lock(&a->lock);
	if (ev->type == ETCD_EVENT_DELETE)
		mirror_remove(a, name);
	else
		mirror_put(a, name, ev->kv.value, ev->kv.value_len);
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

static void set_synced(struct accounts *a, bool synced)
{
	pthread_mutex_lock(&a->lock);
	a->synced = synced;
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->lock);
}

/* Read every account afresh; the watch goes on from the revision read. */
static int snapshot(struct controller *c, const char *k, const char *end)
{
	struct accounts *a = c->accounts;
	struct etcd_kvs kvs;
	int r = etcd_range(store_etcd(c->store), k, end, 0, 0, false, false, &kvs);
	if (r < 0)
		return r;
	size_t pl = strlen(k);
	pthread_mutex_lock(&a->lock);
	mirror_clear(a);
	for (size_t i = 0; i < kvs.n; i++)
		if (strlen(kvs.v[i].key) > pl)
			mirror_put(a, kvs.v[i].key + pl, kvs.v[i].value, kvs.v[i].value_len);
	a->synced = true;
	a->next = kvs.revision + 1;
	pthread_cond_broadcast(&a->changed);
	pthread_mutex_unlock(&a->lock);
	etcd_kvs_release(&kvs);
	return 0;
}

static void *accounts_thread(void *userdata)
{
	struct controller *c = userdata;
	struct accounts *a = c->accounts;
	_cleanup_free_ char *k = store_key(c->store, "service-accounts/");
	_cleanup_free_ char *end = etcd_prefix_end(k);
	struct sa_watch w = {c, strlen(k)};
	bool fresh = true; /* the first snapshot was read by accounts_start */
	for (;;) {
		if (!fresh && snapshot(c, k, end) < 0) {
			set_synced(a, false);
			sleep_usec(1000000);
			continue;
		}
		fresh = true;
		int r = etcd_watch(store_etcd(c->store), k, end, a->next, on_event, &w, NULL);
		if (r == -ECONNRESET) {
			/* it ran, then ended: resume after what it saw, nothing is missed */
			sleep_usec(100000);
			continue;
		}
		/* unreachable, compacted or refused: read everything again */
		if (r == -ENOTCONN) {
			set_synced(a, false);
			if (!a->warned)
				log_warning(
				    "etcd unreachable: WebSocket upgrades answer 503 until it "
				    "returns");
			a->warned = true;
		}
		fresh = false;
		sleep_usec(r == -ERANGE ? 0 : 1000000);
	}
	return NULL;
}

int accounts_start(struct controller *c)
{
	struct accounts *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->changed, NULL);
	c->accounts = a;
	_cleanup_free_ char *k = store_key(c->store, "service-accounts/");
	_cleanup_free_ char *end = etcd_prefix_end(k);
	int r = snapshot(c, k, end);
	if (r < 0)
		return r;
	pthread_t t;
	r = -pthread_create(&t, NULL, accounts_thread, c);
	if (r == 0)
		pthread_detach(t);
	return r;
}

int accounts_authenticate(struct controller *c, const char *authorization,
			  struct orchard_service_account *ret)
{
	_cleanup_free_ char *name = NULL, *token = NULL;
	if (api_basic_credentials(authorization, &name, &token) < 0)
		return -EACCES;
	struct accounts *a = c->accounts;
	int r = -EACCES;
	pthread_mutex_lock(&a->lock);
	if (!a->synced) {
		r = -ENOTCONN;
	} else {
		ssize_t i = mirror_find(a, name);
		if (i >= 0 && api_token_matches(&a->v[i], token)) {
			orchard_service_account_copy(&a->v[i], ret);
			r = 0;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

static bool same_account(const struct orchard_service_account *x,
			 const struct orchard_service_account *y)
{
	if (!streq(x->token ? x->token : "", y->token ? y->token : "") || x->roles.n != y->roles.n)
		return false;
	for (size_t i = 0; i < x->roles.n; i++)
		if (!orchard_strv_contains(&y->roles, x->roles.v[i]))
			return false;
	return true;
}

void accounts_wait(struct controller *c, const char *name, const struct orchard_service_account *sa)
{
	struct accounts *a = c->accounts;
	if (!a)
		return;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_USEC / 1000000;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		ssize_t i = mirror_find(a, name);
		bool shown = sa ? i >= 0 && same_account(&a->v[i], sa) : i < 0;
		/* somebody else's change may win meanwhile: then the wait just ends late */
		if (shown || !a->synced ||
		    pthread_cond_timedwait(&a->changed, &a->lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&a->lock);
}
