// SPDX-License-Identifier: Apache-2.0
#include "net/net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/user.h"
#include "util/log.h"

void net_options_init(struct net_options *o)
{
	*o = (struct net_options){.mode = NET_MODE_AUTO, .user_restrict = true};
}

const char *net_mode_to_string(enum net_mode m)
{
	static const char *const names[] = {"auto", "user", "nat", "softnet", "bridged", "host"};
	return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : NULL;
}

int net_attach(const struct net_options *opts, struct net_attachment *ret)
{
	switch (opts->mode) {
	/* For now AUTO is always user mode; the networking work picks NAT when privileged. */
	case NET_MODE_AUTO:
	case NET_MODE_USER:
		return net_user_attach(opts, ret);
	default:
		break;
	}
	log_error("network mode '%s' is not implemented yet", net_mode_to_string(opts->mode));
	return -EOPNOTSUPP;
}

void net_detach(struct net_attachment *a)
{
	strvec_clear(&a->qemu_args);
}

void net_cleanup_stale(const struct net_options *opts)
{
	(void)opts;
}
