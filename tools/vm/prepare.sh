#!/usr/bin/env bash
# Makes the test VM's kernel and initramfs, cached under .cache/vm/ (gitignored).
#
#   tools/vm/prepare.sh        # prints the paths as JSON on stdout
#
# First run: `apt-get download` of the versioned linux-image package that linux-image-amd64
# depends on, then vmlinux extraction and the initramfs. Later runs reuse the cache and need
# no network; the initramfs is rebuilt only when its inputs (init.sh, build.mjs, the module
# list, busybox) change. ZNS_VM_KERNEL_PKG pins another kernel package.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${ZNS_VM_CACHE:-$ROOT/.cache/vm}
BUSYBOX=${ZNS_VM_BUSYBOX:-/bin/busybox}
# Modules the guest needs; build.mjs adds their dependencies. The crc providers are soft
# dependencies of nvme-core's t10-pi, which .modinfo "depends" does not name.
MODULES=(crct10dif_generic crc64_rocksoft_generic virtio_pci 9pnet_virtio 9p configfs null_blk nvme)

log() { echo "prepare: $*" >&2; }

mkdir -p "$CACHE"
# Two runs at once (two checkouts sharing ZNS_VM_CACHE) take turns instead of racing.
exec 9> "$CACHE/.lock"
flock 9
# ldd fails on a static executable; a dynamic busybox would find no libc in the initramfs.
if [[ ! -x $BUSYBOX ]] || ldd "$BUSYBOX" > /dev/null 2>&1; then
  log "need a static busybox at $BUSYBOX (apt-get install busybox-static)"
  exit 1
fi

pkg=${ZNS_VM_KERNEL_PKG:-}
if [[ -z $pkg && -f $CACHE/kernel-pkg ]]; then pkg=$(<"$CACHE/kernel-pkg"); fi
if [[ -z $pkg ]]; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
  [[ -n $pkg ]] || { log "cannot find linux-image-amd64's kernel package (run apt-get update)"; exit 1; }
fi
kdir=$CACHE/$pkg
mkdir -p "$kdir"

deb=$(ls "$kdir"/*.deb 2>/dev/null | head -n1 || true)
if [[ -z $deb ]]; then
  log "downloading $pkg"
  (cd "$kdir" && apt-get download "$pkg" >&2)
  deb=$(ls "$kdir"/*.deb | head -n1)
fi
echo "$pkg" > "$CACHE/kernel-pkg"

key=$( { sha256sum "$ROOT/tools/vm/init.sh" "$ROOT/tools/vm/build.mjs" "$BUSYBOX" "$deb" | cut -d' ' -f1; echo "${MODULES[*]}"; } | sha256sum | cut -d' ' -f1)
if [[ ! -f $kdir/vmlinux || ! -f $kdir/initramfs.cpio || $(cat "$kdir/initramfs.key" 2>/dev/null) != "$key" ]]; then
  unpack=$(mktemp -d "$CACHE/unpack.XXXXXX")
  trap 'rm -rf "$unpack"' EXIT
  log "unpacking $(basename "$deb")"
  dpkg -x "$deb" "$unpack"
  if [[ ! -f $kdir/vmlinux ]]; then
    node "$ROOT/tools/vm/build.mjs" vmlinux "$(ls "$unpack"/boot/vmlinuz-*)" "$kdir/vmlinux" > /dev/null
  fi
  moddir=$(ls -d "$unpack"/lib/modules/*/kernel)
  node "$ROOT/tools/vm/build.mjs" initramfs "$moddir" "$BUSYBOX" "$ROOT/tools/vm/init.sh" "$kdir/initramfs.cpio" "${MODULES[@]}" > /dev/null
  echo "$key" > "$kdir/initramfs.key"
fi

printf '{"kernelPackage":"%s","vmlinux":"%s","initramfs":"%s"}\n' "$pkg" "$kdir/vmlinux" "$kdir/initramfs.cpio"
