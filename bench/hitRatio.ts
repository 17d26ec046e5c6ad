/**
 * `npm run bench:hit -- [--quick] [--keys N] [--requests N] [--capacity F] [--seed N]
 *                        [--value-bytes N] [--workloads a,b] [--flush-every N] [--sample-every N]
 *                        [--lru-only]`
 *
 * Hit ratio of the zns-slab cache (`openCache`, epoch FIFO with reinsertion, and with
 * `reinsertion: false`) against an exact LRU (lru-cache, size = key bytes + value bytes), on the
 * seeded workloads of bench/workloads.ts: Zipf 0.7 / 0.9 / 1.1 and a hot set mixed with one-time
 * scans. Look-aside pattern: get; on a miss, set. Every cache sees the identical request stream.
 * Capacity is `--capacity` (default 0.15) of the stream's working set bytes (every distinct key's
 * key + value bytes); the zns cache gets it as `maxBytes` (device bytes), so it holds fewer
 * entries than an LRU of the same bytes (slot headers, size-class rounding).
 *
 * Two LRU baselines per workload, to split the zns cache's gap into SPACE and POLICY:
 * - "LRU, same byte budget": maxSize = the zns cache's maxBytes.
 * - "LRU, same entries": maxSize = the average key + value bytes the zns cache (with
 *   reinsertion) actually held over the measured requests (those after the first WARMUP of the
 *   stream: the first 20% is warmup). Sampled once per `--sample-every N` requests, at a seeded
 *   pseudo-random point within each stretch of N (default: 16 samples over the measured
 *   requests, N at least 2000), by iterating `cache.keys()` (it reads every live record, but
 *   marks nothing accessed) and summing each live key's key + value bytes; sampling time is
 *   left out of the zns timings and reported (a note on stderr when it passes 20% of a zns
 *   run). Both zns runs are sampled; the baseline uses the run with reinsertion.
 * Then zns - LRU(same bytes) = space gap (LRU(same entries) - LRU(same bytes)) + policy gap
 * (zns - LRU(same entries)). Space efficiency = held user bytes / maxBytes.
 *
 * The zns cache is never flushed unless `--flush-every N` (a flush() every N requests; default 0,
 * never): its writeAmplification is device bytes written / user (key + value) bytes set, so
 * entries evicted before their slab was sealed never reach the device and are left out of it.
 *
 * JSON (one object) on stdout; the table and progress on stderr. Exit 1 if a zns cache returned
 * another key's value, if its keys() listed a key never set, or if `openCache` is missing
 * (unless `--lru-only`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { runAsMain } from '../sim/main.js';
import { type ValueSizes, type Workload, mix32, scanWorkload, workingSet, zipfWorkload } from './workloads.js';

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
  /** Keys of the live entries, lazily (sampled for the bytes the cache holds). */
  keys(): Iterable<string | Buffer>;
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
  /** zns cache: sample the held user bytes every this many measured requests (0: the default). */
  sampleEvery: number;
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
    sampleEvery: 0,
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
      case '--sample-every':
        a.sampleEvery = Math.floor(num());
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
/** Default number of held-bytes samples over the measured requests ... */
const SAMPLES = 16;
/** ... but no more often than every this many requests. */
const MIN_SAMPLE_EVERY = 2000;

/** First request of the measured part of a stream (after the warmup). */
const warmupEndOf = (requests: number): number => Math.floor(requests * WARMUP);

/** Default held-bytes sampling interval for a stream of `requests`. */
export function defaultSampleEvery(requests: number): number {
  return Math.max(MIN_SAMPLE_EVERY, Math.ceil((requests - warmupEndOf(requests)) / SAMPLES));
}

/** Seeds the sample points' offsets within their strata. */
const SAMPLE_SEED = 0x5a3c1e;

/**
 * Whether the cache state after `done` requests is sampled. The measured requests are cut into
 * strata of `every` requests; each (but a last partial one whose point falls past the end) is
 * sampled once, at a fixed pseudo-random offset within it: a fixed stride could alias with the
 * cache's periodic fill-and-evict cycle (held bytes are a sawtooth over epochs).
 */
export function isSamplePoint(done: number, requests: number, every: number): boolean {
  const x = done - warmupEndOf(requests) - 1;
  return x >= 0 && done <= requests && x % every === mix32(SAMPLE_SEED, Math.floor(x / every)) % every;
}

/** Called after `done` requests, at the sample points; its time is left out of the run's. */
interface Sampler {
  every: number;
  sample(done: number): void;
}
/** openCache's smallest maxBytes (cache/cache.ts MIN_MAX_BYTES): both caches get at least this. */
const MIN_CAPACITY = 4 * 1024 * 1024;

/** Look-aside over a workload: `lookup` says hit or miss (and on a miss stores the value). */
function drive(w: Workload, label: string, lookup: (key: string, id: number, valueSize: number) => boolean, sampler?: Sampler): RunResult & { samplingSeconds: number } {
  const warmupEnd = warmupEndOf(w.requests);
  let samplingNs = 0n;
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
    if (sampler !== undefined && isSamplePoint(i, w.requests, sampler.every)) {
      const s0 = process.hrtime.bigint();
      sampler.sample(i);
      samplingNs += process.hrtime.bigint() - s0;
    }
    if ((i & 0x3fff) === 0 && Date.now() - lastReport > 2000) {
      lastReport = Date.now();
      process.stderr.write(`  ${w.name} ${label}: ${Math.round((i / w.requests) * 100)}% (${i} requests)\n`);
    }
  }
  const samplingSeconds = Number(samplingNs) / 1e9;
  const seconds = Number(process.hrtime.bigint() - t0 - samplingNs) / 1e9;
  const after = i - warmupEnd;
  return {
    hits,
    misses: i - hits,
    hitRatio: i === 0 ? 0 : hits / i,
    hitRatioAfterWarmup: after <= 0 ? 0 : hitsAfter / after,
    seconds: round(seconds, 3),
    requestsPerSecond: Math.round(i / Math.max(seconds, 1e-9)),
    samplingSeconds,
  };
}

type LruResult = RunResult & { capacityBytes: number; evictions: number; entriesAtEnd: number };

export function runLru(w: Workload, capacityBytes: number): LruResult {
  let evictions = 0;
  // The value is its size: the LRU only needs the bytes an entry would take.
  const lru = new LRUCache<string, number>({
    maxSize: capacityBytes,
    sizeCalculation: (valueSize, key) => Math.max(1, key.length + valueSize),
    dispose: (_v, _k, reason) => {
      if (reason === 'evict') evictions++;
    },
  });
  const { samplingSeconds: _none, ...result } = drive(w, 'lru', (key, _id, valueSize) => {
    if (lru.get(key) !== undefined) return true;
    lru.set(key, valueSize);
    return false;
  });
  return { ...result, capacityBytes, evictions, entriesAtEnd: lru.size };
}

/** What the zns cache held over the measured requests, from `keys()` samples. */
interface HeldSamples {
  samples: number;
  /** Requests between samples. */
  sampleEvery: number;
  /** Key + value bytes of the live entries (the LRU's sizeCalculation): mean, min, max. */
  userBytes: { mean: number; min: number; max: number };
  /** Live entries: mean, min, max. */
  entries: { mean: number; min: number; max: number };
  /** Mean held user bytes / maxBytes. */
  spaceEfficiency: number;
  /** Live keys the harness never set (must be 0). */
  unknownKeys: number;
  /** Time spent sampling (left out of `seconds`), and its share of the run with it. */
  samplingSeconds: number;
  samplingShare: number;
}

interface ZnsResult extends RunResult {
  reinsertion: boolean;
  /** device bytes written / user bytes set (entries evicted before their slab was sealed never reach the device). */
  writeAmplification: number | null;
  /** Hits whose value was not the key's own (must be 0). */
  wrongValues: number;
  /** Hits whose value was not bytes, so it could not be checked. */
  uncheckedValues: number;
  held: HeldSamples;
  stats: ZnsCacheStats;
}

/** A value for key `id`: its size, the id in the first 4 bytes, the rest a fixed pattern. */
function valueFor(id: number, size: number, pattern: Buffer): Buffer {
  const b = Buffer.allocUnsafe(size);
  pattern.copy(b, 0, 0, size);
  if (size >= 4) b.writeUInt32LE(id >>> 0, 0);
  return b;
}

export function runZns(w: Workload, capacityBytes: number, openCache: OpenCacheFn, reinsertion: boolean, flushEvery = 0, sampleEvery = defaultSampleEvery(w.requests)): ZnsResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-hit-'));
  const pattern = Buffer.alloc(1 << 20, 0xa5);
  let wrongValues = 0;
  let uncheckedValues = 0;
  // Key + value bytes of every key the harness set (the LRU's sizeCalculation), for the samples.
  const userSize = new Map<string, number>();
  const heldBytes: number[] = [];
  const heldEntries: number[] = [];
  let unknownKeys = 0;
  try {
    const cache = openCache(dir, { maxBytes: capacityBytes, reinsertion });
    try {
      let n = 0;
      const sampler: Sampler = {
        every: sampleEvery,
        sample: () => {
          let bytes = 0;
          let entries = 0;
          for (const k of cache.keys()) {
            const size = userSize.get(typeof k === 'string' ? k : k.toString('latin1'));
            if (size === undefined) unknownKeys++;
            else bytes += size;
            entries++;
          }
          heldBytes.push(bytes);
          heldEntries.push(entries);
        },
      };
      const { samplingSeconds, ...result } = drive(
        w,
        reinsertion ? 'zns' : 'zns (no reinsertion)',
        (key, id, valueSize) => {
          if (flushEvery > 0 && ++n % flushEvery === 0) cache.flush();
          const v = cache.get(key);
          if (v === undefined) {
            cache.set(key, valueFor(id, valueSize, pattern));
            userSize.set(key, Math.max(1, key.length + valueSize));
            return false;
          }
          if (!(v instanceof Uint8Array)) uncheckedValues++;
          else if (v.length !== valueSize || (valueSize >= 4 && Buffer.from(v.buffer, v.byteOffset, v.length).readUInt32LE(0) !== id >>> 0)) wrongValues++;
          return true;
        },
        sampler,
      );
      const stats = cache.stats();
      const summary = (xs: number[]) => ({ mean: xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length, min: xs.length === 0 ? 0 : Math.min(...xs), max: xs.length === 0 ? 0 : Math.max(...xs) });
      const userBytes = summary(heldBytes);
      const held: HeldSamples = {
        samples: heldBytes.length,
        sampleEvery,
        userBytes: { ...userBytes, mean: Math.round(userBytes.mean) },
        entries: { ...summary(heldEntries), mean: round(summary(heldEntries).mean, 1) },
        spaceEfficiency: round(userBytes.mean / capacityBytes, 4),
        unknownKeys,
        samplingSeconds: round(samplingSeconds, 3),
        samplingShare: round(samplingSeconds / Math.max(samplingSeconds + result.seconds, 1e-9), 4),
      };
      return { ...result, reinsertion, writeAmplification: stats.writeAmplification, wrongValues, uncheckedValues, held, stats };
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

const WA_LABEL = 'device bytes written / user bytes set (entries evicted before their slab was sealed never reach the device)';
const FLUSH_NOTE = 'flush() every flushEvery requests; 0 (the default): never flushed, so entries that live and die in open slabs are never written and WA leaves them out';
const SAME_ENTRIES_NOTE =
  "'LRU, same entries': an exact LRU whose maxSize (key + value bytes) is the mean key + value bytes the zns cache (with reinsertion) held over the measured requests (keys() sampled after the warmup); zns - LRU(same byte budget) = space gap + policy gap, space = LRU(same entries) - LRU(same byte budget), policy = zns - LRU(same entries)";

type Skipped = { skipped: string };

interface WorkloadResult {
  name: string;
  description: string;
  requests: number;
  workingSet: { keys: number; bytes: number };
  capacityBytes: number;
  /** LRU, same byte budget: maxSize = capacityBytes. */
  lru: LruResult;
  /** LRU, same entries: maxSize = the zns cache's mean held key + value bytes. */
  lruSameEntries: LruResult | Skipped;
  zns: ZnsResult | Skipped;
  znsNoReinsertion: ZnsResult | Skipped;
  /** (zns hit ratio - LRU, same byte budget, hit ratio) in percentage points, over the whole stream. */
  diffPoints: { zns: number | null; znsNoReinsertion: number | null };
  /** (zns hit ratio - LRU, same entries, hit ratio) in percentage points, over the whole stream. */
  diffPointsSameEntries: { zns: number | null; znsNoReinsertion: number | null };
  /** The zns cache's (with reinsertion) gap to LRU(same byte budget), split: total = space + policy. */
  gapPoints: { total: number; space: number; policy: number; reinsertion: number | null } | null;
}

const ok = <T extends object>(x: T | Skipped): T | undefined => ('skipped' in x ? undefined : x);

function layout(head: string[], rows: string[][], leftColumns: number): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

function table(results: WorkloadResult[]): string {
  const head = ['workload', 'cache', 'budget MiB', 'hit', 'Δ vs LRU bytes', 'Δ vs LRU entries', 'held user MiB', 'held/max', 'entries', 'WA'];
  const rows: string[][] = [];
  for (const r of results) {
    const le = ok(r.lruSameEntries);
    const z = ok(r.zns);
    const n = ok(r.znsNoReinsertion);
    const dash = '-';
    rows.push([r.name, 'LRU, same byte budget', mib(r.capacityBytes), pct(r.lru.hitRatio), dash, le ? pts((r.lru.hitRatio - le.hitRatio) * 100) : dash, dash, dash, String(r.lru.entriesAtEnd), dash]);
    rows.push(['', 'LRU, same entries', le ? mib(le.capacityBytes) : dash, le ? pct(le.hitRatio) : dash, le ? pts((le.hitRatio - r.lru.hitRatio) * 100) : dash, dash, dash, dash, le ? String(le.entriesAtEnd) : dash, dash]);
    const znsRow = (label: string, x: ZnsResult | undefined, dBytes: number | null, dEntries: number | null) => [
      '',
      label,
      mib(r.capacityBytes),
      x ? pct(x.hitRatio) : dash,
      dBytes === null ? dash : pts(dBytes),
      dEntries === null ? dash : pts(dEntries),
      x ? mib(x.held.userBytes.mean) : dash,
      x ? pct(x.held.spaceEfficiency) : dash,
      x ? String(Math.round(x.held.entries.mean)) : dash,
      x?.writeAmplification != null ? x.writeAmplification.toFixed(2) : dash,
    ];
    rows.push(znsRow('zns', z, r.diffPoints.zns, r.diffPointsSameEntries.zns));
    rows.push(znsRow('zns, no reinsertion', n, r.diffPoints.znsNoReinsertion, r.diffPointsSameEntries.znsNoReinsertion));
  }
  const main = layout(head, rows, 2);
  // A blank line between workloads.
  const out: string[] = main.slice(0, 2);
  main.slice(2).forEach((l, i) => {
    if (i > 0 && i % 4 === 0) out.push('');
    out.push(l);
  });
  const gapHead = ['workload', 'zns - LRU(bytes)', '= space', '+ policy', 'reinsertion'];
  const gapRows = results.map((r) => {
    const g = r.gapPoints;
    return [r.name, g ? pts(g.total) : '-', g ? pts(g.space) : '-', g ? pts(g.policy) : '-', g?.reinsertion != null ? pts(g.reinsertion) : '-'];
  });
  return [...out, '', ...layout(gapHead, gapRows, 1)].join('\n') + '\n';
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
    const sampleEvery = args.sampleEvery > 0 ? args.sampleEvery : defaultSampleEvery(w.requests);
    const zns = openCache ? runZns(w, capacityBytes, openCache, true, args.flushEvery, sampleEvery) : skipped;
    const znsNoReinsertion = openCache ? runZns(w, capacityBytes, openCache, false, args.flushEvery, sampleEvery) : skipped;
    const z = ok(zns);
    const lruSameEntries: LruResult | Skipped =
      z === undefined ? skipped : z.held.samples === 0 ? { skipped: 'no held-bytes samples' } : runLru(w, Math.max(1, z.held.userBytes.mean));
    const le = ok(lruSameEntries);
    for (const x of [zns, znsNoReinsertion]) {
      const h = ok(x)?.held;
      if (h && h.samplingShare > 0.2) process.stderr.write(`  note: sampling held bytes took ${pct(h.samplingShare)} of a zns run: raise --sample-every\n`);
    }
    const diff = (zr: ZnsResult | Skipped, base: RunResult | undefined) => {
      const x = ok(zr);
      return x === undefined || base === undefined ? null : round((x.hitRatio - base.hitRatio) * 100, 2);
    };
    const n = ok(znsNoReinsertion);
    results.push({
      name: w.name,
      description: w.description,
      requests: w.requests,
      workingSet: ws,
      capacityBytes,
      lru,
      lruSameEntries,
      zns,
      znsNoReinsertion,
      diffPoints: { zns: diff(zns, lru), znsNoReinsertion: diff(znsNoReinsertion, lru) },
      diffPointsSameEntries: { zns: diff(zns, le), znsNoReinsertion: diff(znsNoReinsertion, le) },
      gapPoints:
        z && le
          ? {
              total: round((z.hitRatio - lru.hitRatio) * 100, 2),
              space: round((le.hitRatio - lru.hitRatio) * 100, 2),
              policy: round((z.hitRatio - le.hitRatio) * 100, 2),
              reinsertion: n ? round((z.hitRatio - n.hitRatio) * 100, 2) : null,
            }
          : null,
    });
  }
  const seconds = (Date.now() - t0) / 1000;
  const zRuns = results.flatMap((r) => [r.zns, r.znsNoReinsertion]).flatMap((x) => ok(x) ?? []);
  const samplingSeconds = zRuns.reduce((s, x) => s + x.held.samplingSeconds, 0);
  const znsSeconds = zRuns.reduce((s, x) => s + x.seconds + x.held.samplingSeconds, 0);
  process.stderr.write('\n' + table(results));
  process.stderr.write(
    [
      `hit ratios over all requests; capacity ${args.capacity} of the working set bytes; ${seconds.toFixed(1)} s`,
      `budget: the LRU's maxSize in key + value bytes; the zns cache's maxBytes in device bytes`,
      `LRU, same entries: maxSize = the zns cache's (with reinsertion) mean held key + value bytes over the measured requests (after the first ${WARMUP * 100}%)`,
      `held user MiB, held/max (space efficiency), entries: zns means over keys() samples${zRuns[0] ? ` (one per ${zRuns[0].held.sampleEvery} requests, at a seeded point within each; ${zRuns[0].held.samples} per run)` : ''}; LRU entries at the end`,
      `sampling: ${samplingSeconds.toFixed(1)} s, ${znsSeconds > 0 ? pct(samplingSeconds / znsSeconds) : '-'} of the zns runs, left out of their timings`,
      `space = LRU(same entries) - LRU(same byte budget); policy = zns - LRU(same entries); reinsertion = zns - zns without reinsertion (points)`,
      `WA = ${WA_LABEL}; ${args.flushEvery === 0 ? 'never flushed (--flush-every 0, the default)' : `flush() every ${args.flushEvery} requests`}`,
    ].join('\n') + '\n',
  );
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
      flushEveryNote: FLUSH_NOTE,
      sampleEvery: args.sampleEvery > 0 ? args.sampleEvery : `default: ${SAMPLES} samples over the measured requests, at least every ${MIN_SAMPLE_EVERY}`,
    },
    notes: {
      writeAmplification: WA_LABEL,
      lruSameEntries: SAME_ENTRIES_NOTE,
    },
    node: process.version,
    seconds: round(seconds, 2),
    samplingSeconds: round(samplingSeconds, 2),
    workloads: results,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  let failed = false;
  const wrong = zRuns.reduce((s, z) => s + z.wrongValues, 0);
  if (wrong > 0) {
    process.stderr.write(`FAIL: the zns cache returned another key's value (or a wrong length) ${wrong} times\n`);
    failed = true;
  }
  const unknown = zRuns.reduce((s, z) => s + z.held.unknownKeys, 0);
  if (unknown > 0) {
    process.stderr.write(`FAIL: the zns cache's keys() listed ${unknown} keys (over all samples) that were never set\n`);
    failed = true;
  }
  if (openCache === undefined && !args.lruOnly) {
    process.stderr.write('FAIL: openCache is not available (pass --lru-only to measure the LRU alone)\n');
    failed = true;
  }
  return failed ? 1 : 0;
}

runAsMain(import.meta.url, main);
