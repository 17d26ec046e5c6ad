/**
 * The floor that is always there: a raw append log in Node, no engine. Each workload's version
 * does the least I/O that workload needs, with the same payload bytes:
 *
 *   bulk-*       fs.writeSync of each value, appended, then one fsync
 *   durable-100  the same with an fdatasync every durableEvery appends
 *   get          pread (fs.readSync into a fresh Buffer) of a random value of the flushed log
 *   mixed        those preads, and appends (an overwrite is an append and a new offset in a table)
 *   expiry       the log in segment files, one per expiryEpochObjects values: unlink the oldest
 *                segments and fsync the folder
 *   churn        a put is an append of its bytes; a free writes nothing; an fdatasync every flush
 */
import fs from 'node:fs';
import path from 'node:path';
import { diskUsage } from '../../../tools/diskUsage.js';
import { churnPayload } from '../../lib/payload.js';
import { dist, r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import { rng } from '../../rng.js';
import type { Sizes, WorkloadName } from '../config.js';
import { type Measured, distMetrics } from '../result.js';
import { sameBytes, valueOf } from '../values.js';
import { bulkMetrics, randomKeys } from '../workloads/common.js';

function writeAll(fd: number, value: Uint8Array): void {
  let done = 0;
  while (done < value.byteLength) done += fs.writeSync(fd, value, done, value.byteLength - done);
}

/** Appends keys [0, count) of `bytes` to a new log; returns its fd (open for reading too). */
function appendLog(file: string, count: number, bytes: number): number {
  const fd = fs.openSync(file, 'w+');
  for (let k = 0; k < count; k++) writeAll(fd, valueOf(k, bytes));
  return fd;
}

function bulk(dir: string, count: number, bytes: number): Measured {
  const file = path.join(dir, 'log.bin');
  gc();
  const t0 = performance.now();
  const fd = appendLog(file, count, bytes);
  const t1 = performance.now();
  fs.fsyncSync(fd);
  const t2 = performance.now();
  fs.closeSync(fd);
  return { metrics: bulkMetrics(count, bytes, t0, t1, t2, diskUsage(dir)) };
}

function durable(dir: string, z: Sizes): Measured {
  const fd = fs.openSync(path.join(dir, 'log.bin'), 'w');
  const batches = Math.ceil(z.durableCount / z.durableEvery);
  const commitMs = new Float64Array(batches);
  gc();
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const a = performance.now();
    for (let k = b * z.durableEvery; k < Math.min(z.durableCount, (b + 1) * z.durableEvery); k++) writeAll(fd, valueOf(k, z.durableBytes));
    fs.fdatasyncSync(fd);
    commitMs[b] = performance.now() - a;
  }
  const seconds = (performance.now() - t0) / 1000;
  fs.closeSync(fd);
  return {
    metrics: {
      opsPerSec: Math.round(z.durableCount / seconds),
      commitsPerSec: r3(batches / seconds),
      MBps: r3((z.durableCount * z.durableBytes) / 1e6 / seconds),
      seconds: r3(seconds),
      ...distMetrics('commit', dist(commitMs, batches)),
    },
  };
}

function pread(fd: number, bytes: number, position: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  fs.readSync(fd, out, 0, bytes, position);
  return out;
}

function gets(dir: string, z: Sizes, seed: number): Measured {
  const fd = appendLog(path.join(dir, 'log.bin'), z.readKeys, z.readBytes);
  fs.fsyncSync(fd);
  for (const k of randomKeys(seed ^ 0x77a2, z.readWarmupOps, z.readKeys)) pread(fd, z.readBytes, k * z.readBytes);
  const keys = randomKeys(seed, z.readOps, z.readKeys);
  const samples = new Float64Array(z.readOps);
  gc();
  const t0 = performance.now();
  for (let i = 0; i < z.readOps; i++) {
    const a = performance.now();
    pread(fd, z.readBytes, keys[i]! * z.readBytes);
    samples[i] = performance.now() - a;
  }
  const seconds = (performance.now() - t0) / 1000;
  let wrong = 0;
  const check = randomKeys(seed ^ 0x3333, z.verifySample, z.readKeys);
  for (const k of check) if (!sameBytes(pread(fd, z.readBytes, k * z.readBytes), valueOf(k, z.readBytes))) wrong++;
  fs.closeSync(fd);
  return { metrics: { opsPerSec: Math.round(z.readOps / seconds), seconds: r3(seconds), ...distMetrics('get', dist(samples, z.readOps)) }, verify: { checked: check.length, wrong } };
}

function mixed(dir: string, z: Sizes, seed: number): Measured {
  const fd = appendLog(path.join(dir, 'log.bin'), z.readKeys, z.readBytes);
  fs.fsyncSync(fd);
  const offsets = Float64Array.from({ length: z.readKeys }, (_, k) => k * z.readBytes);
  let end = z.readKeys * z.readBytes;
  const keys = randomKeys(seed, z.readOps, z.readKeys);
  const coin = rng(seed ^ 0x5eed);
  const isPut = Uint8Array.from({ length: z.readOps }, () => (coin() < z.mixedPutFraction ? 1 : 0));
  const gens = new Uint8Array(z.readKeys);
  const getMs = new Float64Array(z.readOps);
  const putMs = new Float64Array(z.readOps);
  let getsDone = 0;
  let puts = 0;
  gc();
  const t0 = performance.now();
  for (let i = 0; i < z.readOps; i++) {
    const k = keys[i]!;
    if (isPut[i] === 1) {
      const g = (gens[k] = (gens[k]! + 1) & 0xff);
      const v = valueOf(k, z.readBytes, g);
      const a = performance.now();
      fs.writeSync(fd, v, 0, v.byteLength, end);
      offsets[k] = end;
      end += v.byteLength;
      putMs[puts++] = performance.now() - a;
    } else {
      const a = performance.now();
      pread(fd, z.readBytes, offsets[k]!);
      getMs[getsDone++] = performance.now() - a;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  let wrong = 0;
  const check = randomKeys(seed ^ 0x4444, z.verifySample, z.readKeys);
  for (const k of check) if (!sameBytes(pread(fd, z.readBytes, offsets[k]!), valueOf(k, z.readBytes, gens[k]))) wrong++;
  fs.closeSync(fd);
  return {
    metrics: { opsPerSec: Math.round(z.readOps / seconds), seconds: r3(seconds), gets: getsDone, puts, ...distMetrics('get', dist(getMs, getsDone)), ...distMetrics('put', dist(putMs, puts)) },
    verify: { checked: check.length, wrong },
  };
}

function expiry(dir: string, z: Sizes): Measured {
  const segments = Math.ceil(z.expiryCount / z.expiryEpochObjects);
  const files: string[] = [];
  for (let s = 0; s < segments; s++) {
    const file = path.join(dir, `segment-${s}.bin`);
    const fd = fs.openSync(file, 'w');
    for (let k = s * z.expiryEpochObjects; k < Math.min(z.expiryCount, (s + 1) * z.expiryEpochObjects); k++) writeAll(fd, valueOf(k, z.expiryBytes));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    files.push(file);
  }
  const due = Math.floor(z.expiryOldest / z.expiryEpochObjects);
  const diskBefore = diskUsage(dir);
  gc();
  const t0 = performance.now();
  for (let s = 0; s < due; s++) fs.unlinkSync(files[s]!);
  const dirFd = fs.openSync(dir, 'r');
  fs.fsyncSync(dirFd);
  const expireMs = performance.now() - t0;
  fs.closeSync(dirFd);
  const diskAfter = diskUsage(dir);
  return {
    metrics: { expireMs: r3(expireMs), diskBeforeMB: r3(diskBefore / 1e6), diskAfterMB: r3(diskAfter / 1e6), diskReturnedMB: r3((diskBefore - diskAfter) / 1e6) },
    detail: { expire: `unlink of the ${due} oldest segment files (${z.expiryEpochObjects} values each), then fsync of the folder` },
  };
}

function churn(dir: string, z: Sizes, seed: number): Measured {
  const fd = fs.openSync(path.join(dir, 'log.bin'), 'w');
  const random = rng(seed);
  const { views, idWord } = churnPayload(seed ^ 0x5a5a5a5a, z.churnMaxBytes);
  const randomSize = () => z.churnMinBytes + Math.floor(random() * (z.churnMaxBytes - z.churnMinBytes + 1));
  for (let i = 0; i < z.churnLive; i++) {
    idWord[0] = i;
    writeAll(fd, views[randomSize()]!);
  }
  fs.fdatasyncSync(fd);
  const putMs = new Float64Array(z.churnCycles);
  const flushMs = new Float64Array(Math.ceil(z.churnCycles / z.churnFlushEvery) + 1);
  let flushes = 0;
  gc();
  const t0 = performance.now();
  for (let c = 0; c < z.churnCycles; c++) {
    random(); // the slot the engines free: drawn, so the sizes follow the same sequence
    const size = randomSize();
    idWord[0] = z.churnLive + c;
    const a = performance.now();
    writeAll(fd, views[size]!);
    putMs[c] = performance.now() - a;
    if ((c + 1) % z.churnFlushEvery === 0 || c + 1 === z.churnCycles) {
      const f = performance.now();
      fs.fdatasyncSync(fd);
      flushMs[flushes++] = performance.now() - f;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  fs.closeSync(fd);
  const flush = dist(flushMs, flushes);
  return {
    metrics: {
      cyclesPerSec: Math.round(z.churnCycles / seconds),
      seconds: r3(seconds),
      ...distMetrics('put', dist(putMs, z.churnCycles)),
      flushP50Ms: r3(flush.p50Us / 1000),
      flushMaxMs: r3(flush.maxUs / 1000),
      diskMB: r3(diskUsage(dir) / 1e6),
    },
    detail: { note: 'a put is an append; a free writes nothing; the log is never cleaned, so its disk only grows' },
  };
}

export function appendFloor(workload: WorkloadName, dir: string, z: Sizes, seed: number): Measured {
  switch (workload) {
    case 'bulk-1k':
      return bulk(dir, z.bulkSmallCount, z.bulkSmallBytes);
    case 'bulk-64k':
      return bulk(dir, z.bulkLargeCount, z.bulkLargeBytes);
    case 'durable-100':
      return durable(dir, z);
    case 'get':
      return gets(dir, z, seed);
    case 'mixed':
      return mixed(dir, z, seed);
    case 'expiry':
      return expiry(dir, z);
    case 'churn':
      return churn(dir, z, seed);
    case 'qd-read':
      throw new Error('the append-log floor has no qd-read version (fio and node-direct are its floors)');
  }
}
