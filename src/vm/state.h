/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The saved state of a suspended VM, state.vzvmsave: a 4096-byte header of ours, then QEMU's
 * migration stream as `migrate` wrote it. The header ("TART-VM-STATE 1\n" + one JSON object,
 * NUL-padded) says what the stream needs so that a state that cannot apply is refused with a
 * reason BEFORE QEMU is asked to load it: the architecture, QEMU's version and machine type,
 * the canonical device configuration (qemu_argv_canonical), memory and CPUs, the MAC the guest
 * has, whether QEMU's guest agent answered, the stream's size and SHA-256, and the disk it
 * belongs to (size and mtime of disk.img, re-stamped wherever tart copies the pair; plus, once
 * pushed, the digest of the disk's layers). Checked by run (vm/resume.c), push, pull, import.
 * Logging only where noted.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/manifest.h"
#include "util/strbuf.h"

#define VM_STATE_HEADER_SIZE 4096u
#define VM_STATE_MAGIC "TART-VM-STATE 1\n"

struct vm_state_info {
	char arch[16];
	char qemu_version[64]; /* "7.2.22" */
	char qemu_package[96]; /* "Debian 1:7.2+dfsg-7+deb12u18+b3", informational */
	char machine[64];      /* "pc-q35-7.2", read from the stream itself */
	char *devices;	       /* canonical argv, one argument per line */
	char devices_digest[OCI_DIGEST_STRLEN];
	uint64_t memory_size, cpu_count;
	char mac[18];
	bool agent; /* qemu-guest-agent answered at suspend: a resumed clone can change its MAC */
	uint64_t stream_size;
	char stream_digest[OCI_DIGEST_STRLEN];
	uint64_t disk_size;
	int64_t disk_mtime_ns;
	char disk_digest[OCI_DIGEST_STRLEN]; /* "" until pushed: vm_state_disk_digest() */
	char created[32];
};

void vm_state_info_release(struct vm_state_info *i);

/*
 * Read and check the header of a state file: magic, JSON, every field, and that the file is
 * exactly header + stream_size long. -EBADMSG with a reason in *ret_why (allocated).
 */
int vm_state_read(const char *path, struct vm_state_info *ret, char **ret_why);

/* Write the header at offset 0 of fd (fsync'ed). -EFBIG when it does not fit. */
int vm_state_write_header(int fd, const struct vm_state_info *i);

/* The machine type named in a migration stream's configuration section ("pc-q35-7.2"). */
int vm_state_stream_machine(int fd, uint64_t offset, char *ret, size_t size);

/* Size and mtime of disk.img: what "the disk has not changed since" compares. */
int vm_state_disk_fingerprint(const char *disk, uint64_t *ret_size, int64_t *ret_mtime_ns);

/*
 * Stamp the header of state file `state` with the fingerprint of `disk`: after tart copied a
 * state together with its disk (pull, clone, import), whose checks have passed.
 */
int vm_state_restamp(const char *state, const char *disk);

/* The binding between a state and the disk layers of its image: sha256 of their digests. */
void vm_state_disk_digest(const struct oci_manifest *m, char ret[OCI_DIGEST_STRLEN]);

/* The QEMU version "M.m.u" of a QEMU binary (`--version`), for checks made before it runs. */
int vm_state_qemu_version(const char *qemu_bin, char *ret, size_t size);

/*
 * Everything a pushed state says about itself as layer annotations (docs/oci.md), and the
 * check of a manifest's state layers against this host before they are downloaded
 * (-ESTALE, reason in *ret_why) and against the pulled header (-EBADMSG).
 */
void vm_state_annotate(const struct vm_state_info *i, struct oci_layer *l);
int vm_state_check_annotations(const struct oci_manifest *m, const char *host_qemu_version,
			       char **ret_why);
int vm_state_check_pulled(const struct oci_manifest *m, const struct vm_state_info *i,
			  char **ret_why);

/* True when a copy of this VM must keep its MAC: its state's guest cannot take a new one. */
bool vm_state_keeps_mac(const char *dir);

/*
 * After tart copied a VM directory (clone, cache population): the copy's state is stamped
 * with the copy's disk if the source state still belonged to the source disk, and deleted
 * (with a notice) if not. No state: nothing to do.
 */
int vm_state_copied(const char *src_dir, const char *dst_dir, const char *name);

/* oci_push_options.state_hook; userdata is the VM directory. Logging. */
int vm_state_push_hook(void *userdata, const struct oci_layer *disk, size_t ndisk,
		       struct oci_state_meta *ret_meta);

/* oci_state_check.check of pull and import; userdata is the image's display name. Logging. */
int vm_state_pull_check(void *userdata, const struct oci_manifest *m, const char *staging,
			int result);
