/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * --resize-disk: after `tart set --disk-size` grew the disk, grow the root partition to the
 * end of the disk (sfdisk -N, which also moves GPT's backup header; then the kernel learns
 * the new size through BLKPG_RESIZE_PARTITION, as partx -u does) and then the mounted root
 * filesystem (resize2fs, xfs_growfs or btrfs filesystem resize). Idempotent: nothing happens
 * when the partition already ends within 1 MiB of the disk's end and the filesystem fills
 * it. A root that is not the last partition of a plain disk (LVM, dm, md, network, tmpfs)
 * is left alone with a notice: returns 0. Needs root, sfdisk (Debian's fdisk package) and
 * the filesystem's grow tool.
 */
int agent_resize_root(void);
/* The same for the filesystem mounted at mnt (tests grow a loop device's partition). */
int agent_resize_mount(const char *mnt);
