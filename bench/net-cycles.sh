#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Cost of one VM's network lifecycle: net_attach (tap, lease, rules, DHCP thread) + a full DHCP
# exchange + net_detach, with another VM keeping the bridge up (the steady state of a busy
# host). Plain NAT is the baseline; Softnet adds the per-VM nftables rules. Runs in a network
# namespace of its own; needs root. Usage: bench/net-cycles.sh [BUILD_DIR] [COUNT]
set -euo pipefail
build=${1:-build}; count=${2:-200}
probe=$(cd "$build" && pwd)/tests/helpers/net-probe
ns=tnbench$$; home=$(mktemp -d)
cleanup() {
  [ -n "${keeper:-}" ] && kill "$keeper" 2>/dev/null && wait "$keeper" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true; ip netns del "${ns}g" 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT
ip netns add "$ns"; ip netns add "${ns}g"; ip -n "$ns" link set lo up
export TART_HOME=$home
ip netns exec "$ns" "$probe" attach --vm keeper --mac 52:54:00:be:00:01 --guest-netns "${ns}g" \
  > "$home/keeper.out" 2>&1 & keeper=$!
for _ in $(seq 100); do grep -q '^ready' "$home/keeper.out" 2>/dev/null && break; sleep 0.05; done
for mode in nat softnet; do
  start=$(date +%s%N)
  ip netns exec "$ns" "$probe" cycles --count "$count" --mode "$mode" > "$home/$mode.out"
  end=$(date +%s%N)
  n=$(grep -c 'OFFER ACK' "$home/$mode.out")
  printf '%-8s %4d cycles  %7.1f ms/cycle (attach + DISCOVER/OFFER/REQUEST/ACK + detach)\n' \
    "$mode" "$n" "$(echo "($end - $start) / 1000000 / $n" | bc -l)"
done
