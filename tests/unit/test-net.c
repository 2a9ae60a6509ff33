// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/check.h"
#include "net/dhcp.h"
#include "net/lease.h"
#include "net/modes.h"
#include "net/resolve.h"
#include "net/subnet.h"
#include "util/strbuf.h"

static const uint8_t VM_MAC[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t GW_MAC[6] = {0x02, 0x74, 0x61, 0x72, 0x74, 0x01};
static const uint8_t BCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct dhcp_policy policy(void)
{
	struct dhcp_policy p = {
	    .vm_ip = 0xc0a84005,
	    .server_ip = 0xc0a84001,
	    .netmask = 0xffffff00,
	    .router = 0xc0a84001,
	    .dns = {0x01010101, 0x09090909},
	    .n_dns = 2,
	    .lease_secs = 600,
	};
	memcpy(p.vm_mac, VM_MAC, 6);
	memcpy(p.server_mac, GW_MAC, 6);
	return p;
}

/* A client message as a full frame from the VM. opt: extra options, already encoded. */
static size_t client_frame(uint8_t *out, enum dhcp_type type, const uint8_t chaddr[6],
			   uint32_t ciaddr, const uint8_t *opt, size_t opt_len)
{
	uint8_t p[548] = {1, 1, 6, 0, 0xde, 0xad, 0xbe, 0xef};
	p[12] = (uint8_t)(ciaddr >> 24);
	p[13] = (uint8_t)(ciaddr >> 16);
	p[14] = (uint8_t)(ciaddr >> 8);
	p[15] = (uint8_t)ciaddr;
	memcpy(p + 28, chaddr, 6);
	p[236] = 0x63, p[237] = 0x82, p[238] = 0x53, p[239] = 0x63;
	size_t i = 240;
	p[i++] = 53, p[i++] = 1, p[i++] = (uint8_t)type;
	if (opt_len)
		memcpy(p + i, opt, opt_len);
	i += opt_len;
	p[i++] = 255;
	int n =
	    dhcp_frame_build(VM_MAC, BCAST, ciaddr, 0xffffffff, 68, 67, p, i, out, DHCP_FRAME_MAX);
	assert_true(n > 0);
	return (size_t)n;
}

static enum dhcp_type reply_of(const uint8_t *frame, size_t len, uint32_t *yiaddr,
			       struct dhcp_frame *ret_fr)
{
	struct dhcp_frame fr;
	assert_int_equal(dhcp_frame_parse(frame, len, &fr), 0);
	assert_int_equal(fr.src_port, 67);
	assert_int_equal(fr.dst_port, 68);
	assert_int_equal(fr.payload[0], 2);
	*yiaddr = (uint32_t)fr.payload[16] << 24 | (uint32_t)fr.payload[17] << 16 |
		  (uint32_t)fr.payload[18] << 8 | fr.payload[19];
	if (ret_fr)
		*ret_fr = fr;
	assert_int_equal(fr.payload[240], 53);
	return (enum dhcp_type)fr.payload[242];
}

static enum dhcp_action serve(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len,
			      enum dhcp_type *type)
{
	struct dhcp_policy p = policy();
	struct dhcp_msg m;
	return dhcp_server_process(&p, in, len, out, DHCP_FRAME_MAX, out_len, type, &m);
}

static void test_dhcp_discover_request_ack(void **state)
{
	(void)state;
	uint8_t in[DHCP_FRAME_MAX], out[DHCP_FRAME_MAX];
	size_t out_len;
	enum dhcp_type t;
	uint32_t yi;
	struct dhcp_frame fr;

	size_t n = client_frame(in, DHCP_DISCOVER, VM_MAC, 0, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_REPLY);
	assert_int_equal(t, DHCP_OFFER);
	assert_int_equal(reply_of(out, out_len, &yi, &fr), DHCP_OFFER);
	assert_int_equal(yi, 0xc0a84005);
	assert_memory_equal(out + 6, GW_MAC, 6);
	assert_int_equal(fr.src_ip, 0xc0a84001);

	/* The reply carries our options: server id, lease, mask, router, DNS. */
	struct dhcp_msg dummy;
	(void)dummy;
	const uint8_t *o = fr.payload + 240;
	bool lease = false, dns = false;
	for (size_t i = 0; o + i < fr.payload + fr.payload_len && o[i] != 255; i += 2u + o[i + 1]) {
		if (o[i] == 51)
			lease = o[i + 2] == 0 && o[i + 3] == 0 && o[i + 4] == 2 && o[i + 5] == 0x58;
		if (o[i] == 6)
			dns = o[i + 1] == 8 && o[i + 2] == 1 && o[i + 6] == 9;
	}
	assert_true(lease);
	assert_true(dns);

	uint8_t req[] = {50, 4, 192, 168, 64, 5, 54, 4, 192, 168, 64, 1};
	n = client_frame(in, DHCP_REQUEST, VM_MAC, 0, req, sizeof(req));
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_REPLY);
	assert_int_equal(t, DHCP_ACK);
	assert_int_equal(reply_of(out, out_len, &yi, NULL), DHCP_ACK);
	assert_int_equal(yi, 0xc0a84005);

	/* Renewal: unicast from ciaddr, no option 50. */
	n = client_frame(in, DHCP_REQUEST, VM_MAC, 0xc0a84005, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_REPLY);
	assert_int_equal(t, DHCP_ACK);
	assert_int_equal(reply_of(out, out_len, &yi, &fr), DHCP_ACK);
	assert_int_equal(fr.dst_ip, 0xc0a84005);
}

static void test_dhcp_refuses_other_addresses_and_clients(void **state)
{
	(void)state;
	uint8_t in[DHCP_FRAME_MAX], out[DHCP_FRAME_MAX];
	size_t out_len;
	enum dhcp_type t;
	uint32_t yi;

	/* Asking for another VM's address: NAK, broadcast. */
	uint8_t req[] = {50, 4, 192, 168, 64, 9};
	size_t n = client_frame(in, DHCP_REQUEST, VM_MAC, 0, req, sizeof(req));
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_REPLY);
	assert_int_equal(t, DHCP_NAK);
	struct dhcp_frame fr;
	assert_int_equal(reply_of(out, out_len, &yi, &fr), DHCP_NAK);
	assert_int_equal(yi, 0);
	assert_int_equal(fr.dst_ip, 0xffffffff);

	/* A REQUEST addressed to another server is none of our business. */
	uint8_t other[] = {50, 4, 192, 168, 64, 5, 54, 4, 10, 0, 0, 1};
	n = client_frame(in, DHCP_REQUEST, VM_MAC, 0, other, sizeof(other));
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_IGNORE);

	/* Another chaddr (a guest pretending to be someone else): ignored. */
	static const uint8_t evil[6] = {0x52, 0x54, 0, 0, 0, 0x99};
	n = client_frame(in, DHCP_DISCOVER, evil, 0, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_IGNORE);

	/* RELEASE of our address is reported, of another one ignored; DECLINE ignored. */
	n = client_frame(in, DHCP_RELEASE, VM_MAC, 0xc0a84005, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_RELEASE);
	n = client_frame(in, DHCP_RELEASE, VM_MAC, 0xc0a84009, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_IGNORE);
	n = client_frame(in, DHCP_DECLINE, VM_MAC, 0, NULL, 0);
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_IGNORE);

	/* A DUID client identifier changes nothing: we key on the MAC. */
	uint8_t duid[] = {61, 10, 255, 0, 0, 0, 1, 0, 4, 1, 2, 3};
	n = client_frame(in, DHCP_DISCOVER, VM_MAC, 0, duid, sizeof(duid));
	assert_int_equal(serve(in, n, out, &out_len, &t), DHCP_ACTION_REPLY);
	assert_int_equal(t, DHCP_OFFER);
}

static void test_dhcp_malformed(void **state)
{
	(void)state;
	uint8_t in[DHCP_FRAME_MAX], out[DHCP_FRAME_MAX];
	size_t out_len;
	enum dhcp_type t;
	size_t n = client_frame(in, DHCP_DISCOVER, VM_MAC, 0, NULL, 0);

	/* Every truncation of a valid frame is ignored. */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(serve(in, cut, out, &out_len, &t), DHCP_ACTION_IGNORE);
	/* Oversized. */
	assert_int_equal(serve(in, DHCP_FRAME_MAX + 1, out, &out_len, &t), DHCP_ACTION_IGNORE);
	/* Broken IP checksum. */
	uint8_t bad[DHCP_FRAME_MAX];
	memcpy(bad, in, n);
	bad[14 + 10] ^= 0xff;
	assert_int_equal(serve(bad, n, out, &out_len, &t), DHCP_ACTION_IGNORE);

	/* Option lengths running past the end, bad type values, bad magic. */
	struct dhcp_msg m;
	uint8_t p[300] = {1, 1, 6};
	p[236] = 0x63, p[237] = 0x82, p[238] = 0x53, p[239] = 0x63;
	p[240] = 53, p[241] = 200;
	assert_int_equal(dhcp_parse(p, 243, &m), -EBADMSG);
	p[241] = 1, p[242] = 99;
	assert_int_equal(dhcp_parse(p, 300, &m), -EBADMSG);
	p[242] = 1, p[243] = 50, p[244] = 3;
	assert_int_equal(dhcp_parse(p, 300, &m), -EBADMSG);
	p[243] = 255;
	assert_int_equal(dhcp_parse(p, 300, &m), 0);
	assert_int_equal(m.type, DHCP_DISCOVER);
	p[236] = 0;
	assert_int_equal(dhcp_parse(p, 300, &m), -EBADMSG);
	p[236] = 0x63, p[0] = 2; /* a BOOTREPLY from a guest */
	assert_int_equal(dhcp_parse(p, 300, &m), -EBADMSG);

	/* Option overload: option 50 in the file field. */
	memset(p, 0, sizeof(p));
	p[0] = 1, p[1] = 1, p[2] = 6;
	p[236] = 0x63, p[237] = 0x82, p[238] = 0x53, p[239] = 0x63;
	uint8_t opts[] = {53, 1, 3, 52, 1, 1, 255};
	memcpy(p + 240, opts, sizeof(opts));
	uint8_t file[] = {50, 4, 192, 168, 64, 5, 255};
	memcpy(p + 108, file, sizeof(file));
	assert_int_equal(dhcp_parse(p, 300, &m), 0);
	assert_true(m.has_requested_ip);
	assert_int_equal(m.requested_ip, 0xc0a84005);
	/* A hostile host name is made printable and capped. */
	uint8_t hn[] = {53, 1, 1, 12, 5, 'a', 0, '\n', 0x80, 'b', 255};
	memcpy(p + 240, hn, sizeof(hn));
	assert_int_equal(dhcp_parse(p, 300, &m), 0);
	assert_string_equal(m.hostname, "a???b");
}

static void test_mac(void **state)
{
	(void)state;
	uint8_t m[6];
	char s[18];
	assert_int_equal(dhcp_mac_parse("52:54:00:AB:cd:0f", m), 0);
	dhcp_mac_format(m, s);
	assert_string_equal(s, "52:54:00:ab:cd:0f");
	assert_int_equal(dhcp_mac_parse("+2:54:00:ab:cd:0f", m), -EINVAL);
	assert_int_equal(dhcp_mac_parse("52:54:00:ab:cd", m), -EINVAL);
	assert_int_equal(dhcp_mac_parse("52-54-00-ab-cd-0f", m), -EINVAL);
}

static bool alive_all(pid_t pid, uint64_t start)
{
	(void)start;
	return pid != 666;
}

static void test_lease_table(void **state)
{
	(void)state;
	struct lease_table t = {0};
	uint8_t a[6] = {2, 0, 0, 0, 0, 1}, b[6] = {2, 0, 0, 0, 0, 2}, c[6] = {2, 0, 0, 0, 0, 3};
	uint32_t ip;
	const uint32_t first = 0x0a000002, last = 0x0a000003; /* a two-address pool */
	assert_int_equal(lease_table_reserve(&t, a, "a", 100, 1, first, last, alive_all, &ip), 0);
	assert_int_equal(ip, first);
	assert_int_equal(lease_table_reserve(&t, b, "b", 101, 1, first, last, alive_all, &ip), 0);
	assert_int_equal(ip, last);
	/* Full. */
	assert_int_equal(lease_table_reserve(&t, c, "c", 102, 1, first, last, alive_all, &ip),
			 -ENOSPC);
	/* The same MAC held by another live run. */
	assert_int_equal(lease_table_reserve(&t, a, "a", 103, 1, first, last, alive_all, &ip),
			 -EBUSY);
	/* Not bound yet: not visible to `tart ip`. */
	assert_int_equal(lease_table_lookup(&t, a, 1000, &ip), -ENOENT);
	assert_int_equal(lease_table_bind(&t, a, first, 1600, "vm-a"), 0);
	assert_int_equal(lease_table_bind(&t, a, last, 1600, NULL), -ENOENT);
	assert_int_equal(lease_table_lookup(&t, a, 1000, &ip), 0);
	assert_int_equal(ip, first);
	assert_int_equal(lease_table_lookup(&t, a, 1600, &ip), -ENOENT); /* expired */
	/* Freed at detach: the address is available at once. */
	lease_table_free(&t, a, 999); /* not the owner: kept */
	assert_non_null(lease_table_find_mac(&t, a));
	lease_table_free(&t, a, 100);
	assert_int_equal(lease_table_reserve(&t, c, "c", 102, 1, first, last, alive_all, &ip), 0);
	assert_int_equal(ip, first);
	/* A dead owner (SIGKILL) is reaped by the next reservation: b held `last`. */
	assert_int_equal(t.v[0].ip, last);
	t.v[0].pid = 666;
	assert_int_equal(lease_table_reserve(&t, a, "a", 104, 1, first, last, alive_all, &ip), 0);
	assert_int_equal(ip, last);
	assert_null(lease_table_find_mac(&t, b));

	/* Round trip through JSON. */
	char *s = lease_table_format(&t);
	struct lease_table u;
	assert_int_equal(lease_table_parse(s, strlen(s), &u), 0);
	assert_int_equal(u.n, t.n);
	for (size_t i = 0; i < t.n; i++) {
		assert_memory_equal(u.v[i].mac, t.v[i].mac, 6);
		assert_int_equal(u.v[i].ip, t.v[i].ip);
		assert_int_equal(u.v[i].pid, t.v[i].pid);
	}
	free(s);
	lease_table_release(&u);
	lease_table_release(&t);
	assert_int_equal(lease_table_parse("{\"leases\":[{\"mac\":\"x\"}]}", 24, &u), -EBADMSG);
	assert_int_equal(lease_table_parse("[]", 2, &u), -EBADMSG);
}

static void test_lease_table_stable_and_many_cycles(void **state)
{
	(void)state;
	struct lease_table t = {0};
	uint32_t ip, first = 0xc0a84002, last = 0xc0a840fe;
	uint8_t m[6] = {2, 1, 2, 3, 4, 5};
	assert_int_equal(lease_table_reserve(&t, m, "x", 7, 1, first, last, alive_all, &ip), 0);
	/* Its own dead record: the same address comes back. */
	t.v[0].pid = 666;
	uint32_t again;
	assert_int_equal(lease_table_reserve(&t, m, "x", 8, 1, first, last, alive_all, &again), 0);
	assert_int_equal(again, ip);
	/* 10 000 VMs with fresh MACs coming and going never exhaust a /24. */
	for (uint32_t i = 0; i < 10000; i++) {
		uint8_t mac[6] = {2, 9, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 7};
		assert_int_equal(
		    lease_table_reserve(&t, mac, "c", 100, 1, first, last, alive_all, &ip), 0);
		if (i % 3 == 0)
			lease_table_free(&t, mac, 100); /* clean stop */
		else
			t.v[t.n - 1].pid = 666; /* killed */
	}
	assert_true(t.n <= 3);
	lease_table_release(&t);
}

static void test_prefixes(void **state)
{
	(void)state;
	struct net_prefix p;
	char s[19];
	assert_int_equal(net_prefix_parse("192.168.64.0/24", true, &p), 0);
	assert_int_equal(p.addr, 0xc0a84000);
	assert_int_equal(p.len, 24);
	assert_int_equal(net_prefix_parse("192.168.64.1/24", true, &p), -EINVAL);
	assert_int_equal(net_prefix_parse("192.168.64.1/24", false, &p), 0);
	net_prefix_format(&p, s);
	assert_string_equal(s, "192.168.64.0/24");
	assert_int_equal(net_prefix_parse("1.2.3.4", false, &p), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(net_prefix_parse("0.0.0.0/0", true, &p), 0);
	const char *bad[] = {"",	   "1.2.3.4/", "1.2.3.4/33",  "1.2.3/8",
			     "1.2.3.4/-1", "x/8",      "1.2.3.4/8/8", "256.1.1.1/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(net_prefix_parse(bad[i], false, &p), -EINVAL);

	struct net_prefix_list l;
	size_t off;
	assert_int_equal(net_prefix_list_parse("10.0.0.0/8,1.1.1.1", &l, &off), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(net_prefix_list_parse("10.0.0.0/8,,1.1.1.1", &l, &off), -EINVAL);
	assert_int_equal(off, 11);
	assert_int_equal(net_prefix_list_parse("10.0.0.0/8,1.1.1.1/40", &l, &off), -EINVAL);
	assert_int_equal(off, 11);

	struct net_expose e;
	assert_int_equal(net_expose_parse("2222:22,8080:80", &e), 0);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.ext[1], 8080);
	assert_int_equal(e.in[1], 80);
	const char *badx[] = {"22", "0:22", "22:0", "65536:22", "22:22,22:23", "a:b", ":22", "22:"};
	for (size_t i = 0; i < sizeof(badx) / sizeof(badx[0]); i++)
		assert_int_equal(net_expose_parse(badx[i], &e), -EINVAL);

	uint32_t ip;
	assert_int_equal(net_ip_parse("8.8.8.8", &ip), 0);
	assert_true(net_ip_is_global(ip));
	const char *private[] = {"10.1.2.3",	"192.168.64.1", "172.20.0.1", "127.0.0.1",
				 "169.254.1.1", "100.64.0.1",	"224.0.0.1",  "255.255.255.255"};
	for (size_t i = 0; i < sizeof(private) / sizeof(private[0]); i++) {
		assert_int_equal(net_ip_parse(private[i], &ip), 0);
		assert_false(net_ip_is_global(ip));
	}
}

static void test_settings_and_host_config(void **state)
{
	(void)state;
	uint32_t dns[4];
	uint32_t lo = 0;
	size_t n = net_dns_from_resolv("# c\nnameserver 127.0.0.53\nnameserver 9.9.9.9\n"
				       "search x\n  nameserver 1.1.1.1\nnameserver 9.9.9.9\n"
				       "nameserver ::1\nnameserver 127.0.0.1\n",
				       dns, 4, &lo);
	assert_int_equal(n, 2);
	assert_int_equal(dns[0], 0x09090909);
	assert_int_equal(dns[1], 0x01010101);
	assert_int_equal(lo, 0x7f000035); /* the first loopback resolver */

	const char *routes =
	    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	    "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	    "tart0\t0040A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	    "eth1\t000010AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
	struct net_prefix sub = {0xc0a84000, 24};
	char what[64];
	assert_int_equal(net_subnet_check_routes(routes, &sub, "tart0", what, sizeof(what)), 0);
	assert_int_equal(net_subnet_check_routes(routes, &sub, "br9", what, sizeof(what)),
			 -EADDRINUSE);
	assert_string_equal(what, "route 192.168.64.0/24 on 'tart0'");
	struct net_prefix sub2 = {0xac100000, 12};
	assert_int_equal(net_subnet_check_routes(routes, &sub2, "tart0", what, sizeof(what)),
			 -EADDRINUSE);
	assert_string_equal(what, "route 172.16.0.0/16 on 'eth1'");

	struct net_settings s = {.subnet = {0xc0a84000, 24}, .lease_secs = 600};
	const char *j = "{\"subnet\":\"10.7.0.0/16\",\"leaseTime\":120,\"dns\":[\"1.1.1.1\"]}";
	assert_int_equal(net_settings_parse_json(j, strlen(j), "test", &s), 0);
	assert_int_equal(s.subnet.addr, 0x0a070000);
	assert_int_equal(s.lease_secs, 120);
	assert_int_equal(s.n_dns, 1);
	assert_true(s.dns_configured);
	const char *bad[] = {
	    "{\"subnet\":\"10.7.0.1/16\"}", "{\"leaseTime\":1}", "{\"dns\":[1]}", "{\"x\":1}", "[]",
	    "{\"bridge\":\"a/b\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(net_settings_parse_json(bad[i], strlen(bad[i]), "test", &s),
				 -EINVAL);
}

static void test_arp_and_explain(void **state)
{
	(void)state;
	const char *arp =
	    "IP address       HW type     Flags       HW address            Mask     Device\n"
	    "10.0.0.5         0x1         0x0         52:54:00:12:34:56     *        br0\n"
	    "10.0.0.6         0x1         0x2         52:54:00:12:34:56     *        br0\n";
	uint32_t ip;
	assert_int_equal(net_arp_lookup(arp, VM_MAC, &ip), 0);
	assert_int_equal(ip, 0x0a000006); /* the incomplete entry is skipped */
	assert_int_equal(net_arp_lookup(arp, GW_MAC, &ip), -ENOENT);

	char s[512];
	net_user_explain("vm", "mode=user ssh-port=2222", s, sizeof(s));
	assert_non_null(strstr(s, "ssh -p 2222 admin@127.0.0.1"));
	net_user_explain("vm", "", s, sizeof(s));
	assert_non_null(strstr(s, "user-mode networking"));

	enum net_resolver r;
	assert_int_equal(net_resolver_parse("arp", &r), 0);
	assert_int_equal(r, NET_RESOLVER_ARP);
	assert_int_equal(net_resolver_parse("bogus", &r), -EINVAL);
}

static void test_softnet_script(void **state)
{
	(void)state;
	struct net_prefix_list allow = {0}, block = {0};
	size_t off;
	assert_int_equal(net_prefix_list_parse("10.0.0.0/8,10.1.2.3/32,1.0.0.0/8", &allow, &off),
			 0);
	assert_int_equal(net_prefix_list_parse("10.1.0.0/16,1.0.0.0/8", &block, &off), 0);
	struct net_expose ex;
	assert_int_equal(net_expose_parse("2222:22", &ex), 0);
	uint32_t dns[] = {0x01010101};
	struct softnet_rules r = {
	    .tap = "tart-t1",
	    .ip = 0xc0a84005,
	    .gateway = 0xc0a84001,
	    .subnet = {0xc0a84000, 24},
	    .dns = dns,
	    .n_dns = 1,
	    .allow = &allow,
	    .block = &block,
	    .expose = &ex,
	};
	memcpy(r.mac, VM_MAC, 6);
	char *s = softnet_script_add(&r);
	/* Longest prefix first; block before allow at equal length. */
	const char *a32 = strstr(s, "fwd-tart-t1 ip daddr 10.1.2.3/32 accept");
	const char *b16 = strstr(s, "fwd-tart-t1 ip daddr 10.1.0.0/16 drop");
	const char *b8 = strstr(s, "fwd-tart-t1 ip daddr 1.0.0.0/8 drop");
	const char *a8 = strstr(s, "fwd-tart-t1 ip daddr 1.0.0.0/8 accept");
	const char *a10 = strstr(s, "fwd-tart-t1 ip daddr 10.0.0.0/8 accept");
	const char *glob = strstr(s, "fwd-tart-t1 ip daddr @nonglobal drop");
	assert_true(a32 && b16 && b8 && a8 && a10 && glob);
	assert_true(a32 < b16 && b16 < b8 && b8 < a8 && a8 < glob && a10 < glob);
	assert_non_null(strstr(s, "ether saddr != 52:54:00:12:34:56 drop"));
	assert_non_null(strstr(s, "ip saddr != 192.168.64.5 drop"));
	assert_non_null(strstr(s, "add element ip tart expose { 2222 : 192.168.64.5 . 22 }"));
	free(s);
	s = softnet_script_del("tart-t1", 0xc0a84005, &ex, true);
	assert_non_null(strstr(s, "delete element ip tart expose { 2222 }"));
	assert_non_null(strstr(s, "delete chain bridge tart port-tart-t1"));
	free(s);
	s = nat_script_base("tart0", &r.subnet, 0);
	assert_non_null(strstr(s, "ip saddr 192.168.64.0/24 oifname != \"tart0\" masquerade"));
	assert_null(strstr(s, "th dport 53"));
	free(s);
	s = nat_script_base("tart0", &r.subnet, 0x7f000035);
	assert_non_null(strstr(s,
			       "iifname \"tart0\" ip daddr 192.168.64.1 meta l4proto { tcp, udp } "
			       "th dport 53 dnat ip to 127.0.0.53"));
	free(s);
}

static void test_record_roundtrip(void **state)
{
	(void)state;
	struct net_record r = {.pid = 42,
			       .pid_start = 7,
			       .mode = NET_MODE_SOFTNET,
			       .ip = 0xc0a84005,
			       .softnet = true,
			       .shared_bridge = true};
	strcpy(r.vm, "my vm");
	strcpy(r.vm_dir, "/h/vms/my vm");
	strcpy(r.info, "mode=softnet ip=192.168.64.5");
	strcpy(r.tap, "tart-t42");
	strcpy(r.bridge, "tart0");
	memcpy(r.mac, VM_MAC, 6);
	assert_int_equal(net_expose_parse("2222:22", &r.expose), 0);
	char *s = net_record_format(&r);
	struct net_record u;
	assert_int_equal(net_record_parse(s, strlen(s), &u), 0);
	free(s);
	assert_int_equal(u.pid, 42);
	assert_int_equal(u.mode, NET_MODE_SOFTNET);
	assert_int_equal(u.ip, r.ip);
	assert_string_equal(u.vm_dir, r.vm_dir);
	assert_int_equal(u.expose.n, 1);
	assert_int_equal(u.expose.ext[0], 2222);
	assert_int_equal(net_record_parse("{}", 2, &u), -EBADMSG);
}

/* A lease entry with one field replaced: every variant must be refused, none may crash. */
#define LEASE_OK_MAC "\"mac\":\"52:54:00:12:34:56\""
#define LEASE_OK_REST "\"ip\":\"192.168.64.5\",\"pid\":42,\"pidStart\":7,\"expires\":100"
static void test_lease_parse_hostile(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "null",
	    "[]",
	    "{\"leases\":{}}",
	    "{\"leases\":[1]}",
	    "{\"leases\":[[]]}",
	    "{\"leases\":[{" LEASE_OK_REST "}]}",
	    "{\"leases\":[{\"mac\":\"52:54:00:12:34:5\"," LEASE_OK_REST "}]}",
	    "{\"leases\":[{\"mac\":\"52:54:00:12:34:567\"," LEASE_OK_REST "}]}",
	    "{\"leases\":[{\"mac\":\"52-54-00-12-34-56\"," LEASE_OK_REST "}]}",
	    "{\"leases\":[{\"mac\":\"zz:54:00:12:34:56\"," LEASE_OK_REST "}]}",
	    "{\"leases\":[{\"mac\":5," LEASE_OK_REST "}]}",
	    "{\"leases\":[{" LEASE_OK_MAC ",\"ip\":\"192.168.64.256\",\"pid\":1,\"pidStart\":1,"
	    "\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC
	    ",\"ip\":\"::1\",\"pid\":1,\"pidStart\":1,\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC ",\"ip\":\"192.168.64.5\",\"pid\":-1,\"pidStart\":1,"
	    "\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC ",\"ip\":\"192.168.64.5\",\"pid\":2147483648,"
	    "\"pidStart\":1,\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC ",\"ip\":\"192.168.64.5\",\"pid\":1,\"pidStart\":1e300,"
	    "\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC ",\"ip\":\"192.168.64.5\",\"pid\":\"1\",\"pidStart\":1,"
	    "\"expires\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC "," LEASE_OK_REST ",\"vm\":[]}]}",
	    "{\"leases\":[{" LEASE_OK_MAC "," LEASE_OK_REST ",\"hostname\":1}]}",
	    "{\"leases\":[{" LEASE_OK_MAC "," LEASE_OK_REST ",\"vm\":\"a\\u0000b\"}]}",
	    "{\"leases\":[{" LEASE_OK_MAC "," LEASE_OK_REST "," LEASE_OK_MAC "}]}",
	    "{\"leases\":[],\"leases\":[]}",
	};
	struct lease_table t;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (lease_table_parse(bad[i], strlen(bad[i]), &t) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);

	/* Over-long names are cut to the fixed fields, not overflowed. */
	char big[4096];
	snprintf(big, sizeof(big),
		 "{\"leases\":[{" LEASE_OK_MAC "," LEASE_OK_REST
		 ",\"vm\":\"%01000d\",\"hostname\":\"%01000d\"}]}",
		 1, 2);
	assert_int_equal(lease_table_parse(big, strlen(big), &t), 0);
	assert_int_equal(t.n, 1);
	assert_true(strlen(t.v[0].vm) < sizeof(t.v[0].vm));
	assert_true(strlen(t.v[0].hostname) < sizeof(t.v[0].hostname));
	lease_table_release(&t);

	/* More entries than LEASE_MAX are refused as a whole. */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"leases\":[");
	for (size_t i = 0; i <= LEASE_MAX; i++)
		strbuf_putf(&sb, "%s{" LEASE_OK_MAC "," LEASE_OK_REST "}", i ? "," : "");
	strbuf_puts(&sb, "]}");
	assert_int_equal(lease_table_parse(sb.buf, sb.len, &t), -EBADMSG);
	strbuf_release(&sb);
}

static char *record_json(const char *pid, const char *tap, const char *bridge, const char *expose)
{
	char *s = NULL;
	int n = asprintf(&s,
			 "{\"pid\":%s,\"pidStart\":7,\"vm\":\"v\",\"vmDir\":\"/h/vms/v\","
			 "\"mode\":\"nat\",\"info\":\"\",\"tap\":\"%s\",\"bridge\":\"%s\","
			 "\"mac\":\"52:54:00:12:34:56\",\"ip\":\"192.168.64.5\",\"softnet\":false,"
			 "\"sharedBridge\":true,\"expose\":%s}",
			 pid, tap, bridge, expose);
	assert_true(n > 0);
	return s;
}

/*
 * Run records are read back to undo a dead run: the tap is deleted and named in nft scripts.
 * Anything but tart's own tap for that pid, or a bridge name that could leave an nft string,
 * makes the record unusable.
 */
static void test_record_parse_hostile(void **state)
{
	(void)state;
	static const struct {
		const char *pid, *tap, *bridge, *expose;
		int want;
	} cases[] = {
	    {"42", "tart-t42", "tart0", "[]", 0},
	    {"42", "", "", "[]", 0},
	    {"42", "tart-t43", "tart0", "[]", -EBADMSG},
	    {"42", "eth0", "tart0", "[]", -EBADMSG},
	    {"42", "lo", "", "[]", -EBADMSG},
	    {"42", "tart-t42\\n", "tart0", "[]", -EBADMSG},
	    {"42", "x\\\"}\\nflush ruleset", "tart0", "[]", -EBADMSG},
	    {"42", "tart-t42", "tart0\\\" }", "[]", -EBADMSG},
	    {"42", "tart-t42", "br\\nx", "[]", -EBADMSG},
	    {"42", "tart-t42", "br 0", "[]", -EBADMSG},
	    {"42", "tart-t42", "..", "[]", -EBADMSG},
	    {"42", "tart-t42", "0123456789abcdef", "[]", -EBADMSG},
	    {"0", "", "", "[]", -EBADMSG},
	    {"-5", "", "", "[]", -EBADMSG},
	    {"2147483648", "", "", "[]", -EBADMSG},
	    {"4.5", "", "", "[]", -EBADMSG},
	    {"\"42\"", "", "", "[]", -EBADMSG},
	    {"42", "tart-t42", "tart0", "[],\"expose\":[]", -EBADMSG}, /* duplicate key */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = record_json(cases[i].pid, cases[i].tap, cases[i].bridge, cases[i].expose);
		struct net_record r;
		int got = net_record_parse(s, strlen(s), &r);
		if (got != cases[i].want)
			fail_msg("%s: got %d, want %d", s, got, cases[i].want);
		free(s);
	}
	static const char *const expose_bad[] = {
	    "[[0,22]]", "[[22,65536]]", "[[22]]", "[[22,23,24]]", "[\"22:22\"]", "[[-1,22]]", "{}",
	};
	for (size_t i = 0; i < sizeof(expose_bad) / sizeof(expose_bad[0]); i++) {
		char *s = NULL;
		assert_true(asprintf(&s,
				     "{\"pid\":1,\"pidStart\":7,\"vm\":\"\",\"vmDir\":\"\","
				     "\"mode\":\"user\",\"info\":\"\",\"tap\":\"\",\"bridge\":\"\","
				     "\"mac\":\"\",\"ip\":\"\",\"softnet\":false,"
				     "\"sharedBridge\":false,\"expose\":%s}",
				     expose_bad[i]) > 0);
		struct net_record r;
		if (net_record_parse(s, strlen(s), &r) != -EBADMSG)
			fail_msg("accepted: %s", s);
		free(s);
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "[");
	for (int i = 0; i <= NET_EXPOSE_MAX; i++)
		strbuf_putf(&sb, "%s[%d,22]", i ? "," : "", 1000 + i);
	strbuf_puts(&sb, "]");
	char *big = record_json("42", "tart-t42", "tart0", sb.buf);
	struct net_record r;
	assert_int_equal(net_record_parse(big, strlen(big), &r), -EBADMSG);
	free(big);
	strbuf_release(&sb);
}

/* network.json is user-edited: bridge names reach nft scripts and the kernel. */
static void test_settings_hostile(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{\"bridge\":\"\"}",
	    "{\"bridge\":\"tart0\\\" ; flush ruleset\"}",
	    "{\"bridge\":\"t\\nflush\\truleset\"}",
	    "{\"bridge\":\"a:b\"}",
	    "{\"bridge\":\"a\\\\b\"}",
	    "{\"bridge\":\"..\"}",
	    "{\"bridge\":\"0123456789abcdef\"}",
	    "{\"bridge\":\"caf\\u00e9\"}",
	    "{\"bridge\":1}",
	    "{\"subnet\":\"10.0.0.0/7\"}",
	    "{\"subnet\":\"10.0.0.0/30\"}",
	    "{\"subnet\":\"10.0.0.0/24/1\"}",
	    "{\"subnet\":\"10.0.0.0/-1\"}",
	    "{\"subnet\":\"10.0.0.0/ 24\"}",
	    "{\"subnet\":\"010.0.0.0/24\"}",
	    "{\"subnet\":\"10.0.0.0/240000000000000000000000\"}",
	    "{\"leaseTime\":-1}",
	    "{\"leaseTime\":86401}",
	    "{\"leaseTime\":600.5}",
	    "{\"leaseTime\":1e300}",
	    "{\"dns\":[\"1.1.1.1\",\"1.1.1.2\",\"1.1.1.3\",\"1.1.1.4\",\"1.1.1.5\",\"1.1.1.6\","
	    "\"1.1.1.7\",\"1.1.1.8\",\"1.1.1.9\"]}",
	    "{\"dns\":[\"1.1.1.1 \"]}",
	    "{\"dns\":\"1.1.1.1\"}",
	    "{\"subnet\":\"10.0.0.0/24\",\"subnet\":\"10.1.0.0/24\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_settings s = {.subnet = {0xc0a84000, 24}, .lease_secs = 600};
		if (net_settings_parse_json(bad[i], strlen(bad[i]), "test", &s) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
	static const char *const good[] = {"tart0", "br-lan.10", "my_br", "a"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(net_ifname_valid(good[i]));
	assert_false(net_ifname_valid(NULL));
}

static void test_options_check(void **state)
{
	(void)state;
	struct net_options o;
	net_options_init(&o);
	o.mac = "52:54:00:12:34:56";
	assert_int_equal(net_options_check(&o), 0);
	o.softnet_allow = "10.0.0.0/8,1.2.3.4";
	o.softnet_block = "0.0.0.0/0";
	o.softnet_expose = "2222:22";
	assert_int_equal(net_options_check(&o), 0);
	o.softnet_expose = "2222";
	assert_int_equal(net_options_check(&o), -EINVAL);
	o.softnet_expose = NULL;
	o.softnet_block = "10.0.0.0/8,";
	assert_int_equal(net_options_check(&o), -EINVAL);
	o.softnet_block = NULL;
	o.mac = "52:54:00:12:34";
	assert_int_equal(net_options_check(&o), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dhcp_discover_request_ack),
	    cmocka_unit_test(test_dhcp_refuses_other_addresses_and_clients),
	    cmocka_unit_test(test_dhcp_malformed),
	    cmocka_unit_test(test_mac),
	    cmocka_unit_test(test_lease_table),
	    cmocka_unit_test(test_lease_table_stable_and_many_cycles),
	    cmocka_unit_test(test_prefixes),
	    cmocka_unit_test(test_settings_and_host_config),
	    cmocka_unit_test(test_arp_and_explain),
	    cmocka_unit_test(test_softnet_script),
	    cmocka_unit_test(test_record_roundtrip),
	    cmocka_unit_test(test_lease_parse_hostile),
	    cmocka_unit_test(test_record_parse_hostile),
	    cmocka_unit_test(test_settings_hostile),
	    cmocka_unit_test(test_options_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
