/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Internal to net/: the tap-based modes (NAT, Softnet, bridged, host) and the run records
 * that let `tart ip` find a VM's attachment and let the next `run` clean up after a killed one.
 *
 * Run record: $TART_HOME/net/runs/<pid>.json, written at attach and removed at detach, one per
 * `tart run` process (keyed by pid + process start time). It names everything the run put in
 * the kernel (tap, nftables objects, exposed ports) and its lease, so net_cleanup_stale() can
 * remove exactly that when the owner is gone. Everything that changes shared state (bridge,
 * nftables tables, records) happens under the flock on $TART_HOME/net/net.lock.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/dhcpd.h"
#include "net/net.h"
#include "net/subnet.h"

struct net_record {
	pid_t pid;
	uint64_t pid_start;
	char vm[256];
	char vm_dir[4096];
	enum net_mode mode;
	char info[256];
	char tap[16];
	char bridge[16];
	uint8_t mac[6];
	uint32_t ip; /* 0 when tart does not hand out the address (bridged, user) */
	bool softnet;
	bool shared_bridge; /* uses tart's own bridge (NAT and Softnet) */
	struct net_expose expose;
};

/* Mode state behind net_attachment.priv. */
struct net_priv {
	struct net_record rec;
	struct net_settings settings;
	char *state_dir; /* $TART_HOME/net */
	int tap_fd;
	struct dhcpd *dhcpd;
};

/* $TART_HOME/net, allocated. */
char *net_state_dir(void);
int net_state_lock(const char *state_dir);

int net_record_save(const char *state_dir, const struct net_record *r);
void net_record_remove(const char *state_dir, pid_t pid);
/* More runs than this at once are not expected; a directory flooded with records is cut. */
#define NET_RECORD_MAX 4096
/*
 * All records (n may be 0, at most NET_RECORD_MAX); allocated array. Unparsable records, and
 * records not stored as "<their pid>.json", are skipped.
 */
int net_record_list(const char *state_dir, struct net_record **ret, size_t *ret_n);
/* The record of a live run of the VM whose directory is vm_dir or whose MAC is mac (MACs of
 * running VMs are unique). -ENOENT when none. */
int net_record_find(const char *vm_dir, const uint8_t mac[6], struct net_record *ret);
/* Record (de)serialization, pure. Parsing refuses a tap other than "tart-t<pid>" and a
 * bridge name net_ifname_valid() refuses: both reach `ip link del` and nft scripts. */
char *net_record_format(const struct net_record *r);
int net_record_parse(const char *buf, size_t len, struct net_record *ret);

/* Mode entry points (called by net.c). mode is NAT, SOFTNET or HOST for net_nat_attach. */
int net_nat_attach(const struct net_options *opts, enum net_mode mode, struct net_attachment *ret);
int net_bridged_attach(const struct net_options *opts, struct net_attachment *ret);
void net_tap_detach(struct net_attachment *a);
void net_tap_cleanup_stale(void);

/* Run records for modes without tap state (user mode), so `tart ip` can explain them. */
void net_record_user(const struct net_options *opts, const struct net_attachment *a);
void net_record_drop_own(void);

/* Is this process able to configure networking (CAP_NET_ADMIN and /dev/net/tun)? */
bool net_privileged(void);

/* Softnet nftables rules for one VM, as an nft script (pure; unit-tested). */
struct softnet_rules {
	const char *tap;
	uint8_t mac[6];
	uint32_t ip, gateway;
	struct net_prefix subnet;
	const uint32_t *dns;
	size_t n_dns;
	const struct net_prefix_list *allow, *block;
	const struct net_expose *expose;
	bool host_only; /* --net-host: the host and nothing else */
};
char *softnet_script_add(const struct softnet_rules *r);
/* The removal commands, one per line: applied as a whole, or line by line when some object
 * is already gone. */
char *softnet_script_del(const char *tap, uint32_t ip, const struct net_expose *expose,
			 bool softnet);
/* The base tables for tart's bridge and subnet (pure). */
char *nat_script_base(const char *bridge, const struct net_prefix *subnet, uint32_t dns_forward);
