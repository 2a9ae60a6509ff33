// SPDX-License-Identifier: Apache-2.0
#include "net/subnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strbuf.h"
#include "vm/home.h"

int net_ip_parse(const char *s, uint32_t *ret)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*ret = ntohl(a.s_addr);
	return 0;
}

void net_ip_format(uint32_t ip, char ret[16])
{
	struct in_addr a = {.s_addr = htonl(ip)};
	inet_ntop(AF_INET, &a, ret, 16);
}

int net_prefix_parse(const char *s, bool strict, struct net_prefix *ret)
{
	char buf[32];
	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	uint64_t len = 32;
	char *slash = strchr(buf, '/');
	if (slash) {
		*slash = 0;
		if (parse_u64(slash + 1, 32, &len) < 0)
			return -EINVAL;
	}
	uint32_t ip;
	if (net_ip_parse(buf, &ip) < 0)
		return -EINVAL;
	uint32_t mask = net_prefix_mask((unsigned)len);
	if (strict && (ip & ~mask))
		return -EINVAL;
	*ret = (struct net_prefix){.addr = ip & mask, .len = (unsigned)len};
	return 0;
}

void net_prefix_format(const struct net_prefix *p, char ret[19])
{
	char ip[16];
	net_ip_format(p->addr, ip);
	snprintf(ret, 19, "%s/%u", ip, p->len);
}

int net_prefix_list_parse(const char *s, struct net_prefix_list *ret, size_t *ret_bad_off)
{
	struct net_prefix_list l = {0};
	size_t off = 0;
	if (!s || !*s)
		goto bad;
	for (const char *p = s;;) {
		const char *end = strchrnul(p, ',');
		char item[32];
		off = (size_t)(p - s);
		size_t n = (size_t)(end - p);
		if (n == 0 || n >= sizeof(item) || l.n == NET_PREFIX_LIST_MAX)
			goto bad;
		memcpy(item, p, n);
		item[n] = 0;
		if (net_prefix_parse(item, false, &l.v[l.n]) < 0)
			goto bad;
		l.n++;
		if (!*end)
			break;
		p = end + 1;
	}
	*ret = l;
	return 0;
bad:
	if (ret_bad_off)
		*ret_bad_off = off;
	return -EINVAL;
}

static int parse_port(const char *s, size_t n, uint16_t *ret)
{
	char buf[8];
	uint64_t v;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (parse_u64(buf, 65535, &v) < 0 || v == 0)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int net_expose_parse(const char *s, struct net_expose *ret)
{
	struct net_expose e = {0};
	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s;;) {
		const char *end = strchrnul(p, ',');
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (!colon || e.n == NET_EXPOSE_MAX ||
		    parse_port(p, (size_t)(colon - p), &e.ext[e.n]) < 0 ||
		    parse_port(colon + 1, (size_t)(end - colon - 1), &e.in[e.n]) < 0)
			return -EINVAL;
		for (size_t i = 0; i < e.n; i++)
			if (e.ext[i] == e.ext[e.n])
				return -EINVAL; /* one external port cannot go to two places */
		e.n++;
		if (!*end)
			break;
		p = end + 1;
	}
	*ret = e;
	return 0;
}

#define P(a, b, c, d, l)                                                                           \
	{                                                                                          \
		.addr = (uint32_t)(a) << 24 | (b) << 16 | (c) << 8 | (d), .len = (l)               \
	}
/* IANA IPv4 Special-Purpose Address Registry entries that are not globally reachable. */
const struct net_prefix net_nonglobal[] = {
    P(0, 0, 0, 0, 8),	   P(10, 0, 0, 0, 8),	  P(100, 64, 0, 0, 10), P(127, 0, 0, 0, 8),
    P(169, 254, 0, 0, 16), P(172, 16, 0, 0, 12),  P(192, 0, 0, 0, 24),	P(192, 0, 2, 0, 24),
    P(192, 88, 99, 0, 24), P(192, 168, 0, 0, 16), P(198, 18, 0, 0, 15), P(198, 51, 100, 0, 24),
    P(203, 0, 113, 0, 24), P(224, 0, 0, 0, 4),	  P(240, 0, 0, 0, 4),
};
#undef P
const size_t net_nonglobal_count = sizeof(net_nonglobal) / sizeof(net_nonglobal[0]);

bool net_ip_is_global(uint32_t ip)
{
	for (size_t i = 0; i < net_nonglobal_count; i++)
		if (net_prefix_contains(&net_nonglobal[i], ip))
			return false;
	return true;
}

bool net_ifname_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= IF_NAMESIZE || streq(name, ".") || streq(name, ".."))
		return false;
	/* The kernel's rules (no '/', ':' or white space), and nothing that could end or escape
	 * the quoted string the name becomes in an nft script. */
	for (const char *p = name; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("/:\"\\'", *p))
			return false;
	return true;
}

static void settings_defaults(struct net_settings *s)
{
	*s = (struct net_settings){
	    .subnet = {.addr = 0xc0a84000, .len = 24},
	    .lease_secs = 600,
	};
	strcpy(s->bridge, "tart0");
}

static int set_subnet(struct net_settings *s, const char *v, const char *what)
{
	struct net_prefix p;
	if (net_prefix_parse(v, true, &p) < 0 || p.len < 8 || p.len > 29) {
		log_error("invalid NAT subnet '%s' in %s: expected a network like 192.168.64.0/24 "
			  "with a prefix length from 8 to 29",
			  v, what);
		return -EINVAL;
	}
	s->subnet = p;
	return 0;
}

static int set_lease(struct net_settings *s, uint64_t v, const char *what)
{
	if (v < 60 || v > 86400) {
		log_error("invalid DHCP lease time %llu in %s: expected 60 to 86400 seconds",
			  (unsigned long long)v, what);
		return -EINVAL;
	}
	s->lease_secs = (uint32_t)v;
	return 0;
}

static int add_dns(struct net_settings *s, const char *v, const char *what)
{
	uint32_t ip;
	if (net_ip_parse(v, &ip) < 0 || s->n_dns == DHCP_MAX_DNS) {
		log_error("invalid DNS server '%s' in %s: expected at most %d IPv4 addresses", v,
			  what, DHCP_MAX_DNS);
		return -EINVAL;
	}
	s->dns[s->n_dns++] = ip;
	s->dns_configured = true;
	return 0;
}

static int set_bridge(struct net_settings *s, const char *v, const char *what)
{
	if (!net_ifname_valid(v) || strlen(v) >= sizeof(s->bridge)) {
		log_error("invalid bridge name '%s' in %s: expected 1 to 15 printable characters "
			  "without white space, quotes, '/' or ':'",
			  v, what);
		return -EINVAL;
	}
	strcpy(s->bridge, v);
	return 0;
}

int net_settings_parse_json(const char *buf, size_t len, const char *what, struct net_settings *s)
{
	_cleanup_json_ json_t *root = NULL;
	if (json_parse_buf(buf, len, &root) < 0 || !json_is_object(root)) {
		log_error("'%s' is not a JSON object", what);
		return -EINVAL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		int r = 0;
		if (streq(key, "subnet") && json_is_string(v)) {
			r = set_subnet(s, json_string_value(v), what);
		} else if (streq(key, "leaseTime") && json_is_integer(v) &&
			   json_integer_value(v) >= 0) {
			r = set_lease(s, (uint64_t)json_integer_value(v), what);
		} else if (streq(key, "dns") && json_is_array(v)) {
			size_t i;
			json_t *e;
			s->n_dns = 0;
			s->dns_configured = true;
			json_array_foreach(v, i, e)
			{
				r = json_is_string(e) ? add_dns(s, json_string_value(e), what)
						      : -EINVAL;
				if (r < 0)
					break;
			}
		} else if (streq(key, "bridge") && json_is_string(v)) {
			r = set_bridge(s, json_string_value(v), what);
		} else {
			log_error(
			    "unknown or mistyped key '%s' in %s (known: subnet, leaseTime, dns, "
			    "bridge)",
			    key, what);
			r = -EINVAL;
		}
		if (r < 0)
			return -EINVAL;
	}
	return 0;
}

int net_settings_load(struct net_settings *ret)
{
	struct net_settings s;
	settings_defaults(&s);

	_cleanup_free_ char *path = home_path("network.json");
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(path, 65536, &sb);
	if (r >= 0) {
		r = net_settings_parse_json(sb.buf, sb.len, path, &s);
		if (r < 0)
			return r;
	} else if (r != -ENOENT) {
		return log_error_errno(r, "cannot read '%s'", path);
	}

	const char *e;
	if ((e = getenv("TART_NAT_SUBNET")) && *e && set_subnet(&s, e, "TART_NAT_SUBNET") < 0)
		return -EINVAL;
	if ((e = getenv("TART_NAT_LEASE_TIME")) && *e) {
		uint64_t v;
		if (parse_u64(e, UINT32_MAX, &v) < 0)
			v = 0;
		if (set_lease(&s, v, "TART_NAT_LEASE_TIME") < 0)
			return -EINVAL;
	}
	if ((e = getenv("TART_NAT_DNS")) && *e) {
		_cleanup_free_ char *copy = xstrdup(e);
		char *save = NULL;
		s.n_dns = 0;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (add_dns(&s, t, "TART_NAT_DNS") < 0)
				return -EINVAL;
	}
	if ((e = getenv("TART_NAT_BRIDGE")) && *e && set_bridge(&s, e, "TART_NAT_BRIDGE") < 0)
		return -EINVAL;

	if (!s.dns_configured) {
		uint32_t loopback = 0;
		s.n_dns = net_dns_from_host(s.dns, DHCP_MAX_DNS, &loopback);
		if (s.n_dns == 0 && loopback) {
			s.dns[s.n_dns++] = s.subnet.addr + 1;
			s.dns_forward = loopback;
		}
	}
	*ret = s;
	return 0;
}

size_t net_dns_from_resolv(const char *text, uint32_t *dns, size_t max, uint32_t *ret_loopback)
{
	size_t n = 0;
	for (const char *line = text; line && *line && n < max;) {
		const char *end = strchrnul(line, '\n');
		char buf[128];
		size_t len = (size_t)(end - line);
		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = 0;
			char ns[64];
			uint32_t ip;
			bool ok = sscanf(buf, " nameserver %63s", ns) == 1 &&
				  net_ip_parse(ns, &ip) == 0 && ip != 0;
			if (ok && (ip >> 24) == 127) {
				if (ret_loopback && !*ret_loopback)
					*ret_loopback = ip;
			} else if (ok) {
				bool dup = false;
				for (size_t i = 0; i < n; i++)
					dup |= dns[i] == ip;
				if (!dup)
					dns[n++] = ip;
			}
		}
		line = *end ? end + 1 : NULL;
	}
	return n;
}

size_t net_dns_from_host(uint32_t *dns, size_t max, uint32_t *ret_loopback)
{
	static const char *const files[] = {"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		if (fs_read_full(files[i], 65536, &sb) < 0)
			continue;
		size_t n = net_dns_from_resolv(sb.buf, dns, max, ret_loopback);
		if (n)
			return n;
	}
	return 0;
}

int net_subnet_check_routes(const char *text, const struct net_prefix *subnet,
			    const char *own_bridge, char *ret_what, size_t what_len)
{
	const char *line = strchr(text, '\n'); /* skip the header */
	while (line && *++line) {
		char ifname[IF_NAMESIZE + 1];
		unsigned dst, gw, flags, mask;
		int refcnt, use, metric;
		if (sscanf(line, "%16s %x %x %x %d %d %d %x", ifname, &dst, &gw, &flags, &refcnt,
			   &use, &metric, &mask) == 8) {
			/* /proc/net/route prints addresses in network byte order as a native int.
			 */
			uint32_t m = ntohl(mask);
			unsigned len = (unsigned)__builtin_popcount(m);
			struct net_prefix r = {.addr = ntohl(dst) & m, .len = len};
			if (len > 0 && !streq(ifname, own_bridge) &&
			    net_prefix_overlap(&r, subnet)) {
				char p[19];
				net_prefix_format(&r, p);
				snprintf(ret_what, what_len, "route %s on '%s'", p, ifname);
				return -EADDRINUSE;
			}
		}
		line = strchr(line, '\n');
	}
	return 0;
}

int net_subnet_check_clash(const struct net_prefix *subnet, const char *own_bridge, char *ret_what,
			   size_t what_len)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (fs_read_full("/proc/net/route", 1 << 20, &sb) >= 0) {
		int r = net_subnet_check_routes(sb.buf, subnet, own_bridge, ret_what, what_len);
		if (r < 0)
			return r;
	}
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return negerrno();
	int r = 0;
	for (struct ifaddrs *i = ifa; i && r == 0; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    streq(i->ifa_name, own_bridge))
			continue;
		uint32_t ip = ntohl(((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr);
		if (net_prefix_contains(subnet, ip)) {
			char a[16];
			net_ip_format(ip, a);
			snprintf(ret_what, what_len, "address %s on '%s'", a, i->ifa_name);
			r = -EADDRINUSE;
		}
	}
	freeifaddrs(ifa);
	return r;
}
