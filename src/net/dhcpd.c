// SPDX-License-Identifier: Apache-2.0
#include "net/dhcpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/lease.h"
#include "net/link.h"
#include "net/subnet.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"

#define RATE_BURST 20	/* replies a guest may get back to back */
#define RATE_PER_SEC 10 /* sustained replies per second */
#define REWRITE_SLACK 5 /* seconds: ACKs closer than this to the stored end skip the disk */

struct dhcpd {
	pthread_t thread;
	int sock, stop_fd, ifindex;
	struct dhcp_policy policy;
	char *lease_dir;
	char ifname[16];
	uint64_t stored_expires;
	double tokens;
	struct timespec last_refill;
};

/* tcpdump -dd 'udp dst port 67' (IPv4, first fragments only). */
static struct sock_filter bpf_code[] = {
    {0x28, 0, 0, 0x0000000c}, {0x15, 0, 8, 0x00000800}, {0x30, 0, 0, 0x00000017},
    {0x15, 0, 6, 0x00000011}, {0x28, 0, 0, 0x00000014}, {0x45, 4, 0, 0x00001fff},
    {0xb1, 0, 0, 0x0000000e}, {0x48, 0, 0, 0x00000010}, {0x15, 0, 1, 0x00000043},
    {0x06, 0, 0, 0x00040000}, {0x06, 0, 0, 0x00000000},
};

static uint64_t now_secs(void)
{
	return (uint64_t)time(NULL);
}

static bool rate_take(struct dhcpd *d)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double dt = (double)(ts.tv_sec - d->last_refill.tv_sec) +
		    (double)(ts.tv_nsec - d->last_refill.tv_nsec) / 1e9;
	d->last_refill = ts;
	d->tokens = MIN((double)RATE_BURST, d->tokens + dt * RATE_PER_SEC);
	if (d->tokens < 1.0)
		return false;
	d->tokens -= 1.0;
	return true;
}

static void record_lease(struct dhcpd *d, uint64_t expires, const char *hostname)
{
	if (expires && expires < d->stored_expires + REWRITE_SLACK)
		return;
	_cleanup_close_ int lock = lease_store_lock(d->lease_dir);
	if (lock < 0) {
		log_warning_errno(lock, "cannot lock the lease store in '%s'", d->lease_dir);
		return;
	}
	struct lease_table t;
	int r = lease_store_load(d->lease_dir, &t);
	if (r < 0) {
		log_warning_errno(r, "cannot read the lease store in '%s'", d->lease_dir);
		return;
	}
	r = lease_table_bind(&t, d->policy.vm_mac, d->policy.vm_ip, expires, hostname);
	if (r == 0)
		r = lease_store_save(d->lease_dir, &t);
	if (r < 0)
		log_warning_errno(r, "cannot record the DHCP lease of '%s'", d->ifname);
	else
		d->stored_expires = expires;
	lease_table_release(&t);
}

static void handle_frame(struct dhcpd *d, const uint8_t *buf, size_t len)
{
	uint8_t out[DHCP_FRAME_MAX];
	size_t out_len = 0;
	struct dhcp_msg msg;
	enum dhcp_type type = DHCP_NONE;
	enum dhcp_action a =
	    dhcp_server_process(&d->policy, buf, len, out, sizeof(out), &out_len, &type, &msg);
	if (a == DHCP_ACTION_IGNORE)
		return;
	if (a == DHCP_ACTION_RELEASE) {
		log_debug("dhcp: RELEASE from the guest on '%s'", d->ifname);
		record_lease(d, 0, NULL);
		d->stored_expires = 0;
		return;
	}
	if (!rate_take(d))
		return;
	/* Record the lease before the guest can act on it, so `tart ip` never lags the guest. */
	if (type == DHCP_ACK && msg.type == DHCP_REQUEST)
		record_lease(d, now_secs() + d->policy.lease_secs, msg.hostname);
	struct sockaddr_ll to = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(ETH_P_IP),
	    .sll_ifindex = d->ifindex,
	    .sll_halen = 6,
	};
	memcpy(to.sll_addr, out, 6);
	if (sendto(d->sock, out, out_len, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
		log_debug_errno(negerrno(), "dhcp: cannot send on '%s'", d->ifname);
		return;
	}
	log_debug("dhcp: %s -> %s on '%s'", dhcp_type_to_string(msg.type),
		  dhcp_type_to_string(type), d->ifname);
}

static void *dhcpd_main(void *arg)
{
	struct dhcpd *d = arg;
	uint8_t buf[2048];
	for (;;) {
		struct pollfd p[2] = {{.fd = d->sock, .events = POLLIN},
				      {.fd = d->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN)) {
			if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL))
				break; /* the tap went away */
			continue;
		}
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n =
		    recvfrom(d->sock, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ENETDOWN)
				continue;
			break;
		}
		/* Only what the guest sent; our own replies come back as PACKET_OUTGOING. */
		if (from.sll_pkttype == PACKET_OUTGOING || (size_t)n > sizeof(buf))
			continue;
		handle_frame(d, buf, (size_t)n);
	}
	return NULL;
}

int dhcpd_start(const char *ifname, const struct dhcp_policy *policy, const char *lease_dir,
		struct dhcpd **ret)
{
	struct dhcpd *d = xcalloc(1, sizeof(*d));
	d->sock = d->stop_fd = -1;
	d->policy = *policy;
	d->lease_dir = xstrdup(lease_dir);
	d->tokens = RATE_BURST;
	clock_gettime(CLOCK_MONOTONIC, &d->last_refill);
	snprintf(d->ifname, sizeof(d->ifname), "%s", ifname);
	int r;

	d->ifindex = link_ifindex(ifname);
	if (d->ifindex < 0) {
		r = log_error_errno(d->ifindex, "cannot find interface '%s'", ifname);
		goto fail;
	}
	/* ETH_P_ALL, not ETH_P_IP: on a bridge port, protocol-specific packet sockets never see
	 * a frame (the bridge consumes it first); the BPF filter does the selecting instead.
	 * Bound only after the filter is in place, so no unfiltered frame queues. */
	d->sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (d->sock < 0) {
		r = log_error_errno(negerrno(), "cannot open a packet socket for DHCP");
		goto fail;
	}
	struct sock_fprog prog = {.len = ARRAY_SIZE(bpf_code), .filter = bpf_code};
	if (setsockopt(d->sock, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
		r = log_error_errno(negerrno(), "cannot attach the DHCP packet filter");
		goto fail;
	}
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = d->ifindex};
	if (bind(d->sock, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		r = log_error_errno(negerrno(), "cannot listen for DHCP on '%s'", ifname);
		goto fail;
	}
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (d->stop_fd < 0) {
		r = log_error_errno(negerrno(), "cannot create an eventfd");
		goto fail;
	}
	r = -pthread_create(&d->thread, NULL, dhcpd_main, d);
	if (r < 0) {
		log_error_errno(r, "cannot start the DHCP server thread");
		goto fail;
	}
	*ret = d;
	return 0;
fail:
	if (d->sock >= 0)
		close(d->sock);
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	free(d->lease_dir);
	free(d);
	return r;
}

void dhcpd_stop(struct dhcpd *d)
{
	if (!d)
		return;
	uint64_t one = 1;
	if (write(d->stop_fd, &one, sizeof(one)) < 0)
		log_debug_errno(negerrno(), "cannot signal the DHCP thread");
	pthread_join(d->thread, NULL);
	close(d->sock);
	close(d->stop_fd);
	free(d->lease_dir);
	free(d);
}
