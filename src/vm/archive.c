// SPDX-License-Identifier: Apache-2.0
#include "vm/archive.h"

#include <errno.h>

#include "oci/archive.h"
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

int vm_export(const char *name, const char *path)
{
	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_storage_open(name, &d);
	if (r < 0)
		return r;
	/* a cached image must not be pruned or collected while we read it */
	_cleanup_close_ int use = oci_ref_is_remote(name) ? vm_cache_use(d.path) : -1;
	if (oci_ref_is_remote(name) && use < 0)
		return log_error_errno(use, "cannot use \"%s\"", name);
	struct vm_config c = {0};
	r = vm_dir_load_config(&d, &c);
	if (r < 0)
		return r;
	_cleanup_free_ char *tmp = home_path("tmp");
	struct oci_push_options o = {
	    .concurrency = 4,
	    .tmp_dir = tmp,
	    .arch = c.arch,
	    .os = c.os,
	    .disk_format = c.disk_format[0] ? c.disk_format : "raw",
	    .quiet = true,
	    .state_hook = vm_state_push_hook,
	    .state_userdata = d.path,
	};
	r = oci_archive_export(d.path, path, &o);
	vm_config_release(&c);
	return r;
}

int vm_import(const char *path, const char *name)
{
	const char *why;
	if (vm_name_validate(name, &why) < 0) {
		log_error("invalid VM name \"%s\": %s", name, why);
		return -EINVAL;
	}
	if (vm_local_exists(name) > 0) {
		log_error("VM \"%s\" already exists, delete it first", name);
		return -EEXIST;
	}
	_cleanup_free_ char *staging = NULL;
	_cleanup_close_ int lock = home_make_staging(&staging);
	if (lock < 0)
		return lock;
	struct oci_state_check sc = {.check = vm_state_pull_check, .userdata = (void *)path};
	int r = oci_archive_import(path, staging, 4, &sc);
	if (r >= 0)
		r = vm_install_staged(staging, name);
	if (r < 0)
		(void)fs_rm_rf(staging);
	return r;
}
