#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Clone benchmark: `tart clone` against `cp --sparse=always` on the same 10 GB disk holding 1 GB
# of data (ext4 or whatever holds $BENCH_DIR), `tart clone` on a reflink filesystem (a
# loop-mounted XFS with reflink=1, needs root), and `tart list` with 1,000 VMs.
# Prints figures; asserts nothing. Usage: bench/clone.sh [BENCH_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TART=${TART_BIN:-$ROOT/build/tart}
W=$(mktemp -d "${1:-/var/tmp}/tart-bench-clone.XXXXXX")
MNT=""
cleanup() {
	[ -n "$MNT" ] && mountpoint -q "$MNT" && umount "$MNT"
	rm -rf "$W"
}
trap cleanup EXIT

ms() { echo $(( ($2 - $1) / 1000000 )); }
now() { date +%s%N; }

# Fill a VM's disk with 1 GB of data in 64 scattered 16 MiB extents (random bytes).
fill_disk() {
	local disk=$1 i
	for i in $(seq 0 63); do
		dd if=/dev/urandom of="$disk" bs=16M count=1 seek=$((i * 9)) conv=notrunc status=none
	done
}

echo "== clone of a 10 GB disk holding 1 GB of data ($(df -T "$W" | awk 'NR==2{print $2}'))"
export TART_HOME=$W/home
"$TART" create --linux --disk-size 10 src
fill_disk "$TART_HOME/vms/src/disk.img"
sync
du -h --apparent-size "$TART_HOME/vms/src/disk.img" | sed 's/^/  apparent: /'
du -h "$TART_HOME/vms/src/disk.img" | sed 's/^/  allocated: /'
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); "$TART" clone src dst; t1=$(now)
tart_ms=$(ms "$t0" "$t1")
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(now); cp --sparse=always "$TART_HOME/vms/src/disk.img" "$W/cp-disk.img"; sync "$W/cp-disk.img"; t1=$(now)
cp_ms=$(ms "$t0" "$t1")
cmp "$TART_HOME/vms/src/disk.img" "$TART_HOME/vms/dst/disk.img" && echo "  clone content identical"
du -h "$TART_HOME/vms/dst/disk.img" | sed 's/^/  clone allocated: /'
echo "  tart clone:            ${tart_ms} ms (whole command, data fsync'ed)"
echo "  cp --sparse=always:    ${cp_ms} ms (plus sync of the copy)"
awk -v a="$tart_ms" -v b="$cp_ms" 'BEGIN{printf "  ratio tart/cp:         %.2f (target <= 1.00)\n", a/b}'
"$TART" delete src dst

if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
	echo "== clone on a reflink filesystem (loop-mounted XFS, reflink=1)"
	truncate -s 14G "$W/xfs.img"
	mkfs.xfs -q -m reflink=1 "$W/xfs.img"
	MNT=$W/xfs
	mkdir -p "$MNT"
	mount -o loop "$W/xfs.img" "$MNT"
	export TART_HOME=$MNT/home
	"$TART" create --linux --disk-size 10 src
	fill_disk "$TART_HOME/vms/src/disk.img"
	sync
	best=""
	for i in 1 2 3 4 5; do
		t0=$(now); "$TART" clone src "dst$i"; t1=$(now)
		m=$(( (t1 - t0) / 1000 ))
		echo "  tart clone run $i:      $((m / 1000)).$(printf %03d $((m % 1000))) ms"
		[ -z "$best" ] || [ "$m" -lt "$best" ] && best=$m
	done
	echo "  best:                  $((best / 1000)).$(printf %03d $((best % 1000))) ms (target < 20 ms)"
	cmp "$TART_HOME/vms/src/disk.img" "$TART_HOME/vms/dst1/disk.img" && echo "  clone content identical"
	umount "$MNT"
	MNT=""
else
	echo "== reflink clone skipped: needs root and xfsprogs"
fi

echo "== tart list with 1,000 VMs"
export TART_HOME=$W/many
"$TART" create --linux --disk-size 1 vm0000
for i in $(seq 1 999); do
	cp -a "$TART_HOME/vms/vm0000" "$TART_HOME/vms/vm$(printf %04d "$i")"
done
"$TART" list -q | wc -l | sed 's/^/  VMs listed: /'
for fmt in text json; do
	best=""
	for i in 1 2 3 4 5; do
		t0=$(now); "$TART" list --format "$fmt" >/dev/null; t1=$(now)
		m=$(( (t1 - t0) / 1000 ))
		[ -z "$best" ] || [ "$m" -lt "$best" ] && best=$m
	done
	echo "  list --format $fmt: best of 5 $((best / 1000)) ms (target < 200 ms)"
done
