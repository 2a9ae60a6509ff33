/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdint.h>

#include "vm/dir.h"

/*
 * Operations on the local store. Those that make a VM (create, clone) stage it in tmp/<UUID>
 * (flock'ed so the tmp/ GC leaves it alone), take the global lock only for the MAC check and
 * the rename into vms/, and never replace an existing VM; a failure removes the staging
 * directory, so no half-written VM is ever visible. delete and rename refuse a running VM.
 * Logging.
 */

/*
 * `tart create --linux`: sparse raw disk.img of disk_bytes, nvram.bin copied from the
 * firmware's variable-store template, config.json with Tart's Linux defaults.
 */
int vm_create_linux(const char *name, uint64_t disk_bytes, const char *nvram_template);

/*
 * Clone any VM directory (local or cached image) to the local VM new_name: reflink when the
 * filesystem can, otherwise a sparse in-kernel copy. A new MAC is generated when another local
 * VM already uses the source's MAC (unless the source is suspended: its saved state embeds the
 * MAC).
 */
int vm_clone(const struct vm_dir *src, const char *new_name);

/*
 * Copy a VM directory's files (config.json, nvram.bin, disk.img; state.vzvmsave, kernel and
 * initramfs when present) from src into dst, then stamp the copied state for the copied disk
 * (vm/state.h). name is the source's name for messages. Logging.
 */
int vm_dir_copy_files(const char *src, const char *dst, const char *name);

/* Delete a local VM; -EBUSY (logged as Tart's `VM "<name>" is running`) when it runs. */
int vm_delete_local(const char *name);

/* Rename a local VM; refuses when it runs or when new_name exists. */
int vm_rename_local(const char *name, const char *new_name);

/* True when vms/<name> exists, complete or not. name must be valid (vm_name_validate). */
int vm_local_exists(const char *name);

/*
 * Check the MAC of cfg against every local VM but `self` (may be NULL); 1 when another uses
 * it, 0 when unique. Call with the global lock held.
 */
int vm_mac_in_use(const char *mac, const char *self);

/*
 * Move a complete staged VM directory (tmp/<UUID>, locked by the caller) into vms/<name>
 * under the global lock, first giving it a new MAC when another local VM uses its MAC (unless
 * it holds a suspended state). Refuses an existing name. Used by import.
 */
int vm_install_staged(const char *staging, const char *name);

/*
 * Tart's images carry the NVRAM of Apple's Virtualization framework, which no UEFI firmware
 * for QEMU can use. When the local VM's nvram.bin is not a firmware volume ("_FVH" at offset
 * 40, as OVMF/AAVMF variable stores are), replace it with a copy of template (the firmware's
 * variable-store template) and say so. Returns 1 when replaced, 0 when kept. Logging.
 */
int vm_nvram_reset_if_foreign(const char *name, const char *template_path);
