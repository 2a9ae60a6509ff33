#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: the main job on a built-in default, in a scratch TART_HOME that is removed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TART=${TART_BIN:-$ROOT/build/tart}
export TART_HOME=$(mktemp -d /tmp/tart-demo.XXXXXX)
export TART_ACCEL=${TART_ACCEL:-tcg}
trap 'rm -rf "$TART_HOME"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "demo TART_HOME=$TART_HOME"
step "$TART" create --linux --disk-size 20 debian
step "$TART" clone debian ubuntu
step "$TART" set ubuntu --cpu 2 --memory 2048 --display 1280x800
step "$TART" list
step "$TART" list --format json
step "$TART" get ubuntu
step "$TART" rename ubuntu noble
step "$TART" list --source local --quiet
step "$TART" delete debian noble
step "$TART" list --quiet
echo "demo finished"
