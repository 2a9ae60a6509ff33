/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Suspend and resume of `tart run` (the state file is vm/state.h).
 *
 * Suspend: after QEMU's migration has written the stream behind the header, seal it (stream
 * size and digest, machine type, devices, disk fingerprint) and rename it into place.
 *
 * Resume, in the order `run` calls it:
 *   vm_resume_prepare   before QEMU starts: is there a state, and can it apply to this VM as
 *                       it is now (architecture, memory, CPUs, disk unchanged)?
 *   vm_resume_mac       with the network attached: can the guest take config.json's MAC?
 *   vm_resume_devices   with the QEMU argv built: the same machine and devices?
 *   vm_resume_load      QEMU is up, paused, waiting (-incoming defer): the same QEMU version?
 *                       Then stream the state into it while hashing, and let the guest run
 *                       only if the digest matches.
 *   vm_resume_individualize   the guest runs: a clone must not be a twin (new time, a reseeded
 *                       random generator, its own MAC, a DHCP lease from this host).
 * A state that cannot apply is refused with one notice ("the saved state of VM ... cannot be
 * used: <why>; booting it from its disk instead"), deleted (it is this VM's own copy), and the
 * VM boots cold. Logging.
 */

#include <stdbool.h>

#include "qemu/argv.h"
#include "qemu/qmp.h"
#include "util/strvec.h"
#include "vm/config.h"
#include "vm/dir.h"
#include "vm/state.h"

struct vm_resume_hasher;

struct vm_resume {
	bool active;			 /* a state is to be restored in this run */
	struct vm_resume_hasher *hasher; /* the stream's digest, computed from prepare on */
	struct vm_state_info info;
	bool resumed;  /* the guest runs from it */
	bool keep_mac; /* user networking: the guest keeps the saved MAC (vm_resume_mac) */
};

void vm_resume_release(struct vm_resume *rs);

/* Refuse the state with the notice, and delete it. */
void vm_resume_discard(const struct vm_dir *d, const char *why);

/* Returns 0 with rs->active telling whether to restore. */
int vm_resume_prepare(struct vm_resume *rs, const struct vm_dir *d, const struct vm_config *c);

/*
 * What a saved state depends on for this QEMU argv (allocated): its canonical form
 * (qemu_argv_canonical) and, under KVM, the host CPU's identity and features (`-cpu host`
 * hands them to the guest, which would crash on a host that lacks one).
 */
char *vm_resume_describe(const struct strvec *argv, const char *accel);

/*
 * With the network attached: can the guest have config.json's MAC? Always on a private network
 * (user networking: private_net, where it keeps the saved MAC and its lease), else when the MAC
 * is the saved one or the saved guest has an agent to take the new one. False: refused and
 * discarded (rs inactive).
 */
bool vm_resume_mac(struct vm_resume *rs, const struct vm_dir *d, const struct vm_config *c,
		   bool private_net);

/* Whether devices are those the state was saved with (nothing refused). */
bool vm_resume_devices_match(const struct vm_resume *rs, const char *devices);
/* False (state refused and discarded) when devices differ from those the state was saved with. */
bool vm_resume_devices(struct vm_resume *rs, const struct vm_dir *d, const char *devices);

/*
 * With the network attached: build the QEMU argv of spec (*ret_devices: its vm_resume_describe,
 * allocated). With s->incoming, the screen follows the state: the graphics card and USB tablet
 * are part of it, the window and VNC are not. A state saved with a screen keeps its devices
 * whatever this run shows; one saved without resumes headless (s->window cleared, one notice).
 * A state that fits neither is refused (vm_resume_devices) and the argv is a cold boot's with
 * this run's display (s->incoming cleared). -errno: an inconsistent spec.
 */
int vm_resume_argv(struct vm_resume *rs, const struct vm_dir *d, const char *accel,
		   struct qemu_spec *s, struct strvec *argv, char **ret_devices);

/*
 * 0: the guest runs from the state. -ESTALE: refused (notice printed, state discarded, QEMU
 * must be replaced by a cold boot). Other -errno: QEMU failed (the caller reports it).
 */
int vm_resume_load(struct vm_resume *rs, const struct vm_dir *d, struct qemu_qmp *qmp);

/*
 * After a resume: set the guest's clock, reseed its random generator and give it the MAC of
 * config.json through QEMU's guest agent (qga_fd: tart's end of its channel). With
 * renew_netdev (the QEMU netdev id, for tap networking where the lease must come from this
 * host's DHCP server) the guest's link also goes down and up so that its DHCP client starts
 * over: inside the guest through the agent, or with QMP set_link when there is none. Problems
 * are warnings.
 */
void vm_resume_individualize(struct vm_resume *rs, const struct vm_dir *d,
			     const struct vm_config *c, struct qemu_qmp *qmp, int qga_fd,
			     const char *renew_netdev);

/*
 * Seal a state whose stream QEMU has written into fd at VM_STATE_HEADER_SIZE: the QEMU version
 * (QMP), the machine type (from the stream), the devices (canonical argv), the disk's
 * fingerprint, the stream's size and digest. -errno with a message in *ret_err.
 */
int vm_resume_seal(int fd, const struct vm_dir *d, const struct vm_config *c, const char *devices,
		   bool agent, struct qemu_qmp *qmp, char **ret_err);
