#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Build the fuzzers with clang/libFuzzer. Usage: tests/fuzz/build.sh [OUTDIR]
# DHCP parser:  cp -r tests/fuzz/corpus-dhcp OUTDIR/corpus
#               OUTDIR/fuzz-dhcp -jobs=1 -max_total_time=600 -max_len=1518 OUTDIR/corpus
# Guest agent:  cp -r tests/fuzz/corpus-agent OUTDIR/corpus-agent
#               OUTDIR/fuzz-agent -max_total_time=600 OUTDIR/corpus-agent
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../src
out=${1:-$here/../../build-fuzz}
mkdir -p "$out"
CC=(clang -g -O1 -std=gnu17 -D_GNU_SOURCE -DTART_VERSION='"fuzz"' -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -I"$src")
"${CC[@]}" "$here/fuzz-dhcp.c" "$src/net/dhcp.c" -o "$out/fuzz-dhcp"
echo "$out/fuzz-dhcp"
# The agent: its session code with the generated protocol and the util pieces it uses.
mkdir -p "$out/agent"
protoc-c --proto_path="$src/agent" --c_out="$out/agent" "$src/agent/agent.proto"
guest=$here/../../guest
"${CC[@]}" -I"$guest" -I"$out" "$here/fuzz-agent.c" "$guest/session.c" "$guest/loop.c" \
  "$guest/exec.c" "$guest/resolve.c" "$src/agent/grpc.c" "$out/agent/agent.pb-c.c" \
  "$src/util/strbuf.c" "$src/util/alloc.c" "$src/util/log.c" "$src/util/strvec.c" "$src/util/parse.c" \
  -lnghttp2 -lprotobuf-c -o "$out/fuzz-agent"
echo "$out/fuzz-agent"
