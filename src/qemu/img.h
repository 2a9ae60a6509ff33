/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>

/* Disk image helpers over qemu-img (spawned from an argv, never a shell). Logging. */

enum qemu_img_format { QEMU_IMG_RAW, QEMU_IMG_QCOW2, QEMU_IMG_ISO };

/* Detect the format from the file's magic bytes: qcow2 ("QFI\xfb"), ISO 9660, else raw. */
int qemu_img_detect(const char *path, enum qemu_img_format *ret);
/* Convert any image qemu-img reads into a sparse raw file at dst. */
int qemu_img_convert_raw(const char *src, const char *dst);
