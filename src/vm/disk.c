// SPDX-License-Identifier: Apache-2.0
#include "vm/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/parse.h"
#include "vm/home.h"

int vm_disk_stage(char **ret_path)
{
	return home_tmp_create("set-disk-", false, ret_path);
}

int vm_disk_install(const struct vm_dir *d, const char *staged)
{
	_cleanup_free_ char *disk = vm_dir_file(d, VM_DISK_FILE);
	_cleanup_close_ int fd = open(staged, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return log_error_errno(negerrno(), "cannot flush '%s'", staged);
	if (rename(staged, disk) < 0)
		return log_error_errno(negerrno(), "cannot replace '%s'", disk);
	(void)fs_fsync_dir(d->path);
	return 0;
}

int vm_disk_grow(const struct vm_dir *d, uint64_t new_bytes)
{
	_cleanup_free_ char *disk = vm_dir_file(d, VM_DISK_FILE);
	struct stat st;
	if (stat(disk, &st) < 0)
		return log_error_errno(negerrno(), "cannot stat '%s'", disk);
	if (new_bytes < (uint64_t)st.st_size) {
		char a[32], b[32];
		format_bytes_decimal(new_bytes, a, sizeof(a));
		format_bytes_decimal((uint64_t)st.st_size, b, sizeof(b));
		log_error("new disk size of %s should be larger than the current disk size of %s", a,
			  b);
		return -EINVAL;
	}
	if (truncate(disk, (off_t)new_bytes) < 0)
		return log_error_errno(negerrno(), "cannot resize '%s'", disk);
	return 0;
}
