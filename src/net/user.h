/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "net/net.h"

/* QEMU user networking: "-netdev user,...,hostfwd=tcp:127.0.0.1:<port>-:22" + virtio-net. */
int net_user_attach(const struct net_options *opts, struct net_attachment *ret);
