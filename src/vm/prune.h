/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Pruning of the OCI cache (and, on request, of local VMs), and the "in use" protocol that
 * keeps pruning and the cache GC away from entries somebody is reading.
 *
 * The in-use protocol: a VM directory (a digest directory under cache/OCIs, or a local VM
 * directory) is in use while any process holds a flock(2) on the directory itself, shared or
 * exclusive. Readers take it SHARED (vm_cache_use); deleters (prune, auto-prune, the cache GC,
 * `delete`) take it EXCLUSIVE and NON-BLOCKING and skip or refuse an entry they cannot lock,
 * then move the directory into tmp/ while still holding the lock, so a reader that was waiting
 * finds the path gone instead of a half-deleted image. Because flock follows the inode across
 * rename(2), a writer can lock its staging directory (home_make_staging does) and keep that
 * lock through the rename into cache/OCIs and the tag link: the GC will not collect the new,
 * not yet linked digest directory in between.
 */

/*
 * Mark the VM directory `dir` in use: open it, take a SHARED flock (waiting while a deleter
 * holds it), then check that `dir` still names the locked directory. Returns the fd holding
 * the lock (close it when done reading), -ENOENT when the directory is gone (deleted while we
 * waited), or another -errno. Non-logging. Call it before copying from a cache entry
 * (`run --disk`, push or export of a cached image; vm_clone already takes it on its source) and
 * while creating or re-pointing a tag symlink to an existing digest directory.
 * flock conflicts between two open() of the same directory even within one process: never call
 * it on a directory whose staging lock this process still holds (it would wait for itself),
 * and expect vm_cache_gc/vm_prune_auto in this process to skip an entry it holds.
 */
int vm_cache_use(const char *dir);

/*
 * Take the deleter's lock on `dir`: EXCLUSIVE, non-blocking, then check that `dir` still names
 * the locked directory. Returns the fd, -EBUSY when somebody holds it, -ENOENT when gone.
 * Non-logging.
 */
int vm_cache_lock_delete(const char *dir);

/*
 * Deleting directories whose deleter lock (vm_cache_lock_delete) the caller holds, in two
 * phases so that many deletions cost one fsync per parent directory:
 *  - vm_trash_move renames `dir` into tmp/delete-<UUID> (or, when tmp/ is on another
 *    filesystem, to a hidden sibling ".deleting-<UUID>" that listings skip and the cache GC
 *    finishes): the entry disappears atomically. Returns -errno (logged, naming `what`) when
 *    nothing was moved.
 *  - vm_trash_empty fsyncs the parents (the renames are durable before any file goes), then
 *    removes the moved directories; failures there are warnings. It releases the trash.
 * A crash leaves garbage in tmp/, never a half-deleted entry that still looks valid.
 */
struct vm_trash {
	char **moved;   /* where each directory went */
	char **parents; /* where it came from */
	size_t n;
};
#define VM_TRASH_INIT {0}
int vm_trash_move(struct vm_trash *t, const char *dir, const char *what);
void vm_trash_empty(struct vm_trash *t);

/* vm_trash_move + vm_trash_empty of one directory. */
int vm_dir_remove_locked(const char *dir, const char *what);

/* ----- pure selection logic (unit-tested) ----- */

enum {
	VM_PRUNE_IN_USE = 1 << 0,   /* must survive: locked by someone, or running */
	VM_PRUNE_EXCLUDED = 1 << 1, /* must survive: the source of the operation */
};

struct vm_prune_item {
	time_t accessed;
	uint64_t allocated; /* bytes */
	unsigned flags;     /* VM_PRUNE_* */
	bool remove;        /* output of the selection */
};

struct vm_prune_criteria {
	bool older_than_set;
	uint64_t older_than_days;
	bool space_budget_set;
	uint64_t space_budget_bytes;
	time_t now;
};

/*
 * `tart prune` selection over items (in a fixed order, e.g. by path): sets .remove.
 * older-than first: an item is removed when accessed <= now - days * 86400. Then the space
 * budget over the survivors, walked newest access first (ties in array order): an item is kept
 * while its allocated size fits in what remains of the budget, removed otherwise (greedy: a
 * later, smaller item can still be kept). Items with flags are never removed and, as Tart
 * leaves running VMs out of the candidates, are not charged to the budget either (charging
 * them would make prune delete more). Returns the number of items selected.
 */
size_t vm_prune_select(struct vm_prune_item *items, size_t n, const struct vm_prune_criteria *c);

/*
 * Auto-prune selection: eligible items (no flags) are taken oldest access first (ties in array
 * order) until the reclaimed bytes exceed `need`. When the eligible items together hold less
 * than `need`, selects nothing and returns -ENOSPC. Otherwise sets .remove and returns the
 * number selected.
 */
int vm_prune_select_auto(struct vm_prune_item *items, size_t n, uint64_t need);

/* ----- commands ----- */

enum vm_prune_entries { VM_PRUNE_CACHES, VM_PRUNE_VMS };

/*
 * `tart prune`: apply the criteria to the OCI cache digest directories or to the local VMs
 * (never running ones, never ones in use). Entries that cannot be deleted are reported and
 * make the result -EBUSY after everything else was processed. Logging.
 */
int vm_prune(enum vm_prune_entries entries, const struct vm_prune_criteria *c);

/*
 * Auto-prune before pull/clone: free space on the volume holding TART_HOME/cache so that
 * `required_bytes` fit, deleting OCI cache digest dirs oldest-access first, never the
 * entry at exclude_path (may be NULL), never one in use. Disabled when TART_NO_AUTO_PRUNE
 * is set (any value). Logging; returns 0 when nothing needed or done, -errno on failure.
 */
int vm_prune_auto(uint64_t required_bytes, const char *exclude_path);
