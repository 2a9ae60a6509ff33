// SPDX-License-Identifier: Apache-2.0
#include "vm/shares.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/home.h"

#define VIRTIOFSD "/usr/lib/qemu/virtiofsd"

/* One tag: everything the forked child needs is prepared before fork (no allocation there). */
struct group {
	char *tag;
	char *socket_name;
	int listen_fd;
	size_t n;
	char **names; /* NULL entries when the single share is unnamed */
	char **paths;
	bool *ro;
	char *base; /* staging sub-directory for named shares, else NULL */
};

struct priv {
	struct group *groups;
	size_t n;
};

static int bind_into(const char *src, const char *dst, bool ro)
{
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return negerrno();
	if (ro && mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		return negerrno();
	return 0;
}

/* Runs in the forked virtiofsd child, before exec. */
static int group_setup(void *userdata)
{
	const struct group *g = userdata;
	if (!g->base && !g->ro[0])
		return 0;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return negerrno();
	if (!g->base)
		return bind_into(g->paths[0], g->paths[0], true);
	if (mount("tart-share", g->base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		return negerrno();
	for (size_t i = 0; i < g->n; i++) {
		char p[PATH_MAX];
		if (!g->names[i])
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", g->base, g->names[i]) >= (int)sizeof(p))
			return -ENAMETOOLONG;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return negerrno();
		int r = bind_into(g->paths[i], p, g->ro[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void group_release(struct group *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->names[i]);
		free(g->paths[i]);
	}
	free(g->names);
	free(g->paths);
	free(g->ro);
	free(g->tag);
	free(g->socket_name);
	free(g->base);
	if (g->listen_fd >= 0)
		close(g->listen_fd);
}

void vm_shares_stop(struct vm_shares *s)
{
	for (size_t i = 0; i < s->n_vfsd; i++) {
		kill(s->vfsd[i].pid, SIGTERM);
		qemu_process_wait_or_kill(&s->vfsd[i], 1000);
		qemu_process_release(&s->vfsd[i]);
	}
	free(s->vfsd);
	struct priv *p = s->priv;
	if (p) {
		for (size_t i = 0; i < p->n; i++)
			group_release(&p->groups[i]);
		free(p->groups);
		free(p);
	}
	free(s->shares);
	if (s->staging) {
		(void)fs_rm_rf(s->staging);
		free(s->staging);
	}
	if (s->staging_fd >= 0)
		close(s->staging_fd);
	*s = (struct vm_shares){.staging_fd = -1};
}

static struct group *find_group(struct priv *p, const char *tag)
{
	for (size_t i = 0; i < p->n; i++)
		if (streq(p->groups[i].tag, tag))
			return &p->groups[i];
	return NULL;
}

/* Parse and group the specs by tag, applying Tart's naming rules. */
static int group_specs(char *const *specs, size_t n, struct priv *p)
{
	p->groups = xcalloc(n, sizeof(*p->groups));
	for (size_t i = 0; i < n; i++) {
		struct qemu_dir_spec d;
		_cleanup_free_ char *err = NULL;
		int r = qemu_dir_spec_parse(specs[i], &d, &err);
		if (r < 0) {
			log_error("%s", err);
			return r;
		}
		if (strstr(d.path, "://")) {
			log_error("--dir \"%s\": remote archives are not supported", specs[i]);
			qemu_dir_spec_release(&d);
			return -ENOTSUP;
		}
		char *real = realpath(d.path, NULL);
		if (!real || !fs_is_dir(real)) {
			log_error("cannot share \"%s\": not a directory", d.path);
			free(real);
			qemu_dir_spec_release(&d);
			return -ENOTDIR;
		}
		struct group *g = find_group(p, d.tag);
		if (!g) {
			g = &p->groups[p->n++];
			*g = (struct group){.tag = xstrdup(d.tag), .listen_fd = -1};
			g->names = xcalloc(n, sizeof(char *));
			g->paths = xcalloc(n, sizeof(char *));
			g->ro = xcalloc(n, sizeof(bool));
		}
		size_t k = g->n;
		for (size_t j = 0; d.name && j < g->n; j++)
			if (g->names[j] && streq(g->names[j], d.name)) { /* last wins */
				k = j;
				free(g->names[j]);
				free(g->paths[j]);
			}
		g->names[k] = d.name ? xstrdup(d.name) : NULL;
		g->paths[k] = real;
		g->ro[k] = d.readonly;
		if (k == g->n)
			g->n++;
		qemu_dir_spec_release(&d);
	}
	for (size_t i = 0; i < p->n; i++) {
		struct group *g = &p->groups[i];
		bool unnamed = false;
		for (size_t j = 0; j < g->n; j++)
			unnamed |= !g->names[j];
		if (unnamed && g->n > 1) {
			log_error("invalid --dir syntax: for multiple directory shares each one of "
				  "them should be named");
			return -EINVAL;
		}
	}
	return 0;
}

static int listen_abstract(const char *name)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negerrno();
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t nl = strlen(name);
	memcpy(sa.sun_path + 1, name, nl);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 1) < 0) {
		int r = negerrno();
		close(fd);
		return r;
	}
	return fd;
}

static int start_group(struct vm_shares *s, struct group *g, size_t idx)
{
	bool named = g->names[0] != NULL;
	if (named) {
		if (!s->staging) {
			s->staging_fd = home_make_staging(&s->staging);
			if (s->staging_fd < 0)
				return s->staging_fd;
		}
		g->base = xasprintf("%s/share%zu", s->staging, idx);
		if (mkdir(g->base, 0755) < 0)
			return log_error_errno(negerrno(), "cannot create '%s'", g->base);
	}
	unsigned char rnd[6];
	(void)fs_random_bytes(rnd, sizeof(rnd));
	g->socket_name = xasprintf("tart-vfs-%d-%zu-%02x%02x%02x%02x%02x%02x", getpid(), idx,
				   rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	g->listen_fd = listen_abstract(g->socket_name);
	if (g->listen_fd < 0)
		return log_error_errno(g->listen_fd, "cannot create the virtiofs socket");
	struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, VIRTIOFSD, "-o", "cache=auto", "-o", "log_level=err", NULL);
	strvec_pushf(&argv, "--fd=%d", g->listen_fd);
	strvec_push(&argv, "-o");
	strvec_pushf(&argv, "source=%s", named ? g->base : g->paths[0]);
	int r =
	    qemu_process_spawn_setup(&argv, &g->listen_fd, 1, group_setup, g, &s->vfsd[s->n_vfsd]);
	strvec_clear(&argv);
	if (r == -EPERM)
		return log_error_errno(r,
				       "cannot prepare the --dir share \"%s\" (named and read-only "
				       "shares need root)",
				       g->tag);
	if (r < 0)
		return log_error_errno(r, "cannot start '%s'", VIRTIOFSD);
	s->n_vfsd++;
	s->shares[idx] = (struct qemu_share){.tag = g->tag, .socket_path = g->socket_name};
	s->n = idx + 1;
	return 0;
}

int vm_shares_start(char *const *specs, size_t n_specs, struct vm_shares *ret)
{
	struct vm_shares s = {.staging_fd = -1};
	if (n_specs == 0) {
		*ret = s;
		return 0;
	}
	if (access(VIRTIOFSD, X_OK) < 0) {
		log_error(
		    "cannot find '%s' for --dir: install the Debian package 'qemu-system-common'",
		    VIRTIOFSD);
		return -ENOPKG;
	}
	struct priv *p = xcalloc(1, sizeof(*p));
	s.priv = p;
	int r = group_specs(specs, n_specs, p);
	if (r >= 0) {
		s.shares = xcalloc(p->n, sizeof(*s.shares));
		s.vfsd = xcalloc(p->n, sizeof(*s.vfsd));
		for (size_t i = 0; i < p->n && r >= 0; i++)
			r = start_group(&s, &p->groups[i], i);
	}
	if (r < 0) {
		vm_shares_stop(&s);
		return r;
	}
	*ret = s;
	return 0;
}
