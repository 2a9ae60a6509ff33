#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Idempotent: installs every Debian package the build, the tests and the demo need.
#   install-deps.sh            the build, `tart`, the demo and the test peers that need no GUI;
#                              plus qemu-system-gui (QEMU's GTK window of `tart run`) when this
#                              session has a display (DISPLAY or WAYLAND_DISPLAY)
#   install-deps.sh --desktop  qemu-system-gui in any case
#   install-deps.sh --tests    also what the window test needs: qemu-system-gui, a virtual X
#                              server, ImageMagick, OCR and a VNC client (`make test` and CI)
# So a headless server that builds and runs tart never installs a GUI stack.
set -euo pipefail
# QEMU and the UEFI firmware (whose variable template `create` copies) of the host architecture,
# and the other architecture's QEMU: the unit tests run both KVM-probe test guests under TCG
case "$(dpkg --print-architecture)" in
  arm64) ARCH_PKGS=(qemu-system-arm qemu-efi-aarch64 qemu-system-x86) ;;
  *) ARCH_PKGS=(qemu-system-x86 ovmf qemu-system-arm) ;;
esac
PKGS=(
  build-essential meson ninja-build pkg-config
  libcurl4-openssl-dev libssl-dev liblz4-dev libzstd-dev libjansson-dev libcmocka-dev
  libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
  libwebsockets-dev etcd-server etcd-client python3-requests python3-websocket libyaml-dev
  python3-pytest python3-yaml openssl
  python3-grpcio python3-protobuf protobuf-compiler python3-h2
  qemu-utils "${ARCH_PKGS[@]}"
  docker-registry skopeo apache2-utils
  debootstrap busybox-static cpio kmod gdisk dosfstools mtools e2fsprogs fdisk
  dropbear-bin openssh-client sshpass genisoimage
  iproute2 nftables xfsprogs socat curl lz4 zstd
  clang
  time
)
DESKTOP=0 TESTS=0
[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && DESKTOP=1
for a in "$@"; do
  case "$a" in
    --desktop) DESKTOP=1 ;;
    --tests) TESTS=1 ;;
    *) echo "usage: install-deps.sh [--desktop] [--tests]" >&2; exit 64 ;;
  esac
done
[ $DESKTOP = 1 ] && PKGS+=(qemu-system-gui)
# tests/integration/test_window.py: Xvfb, an Xlib client (find and close the window),
# ImageMagick's `import` (screenshots), tesseract (reads them), gvnccapture (a real VNC client)
[ $TESTS = 1 ] && PKGS+=(qemu-system-gui xvfb python3-xlib imagemagick tesseract-ocr
  tesseract-ocr-eng gvncviewer)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
