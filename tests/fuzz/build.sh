#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build the DHCP parser fuzzer with clang/libFuzzer. Usage: tests/fuzz/build.sh [OUTDIR]
# Run:  cp -r tests/fuzz/corpus-dhcp OUTDIR/corpus
#       OUTDIR/fuzz-dhcp -jobs=1 -max_total_time=600 -max_len=1518 OUTDIR/corpus
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../src
out=${1:-$here/../../build-fuzz}
mkdir -p "$out"
clang -g -O1 -std=gnu17 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I"$src" \
  "$here/fuzz-dhcp.c" "$src/net/dhcp.c" -o "$out/fuzz-dhcp"
echo "$out/fuzz-dhcp"
