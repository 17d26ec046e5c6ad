#!/bin/sh
# PID 1 of the test VM (busybox). Loads the modules, mounts the host's root read-only over
# virtio-9p, sets up /dev, /proc, /sys and a tmpfs /tmp inside it, chroots there and runs
# /tmp/vm-out/cmd.sh (written by tools/vm/run.sh into a read-write share), writes the
# command's exit code next to it and powers off. Output goes to the serial console, which
# run.sh streams to the host.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "[vm] $*" > /dev/console; }

# Dependencies come first in the list (tools/vm/build.mjs orders it).
while read -r mod; do
  [ -n "$mod" ] || continue
  case "$mod" in
    # null_blk devices are made through configfs (tools/nullblk.sh), so none at load.
    null_blk) args="nr_devices=0" ;;
    *) args="" ;;
  esac
  insmod "/lib/modules/$mod.ko" $args 2>/dev/null || say "insmod $mod failed (may be harmless)"
done < /etc/modules.load

# A large msize cuts 9p round trips; cache=loose is safe because the share is read-only.
P9="trans=virtio,version=9p2000.L,msize=512000"
if ! mount -t 9p -o "$P9,ro,cache=loose" hostroot /host; then
  say "cannot mount the host root over 9p"; poweroff -f
fi
# The guest gets its own /tmp, which hides the host's; folders the command needs from the
# host's /tmp (a checkout there, as CI may have) are listed by run.sh and bound back in.
mkdir -p /hosttmp
mount --bind /host/tmp /hosttmp
mount -t tmpfs -o mode=1777,size=75% tmpfs /host/tmp
mkdir -p /host/tmp/vm-out
if mount -t 9p -o "$P9" vmout /host/tmp/vm-out && [ -f /host/tmp/vm-out/binds ]; then
  while read -r p; do
    case "$p" in
      /tmp/?*) mkdir -p "/host$p" && mount --bind "/hosttmp${p#/tmp}" "/host$p" || say "cannot expose $p" ;;
    esac
  done < /host/tmp/vm-out/binds
fi
mount -t devtmpfs devtmpfs /host/dev
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t configfs configfs /host/sys/kernel/config 2>/dev/null
if [ ! -f /host/tmp/vm-out/cmd.sh ]; then
  say "cannot mount the output share"; poweroff -f
fi

# The NVMe namespace appears asynchronously after the driver binds; wait briefly for it.
i=0
while [ -e /sys/class/nvme/nvme0 ] && [ ! -b /dev/nvme0n1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
for dev in /sys/block/nvme*n*; do
  [ -e "$dev/queue/scheduler" ] && echo mq-deadline > "$dev/queue/scheduler"
done

say "booted in $(cut -d' ' -f1 /proc/uptime) s (guest uptime)"
chroot /host /bin/sh /tmp/vm-out/cmd.sh
rc=$?
say "command exited $rc at $(cut -d' ' -f1 /proc/uptime) s (guest uptime)"
echo "$rc" > /host/tmp/vm-out/rc
sync
umount /host/tmp/vm-out
poweroff -f
