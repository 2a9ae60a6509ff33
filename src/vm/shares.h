/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `--dir` shares for `tart run`: one virtiofsd (Debian's /usr/lib/qemu/virtiofsd) per tag.
 * Tart's rules: shares are grouped by tag; a tag with one unnamed share exports that directory;
 * otherwise every share of the tag must be named and the guest sees one sub-directory per name
 * (a duplicate name: the last wins). Named and read-only shares are assembled with bind mounts
 * in virtiofsd's own private mount namespace (a tmpfs over a staging directory), so nothing is
 * mounted on the host and nothing needs cleaning up after a crash. Each virtiofsd gets a
 * listening abstract unix socket made by tart (--fd), which QEMU connects to by name.
 * Logging.
 */

#include <stddef.h>

#include "qemu/argv.h"
#include "qemu/process.h"

struct vm_shares {
	struct qemu_share *shares; /* for qemu_spec: tag + socket name */
	size_t n;
	struct qemu_process *vfsd;
	size_t n_vfsd;
	int staging_fd; /* flock on the tmp/ staging directory, -1 when none */
	char *staging;
	void *priv;
};

int vm_shares_start(char *const *specs, size_t n_specs, struct vm_shares *ret);
/* Stop the virtiofsd processes and release everything. Safe on a zeroed struct. */
void vm_shares_stop(struct vm_shares *s);
