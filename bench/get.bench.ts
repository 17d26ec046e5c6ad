/**
 * `npm run bench:get`: the read paths, each beside a baseline measured in the same run (this
 * machine is shared and noisy: only ratios within one run mean much).
 *
 * - memory: `get` and `getInto` of objects in an open slab, against `Map.get` + a copy (the
 *   least an app with no engine does), 128 B and 4 KiB;
 * - page cache: `get` and `getInto` of flushed objects on a buffered store (the zone files in
 *   the page cache), against a raw `pread` of the same slot bytes;
 * - queue depth: `getMany` at depth 1, 16 and 64 against a loop of sync `get`s, on a direct
 *   (O_DIRECT) store, where every read goes to the disk, and on a buffered one; each in three
 *   child processes: libuv's defaults (a pool of 4 threads), UV_THREADPOOL_SIZE=64, and
 *   UV_USE_IO_URING=1 (libuv 1.46 in Node 20 can do fs reads through io_uring; Node turns it
 *   off unless this is set when the process starts).
 *
 * Timing: sub-microsecond operations are timed in batches (hrtime costs about as much as a
 * `Map.get`); p50 and p99 are over the batches' per-operation means, tasks interleaved round by
 * round so they share the machine's noise. JSON on stdout, a table on stderr.
 * Options: --quick (smaller, for a smoke run), --out FILE (also write the JSON there),
 * --part memory|pagecache (only that part).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRC32_IMPLEMENTATION } from '../engine/crc32.js';
import { openStore, type Store } from '../engine/store.js';
import { rng } from './rng.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const OUT = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined;
const PART = args.includes('--part') ? args[args.indexOf('--part') + 1] : undefined;
const ROUNDS = QUICK ? 4 : 12;

function say(line: string): void {
  process.stderr.write(line + '\n');
}

interface Stat {
  /** Nanoseconds per operation (the batch means' percentiles). */
  p50Ns: number;
  p99Ns: number;
  batches: number;
  opsPerBatch: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function stat(samples: number[], opsPerBatch: number): Stat {
  const s = [...samples].sort((a, b) => a - b);
  return { p50Ns: Math.round(percentile(s, 0.5)), p99Ns: Math.round(percentile(s, 0.99)), batches: s.length, opsPerBatch };
}

/** Sync tasks run in interleaved rounds: each round, every task runs `batches` batches of `per` operations. */
function interleaved(tasks: Record<string, (i: number) => void>, per: number, batches: number): Record<string, Stat> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(tasks)) samples[name] = [];
  let i = 0;
  // Warm-up: every task's code optimised before anything counts.
  for (const fn of Object.values(tasks)) for (let k = 0; k < 20_000; k++) fn(k);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, fn] of Object.entries(tasks)) {
      for (let b = 0; b < batches; b++) {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < per; k++) fn(i++);
        samples[name]!.push(Number(process.hrtime.bigint() - t0) / per);
      }
    }
  }
  const out: Record<string, Stat> = {};
  for (const [name, s] of Object.entries(samples)) out[name] = stat(s, per);
  return out;
}

function tmpStore(options: { direct?: boolean } = {}): { store: Store; dir: string; reopen(): Store; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-bench-get-'));
  const storeDir = path.join(dir, 'store');
  const handle = {
    store: openStore(storeDir, { ...options, gc: false }),
    dir: storeDir,
    reopen() {
      handle.store.close();
      handle.store = openStore(storeDir, { ...options, gc: false });
      return handle.store;
    },
    cleanup() {
      try {
        handle.store.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return handle;
}

/** Random order over `n` things, drawn once (the loops index it). */
function order(n: number, length: number, seed: number): Uint32Array {
  const pick = rng(seed);
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(pick() * n);
  return out;
}

function memoryPart(): Record<string, Stat> {
  const out: Record<string, Stat> = {};
  const t = tmpStore();
  try {
    for (const size of [128, 4096]) {
      const payload = Buffer.alloc(size, 0x5a);
      // Fewer objects than a slab of the class holds: all in its open slab, in memory.
      const count = size === 128 ? 200 : 50;
      const handles = Array.from({ length: count }, () => t.store.put(payload));
      const map = new Map(handles.map((h) => [h, Buffer.from(payload)]));
      const target = Buffer.alloc(size);
      const idx = order(count, 1 << 16, size);
      const store = t.store;
      const h = (i: number) => handles[idx[i & 0xffff]!]!;
      const r = interleaved(
        {
          [`get ${size} B (memory)`]: (i) => store.get(h(i)),
          [`baseline: Map.get + copy ${size} B`]: (i) => Buffer.from(map.get(h(i))!),
          [`getInto ${size} B (memory)`]: (i) => store.getInto(h(i), target),
          [`baseline: Map.get + copy into a buffer ${size} B`]: (i) => map.get(h(i))!.copy(target),
        },
        100,
        QUICK ? 10 : 25,
      );
      Object.assign(out, r);
    }
  } finally {
    t.cleanup();
  }
  return out;
}

function pageCachePart(): Record<string, Stat> {
  const out: Record<string, Stat> = {};
  const t = tmpStore();
  try {
    for (const size of [128, 4096]) {
      const payload = Buffer.alloc(size, 0x3c);
      const count = 20_000;
      const handles = Array.from({ length: count }, () => t.store.put(payload));
      t.reopen(); // every slab sealed and out of memory: reads go to the zone files
      const store = t.store;
      // The raw baseline: the same number of bytes (a slot) pread from a zone file.
      const zone = store.statsZones().find((z) => z.epoch !== null && z.writePointer > z.start)!;
      const fd = fs.openSync(path.join(store.path, 'device', `zone-${String(zone.index).padStart(7, '0')}.bin`), 'r');
      const stride = size + 8;
      const span = Math.floor((zone.writePointer - zone.start) / stride) - 1;
      const raw = Buffer.alloc(stride);
      const target = Buffer.alloc(size);
      const idx = order(count, 1 << 16, size + 1);
      const h = (i: number) => handles[idx[i & 0xffff]!]!;
      for (const handle of handles) store.get(handle); // the page cache holds them all
      try {
        Object.assign(
          out,
          interleaved(
            {
              [`get ${size} B (page cache)`]: (i) => store.get(h(i)),
              [`getInto ${size} B (page cache)`]: (i) => store.getInto(h(i), target),
              [`baseline: pread ${stride} B (page cache)`]: (i) => fs.readSync(fd, raw, 0, stride, (idx[i & 0xffff]! % span) * stride),
            },
            10,
            QUICK ? 20 : 60,
          ),
        );
      } finally {
        fs.closeSync(fd);
      }
    }
  } finally {
    t.cleanup();
  }
  return out;
}

interface QueueResult {
  /** Per object, over batches of BATCH handles. */
  [task: string]: Stat & { objectsPerSecond: number };
}

const QUEUE_BATCH = 256;

/** getMany at several depths against sync gets, on a direct store and on a buffered one. */
async function queuePart(): Promise<QueueResult> {
  const out: QueueResult = {};
  for (const direct of [true, false]) {
    const mode = direct ? 'direct' : 'buffered';
    const t = tmpStore({ direct });
    try {
      const size = 4096;
      const count = QUICK ? 5_000 : 20_000;
      const payload = Buffer.alloc(size, 0x11);
      const handles = Array.from({ length: count }, () => t.store.put(payload));
      const store = t.reopen();
      if (!direct) for (const handle of handles) store.get(handle);
      const batches = QUICK ? 8 : 30;
      const idx = order(count, batches * QUEUE_BATCH * ROUNDS * 4, 99);
      let cursor = 0;
      const nextBatch = () => {
        const b: bigint[] = [];
        for (let k = 0; k < QUEUE_BATCH; k++) b.push(handles[idx[cursor++ % idx.length]!]!);
        return b;
      };
      const tasks: Record<string, (b: bigint[]) => Promise<void> | void> = {
        [`get loop 4 KiB (${mode})`]: (b) => {
          for (const handle of b) store.get(handle);
        },
      };
      for (const depth of [1, 16, 64]) {
        tasks[`getMany 4 KiB depth ${depth} (${mode})`] = async (b) => {
          await store.getMany(b, { queueDepth: depth });
        };
      }
      const samples: Record<string, number[]> = {};
      for (const name of Object.keys(tasks)) samples[name] = [];
      for (const fn of Object.values(tasks)) await fn(nextBatch()); // warm-up
      for (let round = 0; round < Math.max(2, ROUNDS / 4); round++) {
        for (const [name, fn] of Object.entries(tasks)) {
          for (let k = 0; k < batches; k++) {
            const b = nextBatch();
            const t0 = process.hrtime.bigint();
            await fn(b);
            samples[name]!.push(Number(process.hrtime.bigint() - t0) / QUEUE_BATCH);
          }
        }
      }
      for (const [name, s] of Object.entries(samples)) {
        const st = stat(s, QUEUE_BATCH);
        const mean = s.reduce((a, b) => a + b, 0) / s.length;
        out[name] = { ...st, objectsPerSecond: Math.round(1e9 / mean) };
      }
    } finally {
      t.cleanup();
    }
  }
  return out;
}

/** Runs the queue part in a child with `env` added, and returns its JSON. */
function queueChild(env: Record<string, string>): QueueResult {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--part', 'queue', ...(QUICK ? ['--quick'] : [])], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`queue part with ${JSON.stringify(env)} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as QueueResult;
}

function table(results: Record<string, Stat & { objectsPerSecond?: number }>): void {
  say('| task | p50 (ns/op) | p99 (ns/op) | objects/s |');
  say('|---|---:|---:|---:|');
  for (const [name, s] of Object.entries(results)) say(`| ${name} | ${s.p50Ns} | ${s.p99Ns} | ${s.objectsPerSecond ?? ''} |`);
}

async function main(): Promise<void> {
  if (PART === 'queue') {
    process.stdout.write(JSON.stringify(await queuePart()));
    return;
  }
  if (PART === 'memory' || PART === 'pagecache') {
    // One part alone, a table on stderr (for a quick look while changing a read path).
    const part = PART === 'memory' ? memoryPart() : pageCachePart();
    table(part);
    process.stdout.write(JSON.stringify(part, null, 2) + '\n');
    return;
  }
  const started = Date.now();
  say(`bench:get on ${os.cpus().length} CPUs, Node ${process.version}, ${os.tmpdir()}, crc32 by ${CRC32_IMPLEMENTATION}, load average ${os.loadavg()[0]!.toFixed(2)}${QUICK ? ' (quick)' : ''}`);
  const memory = memoryPart();
  table(memory);
  const pageCache = pageCachePart();
  table(pageCache);
  const queue: Record<string, QueueResult> = {};
  for (const [name, env] of [
    ['libuv defaults (4 pool threads)', {}],
    ['UV_THREADPOOL_SIZE=64', { UV_THREADPOOL_SIZE: '64' }],
    ['UV_USE_IO_URING=1', { UV_USE_IO_URING: '1' }],
  ] as const) {
    say(`queue depth, ${name}:`);
    queue[name] = queueChild(env);
    table(queue[name]!);
  }
  const r = (a: string, b: string, from: Record<string, Stat>) => Number((from[a]!.p50Ns / from[b]!.p50Ns).toFixed(2));
  const ratios: Record<string, number> = {
    'get 128 B memory / Map.get + copy': r('get 128 B (memory)', 'baseline: Map.get + copy 128 B', memory),
    'get 4 KiB memory / Map.get + copy': r('get 4096 B (memory)', 'baseline: Map.get + copy 4096 B', memory),
    'getInto 128 B memory / Map.get + copy into': r('getInto 128 B (memory)', 'baseline: Map.get + copy into a buffer 128 B', memory),
    'getInto 4 KiB memory / Map.get + copy into': r('getInto 4096 B (memory)', 'baseline: Map.get + copy into a buffer 4096 B', memory),
    'get 128 B page cache / pread': r('get 128 B (page cache)', 'baseline: pread 136 B (page cache)', pageCache),
    'get 4 KiB page cache / pread': r('get 4096 B (page cache)', 'baseline: pread 4104 B (page cache)', pageCache),
  };
  for (const [name, q] of Object.entries(queue)) {
    for (const mode of ['direct', 'buffered']) {
      const loop = q[`get loop 4 KiB (${mode})`]!.objectsPerSecond;
      for (const depth of [1, 16, 64]) ratios[`${name}: getMany depth ${depth} / get loop, objects/s (${mode})`] = Number((q[`getMany 4 KiB depth ${depth} (${mode})`]!.objectsPerSecond / loop).toFixed(2));
    }
  }
  say('ratios (p50 over p50; for getMany, objects/s over the sync loop\'s):');
  for (const [name, v] of Object.entries(ratios)) say(`  ${name}: ${v}`);
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    tmpdir: os.tmpdir(),
    crc32: CRC32_IMPLEMENTATION,
    loadAverageAtStart: os.loadavg()[0],
    quick: QUICK,
    seconds: Math.round((Date.now() - started) / 1000),
    memory,
    pageCache,
    queue,
    ratios,
  };
  const json = JSON.stringify(result, null, 2) + '\n';
  process.stdout.write(json);
  if (OUT !== undefined) fs.writeFileSync(OUT, json);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:get failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
