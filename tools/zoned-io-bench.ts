/**
 * Measures LibzbdDevice's two I/O paths (libc pread/pwrite through koffi, and node's fs on the
 * same O_DIRECT fd) on a real zoned device. RESETS EVERY ZONE of the device.
 *
 *   node dist/tools/zoned-io-bench.js /dev/nullb0 [--ops N]
 *
 * For each path and block size: N appends at the write pointer, then N reads of the same
 * blocks; microseconds per operation. JSON on stdout, a table on stderr.
 */
import { performance } from 'node:perf_hooks';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type LibzbdIoPath, openLibzbdDevice } from '../zns/libzbd.js';

const BLOCK_SIZES = [4096, 65536, 1 << 20];
const DEFAULT_OPS = 256;
const PATHS: LibzbdIoPath[] = ['koffi', 'fs'];

interface Row {
  io: LibzbdIoPath;
  blockBytes: number;
  ops: number;
  writeMicrosPerOp: number;
  readMicrosPerOp: number;
  writeMBps: number;
  readMBps: number;
}

function main(): void {
  const args = process.argv.slice(2);
  const device = args[0];
  const opsAt = args.indexOf('--ops');
  const ops = opsAt >= 0 ? Number(args[opsAt + 1]) : DEFAULT_OPS;
  if (!device || !Number.isSafeInteger(ops) || ops <= 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'usage: zoned-io-bench <device> [--ops N]');
  }
  const rows: Row[] = [];
  for (const blockBytes of BLOCK_SIZES) {
    for (const io of PATHS) {
      const dev = openLibzbdDevice(device, { io });
      try {
        dev.resetAllZones();
        const { zoneSize, zoneCapacity, zoneCount } = dev.geometry;
        const n = Math.min(ops, Math.floor((zoneCapacity * (zoneCount - 1)) / blockBytes));
        const perZone = Math.floor(zoneCapacity / blockBytes);
        const at = (i: number) => Math.floor(i / perZone) * zoneSize + (i % perZone) * blockBytes;
        const data = Buffer.alloc(blockBytes, 0xab);
        // One untimed operation warms the bounce buffer and the JIT.
        dev.write(at(0), data);
        let t = performance.now();
        for (let i = 1; i <= n; i++) dev.write(at(i), data);
        const writeMs = performance.now() - t;
        t = performance.now();
        for (let i = 1; i <= n; i++) dev.read(at(i), blockBytes);
        const readMs = performance.now() - t;
        rows.push({
          io,
          blockBytes,
          ops: n,
          writeMicrosPerOp: Math.round((writeMs * 1000) / n),
          readMicrosPerOp: Math.round((readMs * 1000) / n),
          writeMBps: Math.round((n * blockBytes) / 1048.576 / writeMs),
          readMBps: Math.round((n * blockBytes) / 1048.576 / readMs),
        });
        dev.resetAllZones();
      } finally {
        dev.close();
      }
    }
  }
  for (const r of rows) {
    process.stderr.write(
      `${r.io.padEnd(5)} ${String(r.blockBytes).padStart(8)} B x ${r.ops}: write ${r.writeMicrosPerOp} us/op (${r.writeMBps} MB/s), read ${r.readMicrosPerOp} us/op (${r.readMBps} MB/s)\n`,
    );
  }
  process.stdout.write(JSON.stringify({ device, rows }) + '\n');
}

main();
