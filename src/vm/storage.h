/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "oci/ref.h"
#include "vm/dir.h"

/*
 * The two stores: local VMs in vms/<name>, and pulled images in
 * cache/OCIs/<host with ':' as %3A>/<namespace...>/{<tag> -> sha256:<hex>/, sha256:<hex>/}.
 */
struct vm_entry {
	char *name; /* local name, or "host/ns:tag" / "host/ns@sha256:..." */
	char *path; /* the VM directory (for tags: the digest directory it points to) */
	bool oci;
};

struct vm_entry_list {
	struct vm_entry *v;
	size_t nr;
};

void vm_entry_list_release(struct vm_entry_list *l);
static inline void vm_entry_list_releasep(struct vm_entry_list *l)
{
	vm_entry_list_release(l);
}
#define _cleanup_vm_entry_list_ __attribute__((cleanup(vm_entry_list_releasep)))

/* Initialized local VMs sorted by name (byte order). */
int vm_storage_list_local(struct vm_entry_list *ret);
/* Cache entries (tags and digests) sorted by name. */
int vm_storage_list_oci(struct vm_entry_list *ret);
/*
 * Only the initialized digest directories ("host/ns@sha256:..."), found without following
 * any symlink, sorted by name: the candidates of prune.
 */
int vm_storage_list_oci_digests(struct vm_entry_list *ret);

/* Allocated cache path of a reference: ".../<ns>/<tag>" or ".../<ns>/sha256:<hex>". */
char *vm_cache_path(const struct oci_ref *ref);
/* Allocated cache directory of the repository: ".../OCIs/<host>/<ns>". */
char *vm_cache_repo_dir(const struct oci_ref *ref);
/* Allocated ".../OCIs/<host>" directory. */
char *vm_cache_host_dir(const struct oci_ref *ref);

/*
 * Open a VM by name: a remote name opens the cache entry (resolving a tag symlink), anything
 * else a local VM. Logs Tart's "does not exist" message and returns -ENOENT when absent.
 */
int vm_storage_open(const char *name, struct vm_dir *ret);

/*
 * Resolve a cached remote name to "host/ns@sha256:<hex>" (allocated). -ENOENT when not cached,
 * -EINVAL when a tag does not point to a digest directory.
 */
int vm_cache_fqn(const struct oci_ref *ref, char **ret);

/*
 * Delete unreferenced digest directories and dangling tag symlinks under cache/OCIs: a digest
 * directory survives when a tag links to it, it holds ".explicitly-pulled", or it is in use
 * (see the protocol in vm/prune.h). Deletion is atomic (moved into tmp/ first). Non-logging
 * except for a warning per failed removal.
 */
void vm_cache_gc(void);

/*
 * The per-host cache lock (flock on cache/OCIs/<host>, created if needed): pulls hold it while
 * they move a digest directory into place, link the tag and collect garbage, and vm_cache_gc()
 * takes it for each host, so a freshly renamed digest directory is never collected before its
 * tag symlink exists. Prints "waiting for lock..." when it has to wait. Returns the fd.
 */
int vm_cache_lock_host_dir(const char *host_dir);
/* vm_cache_gc() for one host directory whose lock the caller holds. */
void vm_cache_gc_host_locked(const char *host_dir);

/*
 * Delete a cache entry (tag symlink or digest directory), then run the GC. A digest directory
 * in use is refused with -EBUSY (logged as `VM "<name>" is in use`).
 */
int vm_cache_delete(const struct oci_ref *ref);
