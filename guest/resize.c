// SPDX-License-Identifier: Apache-2.0
#include "resize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/blkpg.h>
#include <linux/fs.h>

#include "util/log.h"
#include "util/run.h"
#include "util/strbuf.h"
#include "util/strvec.h"

/* Free sectors at the end below which the partition counts as filling the disk: 1 MiB of
 * alignment slack plus GPT's backup header and table. */
#define SLACK_SECTORS (2048 + 33)

static int read_u64(const char *dir, const char *name, uint64_t *ret)
{
	char path[PATH_MAX], buf[32];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return -EIO;
	*ret = strtoull(buf, NULL, 10);
	return 0;
}

/* The type of the filesystem mounted at mnt, from /proc/self/mounts (the last entry wins). */
static int mount_fstype(const char *mnt, char *buf, size_t len)
{
	char line[1024], dev[256], at[256], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s %255s %63s", dev, at, type) == 3 && strcmp(at, mnt) == 0) {
			snprintf(buf, len, "%s", type);
			r = 0;
		}
	fclose(f);
	return r;
}

/* Another partition of the disk starts after ours: ours cannot grow. */
static bool has_later_partition(const char *diskdir, const char *disk, uint64_t start)
{
	char path[PATH_MAX + NAME_MAX + 16];
	uint64_t s;
	for (int i = 1; i < 256; i++) {
		/* vda -> vda2, nvme0n1 -> nvme0n1p2 */
		size_t n = strlen(disk);
		bool p = n && disk[n - 1] >= '0' && disk[n - 1] <= '9';
		snprintf(path, sizeof(path), "%s/%s%s%d", diskdir, disk, p ? "p" : "", i);
		if (read_u64(path, "start", &s) == 0 && s > start)
			return true;
	}
	return false;
}

static int run_tool(struct strvec *argv, const char *input)
{
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int status = 0, r;

	/* Their chatter stays out of the journal unless they fail. */
	strbuf_init(&out, 4096);
	strbuf_init(&err, 4096);
	r = run_argv_input(argv, input, input ? strlen(input) : 0, &out, &err, &status);
	if (r < 0)
		log_warning_errno(r, "cannot run '%s'", argv->v[0]);
	else if (status != 0) {
		strbuf_rtrim(&err);
		log_warning("'%s' failed (exit %d): %s", argv->v[0], status, err.buf);
		r = -EIO;
	}
	strbuf_release(&out);
	strbuf_release(&err);
	return r;
}

/* Grow partition partno of /dev/disk to the end; returns its new size in sectors. */
static int grow_partition(const char *disk, int partno, uint64_t start, uint64_t *ret_size)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	char dev[PATH_MAX], num[16];
	int r, status, fd;

	snprintf(dev, sizeof(dev), "/dev/%s", disk);
	snprintf(num, sizeof(num), "%d", partno);
	strvec_pushl(&argv, "sfdisk", "--no-reread", "--no-tell-kernel", "-N", num, dev, NULL);
	r = run_tool(&argv, ", +\n");
	strvec_clear(&argv);
	if (r < 0)
		return r;

	/* Read the new size back: the line of the partition that starts where ours does. */
	strbuf_init(&out, 1 << 20);
	strvec_pushl(&argv, "sfdisk", "--dump", dev, NULL);
	r = run_argv(&argv, &out, NULL, &status);
	strvec_clear(&argv);
	if (r < 0 || status != 0) {
		strbuf_release(&out);
		return log_warning_errno(r < 0 ? r : -EIO,
					 "cannot read the partition table of '%s'", dev);
	}
	/* Lines read "/dev/vda2 : start=      264192, size=     4978655, type=..." */
	r = -ENOENT;
	for (char *line = out.buf, *next; line && *line; line = next) {
		char *s, *z;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		s = strstr(line, "start=");
		z = strstr(line, "size=");
		if (!s || !z || strtoull(s + 6, NULL, 10) != start)
			continue;
		*ret_size = strtoull(z + 5, NULL, 10);
		r = 0;
		break;
	}
	strbuf_release(&out);
	if (r < 0)
		return log_warning_errno(r, "partition %d not found after resizing", partno);

	/* The disk is in use (our root is on it): re-reading the table would fail with EBUSY. */
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_warning_errno(-errno, "cannot open '%s'", dev);
	struct blkpg_partition part = {
	    .start = (long long)(start * 512),
	    .length = (long long)(*ret_size * 512),
	    .pno = partno,
	};
	struct blkpg_ioctl_arg arg = {
	    .op = BLKPG_RESIZE_PARTITION, .datalen = sizeof(part), .data = &part};
	r = ioctl(fd, BLKPG, &arg) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return log_warning_errno(
		    r, "cannot tell the kernel the new size of '%s' partition %d", dev, partno);
	return 0;
}

static int grow_filesystem(const char *fstype, const char *dev, const char *mnt)
{
	struct strvec argv = STRVEC_INIT;
	int r;

	if (strncmp(fstype, "ext", 3) == 0)
		strvec_pushl(&argv, "resize2fs", dev, NULL);
	else if (strcmp(fstype, "xfs") == 0)
		strvec_pushl(&argv, "xfs_growfs", mnt, NULL);
	else if (strcmp(fstype, "btrfs") == 0)
		strvec_pushl(&argv, "btrfs", "filesystem", "resize", "max", mnt, NULL);
	else {
		log_notice("resize: cannot grow a '%s' root filesystem", fstype);
		return 0;
	}
	r = run_tool(&argv, NULL);
	strvec_clear(&argv);
	if (r == 0)
		log_info("resize: grew the filesystem on '%s'", dev);
	return r;
}

int agent_resize_root(void)
{
	return agent_resize_mount("/");
}

int agent_resize_mount(const char *mnt)
{
	char sys[PATH_MAX], real[PATH_MAX], diskdir[PATH_MAX], fstype[64], dev[PATH_MAX];
	char disk[NAME_MAX + 1], part[NAME_MAX + 1];
	uint64_t partno = 0, start = 0, size = 0, disk_size = 0, part_bytes = 0;
	struct statvfs vfs;
	struct stat st;
	bool grew = false;
	int r, fd;

	if (stat(mnt, &st) < 0)
		return -errno;
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	if (major(st.st_dev) == 0 || !realpath(sys, real)) {
		log_info("resize: '%s' is not on a block device, nothing to grow", mnt);
		return 0;
	}
	r = mount_fstype(mnt, fstype, sizeof(fstype));
	if (r < 0)
		return r;
	snprintf(part, sizeof(part), "%s", strrchr(real, '/') + 1);
	if (strncmp(part, "dm-", 3) == 0 || strncmp(part, "md", 2) == 0) {
		log_info("resize: root is on '%s' (device mapper or RAID): not grown", part);
		return 0;
	}
	if (read_u64(real, "partition", &partno) == 0) {
		snprintf(diskdir, sizeof(diskdir), "%s", real);
		*strrchr(diskdir, '/') = 0;
		snprintf(disk, sizeof(disk), "%s", strrchr(diskdir, '/') + 1);
		if (read_u64(real, "start", &start) < 0 || read_u64(real, "size", &size) < 0 ||
		    read_u64(diskdir, "size", &disk_size) < 0)
			return -EIO;
		if (has_later_partition(diskdir, disk, start)) {
			log_info("resize: '%s' is not the last partition of '%s': not grown", part,
				 disk);
		} else if (disk_size < start + size + SLACK_SECTORS) {
			log_info("resize: '%s' already fills '%s'", part, disk);
		} else {
			log_info("resize: growing '%s' from %" PRIu64 " to about %" PRIu64 " MiB",
				 part, size / 2048, (disk_size - start) / 2048);
			r = grow_partition(disk, (int)partno, start, &size);
			if (r < 0)
				return r;
			grew = true;
		}
	}

	/* The filesystem: grown when its partition just grew, or when it is clearly smaller
	 * than its device (under 80 %: a previous run stopped between the two steps; the
	 * margin covers journals and allocation groups). */
	snprintf(dev, sizeof(dev), "/dev/%s", part);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_warning_errno(-errno, "resize: cannot open '%s'", dev);
	r = ioctl(fd, BLKGETSIZE64, &part_bytes) < 0 ? -errno : 0;
	close(fd);
	if (r < 0 || statvfs(mnt, &vfs) < 0)
		return r < 0 ? r : -errno;
	if (!grew && (uint64_t)vfs.f_blocks * vfs.f_frsize >= part_bytes / 10 * 8) {
		log_info("resize: the filesystem already fills '%s'", dev);
		return 0;
	}
	return grow_filesystem(fstype, dev, mnt);
}
