/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The scheduler's decisions as pure functions (Orchard's internal/controller/scheduler),
 * unit-tested in tests/unit/test-orchard-sched.c. scheduler.c applies them to etcd.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchard/resource.h"

/* Orchard restarts a failed OnFailure VM 15 s after its last restart. */
#define SCHED_RESTART_DELAY_NS (15LL * 1000000000)
/* Our back-off for VMs that keep failing: 15 s, 30 s, 60 s ... capped at 5 minutes. */
#define SCHED_RESTART_DELAY_MAX_NS (300LL * 1000000000)

/* A worker as the scheduler sees it in one round. */
struct sched_worker {
	const struct orchard_worker *w;
	bool online;
	struct orchard_resources used; /* Σ resources of the VMs scheduled on it */
	size_t nvms;		       /* scheduled VMs on it ("running" in Orchard's words) */
	size_t index;		       /* caller's index, kept through sorting */
};

/* The delay before the (restart_count+1)-th restart: 15 s << (restart_count-1), capped. */
int64_t sched_restart_delay(uint64_t restart_count);
/* OnFailure, failed, and the delay since restarted_at has passed. */
bool sched_needs_restart(const struct orchard_vm *vm, int64_t now);

enum sched_health {
	SCHED_OK,
	SCHED_RESTART,		/* back to pending, restart_count++ (may move to another worker) */
	SCHED_FAIL_GONE,	/* its worker was deleted */
	SCHED_FAIL_OFFLINE,	/* its worker lost its lease */
	SCHED_DESCHEDULE_POWER, /* stopped/suspended and no longer running: free its resources */
	SCHED_DESCHEDULE_FAILED /* failed: free its resources */
};
/*
 * Orchard's health check of a scheduled VM, plus ours for an unscheduled failed VM (which
 * Orchard never looks at again): a failed OnFailure VM is restarted once its back-off has
 * passed, wherever it is.
 */
enum sched_health sched_health(const struct orchard_vm *vm, bool worker_exists, bool worker_online,
			       int64_t now);
/* Apply a health decision to the VM (Orchard's field changes). */
void sched_apply_health(struct orchard_vm *vm, enum sched_health h, int64_t now);

/* Waiting for a worker: not scheduled, not failed, powerState running. */
bool sched_is_pending(const struct orchard_vm *vm);
/* Indices of the pending VMs, FIFO by createdAt (then name). *ret allocated. */
size_t sched_pending(const struct orchard_vm *vms, size_t n, size_t **ret);

/* Online, not paused, same arch and runtime, resources fit, labels a superset. */
bool sched_eligible(const struct orchard_vm *vm, const struct sched_worker *sw);
/* optimize-utilization: most VMs first; distribute-load: fewest first (stable on index). */
void sched_order(struct sched_worker *v, size_t n, bool distribute_load);
/* The first eligible worker in v's order, or -1. */
ssize_t sched_pick(const struct orchard_vm *vm, const struct sched_worker *v, size_t n);
/*
 * Placements are written in batches, one etcd transaction each: at most this many VMs, and
 * within etcd's default --max-txn-ops (128 comparisons, 128 operations: a VM is one of each, a
 * worker three comparisons and one put) and well within its --max-request-bytes (1.5 MiB).
 */
#define SCHED_BATCH_MAX_VMS 64
#define SCHED_BATCH_MAX_OPS 128
#define SCHED_BATCH_MAX_BYTES (512u << 10)
/*
 * Whether one more VM (its JSON vm_bytes long; new_worker when its worker is not in the batch
 * yet) fits a batch of n VMs on nw workers holding `bytes` of JSON. An empty batch takes any
 * VM.
 */
bool sched_batch_fits(size_t n, size_t nw, size_t bytes, bool new_worker, size_t vm_bytes);

/* Place vm on w: worker, scheduled_at, scheduled=true, assigned CPU and memory. */
void sched_assign(struct orchard_vm *vm, const struct orchard_worker *w, int64_t now);
