// SPDX-License-Identifier: Apache-2.0
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>

int agent_ipv4_is_global_unicast(unsigned int be_addr)
{
	uint32_t a = ntohl(be_addr);
	if (a == 0 || a == 0xffffffffu)
		return 0;
	if ((a >> 24) == 127) /* loopback */
		return 0;
	if ((a >> 28) == 0xe) /* multicast 224/4 */
		return 0;
	if ((a >> 16) == 0xa9fe) /* link-local 169.254/16 */
		return 0;
	return 1;
}

int agent_resolve_ip(char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;
	int r = -ENOENT;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;
		if (!sin || sin->sin_family != AF_INET ||
		    !agent_ipv4_is_global_unicast(sin->sin_addr.s_addr))
			continue;
		r = inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len) ? 0 : -ENOSPC;
		break;
	}
	freeifaddrs(ifa);
	return r;
}
