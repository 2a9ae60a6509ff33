/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Orchard's state in etcd (docs/orchard.md has the layout). Every object is the JSON of its
 * resource under one prefix (default "/orchard/"):
 *
 *   vms/<name>  workers/<name>  service-accounts/<name>  cluster-settings
 *   events/<vm uid>/<timestamp %020>-<insert ns %020>-<index %06>
 *   live/alive/<worker>   worker liveness: a key on a lease of --worker-offline-timeout,
 *                         renewed by every heartbeat; gone = offline
 *   live/seen/<worker>    the last heartbeat's last_seen (kept off the worker object so
 *                         heartbeats do not conflict with placements)
 *   live/alloc/<worker>   bumped by every placement on the worker: placements compare it,
 *                         so two schedulers cannot both fill the same free capacity
 *   live/notify/<worker>/<id>, live/sessions/<id>, live/answers/<id>, live/controllers/<id>
 *                         rendezvous between controllers (controller/rpc.c)
 *
 * Every read-modify-write is a transaction comparing the mod_revision it read, retried a
 * bounded number of times on conflict (-EAGAIN when they all lose). The VM `version` is the
 * mod_revision of its key.
 *
 * Errors: -ENOENT (no such object), -EEXIST (name taken), -EAGAIN (conflicts), -ENOTCONN
 * (etcd unreachable: the API answers 503), -EBADMSG (a stored object does not parse), or what
 * a mutate callback returned. Nothing here logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchard/resource.h"
#include "orchard/store/etcd.h"

#define STORE_DEFAULT_PREFIX "/orchard/"
#define STORE_RETRIES 16

struct store;

int store_open(const char *endpoints, const char *prefix, struct store **ret);
void store_close(struct store *s);
struct etcd *store_etcd(struct store *s);
/* prefix + the formatted rest; allocated. */
char *store_key(const struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *store_prefix(const struct store *s);

/* ---- VMs ---- */
/* ret->meta.version is the key's mod_revision; *ret_mod (may be NULL) too. */
int store_vm_get(struct store *s, const char *name, struct orchard_vm *ret, int64_t *ret_mod);
/*
 * All VMs at `revision` (0: now); *ret_revision (may be NULL) is the revision read, so other
 * ranges can be read at the same one. *ret_mods (may be NULL) gets the mod revisions.
 */
int store_vm_list(struct store *s, int64_t revision, struct orchard_vm **ret, size_t *ret_n,
		  int64_t **ret_mods, int64_t *ret_revision);
/* Create: -EEXIST when the name is taken. */
int store_vm_create(struct store *s, const struct orchard_vm *vm);
/*
 * Read-modify-write: fn gets the current VM; it returns < 0 to abort (returned as is), 0
 * for "nothing to write", 1 to write it. Retried on conflict. *ret (may be NULL) gets the
 * VM as stored afterwards.
 */
typedef int (*store_vm_mutate_fn)(struct orchard_vm *vm, void *userdata);
int store_vm_update(struct store *s, const char *name, store_vm_mutate_fn fn, void *userdata,
		    struct orchard_vm *ret);
/* Write vm if its key's mod_revision is still `mod` (0 + -EAGAIN when not). */
int store_vm_cas(struct store *s, const struct orchard_vm *vm, int64_t mod);
/* Delete the VM and its events in one transaction; -ENOENT when absent. */
int store_vm_delete(struct store *s, const char *name);
/* The JSON stored for a VM (version left out); allocated. */
char *store_vm_serialize(const struct orchard_vm *vm);

/* ---- workers ---- */
/* last_seen merged from live/seen; *ret_online (may be NULL) from live/alive. */
int store_worker_get(struct store *s, const char *name, struct orchard_worker *ret,
		     bool *ret_online);
/*
 * All workers at `revision` (0: now), with last_seen merged, whether each is online, and the
 * mod revisions of their objects and of their alloc keys (arrays allocated; may be NULL).
 */
struct store_worker_info {
	bool online;
	int64_t mod;	   /* workers/<name> */
	int64_t alloc_mod; /* live/alloc/<name>, 0 when absent */
};
int store_worker_list(struct store *s, int64_t revision, struct orchard_worker **ret, size_t *ret_n,
		      struct store_worker_info **ret_info, int64_t *ret_revision);
/*
 * POST /workers: create, or update an existing one from the same machine_id (keeping
 * scheduling_paused and createdAt; arch, runtime, resources, labels, defaults, last_seen
 * overwritten). -EEXIST for a different machine_id. Marks the worker alive for ttl_s, unless
 * its last_seen is older than ttl_s already (see add_alive).
 */
int store_worker_register(struct store *s, const struct orchard_worker *w, int64_t ttl_s,
			  struct orchard_worker *ret);
/*
 * PUT /workers/:name: last_seen (when non-zero; marks the worker alive for ttl_s unless it
 * is older than ttl_s already) and scheduling_paused. -ENOENT when absent.
 */
int store_worker_update(struct store *s, const struct orchard_worker *w, int64_t ttl_s,
			struct orchard_worker *ret);
int store_worker_delete(struct store *s, const char *name);

/* ---- service accounts ---- */
int store_sa_get(struct store *s, const char *name, struct orchard_service_account *ret);
int store_sa_list(struct store *s, struct orchard_service_account **ret, size_t *ret_n);
/* -EEXIST when the name is taken, unless overwrite. */
int store_sa_put(struct store *s, const struct orchard_service_account *sa, bool overwrite);
/* Token and roles of an existing account; -ENOENT when absent. */
int store_sa_update(struct store *s, const struct orchard_service_account *sa,
		    struct orchard_service_account *ret);
int store_sa_delete(struct store *s, const char *name);
/* Number of service accounts (for the bootstrap). */
int store_sa_count(struct store *s, size_t *ret);

/* ---- cluster settings (a default object when none is stored) ---- */
int store_cluster_settings_get(struct store *s, struct orchard_cluster_settings *ret);
int store_cluster_settings_put(struct store *s, const struct orchard_cluster_settings *cs);

/* ---- events ---- */
/* Append to the VM's events if the VM with that uid still exists (-ENOENT otherwise). */
int store_events_append(struct store *s, const char *vm_name, const struct orchard_event *ev,
			size_t n);
struct store_events_page {
	struct orchard_event *items;
	size_t n;
	char *next_cursor; /* raw key suffix; NULL when this is the last page */
};
/* limit 0: all. cursor: the raw suffix from a previous page (exclusive), or NULL. */
int store_events_list(struct store *s, const char *vm_uid, size_t limit, bool descending,
		      const char *cursor, struct store_events_page *ret);
void store_events_page_release(struct store_events_page *p);
