// SPDX-License-Identifier: Apache-2.0
#include "vm/home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"

static char *tart_home;

int home_init(void)
{
	const char *env = getenv("TART_HOME");
	_cleanup_free_ char *p = NULL;
	if (env && *env) {
		if (env[0] == '/') {
			p = xstrdup(env);
		} else {
			_cleanup_free_ char *cwd = getcwd(NULL, 0);
			if (!cwd)
				return log_error_errno(negerrno(), "cannot get the current directory");
			p = path_join(cwd, env);
		}
	} else {
		const char *h = getenv("HOME");
		if (!h || !*h)
			return log_error_errno(-ENOENT, "HOME is not set");
		p = path_join(h, ".tart");
	}
	for (const char *sub = "cache\0tmp\0"; *sub; sub += strlen(sub) + 1) {
		_cleanup_free_ char *d = path_join(p, sub);
		int r = fs_mkdir_p(d, 0755);
		if (r < 0) {
			log_error("TART_HOME is invalid: %s does not exist, yet we can't create it: %s",
				  d, strerror(-r));
			return r;
		}
	}
	free(tart_home);
	tart_home = TAKE_PTR(p);
	return 0;
}

const char *home_dir(void)
{
	return tart_home;
}

char *home_path(const char *sub)
{
	return path_join(tart_home, sub);
}

int home_lock_global(void)
{
	int fd = fs_open_flock(tart_home, false);
	if (fd < 0)
		return log_error_errno(fd, "cannot lock '%s'", tart_home);
	return fd;
}

void home_gc_tmp(void)
{
	_cleanup_free_ char *tmp = home_path("tmp");
	DIR *d = opendir(tmp);
	if (!d) {
		if (errno != ENOENT)
			log_warning_errno(negerrno(), "Failed to perform garbage collection");
		return;
	}
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - st.st_ctime < 10 && now >= st.st_ctime)
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (fs_flock(fd, true, true) < 0)
			continue; /* in use */
		_cleanup_free_ char *p = path_join(tmp, de->d_name);
		int r = fs_rm_rf(p);
		if (r < 0)
			log_warning_errno(r, "Failed to perform garbage collection: '%s'", p);
	}
	closedir(d);
}

int home_make_staging(char **ret_path)
{
	char uuid[37];
	fs_random_uuid(uuid);
	_cleanup_free_ char *tmp = home_path("tmp");
	_cleanup_free_ char *p = path_join(tmp, uuid);
	if (mkdir(p, 0755) < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", p);
	int fd = fs_open_flock(p, true);
	if (fd < 0) {
		(void)rmdir(p);
		return log_error_errno(fd, "cannot lock '%s'", p);
	}
	*ret_path = TAKE_PTR(p);
	return fd;
}
