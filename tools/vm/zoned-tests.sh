#!/usr/bin/env bash
# Runs inside the test VM (tools/vm/run.sh): makes the null_blk zoned device, then runs the
# zoned-device tests against it and the NVMe ZNS namespace. Extra arguments go to vitest.
set -euo pipefail
# The differential test (test/zns/differential.device.test.ts) runs ZNS_DIFF_SEEDS seeds x 200
# ops per device (200, issue 14's count) plus a fresh seed it prints. Under software emulation
# that takes minutes, so it runs beside the other tests (its own devices, the second vCPU).
# nullb0: the usual setup (capacity = size, open limit = active limit, as with modprobe).
bash tools/nullblk.sh create --name nullb0 >&2
# nullb1: capacity < size and an open limit below the active limit, so the implicit-close and
# open-limit rules are exercised on the kernel too (with equal limits the active one trips first).
bash tools/nullblk.sh create --name nullb1 --size-mb 1024 --zone-cap-mb 48 --max-open 6 --max-active 10 >&2
# nullb2: the differential test's (issue 14): 16 x 1 MiB zones, open 4 / active 6, as in the issue.
bash tools/nullblk.sh create --name nullb2 --size-mb 16 --zone-mb 1 --max-open 4 --max-active 6 >&2
devices=/dev/nullb0,/dev/nullb1
if [[ -b /dev/nvme0n1 && $(cat /sys/block/nvme0n1/queue/zoned) == host-managed ]]; then
  devices+=,/dev/nvme0n1
else
  echo "zoned-tests: no NVMe ZNS namespace in this VM" >&2
  exit 1
fi
# The second namespace appears with the first, or just after it.
i=0
while [[ ! -b /dev/nvme0n2 && $i -lt 50 ]]; do sleep 0.1; i=$((i + 1)); done
[[ -b /dev/nvme0n2 ]] || { echo "zoned-tests: no /dev/nvme0n2 (the differential test's namespace) in this VM" >&2; exit 1; }
start=$(cut -d' ' -f1 /proc/uptime)
set +e
# --configLoader runner: vite's default loader writes a bundled config into node_modules,
# which is read-only here. Piped through cat so vitest sees no TTY and prints plain lines.
NO_COLOR=1 ZNS_TEST_DIFF=/dev/nullb2=null_blk,/dev/nvme0n2=nvme ZNS_DIFF_SEEDS=${ZNS_DIFF_SEEDS:-200} node_modules/.bin/vitest run --configLoader runner \
  --reporter=default --reporter=json --outputFile=/tmp/zoned-diff.json test/zns/differential.device.test.ts >/tmp/zoned-diff.log 2>&1 &
diff_pid=$!
NO_COLOR=1 ZNS_TEST_DEVICES=$devices node_modules/.bin/vitest run --configLoader runner --no-file-parallelism \
  --reporter=default --reporter=json --outputFile=/tmp/zoned-tests.json \
  test/zns/libzbd.test.ts test/engine/device.store.test.ts test/tools/zoneVerbs.device.test.ts test/engine/observe.device.test.ts test/engine/sealFailure.device.test.ts "$@" 2>&1 | cat
rc=$?
echo "zoned-tests: the differential test (started beside the others):" >&2
wait "$diff_pid"
diff_rc=$?
cat /tmp/zoned-diff.log
[[ $rc -eq 0 ]] && rc=$diff_rc
# A plain totals line for the host's CI summary (both runs).
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  for (const f of ["/tmp/zoned-tests.json", "/tmp/zoned-diff.json"]) {
    try { const r = JSON.parse(fs.readFileSync(f, "utf8")); passed += r.numPassedTests; failed += r.numFailedTests; }
    catch { console.log(`zoned tests: no results in ${f}`); failed++; }
  }
  console.log(`zoned tests: ${passed} passed, ${failed} failed`);' || true
set -e
end=$(cut -d' ' -f1 /proc/uptime)
echo "zoned-tests: vitest exited $rc after $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s on $devices and the differential devices" >&2
exit $rc
