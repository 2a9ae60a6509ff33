// SPDX-License-Identifier: Apache-2.0
#include "net/resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/lease.h"
#include "net/modes.h"
#include "net/subnet.h"
#include "util/fs.h"
#include "util/macro.h"
#include "util/strbuf.h"

int net_resolver_parse(const char *s, enum net_resolver *ret)
{
	static const char *const names[] = {"dhcp", "arp", "agent"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (streq(s, names[i])) {
			*ret = (enum net_resolver)i;
			return 0;
		}
	}
	return -EINVAL;
}

int net_arp_lookup(const char *text, const uint8_t mac[6], uint32_t *ret_ip)
{
	const char *line = strchr(text, '\n'); /* header */
	while (line && *++line) {
		char ip[64], hw[64], dev[64];
		unsigned type, flags;
		uint8_t m[6];
		uint32_t a;
		/* "IP address  HW type  Flags  HW address  Mask  Device"; flag 0x2 = complete. */
		if (sscanf(line, "%63s 0x%x 0x%x %63s %*s %63s", ip, &type, &flags, hw, dev) == 5 &&
		    (flags & 0x2) && dhcp_mac_parse(hw, m) == 0 && memcmp(m, mac, 6) == 0 &&
		    net_ip_parse(ip, &a) == 0) {
			*ret_ip = a;
			return 0;
		}
		line = strchr(line, '\n');
	}
	return -ENOENT;
}

static const char *info_value(const char *info, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *p = info; p && *p;) {
		while (*p == ' ')
			p++;
		const char *end = strchrnul(p, ' ');
		if ((size_t)(end - p) > kl && strneq(p, key, kl) && p[kl] == '=') {
			snprintf(buf, len, "%.*s", (int)(end - p - (long)kl - 1), p + kl + 1);
			return buf;
		}
		p = end;
	}
	return NULL;
}

void net_user_explain(const char *vm_name, const char *info, char *ret, size_t len)
{
	char port[16];
	if (info_value(info, "ssh-port", port, sizeof(port)))
		snprintf(ret, len,
			 "VM \"%s\" uses user-mode networking: its address is private to QEMU and "
			 "cannot be reached from the host; use the forwarded port instead, e.g. "
			 "'ssh -p %s admin@127.0.0.1'",
			 vm_name, port);
	else
		snprintf(ret, len,
			 "VM \"%s\" uses user-mode networking: its address is private to QEMU and "
			 "cannot be reached from the host; reach it through its forwarded ports "
			 "(%s)",
			 vm_name, *info ? info : "none recorded");
}

int net_resolve_ip(const char *vm_name, const char *vm_dir, const char *mac,
		   enum net_resolver resolver, char ret_ip[16], char *ret_explain,
		   size_t explain_len)
{
	uint8_t m[6];
	if (dhcp_mac_parse(mac, m) < 0)
		return -EINVAL;
	struct net_record rec;
	if (net_record_find(vm_dir, m, &rec) == 0 && rec.mode == NET_MODE_USER) {
		net_user_explain(vm_name, rec.info, ret_explain, explain_len);
		return -EREMOTE;
	}
	uint32_t ip = 0;
	int r = -ENOENT;
	switch (resolver) {
	case NET_RESOLVER_DHCP: {
		_cleanup_free_ char *dir = net_state_dir();
		struct lease_table t;
		if (lease_store_load(dir, &t) == 0) {
			r = lease_table_lookup(&t, m, (uint64_t)time(NULL), &ip);
			lease_table_release(&t);
		}
		break;
	}
	case NET_RESOLVER_ARP: {
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		if (fs_read_full("/proc/net/arp", 1 << 22, &sb) >= 0)
			r = net_arp_lookup(sb.buf, m, &ip);
		break;
	}
	case NET_RESOLVER_AGENT:
		return -EOPNOTSUPP;
	}
	if (r < 0)
		return -ENOENT;
	net_ip_format(ip, ret_ip);
	return 0;
}
