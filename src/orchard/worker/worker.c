// SPDX-License-Identifier: Apache-2.0
/*
 * The worker's session loop, as Orchard's internal/worker/worker.go:
 *   1. POST /v1/workers (register: resources, labels, machine id, defaults);
 *   2. GET /v1/controller/info;
 *   3. the watch channel (rpc.c), reopened whenever it drops;
 *   4. the on-disk sync: `tart list --format json`, VMs named orchard-* that the controller
 *      does not know are stopped and deleted; the ones it still wants are adopted (Orchard
 *      stops them and lets them fail: we keep them, see wvm_adopt);
 *   5. the heartbeat (GET then PUT /v1/workers/NAME with a fresh last_seen, every 15 s) and
 *      the reconciliation (GET /v1/vms?filter=worker=NAME every 5 s or on a SyncVMs
 *      instruction, fsm.h's actions, PUT /v1/vms/NAME/state for what changed).
 * A failure ends the session; a new one starts 5 s later. SIGINT/SIGTERM stop and delete the
 * worker's VMs (Orchard's Close) and end the process.
 */
#include "orchard/worker/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/resource.h"
#include "orchard/worker/fsm.h"
#include "orchard/ws.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "vm/dir.h"
#include "vm/home.h"

#define POLL_INTERVAL_USEC (5 * 1000 * 1000ULL)

static usec_t heartbeat_usec = 15 * 1000 * 1000ULL;

void worker_set_heartbeat(unsigned seconds);
void worker_set_heartbeat(unsigned seconds)
{
	heartbeat_usec = (usec_t)seconds * 1000 * 1000;
}

int worker_thread(void *(*fn)(void *), void *arg)
{
	pthread_t th;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&th, &a, fn, arg);
	pthread_attr_destroy(&a);
	return -r;
}

void worker_request_sync(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->sync_requested = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

bool worker_stopping(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool s = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return s;
}

bool worker_sleep(struct worker *w, usec_t usec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (usec % 1000000) * 1000;
	ts.tv_sec += (time_t)(usec / 1000000 + ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	pthread_mutex_lock(&w->lock);
	while (!w->session_over && !w->stopping && !w->sync_requested)
		if (pthread_cond_timedwait(&w->wake, &w->lock, &ts) == ETIMEDOUT)
			break;
	bool go_on = !w->session_over && !w->stopping;
	pthread_mutex_unlock(&w->lock);
	return go_on;
}

static void end_session(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->session_over = true;
	pthread_cond_broadcast(&w->wake);
	if (w->watch)
		orchard_ws_interrupt(w->watch);
	pthread_mutex_unlock(&w->lock);
}

struct wvm *worker_find_vm_uid(struct worker *w, const char *uid)
{
	pthread_mutex_lock(&w->lock);
	struct wvm *vm = w->vms;
	while (vm && !streq(vm->uid, uid))
		vm = vm->next;
	if (vm)
		vm->refs++;
	pthread_mutex_unlock(&w->lock);
	return vm;
}

static struct wvm *find_odn(struct worker *w, const char *odn)
{
	pthread_mutex_lock(&w->lock);
	struct wvm *vm = w->vms;
	while (vm && !streq(vm->odn, odn))
		vm = vm->next;
	if (vm)
		vm->refs++;
	pthread_mutex_unlock(&w->lock);
	return vm;
}

static void list_add(struct worker *w, struct wvm *vm)
{
	pthread_mutex_lock(&w->lock);
	vm->next = w->vms;
	w->vms = vm;
	pthread_mutex_unlock(&w->lock);
}

static void list_remove(struct worker *w, struct wvm *vm)
{
	pthread_mutex_lock(&w->lock);
	for (struct wvm **p = &w->vms; *p; p = &(*p)->next)
		if (*p == vm) {
			*p = vm->next;
			break;
		}
	pthread_mutex_unlock(&w->lock);
	wvm_unref(vm); /* the list's reference */
}

/* ---- API calls ----------------------------------------------------------------------------- */

static void now_json(char *buf)
{
	orchard_time_format(orchard_now(), buf);
}

static int register_worker(struct worker *w)
{
	char now[ORCHARD_TIME_MAX];
	now_json(now);
	json_t *b =
	    json_pack("{s:s,s:s,s:s,s:O,s:O,s:s,s:s,s:I,s:I}", "name", w->name, "arch",
		      orchard_host_arch(), "runtime", "tart", "resources", w->resources, "labels",
		      w->labels, "last_seen", now, "machine_id", w->machine_id, "defaultCPU",
		      (json_int_t)w->default_cpu, "defaultMemory", (json_int_t)w->default_memory);
	_cleanup_free_ char *err = NULL;
	int r = orchard_send(w->client, "POST", "workers", b, NULL, &err);
	json_decref(b);
	if (r < 0)
		log_warning("worker: failed to register worker: %s", err);
	else
		log_info("worker: registered worker %s", w->name);
	return r;
}

static int heartbeat(struct worker *w)
{
	_cleanup_free_ char *esc = orchard_escape(w->name);
	_cleanup_free_ char *path = xasprintf("workers/%s", esc);
	_cleanup_json_ json_t *me = NULL;
	_cleanup_free_ char *err = NULL;
	int r = orchard_get(w->client, path, NULL, &me, &err);
	if (r < 0 || !json_is_object(me)) {
		log_error("worker: failed to poll controller: failed to retrieve worker from the "
			  "API: %s",
			  err ? err : "not an object");
		return r < 0 ? r : -EBADMSG;
	}
	char now[ORCHARD_TIME_MAX];
	now_json(now);
	json_object_set_new(me, "last_seen", json_string(now));
	free(err);
	err = NULL;
	r = orchard_send(w->client, "PUT", path, me, NULL, &err);
	if (r < 0)
		log_error("worker: failed to poll controller: failed to update worker in the API: "
			  "%s",
			  err);
	else
		log_debug("worker: heartbeat sent");
	return r;
}

static void *heartbeat_main(void *p)
{
	struct worker *w = p;
	for (;;) {
		if (heartbeat(w) < 0) {
			end_session(w);
			return NULL;
		}
		/* sleeps through sync requests too: they are not for us */
		usec_t until = now_monotonic_usec() + heartbeat_usec;
		for (;;) {
			usec_t now = now_monotonic_usec();
			if (now >= until)
				break;
			pthread_mutex_lock(&w->lock);
			bool over = w->session_over || w->stopping;
			pthread_mutex_unlock(&w->lock);
			if (over)
				return NULL;
			sleep_usec(MIN(until - now, 200 * 1000ULL));
		}
	}
}

static int list_remote(struct worker *w, json_t **ret)
{
	_cleanup_free_ char *f = xasprintf("worker=%s", w->name);
	_cleanup_free_ char *fe = orchard_escape(f);
	_cleanup_free_ char *q = xasprintf("filter=%s", fe);
	_cleanup_free_ char *err = NULL;
	json_t *all = NULL;
	int r = orchard_get(w->client, "vms", q, &all, &err);
	if (r < 0) {
		log_error("worker: failed to sync VMs: %s", err);
		return r;
	}
	if (!json_is_array(all)) {
		json_decref(all);
		log_error("worker: failed to sync VMs: the VM list is not an array");
		return -EBADMSG;
	}
	/* the filter may be unknown to a controller: keep only ours, as Orchard does */
	json_t *mine = json_array(), *v;
	size_t i;
	json_array_foreach(all, i,
			   v) if (json_is_object(v) && streq(orchard_str(v, "worker"), w->name))
	    json_array_append(mine, v);
	json_decref(all);
	*ret = mine;
	return 0;
}

/* PUT /vms/NAME/state; a VM deleted meanwhile (404) is fine. */
static int update_state(struct worker *w, json_t *vm)
{
	_cleanup_free_ char *esc = orchard_escape(orchard_str(vm, "name"));
	_cleanup_free_ char *path = xasprintf("vms/%s/state", esc);
	_cleanup_free_ char *err = NULL;
	int r = orchard_send(w->client, "PUT", path, vm, NULL, &err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		log_error("worker: failed to sync VMs: %s", err);
	return r;
}

/* ---- reconciliation ------------------------------------------------------------------------ */

struct pair {
	char *odn;
	json_t *remote;	   /* borrowed from the list */
	struct wvm *local; /* a reference */
	bool put;	   /* remote was changed: PUT its state */
};

/* The state reports of a round, several at a time: a round with many VMs is not as slow as
 * the sum of its round trips. */
#define PUT_THREADS 8

struct puts {
	struct worker *w;
	struct pair *pairs;
	size_t n;
	_Atomic size_t next;
	_Atomic int err;
};

static void *put_main(void *p)
{
	struct puts *ps = p;
	for (size_t i; (i = ps->next++) < ps->n;) {
		if (!ps->pairs[i].put)
			continue;
		int r = update_state(ps->w, ps->pairs[i].remote);
		if (r < 0)
			ps->err = r;
	}
	return NULL;
}

static int put_states(struct worker *w, struct pair *pairs, size_t n)
{
	struct puts ps = {.w = w, .pairs = pairs, .n = n};
	pthread_t th[PUT_THREADS];
	size_t k = 0, todo = 0;
	for (size_t i = 0; i < n; i++)
		todo += pairs[i].put;
	for (; k < MIN((size_t)PUT_THREADS, todo / 4); k++)
		if (pthread_create(&th[k], NULL, put_main, &ps) != 0)
			break;
	put_main(&ps);
	for (size_t i = 0; i < k; i++)
		pthread_join(th[i], NULL);
	return ps.err;
}

static int pair_order(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int kx = !x->remote ? 0 : streq(orchard_str(x->remote, "status"), "failed") ? 1 : 2;
	int ky = !y->remote ? 0 : streq(orchard_str(y->remote, "status"), "failed") ? 1 : 2;
	return kx - ky;
}

static int act(struct worker *w, struct pair *p)
{
	enum orchard_vm_status rs =
	    p->remote ? orchard_vm_status_parse(orchard_str(p->remote, "status")) : VM_STATUS_NONE;
	if (p->remote && rs == VM_STATUS_NONE)
		rs = VM_STATUS_PENDING; /* an empty status is a new VM */
	struct wvm_state ls = {0};
	enum orchard_vm_status lst = VM_STATUS_NONE;
	if (p->local) {
		wvm_snapshot(p->local, &ls);
		lst = ls.status;
	}
	enum orchard_action a = orchard_fsm_action(rs, lst);
	log_debug("worker: processing VM: %s, remote state: %s, local state: %s, action: %s",
		  p->odn, orchard_vm_status_name(rs), orchard_vm_status_name(lst),
		  orchard_action_name(a));
	int r = 0;
	json_t *rv = p->remote;
	switch (a) {
	case ACTION_IGNORE:
		break;
	case ACTION_CREATE: {
		struct wvm *vm = wvm_new(w, rv);
		list_add(w, vm);
		wvm_create(vm);
		break;
	}
	case ACTION_MONITOR_PENDING:
		if (!streq(orchard_str(rv, "status_message"), ls.status_message)) {
			json_object_set_new(rv, "status_message", json_string(ls.status_message));
			p->put = true;
		}
		break;
	case ACTION_REPORT_RUNNING:
		if (ls.image_fqn)
			json_object_set_new(rv, "image_fqn", json_string(ls.image_fqn));
		json_object_set_new(rv, "status", json_string("running"));
		json_object_set_new(rv, "status_message", json_string(ls.status_message));
		p->put = true;
		break;
	case ACTION_MONITOR_RUNNING: {
		struct wvm *vm = p->local;
		if (orchard_u64(rv, "generation") != orchard_u64(ls.res, "generation")) {
			/* the spec changed: stop (or suspend) it, apply the spec, start it again */
			unsigned busy = COND_STOPPING | COND_SUSPENDING;
			if ((ls.conds & COND_RUNNING) && !(ls.conds & busy)) {
				bool stop = streq(orchard_str(rv, "powerState"), "stopped") ||
					    !orchard_bool(ls.res, "suspendable");
				stop ? wvm_stop(vm) : wvm_suspend(vm);
			}
			wvm_state_release(&ls);
			wvm_snapshot(vm, &ls);
			if (!(ls.conds & COND_RUNNING) && !(ls.conds & busy)) {
				wvm_set_resource(vm, rv);
				if (streq(orchard_str(rv, "powerState"), "running") ||
				    !*orchard_str(rv, "powerState"))
					wvm_start(vm);
				wvm_state_release(&ls);
				wvm_snapshot(vm, &ls);
			}
		}
		bool update = false;
		if (!streq(orchard_str(rv, "status_message"), ls.status_message)) {
			json_object_set_new(rv, "status_message", json_string(ls.status_message));
			update = true;
		}
		uint64_t og = orchard_u64(ls.res, "observedGeneration");
		if (orchard_u64(rv, "observedGeneration") != og) {
			json_object_set_new(rv, "observedGeneration", json_integer((json_int_t)og));
			update = true;
		}
		if (orchard_condition_set(rv, "running", ls.conds & COND_RUNNING))
			update = true;
		if (update)
			p->put = true;
		break;
	}
	case ACTION_STOP:
		wvm_stop(p->local);
		break;
	case ACTION_FAIL:
	case ACTION_LOST_TRACK:
	case ACTION_IMPOSSIBLE: {
		if (p->local)
			wvm_stop(p->local);
		const char *msg = a == ACTION_FAIL	   ? (ls.err ? ls.err : "VM failed")
				  : a == ACTION_LOST_TRACK ? "Worker lost track of VM"
							   : "Encountered an impossible transition";
		json_object_set_new(rv, "status", json_string("failed"));
		json_object_set_new(rv, "status_message", json_string(msg));
		p->put = true;
		break;
	}
	case ACTION_DELETE: {
		_cleanup_free_ char *err = NULL;
		wvm_stop_wait(p->local);
		r = wvm_delete(p->local, &err);
		if (r < 0) {
			log_error("worker: failed to sync VMs: %s", err);
			break;
		}
		list_remove(w, p->local);
		log_info("worker: deleted VM %s", p->odn);
		break;
	}
	}
	wvm_state_release(&ls);
	return r;
}

static int sync_vms(struct worker *w)
{
	_cleanup_json_ json_t *remote = NULL;
	int r = list_remote(w, &remote);
	if (r < 0)
		return r;
	size_t n = json_array_size(remote), cap = n + 16, np = 0;
	struct pair *pairs = xcalloc(cap, sizeof(*pairs));
	size_t i;
	json_t *v;
	json_array_foreach(remote, i, v)
	{
		pairs[np].odn = orchard_odn_of(v);
		pairs[np].remote = v;
		pairs[np].local = find_odn(w, pairs[np].odn);
		np++;
	}
	pthread_mutex_lock(&w->lock);
	for (struct wvm *vm = w->vms; vm; vm = vm->next) {
		bool known = false;
		for (size_t k = 0; k < n && !known; k++)
			known = streq(pairs[k].odn, vm->odn);
		if (known)
			continue;
		if (np == cap) {
			cap *= 2;
			pairs = xrealloc(pairs, cap * sizeof(*pairs));
		}
		vm->refs++;
		pairs[np++] = (struct pair){.odn = xstrdup(vm->odn), .local = vm};
	}
	pthread_mutex_unlock(&w->lock);
	log_debug("worker: syncing local VMs against %zu remote VMs...", n);
	/* remote-absent and remote-failed first: their resources are freed before new VMs start */
	qsort(pairs, np, sizeof(*pairs), pair_order);
	for (i = 0; i < np && r >= 0 && !worker_stopping(w); i++)
		r = act(w, &pairs[i]);
	if (r >= 0)
		r = put_states(w, pairs, np);
	for (i = 0; i < np; i++) {
		wvm_unref(pairs[i].local);
		free(pairs[i].odn);
	}
	free(pairs);
	return r;
}

/* ---- the VMs already on disk --------------------------------------------------------------- */

static pid_t running_pid(const char *odn)
{
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *p = path_join(vms, odn);
	struct vm_dir d;
	vm_dir_init(&d, p, odn);
	pid_t pid = vm_dir_running_pid(&d);
	vm_dir_release(&d);
	return pid;
}

static void stop_and_delete(struct worker *w, const char *name, bool running)
{
	_cleanup_strvec_ struct strvec a = STRVEC_INIT;
	_cleanup_free_ char *err = NULL;
	if (running) {
		strvec_pushl(&a, "stop", "--timeout", "5", name, NULL);
		if (worker_tart(w, &a, NULL, &err) < 0)
			log_warning("worker: failed to stop %s: %s", name, err);
		strvec_clear(&a);
	}
	strvec_pushl(&a, "delete", name, NULL);
	free(err);
	err = NULL;
	if (worker_tart(w, &a, NULL, &err) < 0)
		log_warning("worker: failed to delete %s: %s", name, err);
}

static int sync_on_disk(struct worker *w)
{
	if (w->synthetic)
		return 0;
	_cleanup_json_ json_t *remote = NULL;
	int r = list_remote(w, &remote);
	if (r < 0)
		return r;
	log_info("worker: syncing on-disk VMs...");
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	_cleanup_strvec_ struct strvec a = STRVEC_INIT;
	_cleanup_free_ char *err = NULL;
	strvec_pushl(&a, "list", "--format", "json", NULL);
	r = worker_tart(w, &a, &out, &err);
	if (r < 0) {
		log_error("worker: failed to sync on-disk VMs: %s", err);
		return r;
	}
	_cleanup_json_ json_t *list = NULL;
	if (json_parse_buf(out.buf, out.len, &list) < 0 || !json_is_array(list)) {
		log_error(
		    "worker: failed to sync on-disk VMs: 'tart list --format json' printed no "
		    "JSON array");
		return -EBADMSG;
	}
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
	{
		const char *name = orchard_str(e, "Name");
		bool running = orchard_bool(e, "Running");
		if (orchard_local_name_parse(name, NULL, NULL, NULL) == -ENOENT)
			continue; /* not Orchard's */
		struct wvm *known = find_odn(w, name);
		if (known) {
			wvm_unref(known);
			continue;
		}
		json_t *rv = NULL, *v;
		size_t k;
		json_array_foreach(remote, k, v)
		{
			_cleanup_free_ char *odn = orchard_odn_of(v);
			if (streq(odn, name))
				rv = v;
		}
		const char *st = rv ? orchard_str(rv, "status") : "";
		if (!rv || !*st || streq(st, "pending")) {
			/* unknown: not ours any more; pending: a clone we did not finish reporting,
			 * made again by the reconciliation */
			log_info("worker: deleting on-disk VM %s (%s)", name,
				 rv ? "not reported yet" : "unknown to the controller");
			stop_and_delete(w, name, running);
			continue;
		}
		struct wvm *vm = wvm_new(w, rv);
		if (streq(st, "failed")) {
			/* stopped, kept on disk until the controller lets it go */
			if (running) {
				_cleanup_strvec_ struct strvec s = STRVEC_INIT;
				strvec_pushl(&s, "stop", "--timeout", "5", name, NULL);
				(void)worker_tart(w, &s, NULL, NULL);
			}
			pthread_mutex_lock(&vm->lock);
			vm->err = xstrdup(orchard_str(rv, "status_message"));
			vm->conds = 0;
			pthread_mutex_unlock(&vm->lock);
			list_add(w, vm);
			continue;
		}
		const char *ps = orchard_str(rv, "powerState");
		if (*ps && !streq(ps, "running")) {
			/* stopped or suspended through the API (a terminal power state): it
			 * stays so, on disk; finish what the previous process may not have */
			if (running) {
				_cleanup_strvec_ struct strvec s = STRVEC_INIT;
				if (streq(ps, "suspended"))
					strvec_pushl(&s, "suspend", name, NULL);
				else
					strvec_pushl(&s, "stop", "--timeout", "5", name, NULL);
				(void)worker_tart(w, &s, NULL, NULL);
			}
			log_info("worker: keeping VM %s %s", name, ps);
			pthread_mutex_lock(&vm->lock);
			vm->started = true;
			vm->conds = 0;
			pthread_mutex_unlock(&vm->lock);
			list_add(w, vm);
			continue;
		}
		list_add(w, vm);
		wvm_adopt(vm, running ? running_pid(name) : 0);
	}
	return 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

static void run_session(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->session_over = false;
	pthread_mutex_unlock(&w->lock);
	if (register_worker(w) < 0)
		return;
	_cleanup_json_ json_t *info = NULL;
	_cleanup_free_ char *err = NULL;
	if (orchard_get(w->client, "controller/info", NULL, &info, &err) < 0) {
		log_warning("worker: failed to retrieve controller info: %s", err);
		return;
	}
	bool v2 = false;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(info, "capabilities"), i, c) v2 =
	    v2 || streq(json_string_value(c) ?: "", "rpc-v2");
	if (!v2)
		log_warning("worker: the controller does not offer rpc-v2: no port-forwarding");

	pthread_t watch_th = 0, hb_th;
	if (v2 && pthread_create(&watch_th, NULL, worker_watch_main, w) != 0)
		watch_th = 0;
	if (sync_on_disk(w) < 0) {
		end_session(w);
		goto out;
	}
	if (pthread_create(&hb_th, NULL, heartbeat_main, w) != 0) {
		end_session(w);
		goto out;
	}
	for (;;) {
		pthread_mutex_lock(&w->lock);
		w->sync_requested = false;
		pthread_mutex_unlock(&w->lock);
		if (sync_vms(w) < 0) {
			end_session(w);
			break;
		}
		if (!worker_sleep(w, POLL_INTERVAL_USEC))
			break;
	}
	end_session(w);
	pthread_join(hb_th, NULL);
out:
	if (watch_th)
		pthread_join(watch_th, NULL);
}

static void *signal_main(void *p)
{
	struct worker *w = p;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sig;
	sigwait(&set, &sig);
	log_info("worker: received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	if (w->watch)
		orchard_ws_interrupt(w->watch);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Orchard's Close(): stop every VM, then delete them. */
static void close_all(struct worker *w)
{
	for (;;) {
		pthread_mutex_lock(&w->lock);
		struct wvm *vm = w->vms;
		if (vm)
			vm->refs++;
		pthread_mutex_unlock(&w->lock);
		if (!vm)
			break;
		_cleanup_free_ char *err = NULL;
		wvm_stop_wait(vm);
		if (wvm_delete(vm, &err) < 0)
			log_error("worker: %s", err);
		list_remove(w, vm);
		wvm_unref(vm);
	}
}

int worker_main(struct worker *w);
int worker_main(struct worker *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t sig_th;
	if (pthread_create(&sig_th, NULL, signal_main, w) != 0)
		return log_error_errno(-EAGAIN, "cannot start the signal thread");
	pthread_detach(sig_th);
	if (w->synthetic) {
		int r = worker_echo_server_start(w);
		if (r < 0)
			return log_error_errno(r, "cannot start the echo server of synthetic VMs");
	}
	log_info("worker: %s starting against %s (tart: %s%s)", w->name, w->url, w->tart,
		 w->synthetic ? ", synthetic VMs" : "");
	while (!worker_stopping(w)) {
		run_session(w);
		if (worker_stopping(w))
			break;
		/* a fresh session after the poll interval */
		pthread_mutex_lock(&w->lock);
		w->session_over = false;
		pthread_mutex_unlock(&w->lock);
		worker_sleep(w, POLL_INTERVAL_USEC);
	}
	close_all(w);
	log_info("worker: stopped");
	return 0;
}
