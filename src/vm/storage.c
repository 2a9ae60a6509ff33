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
		if (de->d_name[0] == '.' && (streq(de->d_name, ".") || streq(de->d_name, "..")))
			continue;
		char *p = path_join(vms, de->d_name);
		struct vm_dir vd = {.path = p, .name = de->d_name};
		if (fs_is_dir(p) && vm_dir_initialized(&vd))
			list_add(&l, xstrdup(de->d_name), p, false);
		else
			free(p);
	}
	closedir(d);
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

/* Walk cache/OCIs/<host>/<ns...>; `prefix` is "host/ns" so far. */
static void walk_cache(const char *dir, const char *prefix, int depth, struct vm_entry_list *l)
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
		if (depth > 0 && S_ISLNK(lst.st_mode)) {
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
		walk_cache(p, np, depth + 1, l);
	}
	closedir(d);
}

int vm_storage_list_oci(struct vm_entry_list *ret)
{
	struct vm_entry_list l = {0};
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	walk_cache(ocis, "", 0, &l);
	qsort(l.v, l.nr, sizeof(*l.v), cmp_entry);
	*ret = l;
	return 0;
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

/* Collect symlink targets (realpath) and digest dirs. */
struct gc_state {
	char **targets;
	size_t ntargets;
	char **digests;
	size_t ndigests;
};

static void gc_walk(const char *dir, int depth, struct gc_state *st)
{
	if (depth > CACHE_DEPTH_MAX)
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		struct stat lst;
		if (lstat(p, &lst) < 0)
			continue;
		if (S_ISLNK(lst.st_mode)) {
			char *t = realpath(p, NULL);
			if (!t) {
				if (unlink(p) < 0)
					log_warning_errno(negerrno(), "cannot remove dangling '%s'", p);
				continue;
			}
			st->targets = xrealloc(st->targets, (st->ntargets + 1) * sizeof(char *));
			st->targets[st->ntargets++] = t;
		} else if (S_ISDIR(lst.st_mode)) {
			if (depth > 0 && strneq(de->d_name, "sha256:", 7)) {
				st->digests = xrealloc(st->digests, (st->ndigests + 1) * sizeof(char *));
				st->digests[st->ndigests++] = xstrdup(p);
			} else {
				gc_walk(p, depth + 1, st);
			}
		}
	}
	closedir(d);
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
	struct gc_state st = {0};
	gc_walk(host_dir, 1, &st);
	for (size_t i = 0; i < st.ndigests; i++) {
		_cleanup_free_ char *real = realpath(st.digests[i], NULL);
		bool linked = false;
		for (size_t j = 0; real && j < st.ntargets && !linked; j++)
			linked = streq(st.targets[j], real);
		_cleanup_free_ char *marker = path_join(st.digests[i], ".explicitly-pulled");
		if (!linked && !fs_exists(marker)) {
			int r = fs_rm_rf(st.digests[i]);
			if (r < 0)
				log_warning_errno(r, "cannot remove '%s'", st.digests[i]);
		}
		free(st.digests[i]);
	}
	for (size_t j = 0; j < st.ntargets; j++)
		free(st.targets[j]);
	free(st.targets);
	free(st.digests);
}

void vm_cache_gc(void)
{
	_cleanup_free_ char *ocis = home_path("cache/OCIs");
	DIR *d = opendir(ocis);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *hd = path_join(ocis, de->d_name);
		if (!fs_is_dir(hd))
			continue;
		/* pulls link new digest directories under this lock: never collect in between */
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
	if (lstat(p, &lst) < 0) {
		log_error("the specified VM \"%s\" does not exist", s);
		return -ENOENT;
	}
	int r = S_ISLNK(lst.st_mode) ? (unlink(p) < 0 ? negerrno() : 0) : fs_rm_rf(p);
	if (r < 0)
		return log_error_errno(r, "cannot delete '%s'", s);
	vm_cache_gc();
	return 0;
}
