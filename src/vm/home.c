// SPDX-License-Identifier: Apache-2.0
#include "vm/home.h"

#include <assert.h>
#include <ctype.h>
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
#include "util/strvec.h"

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

/*
 * tmp/ creation protocol (see home.h). Entries made by home_tmp_create() carry one of these
 * prefixes followed by exactly one UUID; the GC can delete them as soon as it can lock them.
 */
static const char *const tmp_prefixes[] = {"", "set-disk-"};
#define TMP_GRACE_SECONDS 10

static bool is_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

static bool tmp_is_protocol_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(tmp_prefixes); i++) {
		size_t n = strlen(tmp_prefixes[i]);
		if (strneq(name, tmp_prefixes[i], n) && is_uuid(name + n))
			return true;
	}
	return false;
}

/*
 * Under the exclusive tmp/ lock, every entry of ours that is in use is flock'ed by its owner, so
 * one we can lock is abandoned. Other programs' entries (created without the protocol) may be
 * seconds old and not locked yet: they get a grace period. Returns the locked entries' fds.
 */
static void gc_collect(DIR *d, struct strvec *ret_names, int **ret_fds)
{
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		bool young = now - st.st_ctime < TMP_GRACE_SECONDS && now >= st.st_ctime;
		if (young && !tmp_is_protocol_name(de->d_name))
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fs_flock(fd, true, true) < 0)
			continue; /* in use */
		*ret_fds = xrealloc(*ret_fds, (ret_names->nr + 1) * sizeof(int));
		(*ret_fds)[ret_names->nr] = TAKE_FD(fd);
		strvec_push(ret_names, de->d_name);
	}
}

void home_gc_tmp(void)
{
	_cleanup_free_ char *tmp = home_path("tmp");
	_cleanup_close_ int lock = fs_open_lock(tmp, true, false);
	if (lock < 0) {
		if (lock != -ENOENT)
			log_warning_errno(lock, "Failed to perform garbage collection");
		return;
	}
	DIR *d = opendir(tmp);
	if (!d) {
		log_warning_errno(negerrno(), "Failed to perform garbage collection");
		return;
	}
	_cleanup_strvec_ struct strvec names = STRVEC_INIT;
	_cleanup_free_ int *fds = NULL;
	gc_collect(d, &names, &fds);
	closedir(d);
	/* Removing can take a while (a big disk): let creators in meanwhile; we hold the entries. */
	close(TAKE_FD(lock));
	for (size_t i = 0; i < names.nr; i++) {
		_cleanup_free_ char *p = path_join(tmp, names.v[i]);
		/* Only what we locked: a name a puller reuses may hold a new entry by now. */
		struct stat locked, now;
		if (fstat(fds[i], &locked) == 0 && lstat(p, &now) == 0 &&
		    locked.st_dev == now.st_dev && locked.st_ino == now.st_ino) {
			int r = fs_rm_rf(p);
			if (r < 0)
				log_warning_errno(r, "Failed to perform garbage collection: '%s'", p);
		}
		close(fds[i]);
	}
}

int home_tmp_create(const char *prefix, bool directory, char **ret_path)
{
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(tmp_prefixes); i++)
		known = known || streq(prefix, tmp_prefixes[i]);
	assert(known);
	char uuid[37];
	fs_random_uuid(uuid);
	_cleanup_free_ char *tmp = home_path("tmp");
	_cleanup_free_ char *p = xasprintf("%s/%s%s", tmp, prefix, uuid);
	/* shared: many creators at once, but never while the GC scans */
	_cleanup_close_ int tl = fs_open_lock(tmp, false, false);
	if (tl < 0)
		return log_error_errno(tl, "cannot lock '%s'", tmp);
	_cleanup_close_ int fd = -1;
	if (directory) {
		if (mkdir(p, 0755) < 0)
			return log_error_errno(negerrno(), "cannot create '%s'", p);
		fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	int r = fd < 0 ? negerrno() : fs_flock(fd, true, true);
	if (r < 0) {
		(void)(directory ? rmdir(p) : unlink(p));
		return log_error_errno(r, "cannot create '%s'", p);
	}
	*ret_path = TAKE_PTR(p);
	return TAKE_FD(fd);
}

int home_make_staging(char **ret_path)
{
	return home_tmp_create("", true, ret_path);
}
