/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>

/*
 * /Agent/ResolveIP: the first global-unicast IPv4 address of the guest, in interface order,
 * as tart-guest-agent (Go's IsGlobalUnicast: private ranges count; loopback, link-local
 * 169.254/16, multicast, broadcast and 0.0.0.0 do not). -ENOENT when there is none.
 */
int agent_resolve_ip(char *buf, size_t len);
/* The same test on one address in network byte order. */
int agent_ipv4_is_global_unicast(unsigned int be_addr);
