/**
 * `npm run bench`: latency distributions of put, get and free on the emulated device, each
 * beside a baseline measured in the same run (this machine is shared and noisy, so only ratios
 * within one run mean much), and flush throughput beside the raw sequential write throughput
 * of the same filesystem.
 *
 * Methodology (the ZNS-Slab allocator's): every operation timed on its own (process.hrtime via tinybench),
 * full distribution reported (min/p50/p99/p999/max). JSON on stdout, a table on stderr.
 * Options: --quick (fewer iterations, for a smoke run), --out FILE (also write the JSON there).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Bench, hrtimeNow, type Task } from 'tinybench';
import { openStore, type Store } from '../engine/store.js';
import { rng } from './rng.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const OUT = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined;
const ITERATIONS = QUICK ? 5_000 : 50_000;
const FLUSH_ROUNDS = QUICK ? 2 : 5;
const FLUSH_BYTES = (QUICK ? 16 : 64) * 1024 * 1024;
const RAW_CHUNK = 256 * 1024;

function say(line: string): void {
  process.stderr.write(line + '\n');
}

interface Distribution {
  samples: number;
  minUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

function distribution(task: Task): Distribution {
  const r = task.result as unknown as { latency?: { samples?: number[]; min: number; p50?: number; p99?: number; p999?: number; max: number; mean: number }; error?: unknown };
  if (!r || r.error || !r.latency) throw new Error(`task ${task.name} failed: ${String(r?.error)}`);
  const us = (ms: number | undefined) => Number(((ms ?? NaN) * 1000).toFixed(3));
  const l = r.latency;
  return { samples: l.samples?.length ?? ITERATIONS, minUs: us(l.min), p50Us: us(l.p50), p99Us: us(l.p99), p999Us: us(l.p999), maxUs: us(l.max), meanUs: us(l.mean) };
}

function bench(): Bench {
  return new Bench({ time: 0, iterations: ITERATIONS, warmup: false, now: hrtimeNow, throws: true });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function latencySuite(store: Store, dir: string, size: number): Record<string, Distribution> {
  const payload = Buffer.alloc(size, 0x5a);
  const out: Record<string, Distribution> = {};

  // put vs copying the bytes into a Map (what an app does with no engine at all)
  {
    const b = bench();
    const map = new Map<number, Buffer>();
    let k = 0;
    b.add(`put ${size} B`, () => {
      store.put(payload);
    });
    b.add(`baseline: Map.set copy ${size} B`, () => {
      map.set(k++, Buffer.from(payload));
    });
    b.runSync();
    for (const t of b.tasks) out[t.name] = distribution(t);
  }

  // get from the device vs pread of the same bytes from a file on the same filesystem
  {
    const population = Array.from({ length: 20_000 }, () => store.put(payload));
    store.flush();
    const rawFile = path.join(dir, `raw-read-${size}.bin`);
    const stride = size + 8;
    fs.writeFileSync(rawFile, Buffer.alloc(stride * population.length, 1));
    const fd = fs.openSync(rawFile, 'r');
    const readBuf = Buffer.alloc(stride);
    const pick = rng(7);
    const b = bench();
    b.add(`get ${size} B (device)`, () => {
      store.get(population[Math.floor(pick() * population.length)]!);
    });
    b.add(`baseline: pread ${size} B`, () => {
      fs.readSync(fd, readBuf, 0, stride, Math.floor(pick() * population.length) * stride);
    });
    b.runSync();
    fs.closeSync(fd);
    for (const t of b.tasks) out[t.name] = distribution(t);
  }

  // get from memory (not yet flushed) vs Map.get
  {
    const population = Array.from({ length: 200 }, () => store.put(payload));
    const map = new Map(population.map((h, i) => [i, Buffer.from(payload)]));
    const pick = rng(11);
    const b = bench();
    b.add(`get ${size} B (memory)`, () => {
      store.get(population[Math.floor(pick() * population.length)]!);
    });
    b.add(`baseline: Map.get + copy ${size} B`, () => {
      Buffer.from(map.get(Math.floor(pick() * population.length))!);
    });
    b.runSync();
    for (const t of b.tasks) out[t.name] = distribution(t);
    store.flush();
  }

  // free vs Map.delete
  {
    // tinybench calls a task once more than its iteration count.
    const population = Array.from({ length: ITERATIONS + 16 }, () => store.put(payload));
    store.flush();
    const map = new Map(population.map((_, k) => [k, payload]));
    let i = 0;
    let j = 0;
    const b = bench();
    b.add(`free ${size} B`, () => {
      store.free(population[i++]!);
    });
    b.add('baseline: Map.delete', () => {
      map.delete(j++);
    });
    b.runSync();
    for (const t of b.tasks) out[t.name] = distribution(t);
  }
  return out;
}

function flushThroughput(dir: string): { storeMBps: number[]; rawMBps: number[]; writeAmplification: number } {
  const storeMBps: number[] = [];
  const rawMBps: number[] = [];
  let writeAmplification = 0;
  const object = Buffer.alloc(4000, 0x33);
  for (let round = 0; round < FLUSH_ROUNDS; round++) {
    // Store: put FLUSH_BYTES of 4000-byte objects, then flush: the time until it is all durable.
    const storeDir = path.join(dir, `flush-${round}`);
    const store = openStore(storeDir, { geometry: { zoneCount: 64, zoneSize: 64 * 1024 * 1024, zoneCapacity: 64 * 1024 * 1024 } });
    const before = store.statsGlobal().counters;
    const t0 = performance.now();
    for (let put = 0; put < FLUSH_BYTES; put += object.length) store.put(object);
    store.flush();
    const seconds = (performance.now() - t0) / 1000;
    const after = store.statsGlobal().counters;
    storeMBps.push(FLUSH_BYTES / 1e6 / seconds);
    writeAmplification = (after.deviceBytesWritten - before.deviceBytesWritten) / (after.userBytesPut - before.userBytesPut);
    store.close();
    fs.rmSync(storeDir, { recursive: true, force: true });

    // Raw: the same bytes written sequentially to one file, then fsync.
    const rawFile = path.join(dir, `raw-${round}.bin`);
    const chunk = Buffer.alloc(RAW_CHUNK, 0x33);
    const r0 = performance.now();
    const fd = fs.openSync(rawFile, 'w');
    for (let written = 0; written < FLUSH_BYTES; written += RAW_CHUNK) fs.writeSync(fd, chunk);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    rawMBps.push(FLUSH_BYTES / 1e6 / ((performance.now() - r0) / 1000));
    fs.rmSync(rawFile);
    say(`  flush round ${round + 1}/${FLUSH_ROUNDS}: store ${storeMBps.at(-1)!.toFixed(0)} MB/s, raw ${rawMBps.at(-1)!.toFixed(0)} MB/s`);
  }
  return { storeMBps, rawMBps, writeAmplification };
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-bench-'));
  try {
    say(`zns-slab bench: ${ITERATIONS} iterations per task, ${os.cpus().length} cpus, node ${process.version}, in ${dir}`);
    const store = openStore(path.join(dir, 'store'), { geometry: { zoneCount: 512, zoneSize: 16 * 1024 * 1024, zoneCapacity: 16 * 1024 * 1024 } });
    // Warm up: JIT, the size-class paths, the first zones.
    for (let i = 0; i < 20_000; i++) store.free(store.put(Buffer.alloc(i % 5000)));
    store.flush();
    const latency: Record<string, Distribution> = {};
    for (const size of [128, 4096]) {
      say(`latency, ${size}-byte objects`);
      Object.assign(latency, latencySuite(store, dir, size));
    }
    store.close();
    say('flush throughput');
    const flush = flushThroughput(dir);

    const ratios: Record<string, number> = {};
    for (const size of [128, 4096]) {
      ratios[`put ${size} B p50 / Map.set p50`] = latency[`put ${size} B`]!.p50Us / latency[`baseline: Map.set copy ${size} B`]!.p50Us;
      ratios[`get ${size} B (device) p50 / pread p50`] = latency[`get ${size} B (device)`]!.p50Us / latency[`baseline: pread ${size} B`]!.p50Us;
      ratios[`get ${size} B (memory) p50 / Map.get p50`] = latency[`get ${size} B (memory)`]!.p50Us / latency[`baseline: Map.get + copy ${size} B`]!.p50Us;
    }
    ratios['flush MB/s / raw sequential MB/s (medians)'] = median(flush.storeMBps) / median(flush.rawMBps);
    for (const k of Object.keys(ratios)) ratios[k] = Number(ratios[k]!.toFixed(2));

    const result = {
      machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, tmp: os.tmpdir() },
      iterations: ITERATIONS,
      latency,
      flush: {
        bytesPerRound: FLUSH_BYTES,
        storeMBps: flush.storeMBps.map((x) => Number(x.toFixed(1))),
        rawMBps: flush.rawMBps.map((x) => Number(x.toFixed(1))),
        storeMedianMBps: Number(median(flush.storeMBps).toFixed(1)),
        rawMedianMBps: Number(median(flush.rawMBps).toFixed(1)),
        writeAmplification: Number(flush.writeAmplification.toFixed(3)),
      },
      ratios,
    };
    say('');
    say(`${'task'.padEnd(34)} ${'min'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'p999'.padStart(8)} ${'max'.padStart(9)}  (µs)`);
    for (const [name, d] of Object.entries(latency)) {
      say(`${name.padEnd(34)} ${d.minUs.toFixed(2).padStart(8)} ${d.p50Us.toFixed(2).padStart(8)} ${d.p99Us.toFixed(2).padStart(8)} ${d.p999Us.toFixed(2).padStart(8)} ${d.maxUs.toFixed(1).padStart(9)}`);
    }
    say(`flush: store ${result.flush.storeMedianMBps} MB/s vs raw sequential ${result.flush.rawMedianMBps} MB/s (medians of ${FLUSH_ROUNDS}); write amplification ${result.flush.writeAmplification}`);
    for (const [k, v] of Object.entries(ratios)) say(`ratio ${k}: ${v}`);
    const json = JSON.stringify(result, null, 2) + '\n';
    process.stdout.write(json);
    if (OUT) fs.writeFileSync(OUT, json);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
