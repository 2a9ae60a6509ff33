/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * tart's DHCP server for one VM: a thread inside `tart run` reading the VM's frames from its
 * tap with an AF_PACKET socket (a BPF filter passes only UDP to port 67) and writing replies
 * straight back into that tap, so nothing binds port 67 and servers of different VMs never
 * see each other's clients. The answers come from dhcp_server_process() (pure, fuzzed); an
 * ACK records the lease end in the lease store, a RELEASE clears it. Replies are rate-limited
 * (a flooding guest burns only its own server's time and cannot get any address but its own).
 */

#include "net/dhcp.h"

struct dhcpd;

/* Start serving on ifname. lease_dir is $TART_HOME/net. Logs failures. */
int dhcpd_start(const char *ifname, const struct dhcp_policy *policy, const char *lease_dir,
		struct dhcpd **ret);
/* Stop the thread and free everything; NULL is fine. */
void dhcpd_stop(struct dhcpd *d);
