// SPDX-License-Identifier: Apache-2.0
/*
 * The scheduler thread: every --scheduler-interval (Orchard: 5 s) or when kicked (a VM or
 * worker changed, in any controller), a health-check round then a scheduling round,
 * decisions from sched.c.
 *
 * One controller at a time runs the rounds: the one holding live/scheduler on its lease
 * (campaign()). The others stand by, keep serving the API, pass the kicks of their API on
 * through live/kick, and take over when the key goes with the leader's lease. Two schedulers
 * would only race each other for the same VMs and workers and redo work; they would not
 * place a VM twice. Correctness does not depend on the election: a round reads VMs and
 * workers at one etcd revision, and every write is a transaction that holds only if what it
 * was decided on is unchanged. A placement compares the VM's mod_revision (nobody placed,
 * changed or deleted it), the worker's (not paused, same resources and machine), the
 * worker's alive key (still online) and its alloc key (nobody placed anything else on it
 * since), and bumps the alloc key. Placements are written in batches of up to 64 per
 * transaction (each transaction costs etcd a disk sync); a batch that loses falls back to
 * one transaction per placement.
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

/*
 * The time between two rounds: at least as long as the last round took, and half a second
 * (a round reads every VM: a scheduler kicked by a stream of new VMs takes half of the
 * store's time at most, and serves each burst with one round), 2 s at most. A kick in a quiet
 * fleet is served at once.
 */
#define MIN_ROUND_GAP_US 500000
#define MAX_ROUND_GAP_US 2000000

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

/*
 * The syncVMs instructions to workers that got VMs, paced: one per worker per
 * NOTIFY_GAP_US at most. Each makes the worker list its VMs, which the controller reads in
 * full from etcd: a worker told after every round of a burst of new VMs would take more of
 * the store's time than the scheduler itself. What is owed goes out when due (the scheduler
 * thread wakes up for it), so the last placement of a burst is told within the gap; a worker
 * also looks every 5 s by itself.
 */
#define NOTIFY_GAP_US 2000000

struct notifier {
	struct orchard_strv names;
	usec_t *last; /* when each was last told */
	bool *owed;
};

static void notifier_owe(struct notifier *n, const struct orchard_strv *workers)
{
	for (size_t i = 0; i < workers->n; i++) {
		size_t k = 0;
		while (k < n->names.n && !streq(n->names.v[k], workers->v[i]))
			k++;
		if (k == n->names.n) {
			orchard_strv_push(&n->names, workers->v[i]);
			n->last = xrealloc(n->last, n->names.n * sizeof(*n->last));
			n->owed = xrealloc(n->owed, n->names.n * sizeof(*n->owed));
			n->last[k] = 0;
		}
		n->owed[k] = true;
	}
}

/* Tell the workers whose instruction is due; returns when the next one is (0: none owed). */
static usec_t notifier_flush(struct controller *c, struct notifier *n, struct round_stats *st)
{
	struct orchard_watch_instruction wi = {.sync_vms = true};
	usec_t now = now_monotonic_usec(), next = 0;
	for (size_t k = 0; k < n->names.n; k++) {
		if (!n->owed[k])
			continue;
		usec_t due = n->last[k] ? n->last[k] + NOTIFY_GAP_US : 0;
		if (due <= now) {
			st->notifies++;
			(void)rpc_notify(c, n->names.v[k], "sync", &wi);
			n->last[k] = now;
			n->owed[k] = false;
		} else if (!next || due < next) {
			next = due;
		}
	}
	return next;
}

/* A placement decided in this round, not yet written. */
struct decision {
	size_t vi; /* r->vms */
	size_t wi; /* r->workers */
	char *value;
};

/* Placements written in one transaction (sched_batch_fits bounds it). */
struct batch {
	struct decision d[SCHED_BATCH_MAX_VMS];
	size_t n;
	size_t wi[SCHED_BATCH_MAX_VMS]; /* distinct workers */
	size_t nw;
	size_t bytes;
};

static bool batch_has_worker(const struct batch *b, size_t wi)
{
	for (size_t i = 0; i < b->nw; i++)
		if (b->wi[i] == wi)
			return true;
	return false;
}

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->d[i].value);
	b->n = b->nw = b->bytes = 0;
}

/*
 * The comparisons of a placement on worker wi: the worker object at the revision read (not
 * paused since, same resources and machine), its alive key (still online) and its alloc key
 * (nobody placed anything else there since).
 */
static void txn_worker(struct controller *c, struct etcd_txn *t, const struct round *r, size_t wi,
		       const char *last_vm)
{
	const char *name = r->workers[wi].meta.name;
	_cleanup_free_ char *wk = store_key(c->store, "workers/%s", name);
	_cleanup_free_ char *ak = store_key(c->store, "live/alive/%s", name);
	_cleanup_free_ char *lk = store_key(c->store, "live/alloc/%s", name);
	etcd_txn_cmp_mod(t, wk, r->info[wi].mod);
	etcd_txn_cmp_exists(t, ak);
	etcd_txn_cmp_mod(t, lk, r->info[wi].alloc_mod);
	etcd_txn_put(t, lk, last_vm, strlen(last_vm), 0);
}

/* The VM unchanged since the round's read (nobody placed, changed or deleted it). */
static void txn_vm(struct controller *c, struct etcd_txn *t, const struct round *r,
		   const struct decision *d)
{
	_cleanup_free_ char *vk = store_key(c->store, "vms/%s", r->vms[d->vi].meta.name);
	etcd_txn_cmp_mod(t, vk, r->vm_mods[d->vi]);
	etcd_txn_put(t, vk, d->value, strlen(d->value), 0);
}

/*
 * Write decisions d[0..n) in one transaction: 0 when written, -EAGAIN when a comparison
 * failed (nothing written), or a store error. The workers' alloc keys move on to the
 * transaction's revision in our view.
 */
static int commit(struct controller *c, struct round *r, const struct decision *d, size_t n,
		  const size_t *wis, size_t nw)
{
	struct etcd_txn t;
	etcd_txn_init(&t);
	for (size_t i = 0; i < n; i++)
		txn_vm(c, &t, r, &d[i]);
	for (size_t j = 0; j < nw; j++) {
		/* the alloc key names the worker's last VM in this transaction */
		const char *last = NULL;
		for (size_t i = 0; i < n; i++)
			if (d[i].wi == wis[j])
				last = r->vms[d[i].vi].meta.name;
		txn_worker(c, &t, r, wis[j], last);
	}
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
	r->st->placed += n;
	for (size_t j = 0; j < nw; j++)
		r->info[wis[j]].alloc_mod = rev;
	return 0;
}

static void placed(struct round *r, const struct decision *d, struct orchard_strv *affected)
{
	const char *w = r->workers[d->wi].meta.name;
	if (!orchard_strv_contains(affected, w))
		orchard_strv_push(affected, w);
	log_debug("VM '%s' scheduled on worker '%s'", r->vms[d->vi].meta.name, w);
}

/*
 * Write a batch: one transaction for all of it. When that fails (something it was decided on
 * changed: a VM deleted or edited, a worker paused, another scheduler placing), each placement
 * is tried alone, so one stale VM costs its own placement only; a worker on which one failed
 * is stale in our view and gets nothing more this round. 0, -EAGAIN (some were lost: read
 * again soon), or a store error.
 */
static int flush(struct controller *c, struct round *r, struct batch *b, bool *stale,
		 struct orchard_strv *affected)
{
	if (!b->n)
		return 0;
	int e = commit(c, r, b->d, b->n, b->wi, b->nw);
	if (e == 0)
		for (size_t i = 0; i < b->n; i++)
			placed(r, &b->d[i], affected);
	bool lost = false;
	for (size_t i = 0; e == -EAGAIN && i < b->n; i++) {
		const struct decision *d = &b->d[i];
		if (stale[d->wi]) {
			lost = true;
			continue;
		}
		int one = commit(c, r, d, 1, &d->wi, 1);
		if (one == 0) {
			placed(r, d, affected);
		} else if (one == -EAGAIN) {
			stale[d->wi] = lost = true;
		} else {
			batch_clear(b);
			return one;
		}
	}
	batch_clear(b);
	return e < 0 && e != -EAGAIN ? e : lost ? -EAGAIN : 0;
}

/*
 * One scheduling pass over a round: every pending VM in FIFO order gets Orchard's pick of
 * worker, counted at once in our view of that worker (so the next pick sees it), and the
 * placements go to etcd in batches. -EAGAIN says "run again soon, after a fresh read".
 */
static int schedule_round(struct controller *c, struct round *r, bool distribute,
			  struct orchard_strv *affected)
{
	struct sched_worker *sw = r->nworkers ? xcalloc(r->nworkers, sizeof(*sw)) : NULL;
	bool *stale = xcalloc(r->nworkers ? r->nworkers : 1, sizeof(bool));
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
	struct batch *b = xcalloc(1, sizeof(*b));
	int e = 0;
	bool lost = false;
	int64_t now = orchard_now();
	for (size_t p = 0; p < np && e >= 0; p++) {
		/* a worker whose placement failed in a flush is out for the rest of the round */
		for (size_t i = 0; i < r->nworkers; i++)
			if (stale[sw[i].index])
				sw[i].online = false;
		sched_order(sw, r->nworkers, distribute);
		ssize_t k = sched_pick(&r->vms[pending[p]], sw, r->nworkers);
		if (k < 0)
			continue;
		size_t wi = sw[k].index;
		struct orchard_vm copy;
		orchard_vm_copy(&r->vms[pending[p]], &copy);
		sched_assign(&copy, &r->workers[wi], now);
		char *v = store_vm_serialize(&copy);
		orchard_vm_release(&copy);
		bool nw = !batch_has_worker(b, wi);
		if (!sched_batch_fits(b->n, b->nw, b->bytes, nw, strlen(v))) {
			e = flush(c, r, b, stale, affected);
			lost |= e == -EAGAIN;
			e = e == -EAGAIN ? 0 : e;
			nw = true;
			if (stale[wi]) {
				free(v);
				continue;
			}
		}
		b->d[b->n++] = (struct decision){.vi = pending[p], .wi = wi, .value = v};
		if (nw)
			b->wi[b->nw++] = wi;
		b->bytes += strlen(v);
		orchard_resources_add(&sw[k].used, &r->vms[pending[p]].resources);
		sw[k].nvms++;
	}
	if (e >= 0) {
		e = flush(c, r, b, stale, affected);
		lost |= e == -EAGAIN;
		e = e == -EAGAIN ? 0 : e;
	}
	batch_clear(b);
	free(b);
	for (size_t i = 0; i < r->nworkers; i++) {
		struct orchard_worker tmp = {.resources = sw[i].used};
		orchard_worker_release(&tmp);
	}
	free(sw);
	free(stale);
	free(pending);
	return e < 0 ? e : lost ? -EAGAIN : 0;
}

/* One health-check and scheduling round; true when another should follow soon. */
static bool iteration(struct controller *c, struct notifier *nt, struct round_stats *stp)
{
	struct orchard_strv affected = {0};
	bool again = false;
	struct round_stats st = *stp;
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
	notifier_owe(nt, &affected);
	(void)notifier_flush(c, nt, &st);
	orchard_strv_release(&affected);
	if (st.pending || st.health || st.conflicts)
		log_debug("scheduler round: %zu pending, %u placed, %u health, %u conflicts, "
			  "%u etcd calls (%u reads, %u txns, %u notifies), %.1f ms",
			  st.pending, st.placed, st.health, st.conflicts,
			  st.reads + st.txns + st.notifies, st.reads, st.txns, st.notifies,
			  (double)(now_monotonic_usec() - t0) / 1000);
	return again;
}

/* ---- one scheduler at a time ---- */

static int64_t our_lease(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	int64_t l = c->lease;
	pthread_mutex_unlock(&c->lock);
	return l;
}

/*
 * Whether this controller is the one that schedules: it holds live/scheduler on its current
 * lease, or takes it now that nobody does. The key goes with the holder's lease (10 s after
 * a kill -9, at once after a clean stop), and every controller's live/ watch kicks its
 * scheduler thread when it goes, so a standby takes over within the lease's TTL.
 */
static bool campaign(struct controller *c, struct round_stats *st)
{
	if (c->o.no_scheduler_election)
		return true;
	int64_t lease = our_lease(c);
	if (!lease)
		return false;
	_cleanup_free_ char *k = store_key(c->store, SCHED_LEADER_KEY);
	struct etcd_kv kv;
	st->reads++;
	int e = etcd_get(store_etcd(c->store), k, &kv, NULL);
	if (e == 0) {
		bool ours = streq(kv.value, c->id) && kv.lease == lease;
		etcd_kv_release(&kv);
		return ours;
	}
	if (e != -ENOENT)
		return false;
	struct etcd_txn t;
	etcd_txn_init(&t);
	etcd_txn_cmp_mod(&t, k, 0);
	etcd_txn_put(&t, k, c->id, strlen(c->id), lease);
	bool ok = false;
	st->txns++;
	e = etcd_txn_commit(store_etcd(c->store), &t, &ok, NULL);
	etcd_txn_release(&t);
	return e == 0 && ok;
}

/* A standby passes the kicks of its API on to the leader (its live/ watch sees the key). */
static void forward_kick(struct controller *c)
{
	int64_t lease = our_lease(c);
	_cleanup_free_ char *k = store_key(c->store, SCHED_KICK_KEY);
	if (lease)
		(void)etcd_put(store_etcd(c->store), k, c->id, strlen(c->id), lease, NULL);
}

static void *scheduler_thread(void *userdata)
{
	struct controller *c = userdata;
	bool leader = false;
	struct notifier nt = {0};
	usec_t owed_at = 0; /* when owed instructions are due (monotonic), 0: none */
	usec_t last_round = 0;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (!c->kicked) {
			usec_t wait = (usec_t)c->o.scheduler_interval_s * 1000000,
			       mono = now_monotonic_usec();
			if (owed_at)
				wait = owed_at > mono ? MIN(wait, owed_at - mono) : 0;
			struct timeval now;
			gettimeofday(&now, NULL);
			uint64_t ns = (uint64_t)now.tv_usec * 1000 + (wait % 1000000) * 1000;
			struct timespec until = {
			    .tv_sec = now.tv_sec + (time_t)(wait / 1000000 + ns / 1000000000),
			    .tv_nsec = (long)(ns % 1000000000)};
			if (wait)
				pthread_cond_timedwait(&c->kick_cond, &c->lock, &until);
		}
		bool kicked = c->kicked;
		c->kicked = false;
		bool forward = c->kick_forward;
		c->kick_forward = false;
		bool stop = c->stopping;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		struct round_stats st = {0};
		usec_t t0 = now_monotonic_usec();
		if (!kicked && t0 - last_round < (usec_t)c->o.scheduler_interval_s * 1000000) {
			/* woken up for owed instructions only */
			owed_at = notifier_flush(c, &nt, &st);
			continue;
		}
		last_round = t0;
		bool now_leader = campaign(c, &st);
		if (now_leader != leader)
			log_info(now_leader ? "this controller now runs the scheduler"
					    : "another controller runs the scheduler; standing by");
		leader = now_leader;
		if (!leader) {
			if (forward)
				forward_kick(c);
		} else if (iteration(c, &nt, &st)) {
			scheduler_kick_local(c);
		}
		owed_at = notifier_flush(c, &nt, &st);
		usec_t took = now_monotonic_usec() - t0;
		sleep_usec(MIN(MAX(took, MIN_ROUND_GAP_US), MAX_ROUND_GAP_US));
	}
	orchard_strv_release(&nt.names);
	free(nt.last);
	free(nt.owed);
	return NULL;
}

void scheduler_kick_local(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	c->kicked = true;
	pthread_cond_signal(&c->kick_cond);
	pthread_mutex_unlock(&c->lock);
}

void controller_kick_scheduler(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	c->kicked = c->kick_forward = true;
	pthread_cond_signal(&c->kick_cond);
	pthread_mutex_unlock(&c->lock);
}

int scheduler_start(struct controller *c)
{
	pthread_t t;
	int r = -pthread_create(&t, NULL, scheduler_thread, c);
	if (r == 0)
		pthread_detach(t);
	return r;
}
