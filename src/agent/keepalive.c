// SPDX-License-Identifier: Apache-2.0
#include "agent/keepalive.h"

#include <stdlib.h>

#include "util/parse.h"

static usec_t interval_from_env(void)
{
	const char *e = getenv("TART_AGENT_KEEPALIVE");
	uint64_t v;
	if (e && parse_u64(e, 3600, &v) == 0 && v >= 1)
		return (usec_t)v * 1000000;
	return (usec_t)AGENT_KEEPALIVE_DEFAULT_SEC * 1000000;
}

void agent_keepalive_init(struct agent_keepalive *k, usec_t now)
{
	*k = (struct agent_keepalive){.interval = interval_from_env(), .last_rx = now};
}

void agent_keepalive_rx(struct agent_keepalive *k, usec_t now)
{
	k->last_rx = now;
	k->ping_at = 0;
}

enum agent_keepalive_action agent_keepalive_check(struct agent_keepalive *k, usec_t now,
						  usec_t *ret_next)
{
	enum agent_keepalive_action a = AGENT_KEEPALIVE_NONE;
	if (k->ping_at) {
		if (now >= k->ping_at + k->interval)
			return AGENT_KEEPALIVE_DEAD;
	} else if (now >= k->last_rx + k->interval) {
		k->ping_at = now;
		a = AGENT_KEEPALIVE_PING;
	}
	if (ret_next)
		*ret_next = k->ping_at ? k->ping_at + k->interval : k->last_rx + k->interval;
	return a;
}
