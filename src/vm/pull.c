// SPDX-License-Identifier: Apache-2.0
#include "vm/pull.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/manifest.h"
#include "oci/pull.h"
#include "oci/registry.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"
#include "vm/config.h"
#include "vm/dir.h"
#include "vm/home.h"
#include "vm/ops.h"
#include "vm/prune.h"
#include "vm/state.h"
#include "vm/storage.h"

#define MANIFEST_FILE "manifest.json"
#define STAGED_DIGEST_FILE ".manifest-digest"
#define EXPLICIT_FILE ".explicitly-pulled"

static char *staging_path(const struct oci_ref *ref)
{
	_cleanup_free_ char *s = oci_ref_to_string(ref);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL) != 1)
		abort();
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	_cleanup_free_ char *tmp = home_path("tmp");
	return path_join(tmp, hex);
}

/* Empty a directory we hold a flock on (the directory itself must stay: the lock is on it). */
static int empty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return negerrno();
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		int k = fs_rm_rf(p);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	return r;
}

bool vm_cache_has(const struct oci_ref *ref)
{
	_cleanup_free_ char *p = vm_cache_path(ref);
	_cleanup_free_ char *real = realpath(p, NULL);
	struct vm_dir d = {.path = real};
	return real && vm_dir_initialized(&d);
}

/* Cached images with a manifest.json, as candidates to copy identical layers from. */
struct locals {
	struct oci_pull_local *v;
	struct oci_manifest *m;
	char **paths;
	int *use_fds; /* vm_cache_use() on each candidate: prune and GC leave it alone meanwhile */
	size_t n;
};

static void locals_release(struct locals *l)
{
	for (size_t i = 0; i < l->n; i++) {
		oci_manifest_release(&l->m[i]);
		free(l->paths[i]);
		close(l->use_fds[i]);
	}
	free(l->v);
	free(l->m);
	free(l->paths);
	free(l->use_fds);
}

static void locals_collect(struct locals *l, const char *exclude_digest)
{
	_cleanup_vm_entry_list_ struct vm_entry_list all = {0};
	if (vm_storage_list_oci(&all) < 0)
		return;
	for (size_t i = 0; i < all.nr; i++) {
		const char *base = strrchr(all.v[i].path, '/');
		if (!base || streq(base + 1, exclude_digest))
			continue;
		bool dup = false;
		for (size_t k = 0; k < l->n && !dup; k++)
			dup = strneq(l->paths[k], all.v[i].path, strlen(all.v[i].path));
		if (dup)
			continue;
		_cleanup_free_ char *mp = path_join(all.v[i].path, MANIFEST_FILE);
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		struct oci_manifest m;
		int use = vm_cache_use(all.v[i].path);
		if (use < 0)
			continue;
		if (fs_read_full(mp, OCI_MANIFEST_MAX, &sb) < 0 ||
		    oci_manifest_parse(sb.buf, sb.len, &m, NULL) < 0) {
			close(use);
			continue;
		}
		l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
		l->m = xrealloc(l->m, (l->n + 1) * sizeof(*l->m));
		l->paths = xrealloc(l->paths, (l->n + 1) * sizeof(*l->paths));
		l->use_fds = xrealloc(l->use_fds, (l->n + 1) * sizeof(*l->use_fds));
		l->m[l->n] = m;
		l->paths[l->n] = path_join(all.v[i].path, VM_DISK_FILE);
		l->use_fds[l->n] = use;
		l->n++;
	}
	for (size_t i = 0; i < l->n; i++)
		l->v[i] = (struct oci_pull_local){.disk_path = l->paths[i], .manifest = &l->m[i]};
}

/* Apple VMs carry their own NVRAM format; only an OVMF store helps QEMU. */
static void note_nvram(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, VM_NVRAM_FILE);
	struct stat st;
	if (stat(p, &st) < 0 || st.st_size == 0)
		return; /* Vetu images have none */
	if (!vm_nvram_is_firmware_volume(p))
		log_info(
		    "note: the image's nvram.bin is not an OVMF variable store (an Apple "
		    "Virtualization NVRAM?); `tart clone` gives the VM fresh firmware variables");
}

/*
 * Under the host lock: move the verified staging dir into place (unless another pull did
 * already), link the tag or mark the digest as explicitly pulled, collect garbage.
 */
static int link_into_cache(const struct oci_ref *ref, const char *digest, const char *staging)
{
	_cleanup_free_ char *host_dir = vm_cache_host_dir(ref);
	_cleanup_free_ char *repo = vm_cache_repo_dir(ref);
	_cleanup_free_ char *ddir = path_join(repo, digest);
	_cleanup_close_ int lock = vm_cache_lock_host_dir(host_dir);
	if (lock < 0)
		return lock;
	int r = fs_mkdir_p(repo, 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create '%s'", repo);
	if (staging) {
		if (renameat2(AT_FDCWD, staging, AT_FDCWD, ddir, RENAME_NOREPLACE) < 0) {
			r = negerrno();
			if (r != -EEXIST && r != -ENOTEMPTY)
				return log_error_errno(r, "cannot move the image into '%s'", ddir);
			(void)fs_rm_rf(staging);
		}
		(void)fs_fsync_dir(repo);
	}
	if (ref->tag) {
		_cleanup_free_ char *tag = path_join(repo, ref->tag);
		_cleanup_free_ char *tmp =
		    xasprintf("%s/.%s.%d.tmp", repo, ref->tag, (int)getpid());
		(void)unlink(tmp);
		if (symlink(ddir, tmp) < 0 || rename(tmp, tag) < 0) {
			r = negerrno();
			(void)unlink(tmp);
			return log_error_errno(r, "cannot link '%s'", tag);
		}
	} else {
		_cleanup_free_ char *mark = path_join(ddir, EXPLICIT_FILE);
		r = fs_write_atomic(mark, "", 0, 0644);
		if (r < 0)
			return log_error_errno(r, "cannot write '%s'", mark);
	}
	(void)fs_fsync_dir(repo);
	vm_cache_gc_host_locked(host_dir);
	return 0;
}

/* Make sure the staging directory belongs to this manifest; start over otherwise. */
static int prepare_staging(const char *staging, const char *digest, const struct strbuf *body)
{
	_cleanup_free_ char *dp = path_join(staging, STAGED_DIGEST_FILE);
	_cleanup_strbuf_ struct strbuf old = STRBUF_INIT;
	if (fs_read_full(dp, 256, &old) < 0 || !streq(old.buf, digest)) {
		int r = empty_dir(staging);
		if (r < 0)
			return log_error_errno(r, "cannot clean '%s'", staging);
	}
	_cleanup_free_ char *mp = path_join(staging, MANIFEST_FILE);
	int r = fs_write_atomic(mp, body->buf, body->len, 0644);
	if (r >= 0)
		r = fs_write_atomic(dp, digest, strlen(digest), 0644);
	if (r < 0)
		return log_error_errno(r, "cannot write into '%s'", staging);
	return 0;
}

/*
 * Create and lock tmp/<md5>. The pull we waited for may have renamed that directory into the
 * cache meanwhile: then the lock is on the wrong inode and we start over on a fresh one.
 */
static int open_staging(const char *staging, const char *name)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		if (mkdir(staging, 0755) < 0 && errno != EEXIST)
			return log_error_errno(negerrno(), "cannot create '%s'", staging);
		int fd = fs_open_flock(staging, true);
		if (fd == -EWOULDBLOCK) {
			log_info("waiting for another pull of %s to finish...", name);
			fd = fs_open_flock(staging, false);
		}
		if (fd == -ENOENT)
			continue;
		if (fd < 0)
			return log_error_errno(fd, "cannot lock '%s'", staging);
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(staging, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return fd;
		close(fd);
	}
	return log_error_errno(-EAGAIN, "cannot lock '%s'", staging);
}

static void mark_old_target(const struct oci_ref *ref, const char *new_dir)
{
	if (!ref->tag)
		return;
	_cleanup_free_ char *p = vm_cache_path(ref);
	_cleanup_free_ char *real = realpath(p, NULL);
	if (real && !streq(real, new_dir)) {
		struct vm_dir d = {.path = real};
		(void)vm_dir_touch_epoch(&d);
	}
}

/* The image's config.json must load as `get` and `clone` load it, or nothing is cached. */
static int check_config(const char *path, void *userdata)
{
	const char *name = userdata;
	struct vm_config c;
	_cleanup_free_ char *err = NULL;
	int r = vm_config_load(path, &c, &err);
	if (r < 0) {
		log_error("Error: image %s has an invalid config.json: %s", name,
			  err ? err : strerror(-r));
		return -EBADMSG;
	}
	vm_config_release(&c);
	return 0;
}

static int fetch(struct oci_registry *reg, const struct oci_ref *ref, const char *name,
		 const char *digest, const struct strbuf *body, const struct oci_manifest *m,
		 const struct vm_pull_options *o, const char *ddir)
{
	_cleanup_free_ char *staging = staging_path(ref);
	_cleanup_close_ int lock = open_staging(staging, name);
	if (lock < 0)
		return lock;
	struct vm_dir dd = {.path = (char *)ddir};
	if (vm_dir_initialized(&dd)) {
		/* another pull finished it while we waited */
		log_info("%s image is already cached! creating a symlink...", name);
		(void)empty_dir(staging);
		(void)rmdir(staging);
		return link_into_cache(ref, digest, NULL);
	}
	int r = prepare_staging(staging, digest, body);
	if (r < 0)
		return r;
	mark_old_target(ref, ddir);
	if (m->has_disk_size)
		(void)vm_prune_auto(m->disk_size + (128ULL << 20), NULL);
	struct locals loc = {0};
	locals_collect(&loc, digest);
	struct oci_state_check sc = {.check = vm_state_pull_check, .userdata = (void *)name};
	struct oci_pull_options po = {.concurrency = o->concurrency,
				      .locals = loc.v,
				      .nlocals = loc.n,
				      .state = &sc,
				      .check_config = check_config,
				      .check_userdata = (void *)name};
	/*
	 * Unlike Tart, the pull is not tried again as a whole when the network gave up: every
	 * request of this pull draws on one retry budget (oci/retry.h), so retries never nest.
	 * The next pull resumes from the verified layers and the saved partial ones.
	 */
	r = oci_pull_layers(reg, m, staging, &po);
	locals_release(&loc);
	if (r == -EBADMSG) {
		/* bad data, not a network failure: nothing of it is worth resuming */
		(void)empty_dir(staging);
		(void)rmdir(staging);
	}
	if (r < 0)
		return r; /* staging stays: the next pull resumes from its verified layers */
	note_nvram(staging);
	_cleanup_free_ char *p1 = path_join(staging, ".progress");
	_cleanup_free_ char *p2 = path_join(staging, STAGED_DIGEST_FILE);
	(void)unlink(p1);
	(void)unlink(p2);
	(void)fs_fsync_dir(staging);
	return link_into_cache(ref, digest, staging);
}

int vm_pull(const char *name, const struct vm_pull_options *o)
{
	_cleanup_oci_ref_ struct oci_ref ref = OCI_REF_INIT;
	_cleanup_free_ char *perr = NULL;
	if (oci_ref_parse(name, &ref, &perr) < 0) {
		log_error("failed to parse remote name: %s", perr);
		return -EINVAL;
	}
	struct oci_registry_options ro = {.insecure = o->insecure};
	struct oci_registry *reg = NULL;
	int r = oci_registry_new(ref.host, ref.namespace, &ro, &reg);
	if (r < 0)
		return r;
	_cleanup_strbuf_ struct strbuf body = STRBUF_INIT;
	_cleanup_free_ char *mt = NULL, *digest = NULL, *perr2 = NULL;
	struct oci_manifest m = {0};
	_cleanup_free_ char *repo = vm_cache_repo_dir(&ref);
	_cleanup_free_ char *ddir = NULL, *dname = NULL;
	log_info("pulling manifest...");
	r = oci_registry_get_manifest(reg, oci_ref_reference(&ref), &body, &mt, &digest);
	if (r < 0)
		goto out;
	r = oci_manifest_parse(body.buf, body.len, &m, &perr2);
	if (r < 0) {
		log_error("Error: %s: %s",
			  r == -EPROTONOSUPPORT ? "cannot pull" : "invalid manifest",
			  perr2 ? perr2 : "malformed");
		goto out;
	}
	ddir = path_join(repo, digest);
	dname = xasprintf("%s/%s@%s", ref.host, ref.namespace, digest);
	struct vm_dir dd = {.path = ddir};
	if (vm_dir_initialized(&dd)) {
		_cleanup_free_ char *entry = vm_cache_path(&ref);
		_cleanup_free_ char *real = realpath(entry, NULL);
		_cleanup_free_ char *mark = path_join(ddir, EXPLICIT_FILE);
		bool linked = real && streq(real, ddir) && (ref.tag || fs_exists(mark));
		if (linked) {
			log_info("%s image is already cached and linked!", dname);
			r = 0;
		} else {
			log_info("%s image is already cached! creating a symlink...", dname);
			r = link_into_cache(&ref, digest, NULL);
		}
	} else {
		r = fetch(reg, &ref, dname, digest, &body, &m, o, ddir);
	}
	if (r >= 0)
		(void)vm_dir_touch(&dd);
out:
	oci_manifest_release(&m);
	oci_registry_free(reg);
	return r;
}

int vm_cache_populate(const struct oci_ref *ref, const char *digest, const char *src_dir,
		      const struct strbuf *manifest)
{
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int lock = home_make_staging(&staging);
	if (lock < 0)
		return lock;
	int r = vm_dir_copy_files(src_dir, staging, src_dir);
	if (r >= 0) {
		_cleanup_free_ char *mp = path_join(staging, MANIFEST_FILE);
		r = fs_write_atomic(mp, manifest->buf, manifest->len, 0644);
		if (r < 0)
			log_error_errno(r, "cannot write '%s'", mp);
	}
	if (r >= 0)
		r = link_into_cache(ref, digest, staging);
	if (r < 0)
		(void)fs_rm_rf(staging);
	return r;
}

int vm_cache_link(const struct oci_ref *ref, const char *digest)
{
	return link_into_cache(ref, digest, NULL);
}
