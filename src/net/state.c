// SPDX-License-Identifier: Apache-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/lease.h"
#include "net/modes.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "vm/home.h"

#define RECORD_CAP 65536

char *net_state_dir(void)
{
	return home_path("net");
}

int net_state_lock(const char *state_dir)
{
	_cleanup_free_ char *runs = path_join(state_dir, "runs");
	int r = fs_mkdir_p(runs, 0755);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = path_join(state_dir, "net.lock");
	_cleanup_close_ int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return negerrno();
	r = fs_flock(fd, true, false);
	return r < 0 ? r : TAKE_FD(fd);
}

static char *record_path(const char *state_dir, pid_t pid)
{
	return xasprintf("%s/runs/%d.json", state_dir, (int)pid);
}

char *net_record_format(const struct net_record *r)
{
	char mac[18], ip[16];
	dhcp_mac_format(r->mac, mac);
	net_ip_format(r->ip, ip);
	json_t *exp = json_array();
	for (size_t i = 0; i < r->expose.n; i++)
		json_array_append_new(exp, json_pack("[i,i]", r->expose.ext[i], r->expose.in[i]));
	_cleanup_json_ json_t *o =
	    json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o}", "pid",
		      (json_int_t)r->pid, "pidStart", (json_int_t)r->pid_start, "vm", r->vm,
		      "vmDir", r->vm_dir, "mode", net_mode_to_string(r->mode), "info", r->info,
		      "tap", r->tap, "bridge", r->bridge, "mac", mac, "ip", r->ip ? ip : "",
		      "softnet", r->softnet, "sharedBridge", r->shared_bridge, "expose", exp);
	struct strbuf sb = STRBUF_INIT;
	json_dump_swift(o, JSON_SWIFT_PRETTY, &sb);
	strbuf_putc(&sb, '\n');
	return strbuf_detach(&sb, NULL);
}

static int copy_str(const json_t *o, const char *key, char *dst, size_t size)
{
	const char *s;
	if (json_get_string(o, key, &s) < 0 || strlen(s) >= size)
		return -EBADMSG;
	strcpy(dst, s);
	return 0;
}

int net_record_parse(const char *buf, size_t len, struct net_record *ret)
{
	_cleanup_json_ json_t *o = NULL;
	if (json_parse_buf(buf, len, &o) < 0 || !json_is_object(o))
		return -EBADMSG;
	struct net_record r = {0};
	uint64_t pid, start;
	char mode[16], mac[18], ip[16];
	json_t *exp = json_object_get(o, "expose");
	if (json_get_u64(o, "pid", &pid) < 0 || pid == 0 || pid > INT32_MAX ||
	    json_get_u64(o, "pidStart", &start) < 0 || copy_str(o, "vm", r.vm, sizeof(r.vm)) < 0 ||
	    copy_str(o, "vmDir", r.vm_dir, sizeof(r.vm_dir)) < 0 ||
	    copy_str(o, "mode", mode, sizeof(mode)) < 0 ||
	    copy_str(o, "info", r.info, sizeof(r.info)) < 0 ||
	    copy_str(o, "tap", r.tap, sizeof(r.tap)) < 0 ||
	    copy_str(o, "bridge", r.bridge, sizeof(r.bridge)) < 0 ||
	    copy_str(o, "mac", mac, sizeof(mac)) < 0 || copy_str(o, "ip", ip, sizeof(ip)) < 0 ||
	    json_get_bool(o, "softnet", &r.softnet) < 0 ||
	    json_get_bool(o, "sharedBridge", &r.shared_bridge) < 0 || !json_is_array(exp) ||
	    json_array_size(exp) > NET_EXPOSE_MAX)
		return -EBADMSG;
	r.pid = (pid_t)pid;
	r.pid_start = start;
	r.mode = NET_MODE_AUTO;
	for (enum net_mode m = NET_MODE_AUTO; net_mode_to_string(m); m++)
		if (streq(net_mode_to_string(m), mode))
			r.mode = m;
	if (*mac && dhcp_mac_parse(mac, r.mac) < 0)
		return -EBADMSG;
	/* The tap is deleted and named in nft scripts when the run is found dead: it must be
	 * the one tart creates for that pid, never another interface or script text. */
	char tap[sizeof(r.tap)];
	snprintf(tap, sizeof(tap), "tart-t%d", (int)r.pid);
	if ((*r.tap && !streq(r.tap, tap)) || (*r.bridge && !net_ifname_valid(r.bridge)))
		return -EBADMSG;
	if (*ip && net_ip_parse(ip, &r.ip) < 0)
		return -EBADMSG;
	size_t i;
	json_t *e;
	json_array_foreach(exp, i, e)
	{
		json_int_t a, b;
		if (json_unpack(e, "[I,I!]", &a, &b) < 0 || a < 1 || a > 65535 || b < 1 ||
		    b > 65535)
			return -EBADMSG;
		r.expose.ext[r.expose.n] = (uint16_t)a;
		r.expose.in[r.expose.n++] = (uint16_t)b;
	}
	*ret = r;
	return 0;
}

int net_record_save(const char *state_dir, const struct net_record *r)
{
	_cleanup_free_ char *dir = path_join(state_dir, "runs");
	int ret = fs_mkdir_p(dir, 0755);
	if (ret < 0)
		return ret;
	_cleanup_free_ char *p = record_path(state_dir, r->pid);
	_cleanup_free_ char *s = net_record_format(r);
	return fs_write_atomic(p, s, strlen(s), 0644);
}

void net_record_remove(const char *state_dir, pid_t pid)
{
	_cleanup_free_ char *p = record_path(state_dir, pid);
	(void)unlink(p);
}

int net_record_list(const char *state_dir, struct net_record **ret, size_t *ret_n)
{
	_cleanup_free_ char *dir = path_join(state_dir, "runs");
	struct net_record *v = NULL;
	size_t n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			return negerrno();
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || !streq(de->d_name + l - 5, ".json"))
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		struct net_record r;
		char expected[32];
		if (fs_read_full(p, RECORD_CAP, &sb) < 0 ||
		    net_record_parse(sb.buf, sb.len, &r) < 0)
			continue;
		/* Removal goes by the pid inside: a record under another name would stay forever.
		 */
		snprintf(expected, sizeof(expected), "%d.json", (int)r.pid);
		if (!streq(de->d_name, expected) || n == NET_RECORD_MAX)
			continue;
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = r;
	}
	closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}

int net_record_find(const char *vm_dir, const uint8_t mac[6], struct net_record *ret)
{
	_cleanup_free_ char *state = net_state_dir();
	_cleanup_free_ struct net_record *v = NULL;
	size_t n = 0;
	int r = net_record_list(state, &v, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		bool same = streq(v[i].vm_dir, vm_dir) || memcmp(v[i].mac, mac, 6) == 0;
		if (same && lease_owner_alive(v[i].pid, v[i].pid_start)) {
			*ret = v[i];
			return 0;
		}
	}
	return -ENOENT;
}

bool net_privileged(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	/* NET_ADMIN for taps, bridges and nftables; NET_RAW for the DHCP server's socket. */
	static const int caps[] = {CAP_NET_ADMIN, CAP_NET_RAW};
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
		if (!(data[caps[i] / 32].effective & (1u << (caps[i] % 32))))
			return false;
	/* open(), not access(): access() checks the real uid without our capabilities. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

void net_record_user(const struct net_options *opts, const struct net_attachment *a)
{
	struct net_record r = {.pid = getpid(), .mode = a->mode};
	r.pid_start = lease_pid_start(r.pid);
	snprintf(r.vm, sizeof(r.vm), "%s", opts->vm_name ? opts->vm_name : "");
	snprintf(r.vm_dir, sizeof(r.vm_dir), "%s", opts->vm_dir ? opts->vm_dir : "");
	snprintf(r.info, sizeof(r.info), "%s", a->info);
	if (opts->mac)
		(void)dhcp_mac_parse(opts->mac, r.mac);
	_cleanup_free_ char *dir = net_state_dir();
	_cleanup_close_ int lock = net_state_lock(dir);
	int k = lock < 0 ? lock : net_record_save(dir, &r);
	if (k < 0)
		log_warning_errno(k,
				  "cannot write the run record in '%s': 'tart ip' will not know "
				  "how to reach this VM",
				  dir);
}

void net_record_drop_own(void)
{
	_cleanup_free_ char *dir = net_state_dir();
	net_record_remove(dir, getpid());
}
