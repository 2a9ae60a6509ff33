/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * UEFI firmware from Debian's packages: OVMF (amd64, package "ovmf") and AAVMF (arm64,
 * package "qemu-efi-aarch64"). TART_FIRMWARE_DIR overrides the search directory. Non-logging.
 */
struct qemu_firmware {
	char *code; /* read-only code image, for -drive if=pflash,readonly=on */
	char *vars; /* the variable-store template copied into each VM's nvram.bin */
};

/* -ENOPKG when the firmware package is not installed. */
int qemu_firmware_find(const char *arch, struct qemu_firmware *ret);
void qemu_firmware_release(struct qemu_firmware *fw);
/* The Debian package that ships the firmware for arch. */
const char *qemu_firmware_package(const char *arch);
