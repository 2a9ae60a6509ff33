/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The boot watchdog of `run`: an x86-64 guest (a Linux kernel booted directly, or OVMF) is in
 * 64-bit long mode within a fraction of a second of vCPU time, under TCG as under KVM. A vCPU
 * still outside long mode after many seconds is one the accelerator cannot run (a KVM that
 * passed the probe and still spins at the switch to protected mode, as nested PVM does): the
 * run fails with a message instead of hanging forever. TART_BOOT_WATCHDOG=SECONDS sets the
 * deadline (0 turns the watchdog off). By default it watches KVM guests only: under TCG a slow
 * boot is load, not a broken accelerator, so there it runs only when the variable asks for it.
 * Non-logging.
 */

#include <stdbool.h>
#include <stdint.h>

#include "qemu/qmp.h"

#define QEMU_BOOT_WATCHDOG_DEFAULT_S 30

/* Seconds from $TART_BOOT_WATCHDOG (0 = off), or else the default under KVM and 0 (off) under
 * TCG; -EINVAL for a bad value. */
int qemu_boot_watchdog_seconds(bool kvm, uint64_t *ret);

/* EFER from the text of HMP `info registers`: -EBADMSG when it has none. */
int qemu_boot_parse_efer(const char *info_registers, uint64_t *ret);

/* 1 when vCPU 0 runs in long mode (EFER.LMA), 0 when not, -errno when QEMU does not say. */
int qemu_boot_long_mode(struct qemu_qmp *q, int timeout_ms);
