#!/usr/bin/env bash
# Installs what mailrestore needs on Debian 12 (only what is missing) and
# builds it into build/. Used by scripts/demo.sh and scripts/test.sh.
#   scripts/setup.sh [extra cmake options...]
set -euo pipefail
cd "$(dirname "$0")/.."

need=(build-essential cmake pkg-config libarchive-dev liblz4-dev libxxhash-dev zlib1g-dev
      libcmocka-dev libssl-dev openssl libarchive-tools rsync zstd lz4 e2fsprogs python3 procps)
[ "${MR_WITH_CLANG:-0}" = 1 ] && need+=(clang)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

builddir=${MR_BUILD_DIR:-build}
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$builddir" -j"$(nproc)"
