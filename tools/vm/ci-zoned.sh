#!/usr/bin/env bash
# CI entry point for the zoned-device tests: installs what a fresh Debian machine lacks, then
# runs `npm run test:zoned` (a QEMU VM with null_blk and NVMe ZNS devices). Exit status is the
# tests'. Idempotent: apt is touched only for missing packages, and the kernel and initramfs
# are cached in ZNS_VM_CACHE (default ~/.cache/zns-slab/vm, outside the clone, so that CI's
# fresh clones on the same machine reuse it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export ZNS_VM_CACHE=${ZNS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zns-slab/vm}
# qemu + firmware, the guest's busybox, libzbd for the binding, blkzone and xz for the tools.
PACKAGES=(qemu-system-x86 busybox-static libzbd2 zbd-utils util-linux xz-utils)

log() { echo "ci-zoned: $*" >&2; }
t0=$(date +%s)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
need_update=0
[[ ${#missing[@]} -eq 0 ]] || need_update=1
# prepare.sh asks apt which kernel linux-image-amd64 means, unless one is cached.
[[ -f $ZNS_VM_CACHE/kernel-pkg ]] || need_update=1
if [[ $need_update == 1 ]]; then
  SUDO=""
  [[ $(id -u) == 0 ]] || SUDO=sudo
  log "apt-get update${missing:+; installing ${missing[*]}}"
  $SUDO apt-get update -qq >&2
  if [[ ${#missing[@]} -gt 0 ]]; then
    # No recommends: qemu's GUI and audio stacks are not needed for a headless VM.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi

[[ -d node_modules ]] || npm ci >&2
# The zone tool's device tests run dist/tools/cli.js (the VM sees this checkout read-only).
[[ ${ZNS_CI_BUILT:-} == 1 ]] || npm run build >&2   # .ci/run has built already
bash tools/vm/prepare.sh > /dev/null
log "ready in $(( $(date +%s) - t0 )) s"
npm run test:zoned
