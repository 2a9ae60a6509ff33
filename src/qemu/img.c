// SPDX-License-Identifier: Apache-2.0
#include "qemu/img.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/macro.h"
#include "util/run.h"
#include "util/strbuf.h"
#include "util/strvec.h"

int qemu_img_detect(const char *path, enum qemu_img_format *ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", path);
	unsigned char magic[4] = {0};
	char iso[5] = {0};
	ssize_t n = pread(fd, magic, sizeof(magic), 0);
	if (n == 4 && memcmp(magic, "QFI\xfb", 4) == 0) {
		*ret = QEMU_IMG_QCOW2;
		return 0;
	}
	if (pread(fd, iso, 5, 0x8001) == 5 && memcmp(iso, "CD001", 5) == 0) {
		*ret = QEMU_IMG_ISO;
		return 0;
	}
	*ret = QEMU_IMG_RAW;
	return 0;
}

int qemu_img_convert_raw(const char *src, const char *dst)
{
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	_cleanup_strbuf_ struct strbuf err = STRBUF_INIT;
	int status = 0;
	strbuf_init(&err, 16384);
	strvec_pushl(&argv, "qemu-img", "convert", "-q", "-O", "raw", src, dst, NULL);
	int r = run_argv(&argv, NULL, &err, &status);
	if (r == -ENOENT)
		return log_error_errno(-ENOPKG, "cannot run qemu-img: install the Debian package "
						"'qemu-utils'");
	if (r < 0)
		return log_error_errno(r, "cannot run qemu-img");
	if (status != 0) {
		strbuf_rtrim(&err);
		log_error("qemu-img cannot convert '%s': %s", src, err.buf);
		return -EIO;
	}
	return 0;
}
