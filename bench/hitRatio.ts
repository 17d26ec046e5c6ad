/**
 * `npm run bench:hit -- [--quick] [--keys N] [--requests N] [--capacity F] [--seed N]
 *                        [--value-bytes N] [--workloads a,b] [--flush-every N] [--lru-only]`
 *
 * Hit ratio of the zns-slab cache (`openCache`, epoch FIFO with reinsertion, and with
 * `reinsertion: false`) against an exact LRU of the same byte capacity (lru-cache, size = key
 * bytes + value bytes), on the seeded workloads of bench/workloads.ts: Zipf 0.7 / 0.9 / 1.1 and a
 * hot set mixed with one-time scans. Look-aside pattern: get; on a miss, set. Every cache sees
 * the identical request stream. Capacity is `--capacity` (default 0.15) of the stream's working
 * set bytes (every distinct key's key + value bytes); the zns cache gets it as `maxBytes`
 * (device bytes), so it holds somewhat fewer entries than the LRU (slot headers, size classes).
 *
 * The zns cache is never flushed unless `--flush-every N` (a flush() every N requests): its
 * writeAmplification counts bytes written to the device, so without flushes it leaves out
 * entries that lived and were evicted in open (in-memory) slabs.
 *
 * JSON (one object) on stdout; the table and progress on stderr. Exit 1 if a zns cache returned
 * another key's value, or if `openCache` is missing (unless `--lru-only`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { runAsMain } from '../sim/main.js';
import { type ValueSizes, type Workload, scanWorkload, workingSet, zipfWorkload } from './workloads.js';

// ----- the cache API this bench needs (structural: the real openCache must be assignable) ---

interface ZnsCacheStats {
  hits: number;
  misses: number;
  hitRatio: number | null;
  reinsertions: { entries: number; bytes: number };
  evictions: { entries: number; bytes: number; epochs: number };
  userBytes: number;
  deviceBytes: number;
  /** null before any write. */
  writeAmplification: number | null;
}

interface ZnsCacheLike {
  get(key: string): unknown;
  set(key: string, value: unknown): unknown;
  stats(): ZnsCacheStats;
  flush(): void;
  close(): void;
}

type OpenCacheFn = (dir: string, options: { maxBytes: number; reinsertion?: boolean }) => ZnsCacheLike;

/** `openCache` from the package's entry point, or why it is not there. */
async function loadOpenCache(): Promise<OpenCacheFn | string> {
  try {
    // Typed by the real module: once index.ts exports openCache, it must fit OpenCacheFn.
    const mod: { ZnsSlabError: unknown; openCache?: OpenCacheFn } = await import('../index.js');
    return mod.openCache ?? 'the package does not export openCache (cache/cache.ts not there yet?)';
  } catch (err) {
    return `importing the package failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

// ----- arguments -------------------------------------------------------------------------

interface Args {
  quick: boolean;
  keys: number;
  requests: number;
  capacity: number;
  seed: number;
  valueSizes: ValueSizes;
  workloads: string[] | undefined;
  lruOnly: boolean;
  /** zns cache: flush() after every this many requests (0: never). */
  flushEvery: number;
}

function parseArgs(argv: string[]): Args {
  const quick = argv.includes('--quick');
  const a: Args = {
    quick,
    keys: quick ? 20_000 : 100_000,
    requests: quick ? 80_000 : 400_000,
    capacity: 0.15,
    seed: 1,
    valueSizes: { kind: 'lognormal', median: 2048, sigma: 0.8, min: 64, max: 32_768 },
    workloads: undefined,
    lruOnly: false,
    flushEvery: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} needs a positive number`);
      return v;
    };
    switch (flag) {
      case '--quick':
        break;
      case '--keys':
        a.keys = Math.floor(num());
        break;
      case '--requests':
        a.requests = Math.floor(num());
        break;
      case '--capacity':
        a.capacity = num();
        if (a.capacity >= 1) throw new Error('--capacity is a fraction of the working set, below 1');
        break;
      case '--seed':
        a.seed = Math.floor(num());
        break;
      case '--value-bytes':
        a.valueSizes = { kind: 'fixed', bytes: Math.floor(num()) };
        break;
      case '--workloads':
        a.workloads = (argv[++i] ?? '').split(',').filter((s) => s.length > 0);
        break;
      case '--flush-every':
        a.flushEvery = Math.floor(num());
        break;
      case '--lru-only':
        a.lruOnly = true;
        break;
      default:
        throw new Error(`unknown argument ${flag} (see the comment at the top of bench/hitRatio.ts)`);
    }
  }
  return a;
}

export function benchWorkloads(a: Pick<Args, 'keys' | 'requests' | 'seed' | 'valueSizes'>): Workload[] {
  const zipf = [0.7, 0.9, 1.1].map((alpha) => zipfWorkload({ keys: a.keys, alpha, requests: a.requests, seed: a.seed, valueSizes: a.valueSizes }));
  const scan = scanWorkload({
    hotKeys: Math.max(1, Math.floor(a.keys / 10)),
    hotAlpha: 0.9,
    hotFraction: 0.8,
    scanLength: Math.max(1, Math.floor(a.keys / 10)),
    requests: a.requests,
    seed: a.seed,
    valueSizes: a.valueSizes,
  });
  return [...zipf, scan];
}

// ----- runs ------------------------------------------------------------------------------

interface RunResult {
  hits: number;
  misses: number;
  hitRatio: number;
  /** Over the requests after the first WARMUP of the stream (the cache full and settled). */
  hitRatioAfterWarmup: number;
  seconds: number;
  requestsPerSecond: number;
}

const WARMUP = 0.2;
/** openCache's smallest maxBytes (cache/cache.ts MIN_MAX_BYTES): both caches get at least this. */
const MIN_CAPACITY = 4 * 1024 * 1024;

/** Look-aside over a workload: `lookup` says hit or miss (and on a miss stores the value). */
function drive(w: Workload, label: string, lookup: (key: string, id: number, valueSize: number) => boolean): RunResult {
  const warmupEnd = Math.floor(w.requests * WARMUP);
  let hits = 0;
  let hitsAfter = 0;
  let i = 0;
  const t0 = process.hrtime.bigint();
  let lastReport = Date.now();
  for (const r of w.stream()) {
    if (lookup(r.key, r.id, r.valueSize)) {
      hits++;
      if (i >= warmupEnd) hitsAfter++;
    }
    i++;
    if ((i & 0x3fff) === 0 && Date.now() - lastReport > 2000) {
      lastReport = Date.now();
      process.stderr.write(`  ${w.name} ${label}: ${Math.round((i / w.requests) * 100)}% (${i} requests)\n`);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = i - warmupEnd;
  return {
    hits,
    misses: i - hits,
    hitRatio: i === 0 ? 0 : hits / i,
    hitRatioAfterWarmup: after <= 0 ? 0 : hitsAfter / after,
    seconds: round(seconds, 3),
    requestsPerSecond: Math.round(i / Math.max(seconds, 1e-9)),
  };
}

export function runLru(w: Workload, capacityBytes: number): RunResult & { evictions: number; entriesAtEnd: number } {
  let evictions = 0;
  // The value is its size: the LRU only needs the bytes an entry would take.
  const lru = new LRUCache<string, number>({
    maxSize: capacityBytes,
    sizeCalculation: (valueSize, key) => Math.max(1, key.length + valueSize),
    dispose: (_v, _k, reason) => {
      if (reason === 'evict') evictions++;
    },
  });
  const result = drive(w, 'lru', (key, _id, valueSize) => {
    if (lru.get(key) !== undefined) return true;
    lru.set(key, valueSize);
    return false;
  });
  return { ...result, evictions, entriesAtEnd: lru.size };
}

interface ZnsResult extends RunResult {
  reinsertion: boolean;
  writeAmplification: number | null;
  /** Hits whose value was not the key's own (must be 0). */
  wrongValues: number;
  /** Hits whose value was not bytes, so it could not be checked. */
  uncheckedValues: number;
  stats: ZnsCacheStats;
}

/** A value for key `id`: its size, the id in the first 4 bytes, the rest a fixed pattern. */
function valueFor(id: number, size: number, pattern: Buffer): Buffer {
  const b = Buffer.allocUnsafe(size);
  pattern.copy(b, 0, 0, size);
  if (size >= 4) b.writeUInt32LE(id >>> 0, 0);
  return b;
}

export function runZns(w: Workload, capacityBytes: number, openCache: OpenCacheFn, reinsertion: boolean, flushEvery = 0): ZnsResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-hit-'));
  const pattern = Buffer.alloc(1 << 20, 0xa5);
  let wrongValues = 0;
  let uncheckedValues = 0;
  try {
    const cache = openCache(dir, { maxBytes: capacityBytes, reinsertion });
    try {
      let n = 0;
      const result = drive(w, reinsertion ? 'zns' : 'zns (no reinsertion)', (key, id, valueSize) => {
        if (flushEvery > 0 && ++n % flushEvery === 0) cache.flush();
        const v = cache.get(key);
        if (v === undefined) {
          cache.set(key, valueFor(id, valueSize, pattern));
          return false;
        }
        if (!(v instanceof Uint8Array)) uncheckedValues++;
        else if (v.length !== valueSize || (valueSize >= 4 && Buffer.from(v.buffer, v.byteOffset, v.length).readUInt32LE(0) !== id >>> 0)) wrongValues++;
        return true;
      });
      const stats = cache.stats();
      return { ...result, reinsertion, writeAmplification: stats.writeAmplification, wrongValues, uncheckedValues, stats };
    } finally {
      cache.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ----- report ----------------------------------------------------------------------------

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const pts = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);

interface WorkloadResult {
  name: string;
  description: string;
  requests: number;
  workingSet: { keys: number; bytes: number };
  capacityBytes: number;
  lru: RunResult & { evictions: number; entriesAtEnd: number };
  zns: ZnsResult | { skipped: string };
  znsNoReinsertion: ZnsResult | { skipped: string };
  /** (zns hit ratio - LRU hit ratio) in percentage points, over the whole stream. */
  diffPoints: { zns: number | null; znsNoReinsertion: number | null };
}

function table(results: WorkloadResult[]): string {
  const head = ['workload', 'keys', 'WS MiB', 'cap MiB', 'LRU', 'zns', 'Δ pts', 'WA', 'zns no-reins', 'Δ pts', 'WA'];
  const rows = results.map((r) => {
    const z = 'skipped' in r.zns ? undefined : r.zns;
    const n = 'skipped' in r.znsNoReinsertion ? undefined : r.znsNoReinsertion;
    return [
      r.name,
      String(r.workingSet.keys),
      mib(r.workingSet.bytes),
      mib(r.capacityBytes),
      pct(r.lru.hitRatio),
      z ? pct(z.hitRatio) : '-',
      r.diffPoints.zns === null ? '-' : pts(r.diffPoints.zns),
      z?.writeAmplification != null ? z.writeAmplification.toFixed(2) : '-',
      n ? pct(n.hitRatio) : '-',
      r.diffPoints.znsNoReinsertion === null ? '-' : pts(r.diffPoints.znsNoReinsertion),
      n?.writeAmplification != null ? n.writeAmplification.toFixed(2) : '-',
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const opened = args.lruOnly ? 'skipped by --lru-only' : await loadOpenCache();
  const openCache = typeof opened === 'string' ? undefined : opened;
  if (openCache === undefined) process.stderr.write(`zns cache not measured: ${opened as string}\n`);
  let workloads = benchWorkloads(args);
  if (args.workloads) {
    const wanted = args.workloads;
    workloads = workloads.filter((w) => wanted.includes(w.name));
    if (workloads.length === 0) throw new Error(`--workloads matched none of ${benchWorkloads(args).map((w) => w.name).join(', ')}`);
  }
  const t0 = Date.now();
  const results: WorkloadResult[] = [];
  for (const w of workloads) {
    const ws = workingSet(w);
    const wanted = Math.round(ws.bytes * args.capacity);
    const capacityBytes = Math.max(MIN_CAPACITY, wanted);
    if (capacityBytes > wanted) process.stderr.write(`  capacity raised to openCache's minimum of ${mib(MIN_CAPACITY)} MiB (${args.capacity} of the working set is ${mib(wanted)} MiB): raise --keys\n`);
    process.stderr.write(`${w.name}: ${w.description}; working set ${ws.keys} keys, ${mib(ws.bytes)} MiB; capacity ${mib(capacityBytes)} MiB\n`);
    const lru = runLru(w, capacityBytes);
    const skipped = { skipped: typeof opened === 'string' ? opened : '' };
    const zns = openCache ? runZns(w, capacityBytes, openCache, true, args.flushEvery) : skipped;
    const znsNoReinsertion = openCache ? runZns(w, capacityBytes, openCache, false, args.flushEvery) : skipped;
    const diff = (z: ZnsResult | { skipped: string }) => ('skipped' in z ? null : round((z.hitRatio - lru.hitRatio) * 100, 2));
    results.push({
      name: w.name,
      description: w.description,
      requests: w.requests,
      workingSet: ws,
      capacityBytes,
      lru,
      zns,
      znsNoReinsertion,
      diffPoints: { zns: diff(zns), znsNoReinsertion: diff(znsNoReinsertion) },
    });
  }
  const seconds = (Date.now() - t0) / 1000;
  process.stderr.write('\n' + table(results));
  process.stderr.write(`hit ratios over all requests; capacity ${args.capacity} of the working set bytes; WA = the zns cache's writeAmplification; ${seconds.toFixed(1)} s\n`);
  const out = {
    bench: 'hitRatio',
    quick: args.quick,
    params: {
      keys: args.keys,
      requests: args.requests,
      capacityFraction: args.capacity,
      seed: args.seed,
      valueSizes: args.valueSizes,
      warmupFraction: WARMUP,
      flushEvery: args.flushEvery,
    },
    node: process.version,
    seconds: round(seconds, 2),
    workloads: results,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  const wrong = results.flatMap((r) => [r.zns, r.znsNoReinsertion]).reduce((n, z) => n + ('skipped' in z ? 0 : z.wrongValues), 0);
  if (wrong > 0) {
    process.stderr.write(`FAIL: the zns cache returned another key's value (or a wrong length) ${wrong} times\n`);
    return 1;
  }
  if (openCache === undefined && !args.lruOnly) {
    process.stderr.write('FAIL: openCache is not available (pass --lru-only to measure the LRU alone)\n');
    return 1;
  }
  return 0;
}

runAsMain(import.meta.url, main);
