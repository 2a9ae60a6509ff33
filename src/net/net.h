/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * CONTRACT between `tart run` (qemu/, cmd/run.c) and the networking modes (net/).
 *
 * `run` fills struct net_options from its flags, calls net_attach() before starting QEMU,
 * appends attachment.qemu_args to QEMU's argv (and keeps attachment.pass_fds open across
 * exec: they are referenced by number in qemu_args, e.g. "tap,id=n0,fd=3"), writes
 * attachment.info into the VM's run state for `tart ip`, and calls net_detach() when the VM
 * ends, whatever the reason. net_cleanup_stale() is called first, so leftovers from a
 * SIGKILLed run (taps, addresses, nftables rules, leases) are removed before new ones are made.
 * No resident daemon: anything that must serve the guest while it runs (our DHCP server)
 * runs inside the `tart run` process (a thread) and stops in net_detach().
 * Logging: failures are logged once here and returned as -errno (-EPERM without
 * CAP_NET_ADMIN, -ENODEV for a missing bridge, -EADDRINUSE for a subnet clash, ...).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/strvec.h"

enum net_mode {
	NET_MODE_AUTO,    /* NAT when privileged (CAP_NET_ADMIN), else user-mode */
	NET_MODE_USER,    /* QEMU user networking (slirp), restrict=on, forwarded SSH port */
	NET_MODE_NAT,     /* tap + tart's bridge, tart's DHCP server, nftables masquerade */
	NET_MODE_SOFTNET, /* NAT plus Softnet isolation rules */
	NET_MODE_BRIDGED, /* tap enslaved to an existing bridge */
	NET_MODE_HOST,    /* host-only: guest reaches the host, nothing else */
};

struct net_options {
	enum net_mode mode;
	const char *vm_name;
	const char *vm_dir;
	const char *mac;           /* "aa:bb:cc:dd:ee:ff" */
	const char *bridge;        /* --net-bridged IFACE */
	const char *softnet_allow; /* comma-separated CIDRs, or NULL */
	const char *softnet_block;
	const char *softnet_expose; /* "EXT:INT[,EXT:INT...]" */
	bool user_restrict;         /* user mode: restrict=on (always on in tests) */
};

struct net_attachment {
	enum net_mode mode;       /* the mode actually chosen (AUTO resolved) */
	struct strvec qemu_args;  /* e.g. {"-netdev", "tap,id=n0,fd=3", "-device", "virtio-net-pci,..."} */
	int pass_fds[4];          /* fds QEMU must inherit, -1 terminated/unused */
	size_t n_pass_fds;
	char info[256];           /* how to reach the guest, e.g. "ssh-port=2222" or "ip=192.168.64.5" */
	void *priv;               /* mode state (DHCP thread, tap name, rules) */
};

void net_options_init(struct net_options *o);
int net_attach(const struct net_options *opts, struct net_attachment *ret);
void net_detach(struct net_attachment *a);
void net_cleanup_stale(const struct net_options *opts);
/*
 * What `--net-bridged=list` shows: the bridges of this namespace (usable as they are) and the
 * Ethernet interfaces that could be added to one (a device behind them, no bridge yet). Both
 * sorted; appended to the given vectors. Non-logging.
 */
int net_bridgeable_list(struct strvec *ret_bridges, struct strvec *ret_ethernet);
/* Parse "--net-*" mode names for messages; returns NULL for unknown. */
const char *net_mode_to_string(enum net_mode m);
