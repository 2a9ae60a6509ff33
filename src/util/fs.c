// SPDX-License-Identifier: Apache-2.0
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	while (la > 1 && a[la - 1] == '/')
		la--;
	while (*b == '/')
		b++;
	return xasprintf("%.*s/%s", (int)la, a, b);
}

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negerrno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_pwrite_all(int fd, const void *data, size_t len, uint64_t offset)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negerrno();
		}
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

int fs_fsync_dir(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	if (fsync(fd) < 0)
		return negerrno();
	return 0;
}

int fs_fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return fs_fsync_dir(".");
	if (slash == dir)
		slash[1] = 0;
	else
		*slash = 0;
	return fs_fsync_dir(dir);
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	_cleanup_free_ char *tmp = NULL;
	char rnd[37];
	fs_random_uuid(rnd);
	tmp = xasprintf("%s.tmp-%s", path, rnd);
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return negerrno();
	int r = fs_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = negerrno();
	if (r == 0 && fchmod(fd, mode) < 0)
		r = negerrno();
	if (r == 0 && rename(tmp, path) < 0)
		r = negerrno();
	if (r < 0) {
		(void)unlink(tmp);
		return r;
	}
	(void)fs_fsync_parent(path);
	return 0;
}

int fs_read_full(const char *path, size_t cap, struct strbuf *sb)
{
	/* O_NONBLOCK: a FIFO planted where a file is expected must not block the open. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return negerrno();
	struct stat st;
	if (fstat(fd, &st) < 0)
		return negerrno();
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	size_t start = sb->len;
	for (;;) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negerrno();
		}
		if (n == 0)
			return 0;
		if (cap && sb->len - start + (size_t)n > cap)
			return -EFBIG;
		int r = strbuf_add(sb, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

int fs_mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return negerrno();
		*s = '/';
	}
	if (mkdir(p, mode) < 0) {
		if (errno != EEXIST)
			return negerrno();
		if (!fs_is_dir(p))
			return -ENOTDIR;
	}
	return 0;
}

static int rm_rf_at(int parent, const char *name)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : negerrno();
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
			return negerrno();
		return 0;
	}
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return negerrno();
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		int q = rm_rf_at(dirfd(d), de->d_name);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = negerrno();
	return r;
}

int fs_rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

bool fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

bool fs_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int copy_range(int src, int dst, off_t off, off_t end)
{
	while (off < end) {
		loff_t in = off, out = off;
		size_t want = (size_t)MIN((off_t)(1 << 30), end - off);
		ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP)
				goto fallback;
			return negerrno();
		}
		if (n == 0)
			return -EIO; /* source shrank under us */
		off += n;
		continue;
	fallback:;
		/* Plain read/write for kernels or filesystems without copy_file_range. */
		char buf[1 << 16];
		ssize_t got = pread(src, buf, (size_t)MIN((off_t)sizeof(buf), end - off), off);
		if (got <= 0)
			return got < 0 ? negerrno() : -EIO;
		if (pwrite(dst, buf, (size_t)got, off) != got)
			return negerrno();
		off += got;
	}
	return 0;
}

int fs_copy_fd(int src, int dst, enum fs_copy_method *ret_method)
{
	struct stat st;
	if (fstat(src, &st) < 0)
		return negerrno();
	if (ioctl(dst, FICLONE, src) == 0) {
		if (ret_method)
			*ret_method = FS_COPY_REFLINK;
		return 0;
	}
	if (ftruncate(dst, st.st_size) < 0)
		return negerrno();
	off_t off = 0;
	while (off < st.st_size) {
		off_t data = lseek(src, off, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break;
			return negerrno();
		}
		off_t hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return negerrno();
		int r = copy_range(src, dst, data, hole);
		if (r < 0)
			return r;
		off = hole;
	}
	if (fsync(dst) < 0)
		return negerrno();
	if (ret_method)
		*ret_method = FS_COPY_SPARSE;
	return 0;
}

int fs_reflink_file(const char *src, const char *dst)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return negerrno();
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return negerrno();
	if (ioctl(out, FICLONE, in) == 0)
		return 0;
	int r = negerrno();
	(void)unlink(dst);
	return r;
}

int fs_copy_file(const char *src, const char *dst, enum fs_copy_method *ret_method)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO in place of a disk image must not block the open. */
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (in < 0)
		return negerrno();
	if (fstat(in, &st) < 0)
		return negerrno();
	if (!S_ISREG(st.st_mode))
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	_cleanup_close_ int out =
	    open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0)
		return negerrno();
	int r = fs_copy_fd(in, out, ret_method);
	if (r < 0)
		(void)unlink(dst);
	return r;
}

int fs_file_sizes(const char *path, uint64_t *ret_apparent, uint64_t *ret_allocated)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return negerrno();
	if (ret_apparent)
		*ret_apparent = (uint64_t)st.st_size;
	if (ret_allocated)
		*ret_allocated = (uint64_t)st.st_blocks * 512;
	return 0;
}

int fs_flock(int fd, bool exclusive, bool nonblock)
{
	int op = (exclusive ? LOCK_EX : LOCK_SH) | (nonblock ? LOCK_NB : 0);
	while (flock(fd, op) < 0) {
		if (errno == EINTR)
			continue;
		return negerrno();
	}
	return 0;
}

int fs_open_lock(const char *path, bool exclusive, bool nonblock)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	int r = fs_flock(fd, exclusive, nonblock);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}

int fs_open_flock(const char *path, bool nonblock)
{
	return fs_open_lock(path, true, nonblock);
}

int fs_random_bytes(void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negerrno();
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void fs_random_uuid(char ret[37])
{
	unsigned char b[16];
	if (fs_random_bytes(b, sizeof(b)) < 0)
		abort();
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(ret, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}
