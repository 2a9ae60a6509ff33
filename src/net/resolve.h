/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `tart ip`'s resolvers (Tart's --resolver dhcp|arp|agent):
 *   dhcp  - tart's own lease store, by the VM's MAC (works whatever client identifier, e.g. a
 *           DUID, the guest sends): bound, unexpired leases only;
 *   arp   - the kernel's neighbour table (/proc/net/arp) by MAC, for bridged VMs, whose
 *           address some other DHCP server handed out; complete entries only;
 *   agent - not here: `tart ip` asks the guest agent itself (agent/client.h), whatever the
 *           network mode; net_resolve_ip() answers -EOPNOTSUPP.
 * A VM running in user-mode networking has no address the host can use: resolution then
 * returns -EREMOTE with a sentence explaining how to reach it (through the forwarded port).
 * Pure parts (ARP table, explanation) are unit-tested; nothing here logs.
 */

#include <stddef.h>
#include <stdint.h>

enum net_resolver { NET_RESOLVER_DHCP, NET_RESOLVER_ARP, NET_RESOLVER_AGENT };

int net_resolver_parse(const char *s, enum net_resolver *ret);

/*
 * One attempt for the VM in vm_dir with MAC mac. 0 and ret_ip on success; -ENOENT when not
 * (yet) found; -EREMOTE with ret_explain for user-mode VMs; -EOPNOTSUPP for the agent.
 */
int net_resolve_ip(const char *vm_name, const char *vm_dir, const char *mac,
		   enum net_resolver resolver, char ret_ip[16], char *ret_explain,
		   size_t explain_len);

/* Find a complete entry for mac in /proc/net/arp-formatted text. */
int net_arp_lookup(const char *text, const uint8_t mac[6], uint32_t *ret_ip);

/* The sentence for a user-mode VM, from its attachment info ("ssh-port=2222 ..."). */
void net_user_explain(const char *vm_name, const char *info, char *ret, size_t len);
