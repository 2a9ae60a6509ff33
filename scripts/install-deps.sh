#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Idempotent: installs every Debian package the build, the tests and the demo need.
set -euo pipefail
# QEMU and the UEFI firmware (whose variable template `create` copies) of the host architecture
case "$(dpkg --print-architecture)" in
  arm64) ARCH_PKGS=(qemu-system-arm qemu-efi-aarch64) ;;
  *) ARCH_PKGS=(qemu-system-x86 ovmf) ;;
esac
PKGS=(
  build-essential meson ninja-build pkg-config
  libcurl4-openssl-dev libssl-dev liblz4-dev libzstd-dev libjansson-dev libcmocka-dev
  libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
  python3-pytest
  python3-grpcio python3-protobuf protobuf-compiler python3-h2
  qemu-utils "${ARCH_PKGS[@]}"
  docker-registry skopeo apache2-utils
  debootstrap busybox-static cpio kmod gdisk dosfstools mtools e2fsprogs fdisk
  dropbear-bin openssh-client sshpass genisoimage
  iproute2 nftables xfsprogs socat curl lz4 zstd
  clang
  time
)
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
