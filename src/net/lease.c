// SPDX-License-Identifier: Apache-2.0
#include "net/lease.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dhcp.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/macro.h"
#include "util/strbuf.h"

#define LEASE_FILE "leases.json"
#define LEASE_LOCK "leases.lock"
#define LEASE_FILE_CAP (4 * 1024 * 1024)

void lease_table_release(struct lease_table *t)
{
	free(t->v);
	*t = (struct lease_table){0};
}

struct lease *lease_table_find_mac(struct lease_table *t, const uint8_t mac[6])
{
	for (size_t i = 0; i < t->n; i++)
		if (memcmp(t->v[i].mac, mac, 6) == 0)
			return &t->v[i];
	return NULL;
}

static void remove_at(struct lease_table *t, size_t i)
{
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(t->v[0]));
	t->n--;
}

size_t lease_table_reap(struct lease_table *t, lease_alive_fn alive)
{
	size_t dropped = 0;
	for (size_t i = 0; i < t->n;) {
		if (t->v[i].pid <= 0 || !alive(t->v[i].pid, t->v[i].pid_start)) {
			remove_at(t, i);
			dropped++;
		} else {
			i++;
		}
	}
	return dropped;
}

static struct lease *append(struct lease_table *t)
{
	if (t->n == t->alloc) {
		t->alloc = t->alloc ? 2 * t->alloc : 16;
		t->v = xrealloc(t->v, t->alloc * sizeof(t->v[0]));
	}
	struct lease *l = &t->v[t->n++];
	memset(l, 0, sizeof(*l));
	return l;
}

static bool ip_taken(const struct lease_table *t, uint32_t ip)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].ip == ip)
			return true;
	return false;
}

int lease_table_reserve(struct lease_table *t, const uint8_t mac[6], const char *vm, pid_t pid,
			uint64_t pid_start, uint32_t first, uint32_t last, lease_alive_fn alive,
			uint32_t *ret_ip)
{
	/* Whatever a live owner holds stays; the record of a dead one for this MAC is kept
	 * aside so the VM gets its previous address back when it is still free. */
	uint32_t previous = 0;
	struct lease *mine = lease_table_find_mac(t, mac);
	if (mine) {
		if (mine->pid > 0 && mine->pid != pid && alive(mine->pid, mine->pid_start))
			return -EBUSY;
		previous = mine->ip;
		remove_at(t, (size_t)(mine - t->v));
	}
	lease_table_reap(t, alive);

	uint32_t ip = 0;
	if (previous >= first && previous <= last && !ip_taken(t, previous))
		ip = previous;
	for (uint32_t c = first; !ip && c <= last && c >= first; c++)
		if (!ip_taken(t, c))
			ip = c;
	if (!ip)
		return -ENOSPC;

	struct lease *l = append(t);
	memcpy(l->mac, mac, 6);
	l->ip = ip;
	l->pid = pid;
	l->pid_start = pid_start;
	snprintf(l->vm, sizeof(l->vm), "%s", vm ? vm : "");
	*ret_ip = ip;
	return 0;
}

int lease_table_bind(struct lease_table *t, const uint8_t mac[6], uint32_t ip, uint64_t expires,
		     const char *hostname)
{
	struct lease *l = lease_table_find_mac(t, mac);
	if (!l || l->ip != ip)
		return -ENOENT;
	l->expires = expires;
	if (hostname)
		snprintf(l->hostname, sizeof(l->hostname), "%s", hostname);
	return 0;
}

void lease_table_free(struct lease_table *t, const uint8_t mac[6], pid_t pid)
{
	struct lease *l = lease_table_find_mac(t, mac);
	if (l && (pid == 0 || l->pid == pid))
		remove_at(t, (size_t)(l - t->v));
}

int lease_table_lookup(struct lease_table *t, const uint8_t mac[6], uint64_t now, uint32_t *ret_ip)
{
	struct lease *l = lease_table_find_mac(t, mac);
	if (!l || l->expires == 0 || l->expires <= now)
		return -ENOENT;
	*ret_ip = l->ip;
	return 0;
}

static int parse_ip(const char *s, uint32_t *ret)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -EBADMSG;
	*ret = ntohl(a.s_addr);
	return 0;
}

int lease_table_parse(const char *buf, size_t len, struct lease_table *ret)
{
	_cleanup_json_ json_t *root = NULL;
	int r = json_parse_buf(buf, len, &root);
	if (r < 0)
		return r;
	json_t *arr = json_object_get(root, "leases");
	if (!json_is_array(arr) || json_array_size(arr) > LEASE_MAX)
		return -EBADMSG;
	struct lease_table t = {0};
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		const char *mac, *ip, *vm = "", *host = "";
		uint64_t pid = 0, start = 0, expires = 0;
		struct lease *l = append(&t);
		if (json_get_string(e, "mac", &mac) < 0 || dhcp_mac_parse(mac, l->mac) < 0 ||
		    json_get_string(e, "ip", &ip) < 0 || parse_ip(ip, &l->ip) < 0 ||
		    json_get_u64(e, "pid", &pid) < 0 || pid > INT32_MAX ||
		    json_get_u64(e, "pidStart", &start) < 0 ||
		    json_get_u64(e, "expires", &expires) < 0 ||
		    json_get_string(e, "vm", &vm) == -EBADMSG ||
		    json_get_string(e, "hostname", &host) == -EBADMSG) {
			lease_table_release(&t);
			return -EBADMSG;
		}
		l->pid = (pid_t)pid;
		l->pid_start = start;
		l->expires = expires;
		snprintf(l->vm, sizeof(l->vm), "%s", vm);
		snprintf(l->hostname, sizeof(l->hostname), "%s", host);
	}
	*ret = t;
	return 0;
}

char *lease_table_format(const struct lease_table *t)
{
	_cleanup_json_ json_t *root = json_object();
	json_t *arr = json_array();
	for (size_t i = 0; i < t->n; i++) {
		const struct lease *l = &t->v[i];
		char mac[18], ip[INET_ADDRSTRLEN];
		struct in_addr a = {.s_addr = htonl(l->ip)};
		dhcp_mac_format(l->mac, mac);
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "mac",
						     mac, "ip", ip, "vm", l->vm, "hostname",
						     l->hostname, "pid", (json_int_t)l->pid,
						     "pidStart", (json_int_t)l->pid_start,
						     "expires", (json_int_t)l->expires));
	}
	json_object_set_new(root, "leases", arr);
	struct strbuf sb = STRBUF_INIT;
	json_dump_swift(root, JSON_SWIFT_PRETTY, &sb);
	strbuf_putc(&sb, '\n');
	return strbuf_detach(&sb, NULL);
}

int lease_store_lock(const char *dir)
{
	int r = fs_mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = path_join(dir, LEASE_LOCK);
	_cleanup_close_ int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return negerrno();
	r = fs_flock(fd, true, false);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}

int lease_store_load(const char *dir, struct lease_table *ret)
{
	_cleanup_free_ char *p = path_join(dir, LEASE_FILE);
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(p, LEASE_FILE_CAP, &sb);
	if (r == -ENOENT) {
		*ret = (struct lease_table){0};
		return 0;
	}
	if (r < 0)
		return r;
	return lease_table_parse(sb.buf, sb.len, ret);
}

int lease_store_save(const char *dir, const struct lease_table *t)
{
	_cleanup_free_ char *p = path_join(dir, LEASE_FILE);
	_cleanup_free_ char *s = lease_table_format(t);
	return fs_write_atomic(p, s, strlen(s), 0644);
}

uint64_t lease_pid_start(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (fs_read_full(path, 8192, &sb) < 0)
		return 0;
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	const char *p = strrchr(sb.buf, ')');
	if (!p)
		return 0;
	/* p is on field 2's closing ')'; each step lands on the space before the next field. */
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return 0;
	}
	return strtoull(p + 1, NULL, 10);
}

bool lease_owner_alive(pid_t pid, uint64_t pid_start)
{
	if (pid <= 0)
		return false;
	uint64_t s = lease_pid_start(pid);
	return s != 0 && (pid_start == 0 || s == pid_start);
}
