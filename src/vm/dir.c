// SPDX-License-Identifier: Apache-2.0
#include "vm/dir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/home.h"

int vm_name_validate(const char *name, const char **ret_why)
{
	const char *why = NULL;
	size_t len = strlen(name);
	if (len == 0)
		why = "it is empty";
	else if (len > 255)
		why = "it is longer than 255 bytes";
	else if (strchr(name, '/'))
		why = "it contains '/'";
	else if (streq(name, ".") || streq(name, ".."))
		why = "it is '.' or '..'";
	else
		for (const char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				why = "it contains a control character";
	if (why) {
		if (ret_why)
			*ret_why = why;
		return -EINVAL;
	}
	return 0;
}

void vm_dir_init(struct vm_dir *d, const char *path, const char *name)
{
	d->path = xstrdup(path);
	d->name = xstrdup(name);
}

void vm_dir_release(struct vm_dir *d)
{
	free(d->path);
	free(d->name);
	d->path = d->name = NULL;
}

char *vm_dir_file(const struct vm_dir *d, const char *file)
{
	return path_join(d->path, file);
}

static bool has_file(const struct vm_dir *d, const char *file)
{
	_cleanup_free_ char *p = vm_dir_file(d, file);
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

bool vm_dir_initialized(const struct vm_dir *d)
{
	return has_file(d, VM_CONFIG_FILE) && has_file(d, VM_DISK_FILE) &&
	       has_file(d, VM_NVRAM_FILE);
}

int vm_dir_lookup_local(const char *name, struct vm_dir *ret)
{
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *p = path_join(vms, name);
	/* No VM can have an invalid name: it does not exist (exit 2, as Tart for "a/b") */
	if (vm_name_validate(name, NULL) < 0 || !fs_is_dir(p)) {
		log_error("the specified VM \"%s\" does not exist", name);
		return -ENOENT;
	}
	vm_dir_init(ret, p, name);
	return 0;
}

int vm_dir_open_local(const char *name, struct vm_dir *ret)
{
	struct vm_dir d;
	int r = vm_dir_lookup_local(name, &d);
	if (r < 0)
		return r;
	if (!vm_dir_initialized(&d)) {
		vm_dir_release(&d);
		/* Tart's VMMissingFiles, word for word */
		log_error("VM is missing some of its files (config.json, disk.img or nvram.bin)");
		return -EUCLEAN;
	}
	(void)vm_dir_touch(&d);
	*ret = d;
	return 0;
}

int vm_dir_touch(const struct vm_dir *d)
{
	if (utimensat(AT_FDCWD, d->path, NULL, 0) < 0)
		return negerrno();
	return 0;
}

int vm_dir_touch_epoch(const struct vm_dir *d)
{
	struct timespec ts[2] = {{0, 0}, {0, 0}};
	if (utimensat(AT_FDCWD, d->path, ts, 0) < 0)
		return negerrno();
	return 0;
}

int vm_dir_accessed(const struct vm_dir *d, time_t *ret)
{
	struct stat st;
	if (stat(d->path, &st) < 0)
		return negerrno();
	*ret = st.st_mtime;
	return 0;
}

pid_t vm_dir_running_pid(const struct vm_dir *d)
{
	_cleanup_free_ char *p = vm_dir_file(d, VM_CONFIG_FILE);
	/*
	 * Open read-only: F_GETLK with F_RDLCK only needs read access. Closing this fd would
	 * drop our own POSIX locks on the file, which is why `run` (the holder) never calls this.
	 */
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return 0;
	return fl.l_pid > 0 ? fl.l_pid : 1;
}

enum vm_state vm_dir_state(const struct vm_dir *d)
{
	if (vm_dir_running_pid(d) > 0)
		return VM_STATE_RUNNING;
	if (has_file(d, VM_STATE_FILE))
		return VM_STATE_SUSPENDED;
	return VM_STATE_STOPPED;
}

const char *vm_state_to_string(enum vm_state s)
{
	switch (s) {
	case VM_STATE_RUNNING:
		return "running";
	case VM_STATE_SUSPENDED:
		return "suspended";
	default:
		return "stopped";
	}
}

int vm_dir_lock_run(const struct vm_dir *d)
{
	_cleanup_free_ char *p = vm_dir_file(d, VM_CONFIG_FILE);
	_cleanup_close_ int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(fd, F_SETLK, &fl) < 0)
		return (errno == EACCES || errno == EAGAIN) ? -EALREADY : negerrno();
	return TAKE_FD(fd);
}

int vm_dir_sizes(const struct vm_dir *d, uint64_t *ret_apparent, uint64_t *ret_allocated)
{
	static const char *const files[] = {VM_CONFIG_FILE, VM_DISK_FILE, VM_NVRAM_FILE};
	uint64_t ap = 0, al = 0;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = vm_dir_file(d, files[i]);
		uint64_t a, b;
		int r = fs_file_sizes(p, &a, &b);
		if (r < 0)
			return r;
		ap += a;
		al += b;
	}
	if (ret_apparent)
		*ret_apparent = ap;
	if (ret_allocated)
		*ret_allocated = al;
	return 0;
}

bool vm_nvram_is_firmware_volume(const char *path)
{
	char sig[4];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 && pread(fd, sig, sizeof(sig), 40) == (ssize_t)sizeof(sig) &&
	       memcmp(sig, "_FVH", 4) == 0;
}

int vm_dir_load_config(const struct vm_dir *d, struct vm_config *ret)
{
	_cleanup_free_ char *p = vm_dir_file(d, VM_CONFIG_FILE);
	_cleanup_free_ char *err = NULL;
	int r = vm_config_load(p, ret, &err);
	if (r < 0)
		log_error("VM \"%s\" has an invalid config.json: %s", d->name, err ? err : strerror(-r));
	return r;
}
