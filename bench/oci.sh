#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Push and pull a 4 GiB disk (1 GiB random, 1 GiB of OS-like data from a tar of /usr, 2 GiB of
# zeros) through a local docker-registry, and in the same run let skopeo move the same blobs
# (registry -> oci: layout -> registry). Prints wall time, CPU time, throughput and peak RSS,
# the ratios tart/skopeo, where tart's CPU went (TART_TRANSFER_STATS: hashing, compression,
# reads, writes, network, measured per thread in the code), the physical floor (the disk blobs
# fetched with curl in parallel to /dev/null), and a pull of a new tag whose disk is cached
# (the same VM pushed again with another label). No assertions: figures only.
#   TART_BIN=build/tart bench/oci.sh            (needs docker-registry, skopeo, /usr/bin/time)
#   BENCH_GIB=1 ...  scales the disk (a quarter random, a quarter /usr, half zeros); BENCH_GIB=20
#                    for the large-image check (about 50 GiB of scratch space)
# It needs about 2.5 x BENCH_GIB GiB of free space under BENCH_DIR (default /var/tmp) and
# refuses to start without it.
set -euo pipefail

TART=${TART_BIN:-$(dirname "$0")/../build/tart}
TART=$(readlink -f "$TART")
CONC=${CONCURRENCY:-4}
GIB=${BENCH_GIB:-4}
BASE=${BENCH_DIR:-/var/tmp}
QUARTER=$((GIB * 256))  # MiB
for tool in docker-registry skopeo /usr/bin/time python3; do
	command -v "$tool" >/dev/null || { echo "bench/oci.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

NEED_KB=$((GIB * 1024 * 1024 * 5 / 2 + 1024 * 1024))
FREE_KB=$(df -Pk "$BASE" | awk 'NR == 2 { print $4 }')
if [ "$FREE_KB" -lt "$NEED_KB" ]; then
	echo "bench/oci.sh: needs $((NEED_KB / 1024)) MiB free in $BASE, only $((FREE_KB / 1024)) MiB: not running" >&2
	exit 1
fi
WORK=$(mktemp -d "$BASE/tart-bench-oci.XXXXXX")
cleanup() {
	set +e
	for p in "${REG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
REG_PIDS=()
trap cleanup EXIT

# start_registry <name>: a docker-registry with its own storage; sets HOST_<name>
start_registry() {
	local name=$1 port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	cat >"$WORK/$name.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/$name
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
	docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
	REG_PIDS+=($!)
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
		sleep 0.1
	done
	printf -v "HOST_$name" '%s' "127.0.0.1:$port"
}
start_registry reg1   # tart pushes here, tart and skopeo pull from here
start_registry reg2   # skopeo pushes into an empty registry (no blob can be skipped)
HOST=$HOST_reg1
PORT=${HOST#127.0.0.1:}

export TART_HOME=$WORK/home-push
"$TART" create --linux --disk-size 1 bench >/dev/null
DISK=$TART_HOME/vms/bench/disk.img
truncate -s "${GIB}G" "$DISK"
echo "filling the disk: $QUARTER MiB random, $QUARTER MiB tar of /usr, the rest zeros..." >&2
head -c "${QUARTER}M" /dev/urandom | dd of="$DISK" bs=1M conv=notrunc iflag=fullblock status=none
(tar cf - --ignore-failed-read /usr 2>/dev/null || true) | head -c "${QUARTER}M" |
	dd of="$DISK" bs=1M seek="$QUARTER" conv=notrunc iflag=fullblock status=none
sync

calc() { awk "BEGIN { print $1 }"; }

# run <label> <cmd...>: time one command, remember wall seconds and peak RSS
declare -A WALL RSS CPU
run() {
	local label=$1
	shift
	/usr/bin/time -v -o "$WORK/time.$label" "$@" >"$WORK/out.$label" 2>&1 || {
		echo "bench/oci.sh: '$label' failed:" >&2
		tail -20 "$WORK/out.$label" >&2
		exit 1
	}
	WALL[$label]=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.$label")
	RSS[$label]=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.$label")
	CPU[$label]=$(awk -F': ' '/(User|System) time \(seconds\)/ {s += $2} END {print s}' "$WORK/time.$label")
}

export TART_TRANSFER_STATS=1
run tart_push "$TART" push --insecure --concurrency "$CONC" bench "$HOST/bench/tart:1"
TART_HOME=$WORK/home-pull run tart_pull "$TART" pull --insecure --concurrency "$CONC" "$HOST/bench/tart:1"
PULLED=$(readlink -f "$WORK/home-pull/cache/OCIs/127.0.0.1%3A$PORT/bench/tart/1")
if cmp -s "$DISK" "$PULLED/disk.img"; then SAME=yes; else SAME=NO; fi
ALLOC=$(($(stat -c %b "$PULLED/disk.img") * 512))
# the same disk under a new tag with another manifest: its layers are all in the local cache
"$TART" push --insecure --label bench=2 bench "$HOST/bench/tart:2" >"$WORK/out.push2" 2>&1
TART_HOME=$WORK/home-pull run tart_pull_cached "$TART" pull --insecure --concurrency "$CONC" "$HOST/bench/tart:2"
unset TART_TRANSFER_STATS
rm -rf "$WORK/home-pull"  # keep the footprint down before skopeo's copies

# the floor: every distinct disk blob fetched with curl, CONC at a time, to /dev/null
curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$HOST/v2/bench/tart/manifests/1" >"$WORK/manifest.json"
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print("\n".join(sorted({l["digest"] for l in m["layers"] if l["mediaType"].endswith("disk.v2")})))' \
	"$WORK/manifest.json" | sed "s|^|http://$HOST/v2/bench/tart/blobs/|" >"$WORK/blob-urls"
run curl_floor xargs -P "$CONC" -n 1 curl -fs -o /dev/null <"$WORK/blob-urls"

run skopeo_pull skopeo copy --src-tls-verify=false "docker://$HOST/bench/tart:1" "oci:$WORK/layout:1"
run skopeo_push skopeo copy --dest-tls-verify=false "oci:$WORK/layout:1" "docker://$HOST_reg2/bench/skopeo:1"

COMPRESSED=$(du -sb "$WORK/layout/blobs" | cut -f1)
LOGICAL=$((GIB << 30))

printf '\ndisk: %s GiB logical (1/4 random, 1/4 /usr tar, 1/2 zeros); blobs %.0f MB compressed; concurrency %s\n' \
	"$GIB" "$(calc "$COMPRESSED / 1000000")" "$CONC"
printf '%-16s %9s %9s %14s %14s %12s\n' operation seconds "cpu s" "logical MB/s" "blob MB/s" "peak RSS MB"
for l in tart_push tart_pull tart_pull_cached skopeo_pull skopeo_push curl_floor; do
	w=${WALL[$l]}
	printf '%-16s %9.2f %9.2f %14.1f %14.1f %12.1f\n' "$l" "$w" "${CPU[$l]}" \
		"$(calc "$LOGICAL / $w / 1000000")" "$(calc "$COMPRESSED / $w / 1000000")" \
		"$(calc "${RSS[$l]} / 1024")"
done
printf '\ntart pull / skopeo pull: time %.2f, CPU %.2f\n' "$(calc "${WALL[tart_pull]} / ${WALL[skopeo_pull]}")" \
	"$(calc "${CPU[tart_pull]} / ${CPU[skopeo_pull]}")"
printf 'tart push / skopeo push: time %.2f, CPU %.2f\n' "$(calc "${WALL[tart_push]} / ${WALL[skopeo_push]}")" \
	"$(calc "${CPU[tart_push]} / ${CPU[skopeo_push]}")"
printf 'tart pull / curl floor (time): %.2f\n' "$(calc "${WALL[tart_pull]} / ${WALL[curl_floor]}")"
printf 'pull of a new tag with a cached disk / full pull (time): %.3f\n' \
	"$(calc "${WALL[tart_pull_cached]} / ${WALL[tart_pull]}")"
echo
echo "where tart's CPU went (TART_TRANSFER_STATS, CPU seconds measured per thread):"
for l in tart_push tart_pull tart_pull_cached; do
	printf '%-16s %s\n' "$l" "$(sed -n 's/.*transfer CPU: //p' "$WORK/out.$l" | tail -1)"
done
printf 'pulled disk identical: %s; allocated after pull: %.0f MB of %.0f MB (holes kept)\n' "$SAME" \
	"$(calc "$ALLOC / 1000000")" "$(calc "$LOGICAL / 1000000")"
echo "(skopeo only moves the compressed blobs; tart also compresses on push and decodes + verifies into a sparse disk on pull)"
