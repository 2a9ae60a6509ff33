/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Early validation of the networking flags, for `run` to call while parsing its arguments (so
 * a bad --net-softnet-allow/-block/-expose value fails before anything starts). Logs the same
 * message net_attach() would and returns -EINVAL; 0 when the options are well-formed. Checks
 * syntax only: privileges, bridges and subnet clashes are net_attach()'s business.
 */

#include "net/net.h"

int net_options_check(const struct net_options *opts);
