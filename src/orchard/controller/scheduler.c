// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler thread: every --scheduler-interval (Orchard: 5 s) or when kicked (a VM or
 * worker changed, in any controller: the VM watch kicks every controller), a health-check
 * round then a scheduling round, decisions from sched.c.
 *
 * Any number of controllers run this at once. Correctness does not depend on there being one:
 * a round reads VMs and workers at one etcd revision, and every write is a transaction that
 * holds only if what it was decided on is unchanged. A placement compares the VM's
 * mod_revision (nobody placed, changed or deleted it), the worker's (not paused, same
 * resources and machine), the worker's alive key (still online) and its alloc key (nobody
 * placed anything else on it since), and bumps the alloc key. Of two controllers placing at
 * the same moment one wins; the other's transaction fails and it re-reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "orchard/controller/internal.h"
#include "orchard/controller/sched.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

/* The shortest time between two rounds. */
#define MIN_ROUND_GAP_US 100000

/* What a round cost, for --debug (bench/fleet.sh sums these lines). */
struct round_stats {
	unsigned reads;	    /* etcd range reads */
	unsigned txns;	    /* etcd transactions */
	unsigned conflicts; /* transactions whose comparisons failed */
	unsigned placed;    /* VMs placed */
	unsigned notifies;  /* instructions to workers */
	unsigned health;    /* health decisions written */
	size_t pending;	    /* VMs waiting for a worker at the start */
};

struct round {
	struct round_stats *st;
	struct orchard_vm *vms;
	size_t nvms;
	int64_t *vm_mods;
	struct orchard_worker *workers;
	size_t nworkers;
	struct store_worker_info *info;
	int64_t revision;
};

static void round_release(struct round *r)
{
	orchard_vm_list_free(r->vms, r->nvms);
	orchard_worker_list_free(r->workers, r->nworkers);
	free(r->vm_mods);
	free(r->info);
	*r = (struct round){.st = r->st};
}

static int round_read(struct controller *c, struct round *r, struct round_stats *st)
{
	*r = (struct round){.st = st};
	/* one range for the VMs, four for the workers (objects, seen, alive, alloc) */
	st->reads += 5;
	int e = store_vm_list(c->store, 0, &r->vms, &r->nvms, &r->vm_mods, &r->revision);
	if (e < 0)
		return e;
	e = store_worker_list(c->store, r->revision, &r->workers, &r->nworkers, &r->info, NULL);
	if (e < 0) {
		round_release(r);
		return e;
	}
	return 0;
}

static ssize_t find_worker(const struct round *r, const char *name)
{
	for (size_t i = 0; name && i < r->nworkers; i++)
		if (r->workers[i].meta.name && streq(r->workers[i].meta.name, name))
			return (ssize_t)i;
	return -1;
}

/*
 * Write a health decision if the VM is unchanged, and, for a failure, if its worker is still
 * gone or offline (it may have come back since the round's read): 0, -EAGAIN, or an error.
 */
static int write_health(struct controller *c, const struct orchard_vm *vm, int64_t mod,
			enum sched_health h, struct round_stats *st)
{
	_cleanup_free_ char *vk = store_key(c->store, "vms/%s", vm->meta.name);
	_cleanup_free_ char *v = store_vm_serialize(vm);
	_cleanup_free_ char *gone = NULL;
	if (h == SCHED_FAIL_GONE)
		gone = store_key(c->store, "workers/%s", vm->worker);
	else if (h == SCHED_FAIL_OFFLINE)
		gone = store_key(c->store, "live/alive/%s", vm->worker);
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, vk, mod);
	if (gone)
		etcd_txn_cmp_mod(&t, gone, 0); /* absent */
	etcd_txn_put(&t, vk, v, strlen(v), 0);
	bool ok = false;
	st->txns++;
	int e = etcd_txn_commit(store_etcd(c->store), &t, &ok, NULL);
	etcd_txn_release(&t);
	if (e < 0)
		return e;
	st->conflicts += !ok;
	st->health += ok;
	return ok ? 0 : -EAGAIN;
}

/* One health-check pass; returns how many VMs changed, or a store error. */
static int health_round(struct controller *c, const struct round *r)
{
	int changed = 0;
	int64_t now = orchard_now();
	for (size_t i = 0; i < r->nvms; i++) {
		struct orchard_vm *vm = &r->vms[i];
		ssize_t wi = find_worker(r, vm->worker);
		enum sched_health h = sched_health(vm, wi >= 0, wi >= 0 && r->info[wi].online, now);
		if (h == SCHED_OK)
			continue;
		struct orchard_vm copy;
		orchard_vm_copy(vm, &copy);
		sched_apply_health(&copy, h, now);
		int e = write_health(c, &copy, r->vm_mods[i], h, r->st);
		if (e == 0) {
			changed++;
			if (h == SCHED_RESTART)
				log_info("VM '%s' restarted (restart %llu) by its OnFailure policy",
					 vm->meta.name, (unsigned long long)copy.restart_count);
			else if (h == SCHED_FAIL_GONE || h == SCHED_FAIL_OFFLINE)
				log_info("VM '%s' failed: %s", vm->meta.name, copy.status_message);
		}
		orchard_vm_release(&copy);
		if (e < 0 && e != -EAGAIN)
			return e;
	}
	return changed;
}

static void notify_sync(struct controller *c, const struct orchard_strv *workers,
			struct round_stats *st)
{
	struct orchard_watch_instruction wi = {.sync_vms = true};
	st->notifies += workers->n;
	for (size_t i = 0; i < workers->n; i++)
		(void)rpc_notify(c, workers->v[i], "sync", &wi);
}

/*
 * Place one VM; 1 placed, 0 nothing fits, -EAGAIN a race was lost on sw[*ret_k], or a store
 * error.
 */
static int place(struct controller *c, struct round *r, struct sched_worker *sw, size_t nsw,
		 size_t vi, struct orchard_strv *affected, ssize_t *ret_k)
{
	struct orchard_vm *vm = &r->vms[vi];
	ssize_t k = sched_pick(vm, sw, nsw);
	*ret_k = k;
	if (k < 0)
		return 0;
	size_t wi = sw[k].index;
	const struct orchard_worker *w = &r->workers[wi];
	struct orchard_vm copy;
	orchard_vm_copy(vm, &copy);
	sched_assign(&copy, w, orchard_now());
	_cleanup_free_ char *vk = store_key(c->store, "vms/%s", vm->meta.name);
	_cleanup_free_ char *wk = store_key(c->store, "workers/%s", w->meta.name);
	_cleanup_free_ char *ak = store_key(c->store, "live/alive/%s", w->meta.name);
	_cleanup_free_ char *lk = store_key(c->store, "live/alloc/%s", w->meta.name);
	_cleanup_free_ char *v = store_vm_serialize(&copy);
	orchard_vm_release(&copy);
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, vk, r->vm_mods[vi]);
	etcd_txn_cmp_mod(&t, wk, r->info[wi].mod);
	etcd_txn_cmp_exists(&t, ak);
	etcd_txn_cmp_mod(&t, lk, r->info[wi].alloc_mod);
	etcd_txn_put(&t, vk, v, strlen(v), 0);
	etcd_txn_put(&t, lk, vm->meta.name, strlen(vm->meta.name), 0);
	bool ok = false;
	int64_t rev = 0;
	r->st->txns++;
	int e = etcd_txn_commit(store_etcd(c->store), &t, &ok, &rev);
	etcd_txn_release(&t);
	if (e < 0)
		return e;
	r->st->conflicts += !ok;
	if (!ok)
		return -EAGAIN;
	r->st->placed++;
	/* our own view moves on with what we wrote */
	r->info[wi].alloc_mod = rev;
	orchard_resources_add(&sw[k].used, &vm->resources);
	sw[k].nvms++;
	if (!orchard_strv_contains(affected, w->meta.name))
		orchard_strv_push(affected, w->meta.name);
	log_debug("VM '%s' scheduled on worker '%s'", vm->meta.name, w->meta.name);
	return 1;
}

/*
 * One scheduling pass over a round. A lost race leaves that VM for the next round and the
 * worker alone for the rest of this one (our view of it is stale): -EAGAIN then says "run
 * again soon", after a fresh read.
 */
static int schedule_round(struct controller *c, struct round *r, bool distribute,
			  struct orchard_strv *affected)
{
	struct sched_worker *sw = r->nworkers ? xcalloc(r->nworkers, sizeof(*sw)) : NULL;
	for (size_t i = 0; i < r->nworkers; i++) {
		sw[i].w = &r->workers[i];
		sw[i].online = r->info[i].online;
		sw[i].index = i;
	}
	for (size_t i = 0; i < r->nvms; i++) {
		if (!orchard_vm_is_scheduled(&r->vms[i]))
			continue;
		ssize_t wi = find_worker(r, r->vms[i].worker);
		if (wi < 0)
			continue;
		orchard_resources_add(&sw[wi].used, &r->vms[i].resources);
		sw[wi].nvms++;
	}
	size_t *pending;
	size_t np = sched_pending(r->vms, r->nvms, &pending);
	r->st->pending = np;
	int e = 0;
	bool lost = false;
	for (size_t p = 0; p < np && e >= 0; p++) {
		sched_order(sw, r->nworkers, distribute);
		ssize_t k;
		e = place(c, r, sw, r->nworkers, pending[p], affected, &k);
		if (e == -EAGAIN) {
			sw[k].online = false;
			lost = true;
			e = 0;
		}
	}
	for (size_t i = 0; i < r->nworkers; i++) {
		struct orchard_worker tmp = {.resources = sw[i].used};
		orchard_worker_release(&tmp);
	}
	free(sw);
	free(pending);
	return e < 0 ? e : lost ? -EAGAIN : 0;
}

/* One health-check and scheduling round; true when another should follow soon. */
static bool iteration(struct controller *c)
{
	struct orchard_strv affected = {0};
	bool again = false;
	struct round_stats st = {0};
	usec_t t0 = now_monotonic_usec();
	{
		struct round r;
		int e = round_read(c, &r, &st);
		if (e < 0)
			goto finish;
		int h = health_round(c, &r);
		if (h > 0) {
			/* what we changed is stale in r: read again before placing */
			round_release(&r);
			if ((e = round_read(c, &r, &st)) < 0)
				goto finish;
		}
		struct orchard_cluster_settings cs;
		bool distribute = false;
		st.reads++;
		if (store_cluster_settings_get(c->store, &cs) == 0) {
			distribute = cs.scheduler_profile &&
				     streq(cs.scheduler_profile, ORCHARD_PROFILE_DISTRIBUTE_LOAD);
			orchard_cluster_settings_release(&cs);
		}
		e = schedule_round(c, &r, distribute, &affected);
		round_release(&r);
		again = e == -EAGAIN;
	}
finish:
	notify_sync(c, &affected, &st);
	orchard_strv_release(&affected);
	if (st.pending || st.health || st.conflicts)
		log_debug("scheduler round: %zu pending, %u placed, %u health, %u conflicts, "
			  "%u etcd calls (%u reads, %u txns, %u notifies), %.1f ms",
			  st.pending, st.placed, st.health, st.conflicts,
			  st.reads + st.txns + st.notifies, st.reads, st.txns, st.notifies,
			  (double)(now_monotonic_usec() - t0) / 1000);
	return again;
}

static void *scheduler_thread(void *userdata)
{
	struct controller *c = userdata;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (!c->kicked) {
			struct timeval now;
			gettimeofday(&now, NULL);
			struct timespec until = {.tv_sec = now.tv_sec + c->o.scheduler_interval_s,
						 .tv_nsec = now.tv_usec * 1000};
			pthread_cond_timedwait(&c->kick_cond, &c->lock, &until);
		}
		c->kicked = false;
		bool stop = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		if (iteration(c))
			controller_kick_scheduler(c);
		/* a burst of kicks (VMs created in a row) is served by one round, not one each */
		sleep_usec(MIN_ROUND_GAP_US);
	}
	return NULL;
}

int scheduler_start(struct controller *c)
{
	pthread_t t;
	int r = -pthread_create(&t, NULL, scheduler_thread, c);
	if (r == 0)
		pthread_detach(t);
	return r;
}
