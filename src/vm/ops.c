// SPDX-License-Identifier: Apache-2.0
#include "vm/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/home.h"
#include "vm/prune.h"
#include "vm/state.h"
#include "vm/storage.h"

static int check_new_name(const char *name)
{
	const char *why;
	if (vm_name_validate(name, &why) < 0) {
		log_error("invalid VM name \"%s\": %s", name, why);
		return -EINVAL;
	}
	/* The prefix of a deletion in progress: `list` hides such directories. */
	if (strneq(name, ".deleting-", 10)) {
		log_error("invalid VM name \"%s\": names starting with '.deleting-' are reserved",
			  name);
		return -EINVAL;
	}
	return 0;
}

int vm_local_exists(const char *name)
{
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *p = path_join(vms, name);
	return fs_exists(p);
}

/* Move a finished staging directory to vms/<name> without replacing anything. */
static int move_into_place(const char *staging, const char *name)
{
	_cleanup_free_ char *vms = home_path("vms");
	int r = fs_mkdir_p(vms, 0755);
	if (r < 0)
		return log_error_errno(r, "cannot create '%s'", vms);
	_cleanup_free_ char *dst = path_join(vms, name);
	if (renameat2(AT_FDCWD, staging, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		r = negerrno();
		if (r == -EEXIST || r == -ENOTEMPTY) {
			log_error("VM \"%s\" already exists, delete it first", name);
			return -EEXIST;
		}
		return log_error_errno(r, "cannot move the new VM into '%s'", dst);
	}
	(void)fs_fsync_dir(vms);
	return 0;
}

static int copy_into(const char *src_dir, const char *dst_dir, const char *file, bool optional)
{
	_cleanup_free_ char *s = path_join(src_dir, file);
	_cleanup_free_ char *d = path_join(dst_dir, file);
	if (optional && !fs_exists(s))
		return 0;
	enum fs_copy_method m;
	int r = fs_copy_file(s, d, &m);
	if (r < 0) {
		if (r == -ENOSPC)
			return log_error_errno(r, "not enough space to copy '%s'", file);
		return log_error_errno(r, "cannot copy '%s'", s);
	}
	log_debug("copied %s (%s)", file, m == FS_COPY_REFLINK ? "reflink" : "sparse copy");
	return 0;
}

int vm_mac_in_use(const char *mac, const char *self)
{
	_cleanup_vm_entry_list_ struct vm_entry_list l = {0};
	int r = vm_storage_list_local(&l);
	if (r < 0)
		return r;
	for (size_t i = 0; i < l.nr; i++) {
		if (self && streq(l.v[i].name, self))
			continue;
		_cleanup_free_ char *cp = path_join(l.v[i].path, VM_CONFIG_FILE);
		struct vm_config c;
		if (vm_config_load(cp, &c, NULL) < 0)
			continue;
		bool same = streq(c.mac, mac);
		vm_config_release(&c);
		if (same)
			return 1;
	}
	return 0;
}

/* A name for a new VM: valid, and not taken (checked again, atomically, by the move). */
static int check_new_vm(const char *name)
{
	int r = check_new_name(name);
	if (r < 0)
		return r;
	if (vm_local_exists(name)) {
		log_error("VM \"%s\" already exists, delete it first", name);
		return -EEXIST;
	}
	return 0;
}

/*
 * The last step of create and clone: under the global lock, give the staged VM a new MAC when
 * another local VM uses its MAC (unless keep_mac: a suspended state embeds it), then move it
 * to vms/<name>. c is the staged config.json's content.
 */
static int install_staging(const char *staging, const char *name, struct vm_config *c,
			   bool keep_mac)
{
	(void)fs_fsync_dir(staging);
	_cleanup_close_ int glock = home_lock_global();
	if (glock < 0)
		return glock;
	if (!keep_mac && vm_mac_in_use(c->mac, NULL) == 1) {
		_cleanup_free_ char *cfg = path_join(staging, VM_CONFIG_FILE);
		vm_mac_random(c->mac);
		int r = vm_config_save(c, cfg);
		if (r < 0)
			return log_error_errno(r, "cannot write '%s'", cfg);
	}
	return move_into_place(staging, name);
}

/* Fill a staging directory with a new Linux VM's three files. */
static int stage_linux(const char *staging, uint64_t disk_bytes, const char *nvram_template,
		       const struct vm_config *c)
{
	_cleanup_free_ char *nvram = path_join(staging, VM_NVRAM_FILE);
	_cleanup_free_ char *disk = path_join(staging, VM_DISK_FILE);
	_cleanup_free_ char *cfg = path_join(staging, VM_CONFIG_FILE);
	int r = fs_copy_file(nvram_template, nvram, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot copy the firmware variable store '%s'",
				       nvram_template);
	_cleanup_close_ int fd = open(disk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)disk_bytes) < 0 || fsync(fd) < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", disk);
	r = vm_config_save(c, cfg);
	if (r < 0)
		return log_error_errno(r, "cannot write '%s'", cfg);
	return 0;
}

int vm_create_linux(const char *name, uint64_t disk_bytes, const char *nvram_template)
{
	int r = check_new_vm(name);
	if (r < 0)
		return r;
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int slock = home_make_staging(&staging);
	if (slock < 0)
		return slock;
	struct vm_config c;
	vm_config_init_linux(&c, "raw");
	r = stage_linux(staging, disk_bytes, nvram_template, &c);
	if (r >= 0)
		r = install_staging(staging, name, &c, false);
	if (r < 0)
		(void)fs_rm_rf(staging);
	vm_config_release(&c);
	return r < 0 ? r : 0;
}

int vm_dir_copy_files(const char *src, const char *dst, const char *name)
{
	static const char *const required[] = {VM_CONFIG_FILE, VM_NVRAM_FILE, VM_DISK_FILE};
	static const char *const optional[] = {VM_STATE_FILE, VM_KERNEL_FILE, VM_INITRAMFS_FILE};
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(required) && r >= 0; i++)
		r = copy_into(src, dst, required[i], false);
	for (size_t i = 0; i < ARRAY_SIZE(optional) && r >= 0; i++)
		r = copy_into(src, dst, optional[i], true);
	/* the copied state belongs to the copied disk (a new mtime): say so, if it still applies */
	if (r >= 0)
		r = vm_state_copied(src, dst, name);
	return r;
}

int vm_clone(const struct vm_dir *src, const char *new_name)
{
	int r = check_new_vm(new_name);
	if (r < 0)
		return r;
	/* In use while we copy: prune, the cache GC and delete leave the source alone. */
	_cleanup_close_ int use = vm_cache_use(src->path);
	if (use < 0) {
		if (use == -ENOENT)
			log_error("the specified VM \"%s\" does not exist", src->name);
		else
			log_error_errno(use, "cannot lock \"%s\"", src->name);
		return use;
	}
	struct vm_config c = {0};
	r = vm_dir_load_config(src, &c);
	if (r < 0)
		return r;
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int slock = home_make_staging(&staging);
	if (slock >= 0) {
		r = vm_dir_copy_files(src->path, staging, src->name);
		if (r >= 0)
			r = install_staging(staging, new_name, &c, vm_state_keeps_mac(staging));
		if (r < 0)
			(void)fs_rm_rf(staging);
	}
	vm_config_release(&c);
	return slock < 0 ? slock : r < 0 ? r : 0;
}

/*
 * Take what a change of vms/<name> needs: the run lock (it is not running, and no run can
 * start meanwhile) and, unless the entry is a symlink to a VM stored elsewhere, the deleter's
 * flock (nobody is cloning from it). Returns 1 for a symlink, 0 otherwise, or -EBUSY/-errno
 * (logged).
 */
static int lock_local_for_change(const struct vm_dir *d, int *ret_run, int *ret_use)
{
	/* Without config.json nothing can run it: an incomplete VM can still be deleted. */
	_cleanup_close_ int run = vm_dir_lock_run(d);
	if (run == -EALREADY) {
		log_error("VM \"%s\" is running", d->name);
		return -EBUSY;
	}
	if (run < 0 && run != -ENOENT)
		return log_error_errno(run, "cannot lock VM \"%s\"", d->name);
	struct stat lst;
	if (lstat(d->path, &lst) < 0)
		return log_error_errno(negerrno(), "cannot lock VM \"%s\"", d->name);
	_cleanup_close_ int use = -1;
	if (!S_ISLNK(lst.st_mode)) {
		use = vm_cache_lock_delete(d->path);
		if (use == -EBUSY) {
			log_error("VM \"%s\" is in use", d->name);
			return -EBUSY;
		}
		if (use < 0)
			return log_error_errno(use, "cannot lock VM \"%s\"", d->name);
	}
	*ret_run = TAKE_FD(run);
	*ret_use = TAKE_FD(use);
	return S_ISLNK(lst.st_mode) ? 1 : 0;
}

int vm_delete_local(const char *name)
{
	struct vm_dir d;
	int r = vm_dir_lookup_local(name, &d);
	if (r < 0)
		return r;
	_cleanup_vm_dir_ struct vm_dir dd = d;
	/* Held while deleting so that no `run` can start on a half-deleted VM. */
	_cleanup_close_ int run = -1, use = -1;
	r = lock_local_for_change(&dd, &run, &use);
	if (r < 0)
		return r;
	/* A symlink to a VM kept elsewhere: delete the link, never its target. */
	if (r == 1) {
		if (unlink(dd.path) < 0)
			return log_error_errno(negerrno(), "cannot delete VM \"%s\"", name);
		return 0;
	}
	/* Moved out of vms/ first, so the VM disappears atomically, then removed at leisure. */
	return vm_dir_remove_locked(dd.path, name);
}

int vm_rename_local(const char *name, const char *new_name)
{
	int r = check_new_name(new_name);
	if (r < 0)
		return r;
	struct vm_dir d;
	r = vm_dir_open_local(name, &d);
	if (r < 0)
		return r;
	_cleanup_vm_dir_ struct vm_dir dd = d;
	_cleanup_close_ int run = -1, use = -1;
	r = lock_local_for_change(&dd, &run, &use);
	if (r < 0)
		return r;
	_cleanup_close_ int glock = home_lock_global();
	if (glock < 0)
		return glock;
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *dst = path_join(vms, new_name);
	if (renameat2(AT_FDCWD, dd.path, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
		r = negerrno();
		if (r == -EEXIST || r == -ENOTEMPTY) {
			log_error(
			    "failed to rename VM %s, target VM %s already exists, delete it first!",
			    name, new_name);
			return -EEXIST;
		}
		return log_error_errno(r, "cannot rename VM \"%s\"", name);
	}
	(void)fs_fsync_dir(vms);
	return 0;
}

int vm_install_staged(const char *staging, const char *name)
{
	struct vm_dir sd = {.path = (char *)staging, .name = (char *)name};
	struct vm_config c = {0};
	int r = vm_dir_load_config(&sd, &c);
	if (r < 0)
		return r;
	_cleanup_close_ int glock = home_lock_global();
	if (glock < 0) {
		vm_config_release(&c);
		return glock;
	}
	if (!vm_state_keeps_mac(staging) && vm_mac_in_use(c.mac, NULL) == 1) {
		_cleanup_free_ char *cfg = path_join(staging, VM_CONFIG_FILE);
		vm_mac_random(c.mac);
		r = vm_config_save(&c, cfg);
		if (r < 0)
			log_error_errno(r, "cannot write '%s'", cfg);
	}
	if (r >= 0)
		r = move_into_place(staging, name);
	vm_config_release(&c);
	return r;
}

int vm_nvram_reset_if_foreign(const char *name, const char *template_path)
{
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *dir = path_join(vms, name);
	_cleanup_free_ char *nvram = path_join(dir, VM_NVRAM_FILE);
	if (access(nvram, R_OK) < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", nvram);
	if (vm_nvram_is_firmware_volume(nvram))
		return 0;
	_cleanup_free_ char *tmp = xasprintf("%s.fresh", nvram);
	int r = fs_copy_file(template_path, tmp, NULL);
	if (r == 0 && rename(tmp, nvram) < 0)
		r = negerrno();
	if (r < 0) {
		(void)unlink(tmp);
		return log_error_errno(r, "cannot give VM \"%s\" fresh firmware variables", name);
	}
	(void)fs_fsync_dir(dir);
	log_notice("note: the image's nvram.bin is not a UEFI variable store for QEMU (an Apple "
		   "Virtualization NVRAM?): VM \"%s\" starts from fresh firmware variables",
		   name);
	return 1;
}
