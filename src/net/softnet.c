// SPDX-License-Identifier: Apache-2.0
/*
 * Softnet on Linux: the same policy as Cirrus Labs' Softnet, enforced by the kernel through
 * nftables instead of a userspace packet relay.
 *
 *  - bridge family, chain port-<tap> (entered for frames coming from the VM's tap): the
 *    Ethernet source must be the VM's MAC, ARP must carry the VM's MAC and its leased address
 *    (or 0.0.0.0), IPv4 must come from the leased address, except the DHCP broadcast of a
 *    client that has no address yet; every other ethertype (IPv6 included) is dropped. The
 *    tap is also in the set `isolated`: nothing is bridged between it and any other VM.
 *  - ip family, chain fwd-<tap> (routed traffic from the VM) and in-<tap> (traffic to the host
 *    itself): replies to connections made to the VM pass; then the user's allow/block lists,
 *    ordered longest prefix first and block before allow at equal length, so the first match
 *    is the longest-prefix match with block winning ties; then DNS to the servers we hand out,
 *    DHCP and DNS to the gateway; then routed traffic to globally routable addresses only, and
 *    nothing else to the host.
 *  - exposed ports: elements of the DNAT map `expose` (external port -> VM address . port).
 */
#include <stdlib.h>
#include <string.h>

#include "net/modes.h"
#include "util/strbuf.h"

struct lpm_rule {
	struct net_prefix p;
	bool block;
};

static int lpm_cmp(const void *a, const void *b)
{
	const struct lpm_rule *x = a, *y = b;
	if (x->p.len != y->p.len)
		return x->p.len > y->p.len ? -1 : 1;
	if (x->block != y->block)
		return x->block ? -1 : 1;
	return x->p.addr < y->p.addr ? -1 : x->p.addr > y->p.addr;
}

static void put_lpm(struct strbuf *sb, const char *chain, const struct softnet_rules *r)
{
	size_t na = r->allow ? r->allow->n : 0, nb = r->block ? r->block->n : 0;
	if (na + nb == 0)
		return;
	struct lpm_rule *v = calloc(na + nb, sizeof(*v));
	if (!v)
		abort();
	for (size_t i = 0; i < na; i++)
		v[i] = (struct lpm_rule){r->allow->v[i], false};
	for (size_t i = 0; i < nb; i++)
		v[na + i] = (struct lpm_rule){r->block->v[i], true};
	qsort(v, na + nb, sizeof(*v), lpm_cmp);
	for (size_t i = 0; i < na + nb; i++) {
		char p[19];
		net_prefix_format(&v[i].p, p);
		strbuf_putf(sb, "add rule ip tart %s ip daddr %s %s\n", chain, p,
			    v[i].block ? "drop" : "accept");
	}
	free(v);
}

static void put_dns_set(struct strbuf *sb, const uint32_t *dns, size_t n)
{
	strbuf_puts(sb, "{ ");
	for (size_t i = 0; i < n; i++) {
		char ip[16];
		net_ip_format(dns[i], ip);
		strbuf_putf(sb, "%s%s", i ? ", " : "", ip);
	}
	strbuf_puts(sb, " }");
}

/* Layer 2: pin the VM's MAC and address, isolate it from the other VMs. */
static void put_l2(struct strbuf *sb, const char *t, const char *mac, const char *ip)
{
	strbuf_putf(sb, "add chain bridge tart port-%s\n", t);
	strbuf_putf(sb, "add rule bridge tart port-%s ether saddr != %s drop\n", t, mac);
	strbuf_putf(sb, "add rule bridge tart port-%s arp saddr ether != %s drop\n", t, mac);
	strbuf_putf(sb, "add rule bridge tart port-%s arp saddr ip != { 0.0.0.0, %s } drop\n", t,
		    ip);
	strbuf_putf(sb, "add rule bridge tart port-%s ether type arp accept\n", t);
	strbuf_putf(sb,
		    "add rule bridge tart port-%s ip saddr 0.0.0.0 ip daddr 255.255.255.255 "
		    "udp sport 68 udp dport 67 accept\n",
		    t);
	strbuf_putf(sb, "add rule bridge tart port-%s ip saddr != %s drop\n", t, ip);
	strbuf_putf(sb, "add rule bridge tart port-%s ether type ip accept\n", t);
	strbuf_putf(sb, "add rule bridge tart port-%s drop\n", t);
	strbuf_putf(sb, "add element bridge tart ports { \"%s\" : jump port-%s }\n", t, t);
	strbuf_putf(sb, "add element bridge tart isolated { \"%s\" }\n", t);
}

char *softnet_script_add(const struct softnet_rules *r)
{
	struct strbuf sb = STRBUF_INIT;
	char mac[18], ip[16], gw[16], subnet[19];
	dhcp_mac_format(r->mac, mac);
	net_ip_format(r->ip, ip);
	net_ip_format(r->gateway, gw);
	net_prefix_format(&r->subnet, subnet);
	const char *t = r->tap;

	put_l2(&sb, t, mac, ip);

	/* Layer 3, routed: allow/block lists, DNS, then global destinations only. */
	strbuf_putf(&sb, "add chain ip tart fwd-%s\n", t);
	strbuf_putf(&sb, "add rule ip tart fwd-%s ct state established,related accept\n", t);
	strbuf_putf(&sb, "add chain ip tart in-%s\n", t);
	strbuf_putf(&sb, "add rule ip tart in-%s ct state established,related accept\n", t);
	if (r->host_only) {
		strbuf_putf(&sb, "add rule ip tart fwd-%s drop\n", t);
		strbuf_putf(&sb, "add rule ip tart in-%s accept\n", t);
		goto maps;
	}
	char chain[32];
	snprintf(chain, sizeof(chain), "fwd-%s", t);
	put_lpm(&sb, chain, r);
	if (r->n_dns) {
		static const char *const protos[] = {"udp", "tcp"};
		for (size_t i = 0; i < 2; i++) {
			strbuf_putf(&sb, "add rule ip tart fwd-%s ip daddr ", t);
			put_dns_set(&sb, r->dns, r->n_dns);
			strbuf_putf(&sb, " %s dport 53 accept\n", protos[i]);
		}
	}
	strbuf_putf(&sb, "add rule ip tart fwd-%s ip daddr %s drop\n", t, subnet);
	strbuf_putf(&sb, "add rule ip tart fwd-%s ip daddr @nonglobal drop\n", t);
	strbuf_putf(&sb, "add rule ip tart fwd-%s accept\n", t);

	/* Layer 3, to the host: DHCP and DNS on the gateway, the lists, nothing else. */
	strbuf_putf(&sb, "add rule ip tart in-%s udp sport 68 udp dport 67 accept\n", t);
	/* "original": a query to the gateway may have been DNAT'ed to the host's loopback
	 * resolver by the time it reaches input. */
	strbuf_putf(&sb,
		    "add rule ip tart in-%s ct original ip daddr %s meta l4proto { tcp, udp } "
		    "th dport 53 accept\n",
		    t, gw);
	snprintf(chain, sizeof(chain), "in-%s", t);
	put_lpm(&sb, chain, r);
	strbuf_putf(&sb, "add rule ip tart in-%s drop\n", t);

maps:
	strbuf_putf(&sb, "add element ip tart fwd_vm { %s : jump fwd-%s }\n", ip, t);
	strbuf_putf(&sb, "add element ip tart in_vm { %s : jump in-%s }\n", ip, t);
	for (size_t i = 0; r->expose && i < r->expose->n; i++)
		strbuf_putf(&sb, "add element ip tart expose { %u : %s . %u }\n", r->expose->ext[i],
			    ip, r->expose->in[i]);
	return strbuf_detach(&sb, NULL);
}

char *softnet_script_del(const char *t, uint32_t ip, const struct net_expose *expose, bool softnet)
{
	struct strbuf sb = STRBUF_INIT;
	char a[16];
	net_ip_format(ip, a);
	for (size_t i = 0; expose && i < expose->n; i++)
		strbuf_putf(&sb, "delete element ip tart expose { %u }\n", expose->ext[i]);
	if (softnet) {
		strbuf_putf(&sb, "delete element ip tart fwd_vm { %s }\n", a);
		strbuf_putf(&sb, "delete element ip tart in_vm { %s }\n", a);
		strbuf_putf(&sb, "flush chain ip tart fwd-%s\n", t);
		strbuf_putf(&sb, "delete chain ip tart fwd-%s\n", t);
		strbuf_putf(&sb, "flush chain ip tart in-%s\n", t);
		strbuf_putf(&sb, "delete chain ip tart in-%s\n", t);
		strbuf_putf(&sb, "delete element bridge tart ports { \"%s\" }\n", t);
		strbuf_putf(&sb, "delete element bridge tart isolated { \"%s\" }\n", t);
		strbuf_putf(&sb, "flush chain bridge tart port-%s\n", t);
		strbuf_putf(&sb, "delete chain bridge tart port-%s\n", t);
	}
	return strbuf_detach(&sb, NULL);
}
