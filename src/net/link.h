/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Kernel plumbing for the tap-based modes: network devices through ioctl(2) (no netlink
 * library, no `ip` binary for the common path), nftables through `nft -f -` fed on stdin by a
 * spawned nft (no shell), and a few /proc/sys knobs. All of it acts on the calling process'
 * network namespace. Nothing here logs: every function returns -errno (the nft helper also
 * hands back nft's stderr) and the mode code logs with its context.
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/strbuf.h"

/*
 * Create a non-persistent tap (IFF_TAP | IFF_NO_PI) named name: it disappears when the last
 * descriptor closes, so a VM whose `run` and QEMU are gone leaves no tap behind. Returns the
 * descriptor, O_CLOEXEC: `run` clears the flag for QEMU only (it is in pass_fds), so no other
 * child (nft, virtiofsd) keeps the tap alive.
 */
int link_tap_create(const char *name);

bool link_exists(const char *name);
int link_ifindex(const char *name);
int link_set_up(const char *name, bool up);
int link_get_mac(const char *name, uint8_t ret[6]);
int link_set_mac(const char *name, const uint8_t mac[6]);
/* Create a bridge (EEXIST is success), delete one (brought down first; missing = success;
 * -EINVAL, untouched, when the interface is not a bridge). */
int link_bridge_add(const char *name);
int link_bridge_del(const char *name);
int link_bridge_add_port(const char *bridge, const char *port);
/* Is dev a port of some bridge? Fills the bridge's name when ret_bridge is not NULL. */
bool link_is_bridge(const char *name);
/* The bridges of this namespace, comma-separated ("" when none). Allocated. */
char *link_list_bridges(void);
/* Set the primary IPv4 address and prefix of dev (replaces what ioctl reports as primary). */
int link_set_ipv4(const char *name, uint32_t ip, unsigned prefix_len);
/* The primary IPv4 address and prefix length of dev; -EADDRNOTAVAIL when it has none. */
int link_get_ipv4(const char *name, uint32_t *ret_ip, unsigned *ret_prefix_len);
/* Delete a link of any kind (a stale tap): spawns `ip link del`, as ioctl cannot. */
int link_delete(const char *name);
/* Write a value to /proc/sys/<key> ("net/ipv4/ip_forward"). */
int link_sysctl_write(const char *key, const char *value);

/* Apply an nft script atomically (`nft -f -`). nft's stderr is appended to err (capped). */
int nft_apply(const char *script, struct strbuf *err);
/* Run `nft <args...>` (NULL-terminated) and capture its stdout (capped); -EIO when it fails. */
int nft_query(const char *const *args, struct strbuf *out);
