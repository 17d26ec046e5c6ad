/**
 * The qd-read floor in Node, there without fio: random block-aligned reads of qdFloorReadBytes
 * from the store's zone files, opened with O_DIRECT, into aligned buffers. Depth 1 is
 * fs.readSync, each timed on its own; depth N keeps N fs.read calls in flight on libuv's thread
 * pool (the child runs with UV_THREADPOOL_SIZE = QD_THREADPOOL_SIZE).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { dist, r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import { rng } from '../../rng.js';
import { QUEUE_DEPTHS, type Sizes } from '../config.js';
import { MissingFeature } from '../kv.js';
import { type Measured, distMetrics } from '../result.js';
import { zoneFiles } from './zoneFiles.js';

/** O_DIRECT alignment of buffers, offsets and lengths (a page: at least any logical block size here). */
const DIRECT_ALIGN_BYTES = 4096;

/** A Buffer of `bytes` whose first byte sits on a DIRECT_ALIGN_BYTES boundary (koffi gives the address). */
function alignedBuffer(bytes: number): Buffer {
  const koffi = createRequire(import.meta.url)('koffi') as { address(b: Uint8Array): bigint };
  const raw = Buffer.allocUnsafeSlow(bytes + DIRECT_ALIGN_BYTES);
  const misalign = Number(koffi.address(raw) % BigInt(DIRECT_ALIGN_BYTES));
  const start = misalign === 0 ? 0 : DIRECT_ALIGN_BYTES - misalign;
  return raw.subarray(start, start + bytes);
}

export async function directReadFloor(storeDir: string, z: Sizes, seed: number): Promise<Measured> {
  const bs = z.qdFloorReadBytes;
  const files = zoneFiles(storeDir, bs);
  if (files.length === 0) throw new Error(`no zone file of ${bs} bytes or more under ${storeDir}/device`);
  let fds: number[];
  try {
    fds = files.map((f) => fs.openSync(f.file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
  } catch (err) {
    // The machine, not the floor: a filesystem without O_DIRECT (tmpfs) refuses the open.
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') throw new MissingFeature(`O_DIRECT: the filesystem under ${storeDir} refuses it`);
    throw err;
  }
  // Every aligned block of every file, equally likely (as fio's randread over the same files).
  const blocks = files.map((f) => Math.floor(f.bytes / bs));
  const cumulative = blocks.reduce<number[]>((acc, b) => [...acc, (acc[acc.length - 1] ?? 0) + b], []);
  const total = cumulative[cumulative.length - 1]!;
  const random = rng(seed);
  const pick = (): { fd: number; position: number } => {
    let b = Math.floor(random() * total);
    let f = 0;
    while (b >= cumulative[f]!) f++;
    if (f > 0) b -= cumulative[f - 1]!;
    return { fd: fds[f]!, position: b * bs };
  };
  const budgetMs = z.qdSecondsPerDepth * 1000;
  const metrics: Record<string, number> = {};
  try {
    gc();
    {
      const buf = alignedBuffer(bs);
      const samples = new Float64Array(1 << 21);
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs && n < samples.length) {
        const { fd, position } = pick();
        const a = performance.now();
        fs.readSync(fd, buf, 0, bs, position);
        samples[n++] = performance.now() - a;
      }
      const seconds = (performance.now() - t0) / 1000;
      metrics.qd1OpsPerSec = Math.round(n / seconds);
      metrics.qd1MBps = r3((n * bs) / 1e6 / seconds);
      Object.assign(metrics, distMetrics('qd1', dist(samples, n)));
    }
    for (const depth of QUEUE_DEPTHS) {
      if (depth === 1) continue;
      let reads = 0;
      const t0 = performance.now();
      const worker = (): Promise<void> =>
        new Promise((resolve, reject) => {
          const buf = alignedBuffer(bs);
          const step = (): void => {
            if (performance.now() - t0 >= budgetMs) return resolve();
            const { fd, position } = pick();
            fs.read(fd, buf, 0, bs, position, (err) => {
              if (err) return reject(err);
              reads++;
              step();
            });
          };
          step();
        });
      await Promise.all(Array.from({ length: depth }, worker));
      const seconds = (performance.now() - t0) / 1000;
      metrics[`qd${depth}OpsPerSec`] = Math.round(reads / seconds);
      metrics[`qd${depth}MBps`] = r3((reads * bs) / 1e6 / seconds);
    }
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
  return { metrics, detail: { files: files.length, readBytes: bs, threadpool: process.env.UV_THREADPOOL_SIZE ?? 'default (4)' } };
}
