// SPDX-License-Identifier: Apache-2.0
#include "net/link.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/macro.h"
#include "util/run.h"
#include "util/strvec.h"

extern char **environ;

static void pass_net_admin_on_once(void)
{
	if (geteuid() == 0)
		return;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	const unsigned bit = 1u << (CAP_NET_ADMIN % 32), word = CAP_NET_ADMIN / 32;
	if (syscall(SYS_capget, &hdr, data) < 0 || !(data[word].permitted & bit))
		return;
	data[word].inheritable |= bit;
	if (syscall(SYS_capset, &hdr, data) == 0)
		(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0);
}

/*
 * A non-root tart that holds CAP_NET_ADMIN through file capabilities must pass it on to the
 * `nft` and `ip` it spawns: make it inheritable and ambient (best effort, once).
 */
static void pass_net_admin_on(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, pass_net_admin_on_once);
}

static int ifreq_init(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	memcpy(ifr->ifr_name, name, strlen(name));
	return 0;
}

static int ctl_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return fd < 0 ? negerrno() : fd;
}

/* One ioctl on a throw-away control socket. */
static int ifioctl(unsigned long req, struct ifreq *ifr)
{
	_cleanup_close_ int fd = ctl_socket();
	if (fd < 0)
		return fd;
	return ioctl(fd, req, ifr) < 0 ? negerrno() : 0;
}

int link_tap_create(const char *name)
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return negerrno();
	return TAKE_FD(fd);
}

bool link_exists(const char *name)
{
	return link_ifindex(name) > 0;
}

int link_ifindex(const char *name)
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0)
		return r;
	r = ifioctl(SIOCGIFINDEX, &ifr);
	return r < 0 ? r : ifr.ifr_ifindex;
}

int link_set_up(const char *name, bool up)
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0 || (r = ifioctl(SIOCGIFFLAGS, &ifr)) < 0)
		return r;
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	return ifioctl(SIOCSIFFLAGS, &ifr);
}

int link_get_mac(const char *name, uint8_t ret[6])
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0 || (r = ifioctl(SIOCGIFHWADDR, &ifr)) < 0)
		return r;
	memcpy(ret, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

int link_set_mac(const char *name, const uint8_t mac[6])
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0)
		return r;
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	return ifioctl(SIOCSIFHWADDR, &ifr);
}

int link_bridge_add(const char *name)
{
	_cleanup_close_ int fd = ctl_socket();
	if (fd < 0)
		return fd;
	if (ioctl(fd, SIOCBRADDBR, name) < 0 && errno != EEXIST)
		return negerrno();
	return 0;
}

int link_bridge_del(const char *name)
{
	if (!link_exists(name))
		return 0;
	/* Never take down an interface that is not a bridge (a misconfigured name). */
	if (!link_is_bridge(name))
		return -EINVAL;
	(void)link_set_up(name, false);
	_cleanup_close_ int fd = ctl_socket();
	if (fd < 0)
		return fd;
	if (ioctl(fd, SIOCBRDELBR, name) < 0 && errno != ENXIO)
		return negerrno();
	return 0;
}

int link_bridge_add_port(const char *bridge, const char *port)
{
	struct ifreq ifr;
	int idx = link_ifindex(port);
	if (idx < 0)
		return idx;
	int r = ifreq_init(&ifr, bridge);
	if (r < 0)
		return r;
	ifr.ifr_ifindex = idx;
	return ifioctl(SIOCBRADDIF, &ifr);
}

bool link_is_bridge(const char *name)
{
	if (!name || strchr(name, '/') || strlen(name) >= IFNAMSIZ)
		return false;
	_cleanup_free_ char *p = xasprintf("/sys/class/net/%s/bridge", name);
	return fs_is_dir(p);
}

char *link_list_bridges(void)
{
	struct strbuf sb = STRBUF_INIT;
	DIR *d = opendir("/sys/class/net");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] != '.' && link_is_bridge(de->d_name))
			strbuf_putf(&sb, "%s%s", sb.len ? ", " : "", de->d_name);
	}
	if (d)
		closedir(d);
	return strbuf_detach(&sb, NULL);
}

static bool sys_net_exists(const char *dev, const char *what)
{
	char p[128];
	snprintf(p, sizeof(p), "/sys/class/net/%s/%s", dev, what);
	return access(p, F_OK) == 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int net_bridgeable_list(struct strvec *ret_bridges, struct strvec *ret_ethernet)
{
	DIR *d = opendir("/sys/class/net");
	if (!d)
		return negerrno();
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' || strlen(n) >= IFNAMSIZ)
			continue;
		if (link_is_bridge(n)) {
			strvec_push(ret_bridges, n);
			continue;
		}
		/* ARPHRD_ETHER with a device behind it (not veth, tap, ifb...), in no bridge yet */
		char p[128];
		_cleanup_strbuf_ struct strbuf type = STRBUF_INIT;
		snprintf(p, sizeof(p), "/sys/class/net/%s/type", n);
		if (fs_read_full(p, 64, &type) < 0 || strtol(type.buf, NULL, 10) != 1)
			continue;
		if (sys_net_exists(n, "device") && !sys_net_exists(n, "master"))
			strvec_push(ret_ethernet, n);
	}
	closedir(d);
	qsort(ret_bridges->v, ret_bridges->nr, sizeof(char *), cmp_names);
	qsort(ret_ethernet->v, ret_ethernet->nr, sizeof(char *), cmp_names);
	return 0;
}

int link_set_ipv4(const char *name, uint32_t ip, unsigned prefix_len)
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0)
		return r;
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(ip);
	if ((r = ifioctl(SIOCSIFADDR, &ifr)) < 0)
		return r;
	sin->sin_addr.s_addr = htonl(prefix_len ? 0xffffffffu << (32 - prefix_len) : 0);
	return ifioctl(SIOCSIFNETMASK, &ifr);
}

int link_get_ipv4(const char *name, uint32_t *ret_ip, unsigned *ret_prefix_len)
{
	struct ifreq ifr;
	int r = ifreq_init(&ifr, name);
	if (r < 0 || (r = ifioctl(SIOCGIFADDR, &ifr)) < 0)
		return r;
	uint32_t ip = ntohl(((struct sockaddr_in *)(void *)&ifr.ifr_addr)->sin_addr.s_addr);
	if ((r = ifioctl(SIOCGIFNETMASK, &ifr)) < 0)
		return r;
	uint32_t mask = ntohl(((struct sockaddr_in *)(void *)&ifr.ifr_netmask)->sin_addr.s_addr);
	*ret_ip = ip;
	*ret_prefix_len = (unsigned)__builtin_popcount(mask);
	return 0;
}

int link_delete(const char *name)
{
	if (!link_exists(name))
		return 0;
	pass_net_admin_on();
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, "ip", "link", "del", "dev", name, NULL);
	int status = 0;
	int r = run_argv(&argv, NULL, NULL, &status);
	if (r < 0)
		return r;
	return status == 0 || !link_exists(name) ? 0 : -EIO;
}

int link_sysctl_write(const char *key, const char *value)
{
	_cleanup_free_ char *p = xasprintf("/proc/sys/%s", key);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return negerrno();
	size_t n = strlen(value);
	return write(fd, value, n) == (ssize_t)n ? 0 : negerrno();
}

/* sbin is not always on PATH for capability-holding users. */
static int find_nft(char **ret)
{
	int r = find_program("nft", ret);
	if (r < 0 && access("/usr/sbin/nft", X_OK) == 0) {
		*ret = xstrdup("/usr/sbin/nft");
		r = 0;
	}
	return r;
}

int nft_query(const char *const *args, struct strbuf *out)
{
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	_cleanup_free_ char *prog = NULL;
	int r = find_nft(&prog);
	if (r < 0)
		return r;
	pass_net_admin_on();
	strvec_push(&argv, prog);
	for (size_t i = 0; args[i]; i++)
		strvec_push(&argv, args[i]);
	_cleanup_strbuf_ struct strbuf err = STRBUF_INIT;
	strbuf_init(&err, 4096);
	int status = 0;
	r = run_argv(&argv, out, &err, &status);
	if (r < 0)
		return r;
	return status == 0 ? 0 : -EIO;
}

int nft_apply(const char *script, struct strbuf *err)
{
	_cleanup_free_ char *prog = NULL;
	int r = find_nft(&prog);
	if (r < 0)
		return r;
	pass_net_admin_on();
	/* The script goes in through a memfd as stdin: no temp file, no pipe-size deadlock. */
	_cleanup_close_ int mfd = memfd_create("tart-nft", MFD_CLOEXEC);
	_cleanup_close_ int pr = -1, pw = -1;
	if (mfd < 0)
		return negerrno();
	size_t len = strlen(script);
	if (write(mfd, script, len) != (ssize_t)len || lseek(mfd, 0, SEEK_SET) < 0)
		return negerrno();
	int pe[2];
	if (pipe2(pe, O_CLOEXEC) < 0)
		return negerrno();
	pr = pe[0];
	pw = pe[1];
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, mfd, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pw, 2);
	char *argv[] = {prog, (char *)"-f", (char *)"-", NULL};
	pid_t pid;
	r = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	close(TAKE_FD(pw));
	char buf[4096];
	ssize_t n;
	while ((n = read(pr, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (err && strbuf_add(err, buf, (size_t)n) < 0)
			continue; /* over the cap: the rest is dropped */
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return negerrno();
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}
