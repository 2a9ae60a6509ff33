/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/config.h"

/*
 * A VM directory: config.json, disk.img and nvram.bin (all three required), plus optional
 * state.vzvmsave (suspended state), kernel, initramfs. The same layout serves local VMs in
 * vms/<name> and pulled images in cache/OCIs/...
 */
struct vm_dir {
	char *path;
	char *name; /* as the user wrote it */
};

enum vm_state { VM_STATE_STOPPED, VM_STATE_RUNNING, VM_STATE_SUSPENDED };

#define VM_CONFIG_FILE "config.json"
#define VM_DISK_FILE "disk.img"
#define VM_NVRAM_FILE "nvram.bin"
#define VM_STATE_FILE "state.vzvmsave"
#define VM_KERNEL_FILE "kernel"
#define VM_INITRAMFS_FILE "initramfs"

/* Local VM names: non-empty, at most 255 bytes, no '/', no control characters, not "." or "..". */
int vm_name_validate(const char *name, const char **ret_why);

void vm_dir_init(struct vm_dir *d, const char *path, const char *name);
void vm_dir_release(struct vm_dir *d);
static inline void vm_dir_releasep(struct vm_dir *d)
{
	vm_dir_release(d);
}
#define _cleanup_vm_dir_ __attribute__((cleanup(vm_dir_releasep)))

/* Allocated path of a file inside the VM directory. */
char *vm_dir_file(const struct vm_dir *d, const char *file);
/* All three files present. */
bool vm_dir_initialized(const struct vm_dir *d);

/*
 * Open the local VM `name`: -ENOENT (logged as Tart's `the specified VM "<name>" does not
 * exist`) when vms/<name> is absent or the name invalid, -EUCLEAN (logged as
 * Tart's VMMissingFiles) when one of the three files is missing. On success records an access
 * (see vm_dir_touch).
 */
int vm_dir_open_local(const char *name, struct vm_dir *ret);
/* Like vm_dir_open_local() but a directory missing some of its files is fine; no access. */
int vm_dir_lookup_local(const char *name, struct vm_dir *ret);

/*
 * Record an access now: sets the directory's atime and mtime explicitly. We read the
 * directory mtime back as "last accessed" because atime is unreliable under relatime and
 * every change of the directory's entries is a use of the VM anyway.
 */
int vm_dir_touch(const struct vm_dir *d);
/* Set the access time to the epoch, so prune takes this entry first. */
int vm_dir_touch_epoch(const struct vm_dir *d);
int vm_dir_accessed(const struct vm_dir *d, time_t *ret);

/* PID of the `tart run` holding the config.json lock, 0 when none. */
pid_t vm_dir_running_pid(const struct vm_dir *d);
enum vm_state vm_dir_state(const struct vm_dir *d);
const char *vm_state_to_string(enum vm_state s);

/*
 * Take the run lock: a POSIX write lock on config.json (fcntl F_SETLK), the protocol Tart uses
 * to mark a running VM. Returns the fd that holds it; -EALREADY when another process holds it.
 * Because POSIX locks drop when the holder closes *any* fd of the file, the holder must not
 * open and close config.json again while running.
 */
int vm_dir_lock_run(const struct vm_dir *d);

/* Apparent bytes of the three files, and allocated bytes. */
int vm_dir_sizes(const struct vm_dir *d, uint64_t *ret_apparent, uint64_t *ret_allocated);

/*
 * True when path is a UEFI firmware volume ("_FVH" at offset 40), as the OVMF/AAVMF variable
 * stores are; Apple's Virtualization NVRAM (in Tart's images) is not. Non-logging.
 */
bool vm_nvram_is_firmware_volume(const char *path);

/* Load config.json, logging a clear message on failure. */
int vm_dir_load_config(const struct vm_dir *d, struct vm_config *ret);
