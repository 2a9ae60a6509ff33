/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Choosing the accelerator. `/dev/kvm` opening is no proof that KVM works (on nested PVM hosts
 * it exists, KVM_CREATE_VM succeeds and guests then crash or crawl), so the KVM check runs a
 * real guest: QEMU with `-accel kvm -cpu host` and a 64 KiB firmware image that loops a
 * million times and writes to an isa-debug-exit port. KVM counts as working only if QEMU exits
 * with the expected code within QEMU_ACCEL_PROBE_MS; the probe process is killed after that.
 * Nothing is cached (a host's KVM can change between runs). Non-logging.
 */

#define QEMU_ACCEL_PROBE_MS 3000

/* "auto", "kvm", "tcg" (NULL = "auto"): -EINVAL for anything else. */
int qemu_accel_validate(const char *requested);

/*
 * Probe KVM for arch with the given QEMU binary. 0 when it works; otherwise -errno and
 * *ret_why (allocated) saying what failed, e.g. "the KVM test guest did not finish in 3 s".
 */
int qemu_accel_probe_kvm(const char *binary, const char *arch, char **ret_why);

/*
 * The guest part of the probe alone, under any accelerator ("kvm" with -cpu host, else
 * -cpu max): 0 when the test guest finished in time with the expected exit code. x86 only.
 */
int qemu_accel_probe_guest(const char *binary, const char *accel, char **ret_why);
