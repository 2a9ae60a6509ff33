// SPDX-License-Identifier: Apache-2.0
/*
 * Test-only driver of tart's networking (built by meson, never installed). It stands in for
 * `tart run` + QEMU so the NAT/Softnet/DHCP plumbing can be tested without a VM:
 *
 *   net-probe attach --vm NAME --mac MAC [--mode nat|softnet|host|bridged] [--allow CIDRS]
 *                    [--block CIDRS] [--expose SPECS] [--bridge BR] --guest-netns NS [--guest-if
 * IF] net_cleanup_stale() + net_attach() exactly as `run` calls them, then plays QEMU: the tap
 *     descriptor from the attachment is relayed to a second tap, IF (default eth0) with the VM's
 *     MAC, created inside the network namespace NS, where the test runs a real DHCP client
 *     (busybox udhcpc) and real programs as "the guest". Prints "ready <info>" on stdout;
 *     SIGTERM/SIGINT detach and exit 0.
 *   net-probe cycles --count N [--mode nat|softnet]
 *     N attach/detach cycles, each with a fresh random MAC and a full DHCP exchange written
 *     straight into the tap (DISCOVER/OFFER/REQUEST/ACK); prints one line per cycle and fails
 *     on the first cycle that gets no address.
 *   net-probe cleanup
 *     net_cleanup_stale() only (what the next `run` does first).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/dhcp.h"
#include "net/lease.h"
#include "net/link.h"
#include "net/net.h"
#include "net/subnet.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/dir.h"
#include "vm/home.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_mode(const char *s, enum net_mode *ret)
{
	for (enum net_mode m = NET_MODE_AUTO; net_mode_to_string(m); m++) {
		if (streq(net_mode_to_string(m), s)) {
			*ret = m;
			return 0;
		}
	}
	fprintf(stderr, "net-probe: unknown mode '%s'\n", s);
	return -EINVAL;
}

/* Create the guest-side tap inside netns ns and come back. */
static int guest_tap(const char *ns, const char *ifname, const uint8_t mac[6])
{
	_cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *p = xasprintf("/run/netns/%s", ns);
	_cleanup_close_ int target = open(p, O_RDONLY | O_CLOEXEC);
	if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0)
		return log_error_errno(negerrno(), "cannot enter netns '%s'", ns);
	int fd = link_tap_create(ifname);
	int r = fd < 0 ? fd : link_set_mac(ifname, mac);
	if (r == 0)
		r = link_set_up(ifname, true);
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* cannot continue in the wrong namespace */
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return log_error_errno(r, "cannot create tap '%s' in netns '%s'", ifname, ns);
	}
	return fd;
}

static void relay(int a, int b)
{
	uint8_t buf[65536];
	while (!stop) {
		struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
		if (poll(p, 2, 200) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n > 0 && write(p[1 - i].fd, buf, (size_t)n) < 0 && errno != EIO)
				log_debug_errno(negerrno(), "relay write");
		}
	}
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"vm", required_argument, NULL, 'v'},
	    {"mac", required_argument, NULL, 'm'},
	    {"mode", required_argument, NULL, 'M'},
	    {"allow", required_argument, NULL, 'a'},
	    {"block", required_argument, NULL, 'b'},
	    {"expose", required_argument, NULL, 'e'},
	    {"bridge", required_argument, NULL, 'B'},
	    {"guest-netns", required_argument, NULL, 'n'},
	    {"guest-if", required_argument, NULL, 'i'},
	    {0},
	};
	struct net_options o;
	net_options_init(&o);
	o.mode = NET_MODE_NAT;
	const char *ns = NULL, *gif = "eth0";
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			o.vm_name = optarg;
			break;
		case 'm':
			o.mac = optarg;
			break;
		case 'M':
			if (parse_mode(optarg, &o.mode) < 0)
				return 64;
			break;
		case 'a':
			o.softnet_allow = optarg;
			break;
		case 'b':
			o.softnet_block = optarg;
			break;
		case 'e':
			o.softnet_expose = optarg;
			break;
		case 'B':
			o.bridge = optarg;
			break;
		case 'n':
			ns = optarg;
			break;
		case 'i':
			gif = optarg;
			break;
		default:
			return 64;
		}
	}
	if (!o.vm_name || !o.mac || !ns) {
		fprintf(stderr, "net-probe attach: --vm, --mac and --guest-netns are required\n");
		return 64;
	}
	_cleanup_free_ char *vm_dir = xasprintf("%s/vms/%s", home_dir(), o.vm_name);
	o.vm_dir = vm_dir;
	/* When the VM exists (made with `tart create`), hold its run lock as `run` does, so
	 * `tart ip` sees it running. */
	_cleanup_close_ int run_lock = -1;
	if (fs_is_dir(vm_dir)) {
		struct vm_dir d;
		if (vm_dir_open_local(o.vm_name, &d) == 0) {
			run_lock = vm_dir_lock_run(&d);
			vm_dir_release(&d);
		}
	}
	uint8_t mac[6];
	if (dhcp_mac_parse(o.mac, mac) < 0) {
		fprintf(stderr, "net-probe: bad MAC\n");
		return 64;
	}

	net_cleanup_stale(&o);
	struct net_attachment a;
	int r = net_attach(&o, &a);
	if (r < 0)
		return 1;
	int gfd = guest_tap(ns, gif, mac);
	if (gfd < 0) {
		net_detach(&a);
		return 1;
	}
	printf("ready %s\n", a.info);
	fflush(stdout);
	relay(a.pass_fds[0], gfd);
	close(gfd);
	net_detach(&a);
	printf("detached\n");
	return 0;
}

/* The client side of one DHCP exchange, written straight into the VM's tap. */
static size_t client_msg(uint8_t *frame, size_t cap, enum dhcp_type type, uint32_t xid,
			 const uint8_t mac[6], uint32_t req_ip, uint32_t server)
{
	uint8_t p[300] = {1, 1, 6, 0};
	p[4] = (uint8_t)(xid >> 24);
	p[5] = (uint8_t)(xid >> 16);
	p[6] = (uint8_t)(xid >> 8);
	p[7] = (uint8_t)xid;
	p[10] = 0x80; /* broadcast flag */
	memcpy(p + 28, mac, 6);
	static const uint8_t magic[4] = {0x63, 0x82, 0x53, 0x63};
	memcpy(p + 236, magic, 4);
	size_t i = 240;
	p[i++] = 53;
	p[i++] = 1;
	p[i++] = (uint8_t)type;
	if (req_ip) {
		uint8_t o[] = {50,
			       4,
			       (uint8_t)(req_ip >> 24),
			       (uint8_t)(req_ip >> 16),
			       (uint8_t)(req_ip >> 8),
			       (uint8_t)req_ip,
			       54,
			       4,
			       (uint8_t)(server >> 24),
			       (uint8_t)(server >> 16),
			       (uint8_t)(server >> 8),
			       (uint8_t)server};
		memcpy(p + i, o, sizeof(o));
		i += sizeof(o);
	}
	p[i++] = 255;
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	int n = dhcp_frame_build(mac, bcast, 0, 0xffffffffu, 68, 67, p, sizeof(p), frame, cap);
	return n > 0 ? (size_t)n : 0;
}

/* Wait for a reply of the given xid; returns its type, fills yiaddr and server id. */
static enum dhcp_type client_wait(int fd, uint32_t xid, uint32_t *yiaddr, uint32_t *server)
{
	uint8_t buf[2048];
	for (int tries = 0; tries < 50; tries++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		struct dhcp_frame fr;
		if (n <= 0 || dhcp_frame_parse(buf, (size_t)n, &fr) < 0 || fr.src_port != 67 ||
		    fr.payload_len < 243 || fr.payload[0] != 2)
			continue;
		const uint8_t *q = fr.payload;
		uint32_t x =
		    (uint32_t)q[4] << 24 | (uint32_t)q[5] << 16 | (uint32_t)q[6] << 8 | q[7];
		if (x != xid || q[240] != 53)
			continue;
		*yiaddr =
		    (uint32_t)q[16] << 24 | (uint32_t)q[17] << 16 | (uint32_t)q[18] << 8 | q[19];
		*server = fr.src_ip;
		return (enum dhcp_type)q[242];
	}
	return DHCP_NONE;
}

static int cmd_cycles(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"count", required_argument, NULL, 'c'},
	    {"mode", required_argument, NULL, 'M'},
	    {0},
	};
	long count = 300;
	enum net_mode mode = NET_MODE_NAT;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			count = strtol(optarg, NULL, 10);
		else if (c == 'M' && parse_mode(optarg, &mode) == 0)
			continue;
		else
			return 64;
	}
	_cleanup_free_ char *state = path_join(home_dir(), "net");
	for (long i = 0; i < count; i++) {
		uint8_t mac[6];
		char macs[18];
		(void)fs_random_bytes(mac, 6);
		mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02);
		dhcp_mac_format(mac, macs);
		struct net_options o;
		net_options_init(&o);
		o.mode = mode;
		o.vm_name = "cycle";
		o.vm_dir = "/nonexistent/cycle";
		o.mac = macs;
		net_cleanup_stale(&o);
		struct net_attachment a;
		if (net_attach(&o, &a) < 0) {
			printf("cycle %ld: attach failed\n", i);
			return 1;
		}
		uint8_t f[DHCP_FRAME_MAX];
		uint32_t xid = (uint32_t)i + 1, ip = 0, server = 0, ip2 = 0;
		size_t n = client_msg(f, sizeof(f), DHCP_DISCOVER, xid, mac, 0, 0);
		enum dhcp_type t1 = DHCP_NONE, t2 = DHCP_NONE;
		if (write(a.pass_fds[0], f, n) == (ssize_t)n)
			t1 = client_wait(a.pass_fds[0], xid, &ip, &server);
		if (t1 == DHCP_OFFER) {
			n = client_msg(f, sizeof(f), DHCP_REQUEST, xid, mac, ip, server);
			if (write(a.pass_fds[0], f, n) == (ssize_t)n)
				t2 = client_wait(a.pass_fds[0], xid, &ip2, &server);
		}
		/* The ACK must be in the lease store, where `tart ip` looks. */
		struct lease_table t = {0};
		uint32_t stored = 0;
		bool recorded = lease_store_load(state, &t) == 0 &&
				lease_table_lookup(&t, mac, (uint64_t)time(NULL), &stored) == 0 &&
				stored == ip;
		lease_table_release(&t);
		char ips[16];
		net_ip_format(ip2, ips);
		printf("cycle %ld mac %s %s %s ip %s recorded %s\n", i, macs,
		       dhcp_type_to_string(t1), dhcp_type_to_string(t2), ips,
		       recorded ? "yes" : "no");
		net_detach(&a);
		if (t2 != DHCP_ACK || ip2 != ip || !recorded)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	log_setup_from_env();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: net-probe attach|cycles|cleanup ...\n");
		return 64;
	}
	if (home_init() < 0)
		return 1;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (streq(argv[1], "attach"))
		return cmd_attach(argc - 1, argv + 1);
	if (streq(argv[1], "cycles"))
		return cmd_cycles(argc - 1, argv + 1);
	if (streq(argv[1], "cleanup")) {
		struct net_options o;
		net_options_init(&o);
		net_cleanup_stale(&o);
		return 0;
	}
	fprintf(stderr, "net-probe: unknown command '%s'\n", argv[1]);
	return 64;
}
