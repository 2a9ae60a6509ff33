// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "orchard/controller/sched.h"
#include "orchard/resource.h"
#include "orchard/store/etcd.h"

#define S(x) (1000000000LL * (x))

static void make_vm(struct orchard_vm *vm, const char *name, int64_t created)
{
	memset(vm, 0, sizeof(*vm));
	vm->meta.name = strdup(name);
	vm->image = strdup("img");
	vm->os = strdup("linux");
	vm->arch = strdup("amd64");
	vm->runtime = strdup("tart");
	assert_int_equal(orchard_vm_prepare_create(vm, "u-1", created, NULL), 0);
}

static void make_worker(struct orchard_worker *w, const char *name, uint64_t slots)
{
	memset(w, 0, sizeof(*w));
	w->meta.name = strdup(name);
	w->arch = strdup("amd64");
	w->runtime = strdup("tart");
	orchard_resources_set(&w->resources, ORCHARD_RESOURCE_TART_VMS, slots);
}

static void test_fifo_and_pending(void **state)
{
	(void)state;
	struct orchard_vm vms[4];
	make_vm(&vms[0], "c", S(30));
	make_vm(&vms[1], "a", S(10));
	make_vm(&vms[2], "b", S(20));
	make_vm(&vms[3], "stopped", S(5));
	free(vms[3].power_state);
	vms[3].power_state = strdup("stopped");
	size_t *idx;
	size_t n = sched_pending(vms, 4, &idx);
	assert_int_equal(n, 3);
	assert_string_equal(vms[idx[0]].meta.name, "a");
	assert_string_equal(vms[idx[1]].meta.name, "b");
	assert_string_equal(vms[idx[2]].meta.name, "c");
	free(idx);
	for (int i = 0; i < 4; i++)
		orchard_vm_release(&vms[i]);
}

static void test_eligibility_and_profiles(void **state)
{
	(void)state;
	struct orchard_worker w[3];
	make_worker(&w[0], "busy", 4);
	make_worker(&w[1], "idle", 4);
	make_worker(&w[2], "arm", 4);
	free(w[2].arch);
	w[2].arch = strdup("arm64");
	orchard_labels_set(&w[1].labels, "gpu", "yes");
	struct sched_worker sw[3] = {
	    {&w[0], true, {0}, 3, 0}, {&w[1], true, {0}, 0, 1}, {&w[2], true, {0}, 0, 2}};
	orchard_resources_set(&sw[0].used, ORCHARD_RESOURCE_TART_VMS, 3);

	struct orchard_vm vm;
	make_vm(&vm, "v", 1);
	orchard_resources_set(&vm.resources, ORCHARD_RESOURCE_TART_VMS, 1);
	assert_true(sched_eligible(&vm, &sw[0]));
	assert_false(sched_eligible(&vm, &sw[2])); /* arch */

	/* a round without workers (the scheduler's array is NULL then) orders nothing */
	sched_order(NULL, 0, false);
	assert_int_equal(sched_pick(&vm, NULL, 0), -1);

	/* optimize-utilization packs: the busiest first */
	sched_order(sw, 3, false);
	assert_string_equal(sw[0].w->meta.name, "busy");
	ssize_t k = sched_pick(&vm, sw, 3);
	assert_string_equal(sw[k].w->meta.name, "busy");
	/* distribute-load spreads */
	sched_order(sw, 3, true);
	k = sched_pick(&vm, sw, 3);
	assert_string_equal(sw[k].w->meta.name, "idle");

	/* the busy worker is full for 2 slots */
	orchard_resources_set(&vm.resources, ORCHARD_RESOURCE_TART_VMS, 2);
	sched_order(sw, 3, false);
	k = sched_pick(&vm, sw, 3);
	assert_string_equal(sw[k].w->meta.name, "idle");
	/* labels must be a subset of the worker's */
	orchard_labels_set(&vm.labels, "gpu", "no");
	assert_int_equal(sched_pick(&vm, sw, 3), -1);
	orchard_labels_set(&vm.labels, "gpu", "yes");
	k = sched_pick(&vm, sw, 3);
	assert_string_equal(sw[k].w->meta.name, "idle");
	/* offline or paused workers take nothing */
	for (int i = 0; i < 3; i++)
		if (strcmp(sw[i].w->meta.name, "idle") == 0)
			sw[i].online = false;
	assert_int_equal(sched_pick(&vm, sw, 3), -1);

	/* assigned CPU and memory: the VM's, else the worker's defaults, else 4/8192 */
	sched_assign(&vm, &w[1], S(100));
	assert_string_equal(vm.worker, "idle");
	assert_true(orchard_vm_is_scheduled(&vm));
	assert_int_equal(vm.assigned_cpu, 4);
	assert_int_equal(vm.assigned_memory, 8192);
	w[1].default_cpu = 12;
	w[1].default_memory = 3456;
	vm.cpu = 0;
	sched_assign(&vm, &w[1], S(100));
	assert_int_equal(vm.assigned_cpu, 12);
	assert_int_equal(vm.assigned_memory, 3456);
	vm.cpu = 2;
	vm.memory = 1024;
	sched_assign(&vm, &w[1], S(100));
	assert_int_equal(vm.assigned_cpu, 2);
	assert_int_equal(vm.assigned_memory, 1024);

	orchard_vm_release(&vm);
	for (int i = 0; i < 3; i++) {
		struct orchard_worker tmp = {.resources = sw[i].used};
		orchard_worker_release(&tmp);
		orchard_worker_release(&w[i]);
	}
}

static void set_status(struct orchard_vm *vm, const char *status)
{
	free(vm->status);
	vm->status = strdup(status);
}

static void test_health(void **state)
{
	(void)state;
	struct orchard_vm vm;
	struct orchard_worker w;
	make_worker(&w, "w", 2);
	make_vm(&vm, "v", 1);
	sched_assign(&vm, &w, S(2));
	int64_t now = S(1000);
	assert_int_equal(sched_health(&vm, true, true, now), SCHED_OK);
	assert_int_equal(sched_health(&vm, false, false, now), SCHED_FAIL_GONE);
	assert_int_equal(sched_health(&vm, true, false, now), SCHED_FAIL_OFFLINE);
	sched_apply_health(&vm, SCHED_FAIL_OFFLINE, now);
	assert_string_equal(vm.status, "failed");
	assert_string_equal(vm.status_message,
			    "VM is assigned to a worker that lost connection with the controller");
	/* Never: a failed VM is de-scheduled to free its resources, then left alone */
	assert_int_equal(sched_health(&vm, true, false, now), SCHED_DESCHEDULE_FAILED);
	sched_apply_health(&vm, SCHED_DESCHEDULE_FAILED, now);
	assert_false(orchard_vm_is_scheduled(&vm));
	assert_false(sched_is_pending(&vm));
	assert_int_equal(sched_health(&vm, true, true, now + S(3600)), SCHED_OK);

	/* stopped and no longer running: de-scheduled */
	struct orchard_vm st;
	make_vm(&st, "st", 1);
	sched_assign(&st, &w, S(2));
	free(st.power_state);
	st.power_state = strdup("stopped");
	assert_int_equal(sched_health(&st, true, true, now), SCHED_OK);
	orchard_conditions_set(&st.conditions, ORCHARD_COND_RUNNING, ORCHARD_FALSE);
	assert_int_equal(sched_health(&st, true, true, now), SCHED_DESCHEDULE_POWER);
	orchard_vm_release(&st);
	orchard_vm_release(&vm);
	orchard_worker_release(&w);
}

/* Orchard's hole: a VM failing again within 15 s of a restart is de-scheduled and never
 * looked at again. Ours keeps restarting it, with back-off. */
static void test_on_failure_backoff(void **state)
{
	(void)state;
	struct orchard_vm vm;
	struct orchard_worker w;
	make_worker(&w, "w", 2);
	make_vm(&vm, "v", 1);
	free(vm.restart_policy);
	vm.restart_policy = strdup("OnFailure");
	sched_assign(&vm, &w, S(2));
	set_status(&vm, "failed");
	/* first failure: restarted at once (restarted_at is the zero time) */
	int64_t t = S(100);
	assert_int_equal(sched_health(&vm, true, true, t), SCHED_RESTART);
	sched_apply_health(&vm, SCHED_RESTART, t);
	assert_int_equal(vm.restart_count, 1);
	assert_string_equal(vm.status, "pending");
	assert_null(vm.worker);
	assert_true(sched_is_pending(&vm));
	char *ln = orchard_local_name("v", "u-1", 1);
	assert_string_equal(vm.local_name, ln);
	free(ln);

	/* placed again and failing again 5 s later: de-scheduled (as Orchard) ... */
	sched_assign(&vm, &w, t + S(1));
	set_status(&vm, "failed");
	assert_int_equal(sched_health(&vm, true, true, t + S(5)), SCHED_DESCHEDULE_FAILED);
	sched_apply_health(&vm, SCHED_DESCHEDULE_FAILED, t + S(5));
	assert_false(orchard_vm_is_scheduled(&vm));
	/* ... but not forgotten: restarted once its 15 s back-off has passed */
	assert_int_equal(sched_health(&vm, false, false, t + S(14)), SCHED_OK);
	assert_int_equal(sched_health(&vm, false, false, t + S(16)), SCHED_RESTART);
	sched_apply_health(&vm, SCHED_RESTART, t + S(16));
	assert_int_equal(vm.restart_count, 2);
	/* the back-off doubles: 30 s after the second restart, then 60 s ... capped at 5 min */
	set_status(&vm, "failed");
	assert_int_equal(sched_health(&vm, false, false, t + S(16 + 29)), SCHED_OK);
	assert_int_equal(sched_health(&vm, false, false, t + S(16 + 31)), SCHED_RESTART);
	assert_int_equal(sched_restart_delay(1), S(15));
	assert_int_equal(sched_restart_delay(3), S(60));
	assert_int_equal(sched_restart_delay(50), S(300));
	/* Never is never restarted */
	free(vm.restart_policy);
	vm.restart_policy = strdup("Never");
	assert_int_equal(sched_health(&vm, false, false, t + S(10000)), SCHED_OK);
	orchard_vm_release(&vm);
	orchard_worker_release(&w);
}

static void test_etcd_prefix_end(void **state)
{
	(void)state;
	char *e = etcd_prefix_end("/orchard/");
	assert_string_equal(e, "/orchard0");
	free(e);
	e = etcd_prefix_end("a\xff");
	assert_string_equal(e, "b");
	free(e);
	struct etcd *x;
	assert_int_equal(etcd_new("127.0.0.1:1, http://h:2/ ,https://x:3", 1, &x), 0);
	assert_int_equal(etcd_endpoint_count(x), 3);
	assert_string_equal(etcd_endpoint(x, 0), "http://127.0.0.1:1");
	assert_string_equal(etcd_endpoint(x, 1), "http://h:2");
	etcd_free(x);
	assert_int_equal(etcd_new(" , ", 1, &x) < 0, 1);
}

/* A batch stays within etcd's default --max-txn-ops (128) and a safe request size. */
static void test_batch_limits(void **state)
{
	(void)state;
	/* an empty batch takes anything, even a VM bigger than the byte cap */
	assert_true(sched_batch_fits(0, 0, 0, true, SCHED_BATCH_MAX_BYTES * 2));
	/* VMs on one worker: up to SCHED_BATCH_MAX_VMS */
	assert_true(sched_batch_fits(SCHED_BATCH_MAX_VMS - 1, 1, 0, false, 100));
	assert_false(sched_batch_fits(SCHED_BATCH_MAX_VMS, 1, 0, false, 100));
	/* one VM per worker: each worker adds three comparisons */
	size_t n = 0, nw = 0;
	while (sched_batch_fits(n, nw, 0, true, 100))
		n++, nw++;
	assert_true(n + 3 * nw <= SCHED_BATCH_MAX_OPS && n + nw <= SCHED_BATCH_MAX_OPS);
	assert_true(n + 1 + 3 * (nw + 1) > SCHED_BATCH_MAX_OPS);
	/* the bytes */
	assert_true(sched_batch_fits(1, 1, SCHED_BATCH_MAX_BYTES - 100, false, 100));
	assert_false(sched_batch_fits(1, 1, SCHED_BATCH_MAX_BYTES - 100, false, 101));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fifo_and_pending),
	    cmocka_unit_test(test_eligibility_and_profiles),
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_on_failure_backoff),
	    cmocka_unit_test(test_etcd_prefix_end),
	    cmocka_unit_test(test_batch_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
