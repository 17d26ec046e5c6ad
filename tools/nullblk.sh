#!/usr/bin/env bash
# Creates or removes a zoned null_blk device on a Linux host with modules (run as root).
#
#   tools/nullblk.sh create [--name NAME] [--size-mb N] [--zone-mb N] [--zone-cap-mb N]
#                           [--max-open N] [--max-active N] [--block-size N] [--conv N]
#   tools/nullblk.sh create --modparams     # module parameters instead of configfs
#   tools/nullblk.sh remove [--name NAME]   # or: remove --modparams (rmmod null_blk)
#
# configfs (the default) can make devices of any geometry next to others, including a zone
# capacity below the zone size; the module-parameter way makes exactly one, at load time.
# Both are memory backed: the data lives in RAM, and a zone reset frees it.
# Prints {"device": "/dev/nullbN", ...} on stdout; messages on stderr.
set -euo pipefail

CONFIGFS=/sys/kernel/config
# The disk takes the configfs folder name on recent kernels (6.1 does), nullb<index> on old ones.
NAME=nullb0
SIZE_MB=2048
ZONE_MB=64
ZONE_CAP_MB=0   # 0: capacity = zone size
MAX_OPEN=14
MAX_ACTIVE=14
BLOCK_SIZE=4096
CONV=0
MODPARAMS=0
# udev may take a moment to make the node; we wait this long at most.
DEVICE_WAIT_TENTHS=50

log() { echo "nullblk: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $# -ge 1 ]] || die "usage: nullblk.sh create|remove [options]"
action=$1; shift
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=$2; shift 2 ;;
    --size-mb) SIZE_MB=$2; shift 2 ;;
    --zone-mb) ZONE_MB=$2; shift 2 ;;
    --zone-cap-mb) ZONE_CAP_MB=$2; shift 2 ;;
    --max-open) MAX_OPEN=$2; shift 2 ;;
    --max-active) MAX_ACTIVE=$2; shift 2 ;;
    --block-size) BLOCK_SIZE=$2; shift 2 ;;
    --conv) CONV=$2; shift 2 ;;
    --modparams) MODPARAMS=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
[[ $(id -u) == 0 ]] || die "must run as root"

wait_for_block() {
  local dev=$1 i=0
  while [[ ! -b $dev && $i -lt $DEVICE_WAIT_TENTHS ]]; do sleep 0.1; i=$((i + 1)); done
  [[ -b $dev ]] || die "$dev did not appear"
}

# Zoned devices need a scheduler that keeps writes to one zone in order (zone write locking).
set_scheduler() {
  local sched=/sys/block/$(basename "$1")/queue/scheduler
  if [[ -w $sched ]]; then echo mq-deadline > "$sched" || log "could not set mq-deadline on $1"; fi
}

report() {
  local dev=$1 b=/sys/block/$(basename "$1")/queue
  printf '{"device":"%s","zoned":"%s","zoneSectors":%s,"nrZones":%s,"maxOpenZones":%s,"maxActiveZones":%s,"logicalBlockSize":%s,"scheduler":"%s"}\n' \
    "$dev" "$(cat "$b/zoned")" "$(cat "$b/chunk_sectors")" "$(cat "$b/nr_zones")" \
    "$(cat "$b/max_open_zones")" "$(cat "$b/max_active_zones")" "$(cat "$b/logical_block_size")" \
    "$(sed -E 's/.*\[(.*)\].*/\1/' "$b/scheduler")"
}

create_modparams() {
  [[ ! -d /sys/module/null_blk ]] || die "null_blk is already loaded; remove it first (remove --modparams)"
  local params=(nr_devices=1 zoned=1 zone_size="$ZONE_MB" zone_nr_conv="$CONV" memory_backed=1
    gb=$((SIZE_MB / 1024)) bs="$BLOCK_SIZE" zone_max_open="$MAX_OPEN" zone_max_active="$MAX_ACTIVE")
  [[ $ZONE_CAP_MB == 0 ]] || params+=(zone_capacity="$ZONE_CAP_MB")
  (( SIZE_MB % 1024 == 0 )) || die "--modparams sizes devices in whole GiB (gb=); --size-mb must be a multiple of 1024"
  modprobe null_blk "${params[@]}"
  wait_for_block /dev/nullb0
  set_scheduler /dev/nullb0
  report /dev/nullb0
}

create_configfs() {
  if [[ ! -d /sys/module/null_blk ]]; then
    modprobe null_blk nr_devices=0 || die "cannot load null_blk (no modules on this kernel? see docs/DEVICES.md for the VM)"
  fi
  if [[ ! -d $CONFIGFS/nullb ]]; then
    mountpoint -q "$CONFIGFS" || mount -t configfs configfs "$CONFIGFS"
  fi
  [[ -d $CONFIGFS/nullb ]] || die "null_blk has no configfs interface here"
  local d=$CONFIGFS/nullb/$NAME
  [[ ! -e $d ]] || die "$d exists; remove it first"
  mkdir "$d"
  echo "$SIZE_MB" > "$d/size"
  echo "$BLOCK_SIZE" > "$d/blocksize"
  echo 1 > "$d/memory_backed"
  echo 1 > "$d/zoned"
  echo "$ZONE_MB" > "$d/zone_size"
  [[ $ZONE_CAP_MB == 0 ]] || echo "$ZONE_CAP_MB" > "$d/zone_capacity"
  echo "$CONV" > "$d/zone_nr_conv"
  echo "$MAX_OPEN" > "$d/zone_max_open"
  echo "$MAX_ACTIVE" > "$d/zone_max_active"
  echo 1 > "$d/power"
  local dev=/dev/$NAME
  [[ -e /sys/block/$NAME ]] || dev=/dev/nullb$(cat "$d/index")
  wait_for_block "$dev"
  set_scheduler "$dev"
  report "$dev"
}

remove() {
  if [[ $MODPARAMS == 1 ]]; then
    rmmod null_blk
  else
    local d=$CONFIGFS/nullb/$NAME
    [[ -d $d ]] || die "no null_blk device $NAME in configfs"
    echo 0 > "$d/power"
    rmdir "$d"
  fi
  echo '{"removed":true}'
}

case $action in
  create) if [[ $MODPARAMS == 1 ]]; then create_modparams; else create_configfs; fi ;;
  remove) remove ;;
  *) die "unknown action $action (create or remove)" ;;
esac
