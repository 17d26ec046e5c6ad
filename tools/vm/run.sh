#!/usr/bin/env bash
# Runs one command inside a QEMU VM (Debian's stock kernel, software emulation) that has
# zoned block devices: a null_blk zoned device made through configfs by tools/nullblk.sh
# when --nullblk is given, and emulated NVMe ZNS namespaces at /dev/nvme0n1 (64 MiB zones) and
# /dev/nvme0n2 (1 MiB zones, for the differential test).
# The host's root is the guest's root (read-only, virtio-9p), so the host's node,
# node_modules, libzbd and util-linux run inside; /tmp is a tmpfs.
#
#   tools/vm/run.sh [--timeout SEC] [--env NAME=VALUE]... [--cwd DIR] [--no-nvme] -- CMD [ARG]...
#
# The guest's console is streamed to stdout as it runs; the exit status is the command's.
# 124: the VM ran past --timeout (default 900 s) and was killed; 125: the VM stopped without
# reporting an exit code (kernel panic, init failure).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TIMEOUT=${ZNS_VM_TIMEOUT:-900}
MEM_MB=${ZNS_VM_MEM_MB:-4096}
SMP=${ZNS_VM_SMP:-2}
# NVMe ZNS geometry: 64 MiB zones with 48 MiB capacity (capacity < size, as on real ZNS SSDs).
NVME_BYTES=$((2 * 1024 * 1024 * 1024))
NVME_ZONE=64M
NVME_ZONE_CAP=48M
NVME_MAX_OPEN=14
NVME_MAX_ACTIVE=14
# A second, small namespace (/dev/nvme0n2) for the differential test (issue 14): 16 zones of
# 1 MiB with 768 KiB capacity, open 4 / active 6, so limits and capacity are reached quickly.
NVME2_BYTES=$((16 * 1024 * 1024))
NVME2_ZONE=1M
NVME2_ZONE_CAP=768K
NVME2_MAX_OPEN=4
NVME2_MAX_ACTIVE=6
# Grace after SIGTERM before SIGKILL, so a stuck QEMU cannot outlive the timeout by much.
KILL_GRACE_S=5

cwd=$PWD
nvme=1
envs=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --timeout) TIMEOUT=$2; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --cwd) cwd=$2; shift 2 ;;
    --no-nvme) nvme=0; shift ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "usage: run.sh [options] -- CMD [ARG]..." >&2; exit 2; }

paths=$("$ROOT/tools/vm/prepare.sh")
vmlinux=$(sed -E 's/.*"vmlinux":"([^"]*)".*/\1/' <<<"$paths")
initramfs=$(sed -E 's/.*"initramfs":"([^"]*)".*/\1/' <<<"$paths")

out=$(mktemp -d "${TMPDIR:-/tmp}/zns-vm.XXXXXX")
trap 'rm -rf "$out"' EXIT

# The command runs under the host's PATH, in the caller's folder, with the named variables.
{
  echo "export PATH=$(printf %q "$PATH") HOME=/tmp TMPDIR=/tmp"
  for e in "${envs[@]}"; do echo "export $(printf %q "$e")"; done
  echo "cd $(printf %q "$cwd") || exit 126"
  printf '%q ' "$@"; echo
} > "$out/cmd.sh"

# The guest's /tmp is its own tmpfs; host folders under /tmp that the command needs (the
# working folder, this checkout) are bound back in by init.sh.
for p in "$(realpath "$cwd")" "$ROOT"; do
  [[ $p == /tmp/* ]] && echo "$p"
done > "$out/binds" || true

qemu=(qemu-system-x86_64 -M q35 -accel tcg -cpu max -smp "$SMP" -m "$MEM_MB"
  -nodefaults -display none -vga none -no-reboot -serial stdio -monitor none
  -kernel "$vmlinux" -initrd "$initramfs"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$out,mount_tag=vmout,security_model=none")
if [[ $nvme == 1 ]]; then
  truncate -s "$NVME_BYTES" "$out/zns.img"
  truncate -s "$NVME2_BYTES" "$out/zns2.img"
  qemu+=(-drive "file=$out/zns.img,id=zns0,format=raw,if=none"
    -device "nvme,id=nvme0,serial=znsslab0"
    -device "nvme-ns,drive=zns0,bus=nvme0,nsid=1,logical_block_size=4096,physical_block_size=4096,zoned=true,zoned.zone_size=$NVME_ZONE,zoned.zone_capacity=$NVME_ZONE_CAP,zoned.max_open=$NVME_MAX_OPEN,zoned.max_active=$NVME_MAX_ACTIVE"
    -drive "file=$out/zns2.img,id=zns1,format=raw,if=none"
    -device "nvme-ns,drive=zns1,bus=nvme0,nsid=2,logical_block_size=4096,physical_block_size=4096,zoned=true,zoned.zone_size=$NVME2_ZONE,zoned.zone_capacity=$NVME2_ZONE_CAP,zoned.max_open=$NVME2_MAX_OPEN,zoned.max_active=$NVME2_MAX_ACTIVE")
fi

start=$(date +%s.%N)
set +e
# sed -u: line by line, so the console streams even when our stdout is a pipe (CI logs).
timeout --kill-after="$KILL_GRACE_S" "$TIMEOUT" "${qemu[@]}" < /dev/null | sed -u 's/\r$//'
status=${PIPESTATUS[0]}
set -e
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

if [[ $status == 124 || $status == 137 ]]; then
  echo "run.sh: the VM ran past ${TIMEOUT} s and was killed" >&2
  exit 124
fi
if [[ ! -f $out/rc ]]; then
  echo "run.sh: the VM stopped (qemu status $status) after ${elapsed} s without reporting an exit code" >&2
  exit 125
fi
rc=$(<"$out/rc")
echo "run.sh: guest command exited $rc; VM wall time ${elapsed} s" >&2
exit "$rc"
