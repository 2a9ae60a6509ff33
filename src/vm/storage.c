// SPDX-License-Identifier: Apache-2.0
#include "vm/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "vm/home.h"
#include "vm/prune.h"

#define CACHE_DEPTH_MAX 32

void vm_entry_list_release(struct vm_entry_list *l)
{
	for (size_t i = 0; i < l->nr; i++) {
		free(l->v[i].name);
		free(l->v[i].path);
	}
	free(l->v);
	l->v = NULL;
	l->nr = 0;
}

static void list_add(struct vm_entry_list *l, char *name, char *path, bool oci)
{
	l->v = xrealloc(l->v, (l->nr + 1) * sizeof(*l->v));
	l->v[l->nr++] = (struct vm_entry){.name = name, .path = path, .oci = oci};
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct vm_entry *)a)->name, ((const struct vm_entry *)b)->name);
}

int vm_storage_list_local(struct vm_entry_list *ret)
{
	struct vm_entry_list l = {0};
	_cleanup_free_ char *vms = home_path("vms");
	DIR *d = opendir(vms);
	if (!d) {
		if (errno == ENOENT) {
			*ret = l;
			return 0;
		}
		return log_error_errno(negerrno(), "cannot read '%s'", vms);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		/* ".deleting-*": a deletion in progress (see vm_trash_move). */
		if (de->d_name[0] == '.' && (streq(de->d_name, ".") || streq(de->d_name, "..") ||
					     strneq(de->d_name, ".deleting-", 10)))
			continue;
		char *p = path_join(vms, de->d_name);
		struct vm_dir vd = {.path = p, .name = de->d_name};
		if (fs_is_dir(p) && vm_dir_initialized(&vd))
			list_add(&l, xstrdup(de->d_name), p, false);
		else
			free(p);
	}
	closedir(d);
	if (l.nr > 1)
		qsort(l.v, l.nr, sizeof(*l.v), cmp_entry);
	*ret = l;
	return 0;
}

static char *encode_host(const char *host)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = host; *p; p++) {
		if (*p == ':')
			strbuf_puts(&sb, "%3A");
		else
			strbuf_putc(&sb, *p);
	}
	return strbuf_detach(&sb, NULL);
}

static char *decode_host(const char *enc)
{
	struct strbuf sb = STRBUF_INIT;
	for (const char *p = enc; *p; p++) {
		unsigned int c;
		if (p[0] == '%' && p[1] && p[2] && sscanf(p + 1, "%2x", &c) == 1) {
			strbuf_putc(&sb, (char)c);
			p += 2;
		} else {
			strbuf_putc(&sb, *p);
		}
	}
	return strbuf_detach(&sb, NULL);
}

char *vm_cache_host_dir(const struct oci_ref *ref)
{
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	_cleanup_free_ char *h = encode_host(ref->host);
	return path_join(ocis, h);
}

char *vm_cache_repo_dir(const struct oci_ref *ref)
{
	_cleanup_free_ char *hd = vm_cache_host_dir(ref);
	return path_join(hd, ref->namespace);
}

char *vm_cache_path(const struct oci_ref *ref)
{
	_cleanup_free_ char *rd = vm_cache_repo_dir(ref);
	return path_join(rd, oci_ref_reference(ref));
}

/*
 * Walk cache/OCIs/<host>/<ns...>; `prefix` is "host/ns" so far. With digests_only, tag
 * symlinks are skipped: only real digest directories are listed, and symlinks are never
 * followed, so nothing outside the cache can be reached through them.
 */
static void walk_cache(const char *dir, const char *prefix, int depth, bool digests_only,
		       struct vm_entry_list *l)
{
	if (depth > CACHE_DEPTH_MAX)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		struct stat lst;
		if (lstat(p, &lst) < 0)
			continue;
		if (depth > 0 && S_ISLNK(lst.st_mode) && !digests_only) {
			char *target = realpath(p, NULL);
			if (!target)
				continue; /* dangling */
			struct vm_dir vd = {.path = target, .name = de->d_name};
			if (vm_dir_initialized(&vd))
				list_add(l, xasprintf("%s:%s", prefix, de->d_name), target, true);
			else
				free(target);
			continue;
		}
		if (!S_ISDIR(lst.st_mode))
			continue;
		if (depth > 0 && strneq(de->d_name, "sha256:", 7)) {
			struct vm_dir vd = {.path = p, .name = de->d_name};
			if (vm_dir_initialized(&vd))
				list_add(l, xasprintf("%s@%s", prefix, de->d_name), xstrdup(p), true);
			continue;
		}
		_cleanup_free_ char *np = NULL;
		if (depth == 0) {
			np = decode_host(de->d_name);
		} else {
			np = xasprintf("%s/%s", prefix, de->d_name);
		}
		walk_cache(p, np, depth + 1, digests_only, l);
	}
	closedir(d);
}

static int list_oci(bool digests_only, struct vm_entry_list *ret)
{
	struct vm_entry_list l = {0};
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	walk_cache(ocis, "", 0, digests_only, &l);
	if (l.nr > 1)
		qsort(l.v, l.nr, sizeof(*l.v), cmp_entry);
	*ret = l;
	return 0;
}

int vm_storage_list_oci(struct vm_entry_list *ret)
{
	return list_oci(false, ret);
}

int vm_storage_list_oci_digests(struct vm_entry_list *ret)
{
	return list_oci(true, ret);
}

int vm_storage_open(const char *name, struct vm_dir *ret)
{
	struct oci_ref ref = OCI_REF_INIT;
	if (oci_ref_parse(name, &ref, NULL) < 0)
		return vm_dir_open_local(name, ret);
	_cleanup_free_ char *p = vm_cache_path(&ref);
	oci_ref_release(&ref);
	_cleanup_free_ char *real = realpath(p, NULL);
	struct vm_dir d = {.path = real, .name = (char *)name};
	if (!real || !vm_dir_initialized(&d)) {
		log_error("the specified VM \"%s\" does not exist", name);
		return -ENOENT;
	}
	vm_dir_init(ret, real, name);
	(void)vm_dir_touch(ret);
	return 0;
}

int vm_cache_fqn(const struct oci_ref *ref, char **ret)
{
	_cleanup_free_ char *p = vm_cache_path(ref);
	if (ref->digest) {
		if (!fs_is_dir(p))
			return -ENOENT;
		*ret = oci_ref_to_string(ref);
		return 0;
	}
	_cleanup_free_ char *real = realpath(p, NULL);
	if (!real)
		return -ENOENT;
	const char *base = strrchr(real, '/');
	base = base ? base + 1 : real;
	if (!oci_digest_valid(base))
		return -EINVAL;
	*ret = xasprintf("%s/%s@%s", ref->host, ref->namespace, base);
	return 0;
}

/* What one walk of cache/OCIs finds: tag symlinks, digest dirs, abandoned deletions. */
struct gc_state {
	char **links;
	size_t nlinks;
	char **digests;
	size_t ndigests;
	char **trash;
	size_t ntrash;
};

static void strv_push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void gc_state_release(struct gc_state *st)
{
	strv_free(st->links, st->nlinks);
	strv_free(st->digests, st->ndigests);
	strv_free(st->trash, st->ntrash);
	*st = (struct gc_state){0};
}

/* Never follows symlinks: a link is recorded, not walked into. */
static void gc_walk(const char *dir, int depth, struct gc_state *st)
{
	if (depth > CACHE_DEPTH_MAX)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		/* ".repair-*": another GC's tag repair in flight (see gc_repair_moved_tag). */
		if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
		    strneq(de->d_name, ".repair-", 8))
			continue;
		char *p = path_join(dir, de->d_name);
		struct stat lst;
		if (lstat(p, &lst) < 0) {
			free(p);
		} else if (S_ISLNK(lst.st_mode)) {
			strv_push(&st->links, &st->nlinks, p);
		} else if (S_ISDIR(lst.st_mode) && depth > 0 && strneq(de->d_name, "sha256:", 7)) {
			strv_push(&st->digests, &st->ndigests, p);
		} else if (S_ISDIR(lst.st_mode) && strneq(de->d_name, ".deleting-", 10)) {
			strv_push(&st->trash, &st->ntrash, p);
		} else {
			if (S_ISDIR(lst.st_mode))
				gc_walk(p, depth + 1, st);
			free(p);
		}
	}
	closedir(d);
}

/*
 * A tag whose absolute target dangles only because TART_HOME was moved or copied elsewhere
 * still names its digest: when that digest directory sits next to the tag, re-point the tag
 * to it (atomically) instead of deleting it, which would then let the GC delete the image.
 * Returns true when repaired.
 */
static bool gc_repair_moved_tag(const char *p, const char *target)
{
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (!oci_digest_valid(base))
		return false;
	_cleanup_free_ char *parent = xstrdup(p);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return false;
	*slash = '\0';
	_cleanup_free_ char *sibling = path_join(parent, base);
	struct stat st;
	if (lstat(sibling, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	char uuid[37];
	fs_random_uuid(uuid);
	_cleanup_free_ char *tmp = xasprintf("%s/.repair-%s", parent, uuid);
	if (symlink(sibling, tmp) < 0)
		return false;
	if (rename(tmp, p) < 0) {
		(void)unlink(tmp);
		return false;
	}
	return true;
}

/*
 * Remove the symlink p if it dangles (or repair it, above). The target is read again just
 * before the unlink so a tag re-pointed in the meantime (by an atomic rename over it) is left
 * alone.
 */
static void gc_remove_dangling(const char *p)
{
	char a[PATH_MAX], b[PATH_MAX];
	ssize_t na = readlink(p, a, sizeof(a) - 1);
	struct stat st;
	if (na < 0 || stat(p, &st) == 0)
		return;
	if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
		return;
	a[na] = '\0';
	if (gc_repair_moved_tag(p, a))
		return;
	ssize_t nb = readlink(p, b, sizeof(b) - 1);
	if (nb != na || memcmp(a, b, (size_t)na) != 0)
		return;
	if (unlink(p) < 0 && errno != ENOENT)
		log_warning_errno(negerrno(), "cannot remove dangling '%s'", p);
}

/* What the tag symlinks resolve to, stat'ed once per GC run. */
struct gc_targets {
	struct stat *v;
	size_t n;
};

static void gc_targets_load(const struct gc_state *st, struct gc_targets *ret)
{
	ret->v = xcalloc(st->nlinks ? st->nlinks : 1, sizeof(*ret->v));
	ret->n = 0;
	for (size_t j = 0; j < st->nlinks; j++)
		if (stat(st->links[j], &ret->v[ret->n]) == 0)
			ret->n++;
}

/* True when one of the tag symlinks resolves to the directory `dir`. */
static bool gc_is_linked(const struct gc_targets *t, const struct stat *dir)
{
	for (size_t j = 0; j < t->n; j++)
		if (t->v[j].st_dev == dir->st_dev && t->v[j].st_ino == dir->st_ino)
			return true;
	return false;
}

static bool gc_is_pinned(const char *digest_dir)
{
	_cleanup_free_ char *marker = path_join(digest_dir, ".explicitly-pulled");
	return fs_exists(marker);
}

int vm_cache_lock_host_dir(const char *host_dir)
{
	int r = fs_mkdir_p(host_dir, 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create '%s'", host_dir);
	int fd = fs_open_flock(host_dir, true);
	if (fd == -EWOULDBLOCK) {
		log_info("waiting for lock...");
		fd = fs_open_flock(host_dir, false);
	}
	if (fd < 0)
		return log_error_errno(fd, "cannot lock '%s'", host_dir);
	return fd;
}

void vm_cache_gc_host_locked(const char *host_dir)
{
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	struct gc_state st = {0};
	gc_walk(host_dir, 1, &st);
	for (size_t i = 0; i < st.nlinks; i++)
		gc_remove_dangling(st.links[i]);
	for (size_t i = 0; i < st.ntrash; i++) {
		_cleanup_close_ int fd = vm_cache_lock_delete(st.trash[i]);
		if (fd >= 0)
			(void)fs_rm_rf(st.trash[i]);
	}
	/*
	 * Take the deleter's lock on every unpinned digest directory first, then look for links
	 * (in the whole cache, whatever host they are under): a pull links a tag while holding the
	 * host lock, or vm_cache_use() on the target, or the lock of the staging directory it
	 * renamed into place, so a link either exists by now or cannot be created until we let
	 * go. Directories locked by someone else are in use and skipped.
	 */
	int *fds = xcalloc(st.ndigests ? st.ndigests : 1, sizeof(int));
	for (size_t i = 0; i < st.ndigests; i++)
		fds[i] = gc_is_pinned(st.digests[i]) ? -1 : vm_cache_lock_delete(st.digests[i]);
	struct gc_state fresh = {0};
	gc_walk(ocis, 0, &fresh);
	struct gc_targets targets;
	gc_targets_load(&fresh, &targets);
	struct vm_trash trash = VM_TRASH_INIT;
	for (size_t i = 0; i < st.ndigests; i++) {
		struct stat ds;
		if (fds[i] < 0 || fstat(fds[i], &ds) < 0)
			continue;
		if (!gc_is_linked(&targets, &ds) && !gc_is_pinned(st.digests[i]))
			(void)vm_trash_move(&trash, st.digests[i], st.digests[i]);
	}
	vm_trash_empty(&trash);
	free(targets.v);
	for (size_t i = 0; i < st.ndigests; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	gc_state_release(&fresh);
	gc_state_release(&st);
}

void vm_cache_gc(void)
{
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	DIR *d = opendir(ocis);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		_cleanup_free_ char *hd = path_join(ocis, de->d_name);
		struct stat lst;
		if (lstat(hd, &lst) < 0)
			continue;
		/* A host directory that is a symlink is never followed: it may lead out of the cache. */
		if (S_ISLNK(lst.st_mode)) {
			gc_remove_dangling(hd);
			continue;
		}
		if (!S_ISDIR(lst.st_mode))
			continue;
		/* Pulls link new digest directories under this lock: never collect in between. */
		_cleanup_close_ int fd = fs_open_flock(hd, false);
		if (fd < 0)
			continue;
		vm_cache_gc_host_locked(hd);
	}
	closedir(d);
}

int vm_cache_delete(const struct oci_ref *ref)
{
	_cleanup_free_ char *p = vm_cache_path(ref);
	_cleanup_free_ char *s = oci_ref_to_string(ref);
	struct stat lst;
	struct vm_dir vd = {.path = p, .name = s};
	/*
	 * A tag is a symlink (or, from old caches, an image directory). The path of tag "b" in
	 * "host/a" is also the namespace directory of every "host/a/b/..." image: never take a
	 * plain directory for a tag, or deleting "host/a:b" would delete all of those.
	 */
	bool ok = lstat(p, &lst) == 0 &&
		  (S_ISLNK(lst.st_mode) ||
		   (S_ISDIR(lst.st_mode) && (ref->digest || vm_dir_initialized(&vd))));
	if (!ok) {
		log_error("the specified VM \"%s\" does not exist", s);
		return -ENOENT;
	}
	if (S_ISDIR(lst.st_mode)) {
		_cleanup_close_ int fd = vm_cache_lock_delete(p);
		if (fd == -EBUSY) {
			log_error("VM \"%s\" is in use", s);
			return -EBUSY;
		}
		if (fd == -ENOENT) {
			log_error("the specified VM \"%s\" does not exist", s);
			return -ENOENT;
		}
		if (fd < 0)
			return log_error_errno(fd, "cannot lock \"%s\"", s);
		int r = vm_dir_remove_locked(p, s);
		if (r < 0)
			return r;
	} else if (unlink(p) < 0) {
		return log_error_errno(negerrno(), "cannot delete '%s'", s);
	}
	vm_cache_gc();
	return 0;
}
