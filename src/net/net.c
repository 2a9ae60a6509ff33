// SPDX-License-Identifier: Apache-2.0
#include "net/net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/modes.h"
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

/*
 * AUTO: NAT when this process may configure networking, user-mode otherwise. TART_NET_MODE
 * (user|nat) overrides the choice, e.g. to keep test VMs of a root CI job in user mode.
 */
static enum net_mode resolve_auto(void)
{
	const char *e = getenv("TART_NET_MODE");
	if (e && streq(e, "user"))
		return NET_MODE_USER;
	if (e && streq(e, "nat"))
		return NET_MODE_NAT;
	if (e && *e)
		log_warning("ignoring TART_NET_MODE='%s' (expected 'user' or 'nat')", e);
	return net_privileged() ? NET_MODE_NAT : NET_MODE_USER;
}

int net_attach(const struct net_options *opts, struct net_attachment *ret)
{
	enum net_mode mode = opts->mode == NET_MODE_AUTO ? resolve_auto() : opts->mode;
	int r;
	switch (mode) {
	case NET_MODE_USER:
		r = net_user_attach(opts, ret);
		break;
	case NET_MODE_NAT:
	case NET_MODE_SOFTNET:
	case NET_MODE_HOST:
		r = net_nat_attach(opts, mode, ret);
		break;
	case NET_MODE_BRIDGED:
		r = net_bridged_attach(opts, ret);
		break;
	default:
		log_error("network mode '%s' is not implemented yet", net_mode_to_string(mode));
		return -EOPNOTSUPP;
	}
	/* Modes without tap state still leave a run record, for `tart ip` to explain them. */
	if (r == 0 && mode == NET_MODE_USER)
		net_record_user(opts, ret);
	return r;
}

void net_detach(struct net_attachment *a)
{
	switch (a->mode) {
	case NET_MODE_NAT:
	case NET_MODE_SOFTNET:
	case NET_MODE_HOST:
	case NET_MODE_BRIDGED:
		net_tap_detach(a);
		break;
	default:
		net_record_drop_own();
		break;
	}
	strvec_clear(&a->qemu_args);
}

void net_cleanup_stale(const struct net_options *opts)
{
	(void)opts;
	net_tap_cleanup_stale();
}
