// SPDX-License-Identifier: Apache-2.0
#include "vm/prune.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/time.h"
#include "vm/dir.h"
#include "vm/home.h"
#include "vm/storage.h"

#define SECONDS_PER_DAY 86400ULL

/* ----- the in-use protocol ----- */

static bool same_inode(int fd, const char *path, bool follow)
{
	struct stat a, b;
	if (fstat(fd, &a) < 0)
		return false;
	if ((follow ? stat(path, &b) : lstat(path, &b)) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int lock_dir(const char *dir, bool exclusive)
{
	int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (exclusive ? O_NOFOLLOW : 0);
	_cleanup_close_ int fd = open(dir, flags);
	if (fd < 0)
		return (errno == ELOOP || errno == ENOTDIR) ? -ENOENT : negerrno();
	int r = fs_flock(fd, exclusive, exclusive);
	if (r == -EWOULDBLOCK)
		return -EBUSY;
	if (r < 0)
		return r;
	/* A deleter may have moved the directory away while we waited for the lock. */
	if (!same_inode(fd, dir, !exclusive))
		return -ENOENT;
	return TAKE_FD(fd);
}

int vm_cache_use(const char *dir)
{
	return lock_dir(dir, false);
}

int vm_cache_lock_delete(const char *dir)
{
	return lock_dir(dir, true);
}

static char *parent_of(const char *path)
{
	char *parent = xstrdup(path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	else
		strcpy(parent, slash ? "/" : ".");
	return parent;
}

int vm_trash_move(struct vm_trash *t, const char *dir, const char *what)
{
	char uuid[37];
	fs_random_uuid(uuid);
	_cleanup_free_ char *tmp = home_path("tmp");
	_cleanup_free_ char *name = xasprintf("delete-%s", uuid);
	_cleanup_free_ char *parent = parent_of(dir);
	char *moved = path_join(tmp, name);
	if (rename(dir, moved) < 0) {
		int r = negerrno();
		free(moved);
		if (r != -EXDEV)
			return log_error_errno(r, "cannot delete \"%s\"", what);
		/* tmp/ on another filesystem: a hidden sibling, finished by the cache GC. */
		moved = xasprintf("%s/.deleting-%s", parent, uuid);
		if (rename(dir, moved) < 0) {
			r = negerrno();
			free(moved);
			return log_error_errno(r, "cannot delete \"%s\"", what);
		}
	}
	t->moved = xrealloc(t->moved, (t->n + 1) * sizeof(char *));
	t->parents = xrealloc(t->parents, (t->n + 1) * sizeof(char *));
	t->moved[t->n] = moved;
	t->parents[t->n++] = TAKE_PTR(parent);
	return 0;
}

void vm_trash_empty(struct vm_trash *t)
{
	for (size_t i = 0; i < t->n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = streq(t->parents[i], t->parents[j]);
		if (!seen)
			(void)fs_fsync_dir(t->parents[i]);
	}
	for (size_t i = 0; i < t->n; i++) {
		int r = fs_rm_rf(t->moved[i]);
		if (r < 0)
			log_warning_errno(r, "'%s' could not be removed", t->moved[i]);
		free(t->moved[i]);
		free(t->parents[i]);
	}
	free(t->moved);
	free(t->parents);
	*t = (struct vm_trash)VM_TRASH_INIT;
}

int vm_dir_remove_locked(const char *dir, const char *what)
{
	struct vm_trash t = VM_TRASH_INIT;
	int r = vm_trash_move(&t, dir, what);
	vm_trash_empty(&t);
	return r;
}

/* ----- pure selection ----- */

struct order {
	time_t accessed;
	size_t index;
};

static int cmp_newest_first(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	if (x->accessed != y->accessed)
		return x->accessed > y->accessed ? -1 : 1;
	return x->index < y->index ? -1 : (x->index > y->index);
}

static int cmp_oldest_first(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	if (x->accessed != y->accessed)
		return x->accessed < y->accessed ? -1 : 1;
	return x->index < y->index ? -1 : (x->index > y->index);
}

/* Indices of the items that may be removed (no flags, not selected yet), sorted by cmp. */
static size_t eligible_sorted(const struct vm_prune_item *items, size_t n,
			      int (*cmp)(const void *, const void *), struct order **ret)
{
	struct order *o = xcalloc(n ? n : 1, sizeof(*o));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!items[i].flags && !items[i].remove)
			o[m++] = (struct order){.accessed = items[i].accessed, .index = i};
	qsort(o, m, sizeof(*o), cmp);
	*ret = o;
	return m;
}

size_t vm_prune_select(struct vm_prune_item *items, size_t n, const struct vm_prune_criteria *c)
{
	size_t selected = 0;
	for (size_t i = 0; i < n; i++)
		items[i].remove = false;
	if (c->older_than_set) {
		/* Saturate instead of wrapping: a huge N days selects nothing. */
		uint64_t span = c->older_than_days > (uint64_t)c->now / SECONDS_PER_DAY + 1
					? UINT64_MAX
					: c->older_than_days * SECONDS_PER_DAY;
		for (size_t i = 0; i < n; i++) {
			if (items[i].flags || span == UINT64_MAX)
				continue;
			if (items[i].accessed <= c->now - (time_t)span) {
				items[i].remove = true;
				selected++;
			}
		}
	}
	if (c->space_budget_set) {
		struct order *o;
		size_t m = eligible_sorted(items, n, cmp_newest_first, &o);
		uint64_t budget = c->space_budget_bytes;
		for (size_t k = 0; k < m; k++) {
			struct vm_prune_item *it = &items[o[k].index];
			if (it->allocated <= budget) {
				budget -= it->allocated;
			} else {
				it->remove = true;
				selected++;
			}
		}
		free(o);
	}
	return selected;
}

int vm_prune_select_auto(struct vm_prune_item *items, size_t n, uint64_t need)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		items[i].remove = false;
		if (!items[i].flags)
			total += items[i].allocated;
	}
	if (total < need)
		return -ENOSPC;
	struct order *o;
	size_t m = eligible_sorted(items, n, cmp_oldest_first, &o);
	uint64_t reclaimed = 0;
	int selected = 0;
	for (size_t k = 0; k < m && reclaimed <= need; k++) {
		items[o[k].index].remove = true;
		reclaimed += items[o[k].index].allocated;
		selected++;
	}
	free(o);
	return selected;
}

/* ----- candidates on disk ----- */

/* One candidate with the locks that pin it while we decide. */
struct cand {
	const struct vm_entry *e;
	int flock_fd; /* deleter's flock on the directory, -1 when not held */
	int run_fd;   /* local VMs: the run lock on config.json, -1 when not held */
};

static void cand_unlock(struct cand *c)
{
	if (c->flock_fd >= 0)
		close(c->flock_fd);
	if (c->run_fd >= 0)
		close(c->run_fd);
	c->flock_fd = c->run_fd = -1;
}

/* Let readers waiting on the entries we keep go on before we spend time deleting. */
static void cands_unlock_kept(struct cand *cs, const struct vm_prune_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!items[i].remove)
			cand_unlock(&cs[i]);
}

static void cands_release(struct cand *cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cand_unlock(&cs[i]);
	free(cs);
}

/*
 * Lock and measure every entry: an entry we cannot lock is in use and survives. Holding the
 * deleter's locks of all candidates while selecting means no reader can start on an entry
 * between our decision and its removal.
 */
static struct cand *cands_collect(const struct vm_entry_list *l, bool vms, const char *exclude,
				  struct vm_prune_item **ret_items)
{
	struct cand *cs = xcalloc(l->nr ? l->nr : 1, sizeof(*cs));
	struct vm_prune_item *items = xcalloc(l->nr ? l->nr : 1, sizeof(*items));
	struct stat ex;
	bool have_ex = exclude && stat(exclude, &ex) == 0;
	for (size_t i = 0; i < l->nr; i++) {
		struct cand *c = &cs[i];
		struct vm_prune_item *it = &items[i];
		struct vm_dir d = {.path = l->v[i].path, .name = l->v[i].name};
		struct stat st;
		c->e = &l->v[i];
		c->flock_fd = c->run_fd = -1;
		if (have_ex && stat(d.path, &st) == 0 && st.st_dev == ex.st_dev &&
		    st.st_ino == ex.st_ino) {
			it->flags |= VM_PRUNE_EXCLUDED;
			continue;
		}
		if (vms) {
			c->run_fd = vm_dir_lock_run(&d);
			if (c->run_fd < 0) {
				log_debug("keeping \"%s\": %s", d.name,
					  c->run_fd == -EALREADY ? "it is running"
								 : strerror(-c->run_fd));
				it->flags |= VM_PRUNE_IN_USE;
				continue;
			}
		}
		c->flock_fd = vm_cache_lock_delete(d.path);
		if (c->flock_fd < 0) {
			log_debug("keeping \"%s\": %s", d.name,
				  c->flock_fd == -EBUSY ? "it is in use" : strerror(-c->flock_fd));
			it->flags |= VM_PRUNE_IN_USE;
			continue;
		}
		/* Measured under the lock, after the last reader has gone. */
		if (vm_dir_accessed(&d, &it->accessed) < 0 ||
		    vm_dir_sizes(&d, NULL, &it->allocated) < 0) {
			log_warning("keeping \"%s\": cannot read its size or access time", d.name);
			it->flags |= VM_PRUNE_IN_USE;
		}
	}
	*ret_items = items;
	return cs;
}

static int list_entries(bool vms, struct vm_entry_list *ret)
{
	return vms ? vm_storage_list_local(ret) : vm_storage_list_oci_digests(ret);
}

int vm_prune(enum vm_prune_entries entries, const struct vm_prune_criteria *c)
{
	bool vms = entries == VM_PRUNE_VMS;
	_cleanup_vm_entry_list_ struct vm_entry_list l = {0};
	int r = list_entries(vms, &l);
	if (r < 0)
		return r;
	struct vm_prune_item *items;
	struct cand *cs = cands_collect(&l, vms, NULL, &items);
	vm_prune_select(items, l.nr, c);
	cands_unlock_kept(cs, items, l.nr);
	int ret = 0;
	struct vm_trash t = VM_TRASH_INIT;
	for (size_t i = 0; i < l.nr; i++) {
		if (!items[i].remove)
			continue;
		r = vm_trash_move(&t, cs[i].e->path, cs[i].e->name);
		if (r < 0)
			ret = r;
		else
			log_debug("pruned \"%s\" (%llu bytes)", cs[i].e->name,
				  (unsigned long long)items[i].allocated);
	}
	vm_trash_empty(&t);
	cands_release(cs, l.nr);
	free(items);
	return ret;
}

int vm_prune_auto(uint64_t required_bytes, const char *exclude_path)
{
	if (getenv("TART_NO_AUTO_PRUNE")) {
		log_debug("automatic pruning is disabled by TART_NO_AUTO_PRUNE");
		return 0;
	}
	_cleanup_free_ char *cache = home_path("cache");
	/*
	 * One auto-prune at a time: two clones measuring the same free space would each delete
	 * enough for both. A lock file of its own, so that no other lock of the store can be
	 * involved in a wait on it.
	 */
	_cleanup_free_ char *lock = path_join(cache, ".auto-prune.lock");
	_cleanup_close_ int serial = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = serial < 0 ? negerrno() : fs_flock(serial, true, false);
	if (r < 0)
		return log_error_errno(r, "cannot lock '%s'", lock);
	struct statvfs sv;
	if (statvfs(cache, &sv) < 0)
		return log_error_errno(negerrno(), "cannot determine the free space of '%s'",
				       cache);
	uint64_t free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	/* Zero is what some filesystems report when they do not know: do not act on it. */
	if (free_bytes == 0 || required_bytes < free_bytes)
		return 0;
	uint64_t need = required_bytes - free_bytes;

	_cleanup_vm_entry_list_ struct vm_entry_list l = {0};
	r = vm_storage_list_oci_digests(&l);
	if (r < 0)
		return r;
	struct vm_prune_item *items;
	struct cand *cs = cands_collect(&l, false, exclude_path, &items);
	int n = vm_prune_select_auto(items, l.nr, need);
	if (n == -ENOSPC) {
		uint64_t total = 0;
		for (size_t i = 0; i < l.nr; i++)
			total += items[i].flags ? 0 : items[i].allocated;
		log_warning("%llu more bytes are needed, but pruning the OCI cache would free only "
			    "%llu bytes: not pruning",
			    (unsigned long long)need, (unsigned long long)total);
		n = 0;
	} else if (n > 0) {
		log_info("pruning the OCI cache to free %llu bytes (set TART_NO_AUTO_PRUNE to "
			 "disable)",
			 (unsigned long long)need);
	}
	cands_unlock_kept(cs, items, l.nr);
	r = 0;
	struct vm_trash t = VM_TRASH_INIT;
	for (size_t i = 0; i < l.nr; i++) {
		if (!items[i].remove)
			continue;
		char when[64];
		format_iso8601_utc(items[i].accessed, when, sizeof(when));
		log_info("pruning \"%s\" (%llu bytes, last accessed %s)", cs[i].e->name,
			 (unsigned long long)items[i].allocated, when);
		int k = vm_trash_move(&t, cs[i].e->path, cs[i].e->name);
		if (k < 0)
			r = k;
	}
	vm_trash_empty(&t);
	cands_release(cs, l.nr);
	free(items);
	return r;
}
