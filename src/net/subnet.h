/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * IPv4 prefixes, tart's network settings and the checks around them.
 *
 * Settings come from, in increasing precedence: built-in defaults (Tart's 192.168.64.0/24,
 * 600 s leases, DNS from the host's resolver configuration, bridge "tart0"), the file
 * $TART_HOME/network.json, and the variables TART_NAT_SUBNET, TART_NAT_LEASE_TIME,
 * TART_NAT_DNS and TART_NAT_BRIDGE. docs/network.md documents them. Addresses are uint32_t in
 * host byte order. Parsers are pure and do not log (the caller names the setting); the
 * settings loader logs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/dhcp.h"

struct net_prefix {
	uint32_t addr; /* network address (host bits cleared by the parser) */
	unsigned len;  /* 0..32 */
};

static inline uint32_t net_prefix_mask(unsigned len)
{
	return len == 0 ? 0 : 0xffffffffu << (32 - len);
}

static inline bool net_prefix_contains(const struct net_prefix *p, uint32_t ip)
{
	return (ip & net_prefix_mask(p->len)) == p->addr;
}

static inline bool net_prefix_overlap(const struct net_prefix *a, const struct net_prefix *b)
{
	unsigned l = a->len < b->len ? a->len : b->len;
	return (a->addr & net_prefix_mask(l)) == (b->addr & net_prefix_mask(l));
}

/*
 * "a.b.c.d/len" or a bare "a.b.c.d" (= /32). strict: host bits must be zero (for subnets);
 * otherwise they are cleared (for allow/block lists, as Softnet does). -EINVAL when invalid.
 */
int net_prefix_parse(const char *s, bool strict, struct net_prefix *ret);
void net_prefix_format(const struct net_prefix *p, char ret[19]);
int net_ip_parse(const char *s, uint32_t *ret);
void net_ip_format(uint32_t ip, char ret[16]);

/* Comma-separated prefixes; -EINVAL with *ret_bad_off = byte offset of the bad item. */
#define NET_PREFIX_LIST_MAX 256
struct net_prefix_list {
	struct net_prefix v[NET_PREFIX_LIST_MAX];
	size_t n;
};
int net_prefix_list_parse(const char *s, struct net_prefix_list *ret, size_t *ret_bad_off);

/* "EXT:INT[,EXT:INT...]" TCP port pairs (1..65535). */
#define NET_EXPOSE_MAX 64
struct net_expose {
	uint16_t ext[NET_EXPOSE_MAX], in[NET_EXPOSE_MAX];
	size_t n;
};
int net_expose_parse(const char *s, struct net_expose *ret);

/* True for globally routable unicast (IANA special-purpose registry, as Softnet's is_global). */
bool net_ip_is_global(uint32_t ip);
/*
 * A network interface name we are willing to create, delete or write into an nft script:
 * what the kernel accepts (1-15 bytes, no '/', ':' or white space, not "." or ".."), printable
 * ASCII, and no quote or backslash.
 */
bool net_ifname_valid(const char *name);
/* The non-global ranges, for firewall rules. */
extern const struct net_prefix net_nonglobal[];
extern const size_t net_nonglobal_count;

struct net_settings {
	struct net_prefix subnet;
	uint32_t lease_secs;
	uint32_t dns[DHCP_MAX_DNS];
	size_t n_dns;
	bool dns_configured; /* false: taken from the host */
	/* The host has only a loopback resolver (127.0.0.53, a local dnsmasq...): guests are
	 * given the gateway as DNS server and the gateway's port 53 is DNAT'ed to this. 0 = no. */
	uint32_t dns_forward;
	char bridge[16];
};

/* Parse network.json contents over *s (only the keys present change). -EINVAL, logged. */
int net_settings_parse_json(const char *buf, size_t len, const char *what, struct net_settings *s);
/*
 * Defaults + $TART_HOME/network.json + environment. A subnet shorter than /8 or longer than
 * /29 is refused. Logs the failing setting.
 */
int net_settings_load(struct net_settings *ret);

/*
 * Nameservers from resolv.conf-formatted text: loopback resolvers are not stored (a guest
 * cannot reach the host's 127.0.0.53); the first of them goes to *ret_loopback (may be NULL,
 * left alone when there is none). Returns how many were stored.
 */
size_t net_dns_from_resolv(const char *text, uint32_t *dns, size_t max, uint32_t *ret_loopback);
/* From /run/systemd/resolve/resolv.conf (the upstream servers) or /etc/resolv.conf. */
size_t net_dns_from_host(uint32_t *dns, size_t max, uint32_t *ret_loopback);

/*
 * Does subnet clash with a route or an address of this network namespace that is not on
 * our own bridge? On a clash returns -EADDRINUSE and fills ret_what ("route 192.168.64.0/20
 * on 'eth0'"). Reads /proc/net/route and getifaddrs().
 */
int net_subnet_check_clash(const struct net_prefix *subnet, const char *own_bridge, char *ret_what,
			   size_t what_len);
/* The pure part: one /proc/net/route text. */
int net_subnet_check_routes(const char *route_text, const struct net_prefix *subnet,
			    const char *own_bridge, char *ret_what, size_t what_len);
