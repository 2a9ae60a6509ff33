// SPDX-License-Identifier: Apache-2.0
#include "orchard/controller/sched.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/macro.h"

static bool str_is(const char *s, const char *v)
{
	return streq(s ? s : "", v);
}

int64_t sched_restart_delay(uint64_t restart_count)
{
	int64_t d = SCHED_RESTART_DELAY_NS;
	for (uint64_t i = 1; i < restart_count && d < SCHED_RESTART_DELAY_MAX_NS; i++)
		d *= 2;
	return MIN(d, SCHED_RESTART_DELAY_MAX_NS);
}

bool sched_needs_restart(const struct orchard_vm *vm, int64_t now)
{
	return str_is(vm->restart_policy, ORCHARD_RESTART_ON_FAILURE) && orchard_vm_is_failed(vm) &&
	       now - vm->restarted_at > sched_restart_delay(vm->restart_count);
}

static bool power_terminal(const struct orchard_vm *vm)
{
	return !str_is(vm->power_state, ORCHARD_POWER_RUNNING);
}

enum sched_health sched_health(const struct orchard_vm *vm, bool worker_exists, bool worker_online,
			       int64_t now)
{
	if (sched_needs_restart(vm, now))
		return SCHED_RESTART;
	if (!orchard_vm_is_scheduled(vm))
		return SCHED_OK;
	if (!worker_exists)
		return orchard_vm_is_failed(vm) ? SCHED_DESCHEDULE_FAILED : SCHED_FAIL_GONE;
	if (!worker_online && !orchard_vm_is_failed(vm))
		return SCHED_FAIL_OFFLINE;
	if (power_terminal(vm) &&
	    orchard_condition_is(&vm->conditions, ORCHARD_COND_RUNNING, ORCHARD_FALSE))
		return SCHED_DESCHEDULE_POWER;
	if (orchard_vm_is_failed(vm))
		return SCHED_DESCHEDULE_FAILED;
	return SCHED_OK;
}

static void set(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

void sched_apply_health(struct orchard_vm *vm, enum sched_health h, int64_t now)
{
	switch (h) {
	case SCHED_OK:
		break;
	case SCHED_RESTART: {
		set(&vm->status, ORCHARD_STATUS_PENDING);
		set(&vm->status_message, NULL);
		set(&vm->worker, NULL);
		vm->assigned_cpu = vm->assigned_memory = 0;
		vm->restarted_at = now;
		vm->restart_count++;
		vm->scheduled_at = vm->started_at = 0;
		set(&vm->power_state, ORCHARD_POWER_RUNNING);
		char *ln = orchard_local_name(vm->meta.name, vm->uid, vm->restart_count);
		set(&vm->local_name, ln);
		set(&vm->tart_name, ln);
		free(ln);
		struct orchard_conditions empty = {0};
		for (size_t i = 0; i < vm->conditions.n; i++) {
			free(vm->conditions.v[i].type);
			free(vm->conditions.v[i].state);
		}
		free(vm->conditions.v);
		vm->conditions = empty;
		orchard_conditions_set(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_FALSE);
		break;
	}
	case SCHED_FAIL_GONE:
		set(&vm->status, ORCHARD_STATUS_FAILED);
		set(&vm->status_message, "VM is assigned to a worker that doesn't exist anymore");
		break;
	case SCHED_FAIL_OFFLINE:
		set(&vm->status, ORCHARD_STATUS_FAILED);
		set(&vm->status_message, "VM is assigned to a worker that lost connection with the "
					 "controller");
		break;
	case SCHED_DESCHEDULE_POWER:
		orchard_conditions_set(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_FALSE);
		break;
	case SCHED_DESCHEDULE_FAILED:
		orchard_conditions_set(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_FALSE);
		orchard_conditions_set(&vm->conditions, ORCHARD_COND_RUNNING, ORCHARD_FALSE);
		break;
	}
}

bool sched_is_pending(const struct orchard_vm *vm)
{
	return !orchard_vm_is_scheduled(vm) && !orchard_vm_is_failed(vm) && !power_terminal(vm);
}

static const struct orchard_vm *sort_vms;

static int cmp_created(const void *a, const void *b)
{
	const struct orchard_vm *x = &sort_vms[*(const size_t *)a],
				*y = &sort_vms[*(const size_t *)b];
	if (x->meta.created_at != y->meta.created_at)
		return x->meta.created_at < y->meta.created_at ? -1 : 1;
	return strcmp(x->meta.name ? x->meta.name : "", y->meta.name ? y->meta.name : "");
}

size_t sched_pending(const struct orchard_vm *vms, size_t n, size_t **ret)
{
	size_t *idx = xcalloc(n ? n : 1, sizeof(size_t)), k = 0;
	for (size_t i = 0; i < n; i++)
		if (sched_is_pending(&vms[i]))
			idx[k++] = i;
	/* qsort has no context argument in C17; the scheduler runs in one thread */
	sort_vms = vms;
	qsort(idx, k, sizeof(size_t), cmp_created);
	sort_vms = NULL;
	*ret = idx;
	return k;
}

bool sched_eligible(const struct orchard_vm *vm, const struct sched_worker *sw)
{
	const struct orchard_worker *w = sw->w;
	if (!sw->online || w->scheduling_paused)
		return false;
	if (!str_is(vm->arch, w->arch ? w->arch : "") ||
	    !str_is(vm->runtime, w->runtime ? w->runtime : ""))
		return false;
	struct orchard_resources left;
	orchard_resources_subtracted(&w->resources, &sw->used, &left);
	bool fit = orchard_resources_can_fit(&left, &vm->resources);
	struct orchard_worker tmp = {.resources = left};
	orchard_worker_release(&tmp);
	return fit && orchard_labels_contains(&w->labels, &vm->labels);
}

static bool distribute;

static int cmp_load(const void *a, const void *b)
{
	const struct sched_worker *x = a, *y = b;
	if (x->nvms != y->nvms)
		return (x->nvms < y->nvms) == distribute ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

void sched_order(struct sched_worker *v, size_t n, bool distribute_load)
{
	distribute = distribute_load;
	if (n > 1) /* qsort's array must not be NULL, even for no elements */
		qsort(v, n, sizeof(*v), cmp_load);
}

ssize_t sched_pick(const struct orchard_vm *vm, const struct sched_worker *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sched_eligible(vm, &v[i]))
			return (ssize_t)i;
	return -1;
}

bool sched_batch_fits(size_t n, size_t nw, size_t bytes, bool new_worker, size_t vm_bytes)
{
	if (n == 0)
		return true;
	size_t vms = n + 1, workers = nw + (new_worker ? 1 : 0);
	return vms <= SCHED_BATCH_MAX_VMS && vms + 3 * workers <= SCHED_BATCH_MAX_OPS &&
	       vms + workers <= SCHED_BATCH_MAX_OPS && bytes + vm_bytes <= SCHED_BATCH_MAX_BYTES;
}

void sched_assign(struct orchard_vm *vm, const struct orchard_worker *w, int64_t now)
{
	set(&vm->worker, w->meta.name);
	vm->scheduled_at = now;
	orchard_conditions_set(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_TRUE);
	vm->assigned_cpu = vm->cpu	    ? vm->cpu
			   : w->default_cpu ? w->default_cpu
					    : ORCHARD_DEFAULT_CPU;
	vm->assigned_memory = vm->memory	  ? vm->memory
			      : w->default_memory ? w->default_memory
						  : ORCHARD_DEFAULT_MEMORY;
}
