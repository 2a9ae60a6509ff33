/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Choosing the accelerator. `/dev/kvm` opening is no proof that KVM works (on nested PVM hosts
 * it exists, KVM_CREATE_VM succeeds and guest kernels then spin or crash), so the KVM check
 * (1) recognises a PVM host (kvm_pvm loaded, no vmx/svm in /proc/cpuinfo) and (2) runs a real
 * guest: QEMU with `-accel kvm` and the CPU model `run` uses, and a 64 KiB firmware image that
 * goes from real mode through protected mode and paging to 64-bit long mode (x86; on arm64:
 * turns its MMU on), proves each step by the value it reads back, loops a million times and
 * reports through an isa-debug-exit port (x86) or PSCI SYSTEM_OFF (arm64). KVM counts as
 * working only if QEMU exits with the expected status within QEMU_ACCEL_PROBE_MS; the probe
 * process is killed after that. About 50 ms where KVM works.
 * Nothing is cached (a host's KVM can change between runs). Non-logging.
 */

#include <stdbool.h>

#define QEMU_ACCEL_PROBE_MS 3000
/* The CPU model of x86 KVM guests (the host's, minus nested virtualization). */
#define QEMU_ACCEL_KVM_CPU "host,-vmx,-svm"

/* "auto", "kvm", "tcg" (NULL = "auto"): -EINVAL for anything else. */
int qemu_accel_validate(const char *requested);

/*
 * Probe KVM for arch with the given QEMU binary. 0 when it works; otherwise -errno and
 * *ret_why (allocated) saying what failed, e.g. "its test guest did not reach ...".
 */
int qemu_accel_probe_kvm(const char *binary, const char *arch, char **ret_why);

/*
 * The host checks alone, on the tree under root ("" for this host): -ENODEV and *ret_why when
 * root/sys/module/kvm_pvm exists and root/proc/cpuinfo has no vmx or svm flag; else 0.
 */
int qemu_accel_host_check(const char *root, char **ret_why);
/* Does the "flags" line of a /proc/cpuinfo text list vmx or svm? */
bool qemu_accel_cpuinfo_has_hw_virt(const char *cpuinfo);

/*
 * The guest part of the probe alone, for arch ("amd64", "arm64") under any accelerator, with
 * cpu as the -cpu model (NULL: QEMU_ACCEL_KVM_CPU, or "host" on arm64, for "kvm"; "max" for
 * TCG): 0 when the test guest reached 64-bit long mode (x86) or ran with its MMU on (arm64)
 * and finished in time with the expected exit status.
 */
int qemu_accel_probe_guest(const char *binary, const char *arch, const char *accel, const char *cpu,
			   char **ret_why);
