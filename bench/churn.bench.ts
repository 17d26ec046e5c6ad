/**
 * `npm run bench:churn` (issue 11, zone GC): the churn. A store holds LIVE objects (sizes
 * uniform in 64 B–4 KiB, from a seeded xorshift32, so every engine sees the same operations);
 * one cycle frees a random live object and puts a new one of a random size in its place;
 * CYCLES cycles. Side by side, in one run, each engine in its own child process (so RSS is its
 * own), one after another:
 *
 *   zns-slab GC on          openStore(dir, { geometry }) (GC defaults), one epoch
 *   zns-slab GC off         openStore(dir, { geometry, gc: false }), one epoch: the "before"
 *   zns-slab GC on, epochs  epochAdvance() every EPOCH_EVERY cycles; an older epoch with no
 *                           live object left is closed with epochClose (checked at every flush)
 *   lmdb-js                 open({ noSync: true }), key = u32 id, putSync / removeSync per op,
 *                           db.sync() (mdb_env_sync) awaited every FLUSH_EVERY cycles
 *   better-sqlite3          table (id INTEGER PRIMARY KEY, v BLOB), WAL, synchronous=NORMAL,
 *                           one autocommit INSERT / DELETE per op, wal_checkpoint(PASSIVE)
 *                           every FLUSH_EVERY cycles
 *
 * zns-slab makes data durable only at flush(), which it gets every FLUSH_EVERY cycles; the
 * peers get the closest equivalent (no sync per operation, a sync every FLUSH_EVERY cycles).
 * Every put and free is timed on its own (performance.now(), into preallocated Float64Arrays),
 * the flushes apart. Every SAMPLE_EVERY cycles (outside the timed loop): RSS after gc(), disk
 * bytes allocated (tools/diskUsage.ts), the live payload bytes the benchmark itself holds,
 * /proc/self/io wchar (bytes the process passed to write calls: a write amplification every
 * engine can be held to), and zns-slab's own stats (space and write amplification, GC counters).
 * The device floor: the same bytes written sequentially in 256 KiB chunks to one file on the
 * same filesystem.
 *
 * Options: --quick (200k cycles, 10k live, samples every 20k: CI's smoke run, not a claim),
 * --cycles N, --live N, --sample-every N, --flush-every N, --epoch-every N, --engines a,b,...,
 * --gc-space-amplification X, --gc-step-bytes N (zns-slab's gc options for the GC-on variants),
 * --out FILE (JSON), --svg FILE (the disk curve; default docs/churn.svg in full runs only),
 * --markdown (tables for docs/BENCHMARKS.md on stderr), --from FILE (print the tables and
 * write the SVG of a saved JSON, running nothing). JSON on stdout, progress on stderr.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { diskUsage } from '../tools/diskUsage.js';
import { CHURN_GEOMETRY, type ChurnImpl, type ZnsSample, lmdbChurnImpl, sqliteChurnImpl, znsChurnImpl } from './lib/churnEngines.js';
import { churnPayload } from './lib/payload.js';
import { type Dist, dist, r3 } from './lib/stats.js';
import { describeError, fsType, gc, procIo, say, timerOverheadNs } from './lib/system.js';
import { rng } from './rng.js';

// ----- configuration -----------------------------------------------------------------------

const args = process.argv.slice(2);
const argValue = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
function intArg(flag: string, fallback: number): number {
  const v = argValue(flag);
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, got ${v}`);
  return n;
}

const QUICK = args.includes('--quick');
const MARKDOWN = args.includes('--markdown');
const OUT = argValue('--out');
const FROM = argValue('--from');
const CHILD_ENGINE = argValue('--engine');
const CHILD_ROOT = argValue('--root');
const CYCLES = intArg('--cycles', QUICK ? 200_000 : 2_000_000);
const LIVE = intArg('--live', QUICK ? 10_000 : 50_000);
const SAMPLE_EVERY = intArg('--sample-every', QUICK ? 20_000 : 100_000);
const FLUSH_EVERY = intArg('--flush-every', 10_000);
const EPOCH_EVERY = intArg('--epoch-every', QUICK ? 20_000 : 100_000);
const SEED = intArg('--seed', 0x11c4_0b5e);
/** zns-slab's GC option spaceAmplification for the GC-on variants (default: the engine's default). */
const GC_SPACE_AMP = argValue('--gc-space-amplification') === undefined ? undefined : Number(argValue('--gc-space-amplification'));
if (GC_SPACE_AMP !== undefined && !(GC_SPACE_AMP >= 1.1)) throw new Error('--gc-space-amplification must be a number >= 1.1');
const GC_STEP_BYTES = argValue('--gc-step-bytes') === undefined ? undefined : intArg('--gc-step-bytes', 0);
/** The GC options of the GC-on variants (undefined: the defaults). */
const GC_OPTIONS = GC_SPACE_AMP === undefined && GC_STEP_BYTES === undefined ? undefined : { ...(GC_SPACE_AMP !== undefined ? { spaceAmplification: GC_SPACE_AMP } : {}), ...(GC_STEP_BYTES !== undefined ? { stepBytes: GC_STEP_BYTES } : {}) };
const MIN_SIZE = 64;
const MAX_SIZE = 4096;
const VERIFY_SAMPLE = 2_000;
const FLOOR_CHUNK = 256 * 1024;
/** The floor's file wraps at this size (the same bytes are written, the page cache stays small). */
const FLOOR_WRAP = 256 * 1024 * 1024;
const MiB = 1024 * 1024;
/** The emulated device: small zones, so zone granularity does not dominate. */
const GEOMETRY = CHURN_GEOMETRY;

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SVG = argValue('--svg') ?? (QUICK || FROM !== undefined ? undefined : path.join(ROOT_DIR, 'docs', 'churn.svg'));

const ENGINES = ['zns-gc', 'zns-nogc', 'zns-epochs', 'lmdb', 'sqlite'] as const;
type EngineName = (typeof ENGINES)[number];
const LABELS: Record<EngineName, string> = {
  'zns-gc': 'zns-slab, GC on',
  'zns-nogc': 'zns-slab, GC off',
  'zns-epochs': 'zns-slab, GC on, epochs',
  lmdb: 'lmdb-js',
  sqlite: 'better-sqlite3',
};
const COLORS: Record<EngineName, string> = {
  'zns-gc': '#1b7837',
  'zns-nogc': '#d95f02',
  'zns-epochs': '#2166ac',
  lmdb: '#c51b7d',
  sqlite: '#7f6000',
};

function benchRoot(): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return fs.mkdtempSync(path.join(base, 'zns-churn-'));
}

// ----- results -----------------------------------------------------------------------------


interface Sample {
  cycle: number;
  /** Seconds of the timed loop so far (puts, frees, flushes, epoch work; not the sampling). */
  loopSeconds: number;
  rssBytes: number;
  heapUsedBytes: number;
  diskBytes: number;
  livePayloadBytes: number;
  /** diskBytes / livePayloadBytes. */
  spaceAmplification: number;
  /** Payload bytes put since the store opened (fill included). */
  userBytesPut: number;
  /** wchar since the store opened / userBytesPut. */
  wcharWriteAmplification: number | null;
  wchar: number | null;
  writeBytes: number | null;
  zns?: ZnsSample;
}

interface EngineResult {
  engine: EngineName;
  label: string;
  durability: string;
  flushOp: string;
  pid: number;
  loadAverageStart: number[];
  loadAverageEnd: number[];
  cycles: number;
  cyclesDone: number;
  live: number;
  fillSeconds: number;
  loopSeconds: number;
  cyclesPerSecond: number;
  /** Payload bytes the cycles put / loop seconds. */
  payloadMBps: number;
  timerOverheadNs: number;
  latency: { put: Dist; free: Dist; flush: Dist; epochClose?: Dist; epochAdvance?: Dist };
  flushTotalMs: number;
  epochs?: { advanced: number; closed: number; liveAtEnd: number; closeMismatches: string[] };
  samples: Sample[];
  verify: { checked: number; wrong: number; storeVerify?: string };
  closeMs: number;
  gcExposed: boolean;
  error?: string;
}

// ----- engines (child side): the adapters are in lib/churnEngines.ts ------------------------

function openImpl(engine: EngineName, dir: string): ChurnImpl {
  const config = { live: LIVE, flushEvery: FLUSH_EVERY };
  switch (engine) {
    case 'zns-gc':
      return znsChurnImpl(dir, 'gc', { ...config, geometry: GEOMETRY, gcOptions: GC_OPTIONS });
    case 'zns-nogc':
      return znsChurnImpl(dir, 'nogc', { ...config, geometry: GEOMETRY });
    case 'zns-epochs':
      return znsChurnImpl(dir, 'epochs', { ...config, geometry: GEOMETRY, gcOptions: GC_OPTIONS });
    case 'lmdb':
      return lmdbChurnImpl(dir, config);
    case 'sqlite':
      return sqliteChurnImpl(dir, config);
  }
}

async function runEngine(engine: EngineName, root: string): Promise<EngineResult> {
  const dir = path.join(root, engine);
  fs.mkdirSync(dir, { recursive: true });
  const loadAverageStart = os.loadavg().map(r3);
  const random = rng(SEED);
  // One payload: bytes 0-3 carry the object's id (written before each put), the rest is fixed,
  // so a read can be checked; a view per size, made once.
  const { views, idWord } = churnPayload(SEED ^ 0x5a5a5a5a, MAX_SIZE);
  const randomSize = () => MIN_SIZE + Math.floor(random() * (MAX_SIZE - MIN_SIZE + 1));

  const sizes = new Uint32Array(LIVE);
  const ids = new Uint32Array(LIVE);
  const slotEpoch = new Int32Array(LIVE);
  const putMs = new Float64Array(CYCLES);
  const freeMs = new Float64Array(CYCLES);
  const flushMs = new Float64Array(Math.ceil(CYCLES / FLUSH_EVERY) + 2);
  const closeMsArr = new Float64Array(Math.ceil(CYCLES / FLUSH_EVERY) * 2 + 16);
  const advanceMsArr = new Float64Array(Math.ceil(CYCLES / EPOCH_EVERY) + 2);
  let flushes = 0;
  let closes = 0;
  let advances = 0;
  const samples: Sample[] = [];
  const overhead = timerOverheadNs();
  const io0 = procIo();
  const gcExposed = gc();

  const impl = openImpl(engine, dir);
  const epochLive = new Map<number, number>();
  const closeMismatches: string[] = [];
  let currentEpoch = impl.currentEpoch?.() ?? 0;
  let livePayload = 0;
  let userBytes = 0;
  let cycleBytes = 0;
  let loopMs = 0;
  let c = 0;
  let error: string | undefined;

  const sample = (): void => {
    const gcNow = gc();
    void gcNow;
    const mem = process.memoryUsage();
    const io = procIo();
    const disk = diskUsage(dir);
    const s: Sample = {
      cycle: c,
      loopSeconds: r3(loopMs / 1000),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      diskBytes: disk,
      livePayloadBytes: livePayload,
      spaceAmplification: r3(disk / livePayload),
      userBytesPut: userBytes,
      wcharWriteAmplification: io && io0 ? r3((io.wchar - io0.wchar) / userBytes) : null,
      wchar: io && io0 ? io.wchar - io0.wchar : null,
      writeBytes: io && io0 ? io.writeBytes - io0.writeBytes : null,
      ...(impl.zns ? { zns: impl.zns() } : {}),
    };
    samples.push(s);
    const z = s.zns;
    say(
      `  ${engine.padEnd(10)} ${String(c).padStart(9)} cycles  ${(c / Math.max(loopMs / 1000, 1e-9) / 1000).toFixed(1).padStart(6)} kcyc/s  disk ${(disk / MiB).toFixed(1).padStart(8)} MiB  live ${(livePayload / MiB).toFixed(1)} MiB  ×${s.spaceAmplification.toFixed(2)}  RSS ${(mem.rss / MiB).toFixed(0)} MiB` +
        (s.wcharWriteAmplification !== null ? `  wchar/put ${s.wcharWriteAmplification.toFixed(2)}` : '') +
        (z ? `  | SA ${z.spaceAmplification} WA ${z.writeAmplification} gc: ${z.gcZonesCollected} zones, ${(z.gcBytesMoved / MiB).toFixed(0)} MiB moved, ${(z.gcMs / 1000).toFixed(2)} s; zones free ${z.zonesFree}, epochs ${z.epochsLive}` : ''),
    );
  };

  const fill0 = performance.now();
  try {
    for (let i = 0; i < LIVE; i++) {
      const size = randomSize();
      sizes[i] = size;
      ids[i] = i;
      idWord[0] = i;
      impl.put(i, i, views[size]!);
      slotEpoch[i] = currentEpoch;
      livePayload += size;
      userBytes += size;
    }
    epochLive.set(currentEpoch, LIVE);
    const p = impl.flush();
    if (p) await p;
  } catch (err) {
    error = `fill: ${describeError(err)}`;
  }
  const fillSeconds = (performance.now() - fill0) / 1000;
  if (error === undefined) sample();

  const nextMultiple = (x: number, of: number) => (Math.floor(x / of) + 1) * of;
  try {
    while (error === undefined && c < CYCLES) {
      const end = Math.min(CYCLES, nextMultiple(c, FLUSH_EVERY), nextMultiple(c, SAMPLE_EVERY), impl.advance ? nextMultiple(c, EPOCH_EVERY) : CYCLES);
      const t0 = performance.now();
      for (; c < end; c++) {
        const slot = Math.floor(random() * LIVE);
        const size = randomSize();
        const id = LIVE + c;
        idWord[0] = id;
        const view = views[size]!;
        const a = performance.now();
        impl.free(slot);
        const b = performance.now();
        impl.put(slot, id, view);
        const e = performance.now();
        freeMs[c] = b - a;
        putMs[c] = e - b;
        livePayload += size - sizes[slot]!;
        sizes[slot] = size;
        ids[slot] = id;
        userBytes += size;
        cycleBytes += size;
        const before = slotEpoch[slot]!;
        if (before !== currentEpoch) {
          epochLive.set(before, epochLive.get(before)! - 1);
          epochLive.set(currentEpoch, (epochLive.get(currentEpoch) ?? 0) + 1);
          slotEpoch[slot] = currentEpoch;
        }
      }
      loopMs += performance.now() - t0;
      if (c % FLUSH_EVERY === 0 || c === CYCLES) {
        const f0 = performance.now();
        const p = impl.flush();
        if (p) await p;
        const f = performance.now() - f0;
        flushMs[flushes++] = f;
        loopMs += f;
        if (impl.closeEpoch) {
          for (const [epoch, live] of epochLive) {
            if (live !== 0 || epoch === currentEpoch) continue;
            const k0 = performance.now();
            const mismatch = impl.closeEpoch(epoch);
            const k = performance.now() - k0;
            loopMs += k;
            if (mismatch !== undefined) {
              if (closeMismatches.length < 20) closeMismatches.push(`cycle ${c}: ${mismatch}`);
            } else {
              closeMsArr[closes++] = k;
              epochLive.delete(epoch);
            }
          }
        }
      }
      if (impl.advance && c % EPOCH_EVERY === 0 && c < CYCLES) {
        const k0 = performance.now();
        currentEpoch = impl.advance();
        const k = performance.now() - k0;
        advanceMsArr[advances++] = k;
        loopMs += k;
      }
      if (c % SAMPLE_EVERY === 0 || c === CYCLES) sample();
    }
  } catch (err) {
    error = `cycle ${c}: ${describeError(err)}`;
    say(`  ${engine}: stopped at cycle ${c}: ${describeError(err)}`);
    try {
      sample();
    } catch {
      // the error above is the one to report
    }
  }

  // Reads of a random sample of live objects: every one must be its own bytes.
  let checked = 0;
  let wrong = 0;
  let storeVerify: string | undefined;
  try {
    const pick = rng(SEED ^ 0x77777777);
    for (let i = 0; i < VERIFY_SAMPLE; i++) {
      const slot = Math.floor(pick() * LIVE);
      const got = impl.read(slot);
      checked++;
      idWord[0] = ids[slot]!;
      if (got === undefined || got.length !== sizes[slot] || !views[sizes[slot]!]!.equals(got)) wrong++;
    }
    storeVerify = impl.verifyStore?.();
  } catch (err) {
    storeVerify = `failed: ${describeError(err)}`;
  }
  const k0 = performance.now();
  try {
    impl.close();
  } catch (err) {
    error ??= `close: ${describeError(err)}`;
  }
  const closeMs = performance.now() - k0;
  fs.rmSync(dir, { recursive: true, force: true });

  const done = Math.min(c, CYCLES);
  const loopSeconds = loopMs / 1000;
  const empty = new Float64Array([NaN]);
  return {
    engine,
    label: LABELS[engine] + (GC_OPTIONS !== undefined && engine !== 'zns-nogc' && engine.startsWith('zns') ? ` (gc ${JSON.stringify(GC_OPTIONS)})` : ''),
    durability: impl.durability,
    flushOp: impl.flushOp,
    pid: process.pid,
    loadAverageStart,
    loadAverageEnd: os.loadavg().map(r3),
    cycles: CYCLES,
    cyclesDone: done,
    live: LIVE,
    fillSeconds: r3(fillSeconds),
    loopSeconds: r3(loopSeconds),
    cyclesPerSecond: Math.round(done / loopSeconds),
    payloadMBps: r3(cycleBytes / 1e6 / loopSeconds),
    timerOverheadNs: overhead,
    latency: {
      put: done > 0 ? dist(putMs, done) : dist(empty, 1),
      free: done > 0 ? dist(freeMs, done) : dist(empty, 1),
      flush: flushes > 0 ? dist(flushMs, flushes) : dist(empty, 1),
      ...(impl.advance ? { epochAdvance: advances > 0 ? dist(advanceMsArr, advances) : dist(empty, 1), epochClose: closes > 0 ? dist(closeMsArr, closes) : dist(empty, 1) } : {}),
    },
    flushTotalMs: r3(flushMs.slice(0, flushes).reduce((a, b) => a + b, 0)),
    ...(impl.advance ? { epochs: { advanced: advances, closed: closes, liveAtEnd: epochLive.size, closeMismatches } } : {}),
    samples,
    verify: { checked, wrong, ...(storeVerify !== undefined ? { storeVerify } : {}) },
    closeMs: r3(closeMs),
    gcExposed,
    ...(error !== undefined ? { error } : {}),
  };
}

// ----- parent: run the children, the floor, the report ------------------------------------

function runChild(engine: EngineName, root: string): Promise<EngineResult> {
  const self = fileURLToPath(import.meta.url);
  const childArgs = ['--expose-gc', self, '--engine', engine, '--root', root, '--cycles', String(CYCLES), '--live', String(LIVE), '--sample-every', String(SAMPLE_EVERY), '--flush-every', String(FLUSH_EVERY), '--epoch-every', String(EPOCH_EVERY), '--seed', String(SEED), ...(GC_SPACE_AMP !== undefined ? ['--gc-space-amplification', String(GC_SPACE_AMP)] : []), ...(GC_STEP_BYTES !== undefined ? ['--gc-step-bytes', String(GC_STEP_BYTES)] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        resolve(JSON.parse(text) as EngineResult);
      } catch {
        reject(new Error(`${engine}: child exited with ${code ?? signal} and no result (${text.slice(0, 200)})`));
      }
    });
  });
}

/** The device floor: the same bytes written sequentially, 256 KiB at a time, to one file on the same filesystem (wrapping at 256 MiB), then fsync. */
function floor(root: string, bytes: number): { bytes: number; seconds: number; MBps: number; chunk: number; wrapBytes: number } {
  const file = path.join(root, 'floor.bin');
  const chunk = Buffer.alloc(FLOOR_CHUNK);
  const fillRandom = rng(SEED ^ 0x3c3c3c3c);
  for (let i = 0; i < chunk.length; i++) chunk[i] = Math.floor(fillRandom() * 256);
  const fd = fs.openSync(file, 'w');
  const t0 = performance.now();
  let written = 0;
  while (written < bytes) {
    const n = Math.min(FLOOR_CHUNK, bytes - written);
    fs.writeSync(fd, chunk, 0, n, written % FLOOR_WRAP);
    written += n;
  }
  fs.fsyncSync(fd);
  const seconds = (performance.now() - t0) / 1000;
  fs.closeSync(fd);
  fs.rmSync(file);
  return { bytes, seconds: r3(seconds), MBps: r3(bytes / 1e6 / seconds), chunk: FLOOR_CHUNK, wrapBytes: FLOOR_WRAP };
}

interface Report {
  benchmark: string;
  date: string;
  machine: { cpus: number; cpuModel: string | undefined; memoryGiB: number; node: string; platform: string; filesystem: string; loadAverageStart: number[]; loadAverageEnd: number[] };
  config: { cycles: number; live: number; minSize: number; maxSize: number; seed: number; sampleEvery: number; flushEvery: number; epochEvery: number; geometry: typeof GEOMETRY; gcSpaceAmplification: number | 'default'; gcStepBytes?: number | 'default'; quick: boolean };
  engines: EngineResult[];
  floor: ReturnType<typeof floor> & { cyclesPerSecondEquivalent: number };
  summary: Record<string, unknown>;
  targets: { target: string; measured: string; met: boolean | null }[];
  notes: string[];
}

function last<T>(xs: T[]): T | undefined {
  return xs[xs.length - 1];
}

/** Disk over the samples after the warm-up (the second half of the cycles): spread = (max - min) / median. */
function flatness(r: EngineResult): { from: number; minMB: number; maxMB: number; spreadPct: number } | undefined {
  const after = r.samples.filter((s) => s.cycle >= r.cycles / 2);
  if (after.length < 2) return undefined;
  const d = after.map((s) => s.diskBytes).sort((a, b) => a - b);
  const med = d[d.length >> 1]!;
  return { from: after[0]!.cycle, minMB: r3(d[0]! / 1e6), maxMB: r3(d[d.length - 1]! / 1e6), spreadPct: r3((100 * (d[d.length - 1]! - d[0]!)) / med) };
}

/** Write amplification over the second half of the cycles (steady state): device (or wchar) bytes / payload bytes. */
function steadyWa(r: EngineResult): { zns: number | null; wchar: number | null } {
  const after = r.samples.filter((s) => s.cycle >= r.cycles / 2);
  const a = after[0];
  const b = last(after);
  if (!a || !b || a === b) return { zns: null, wchar: null };
  const user = b.userBytesPut - a.userBytesPut;
  return {
    zns: a.zns && b.zns ? r3((b.zns.deviceBytesWritten - a.zns.deviceBytesWritten) / user) : null,
    wchar: a.wchar !== null && b.wchar !== null ? r3((b.wchar - a.wchar) / user) : null,
  };
}

function summarize(engines: EngineResult[], floorResult: Report['floor']): { summary: Record<string, unknown>; targets: Report['targets'] } {
  const by = (n: EngineName) => engines.find((e) => e.engine === n);
  const summary: Record<string, unknown> = {};
  for (const e of engines) {
    const f = last(e.samples);
    const rss = e.samples.map((s) => s.rssBytes);
    summary[e.engine] = {
      cyclesPerSecond: e.cyclesPerSecond,
      vsFloorCyclesPerSecond: r3(e.cyclesPerSecond / floorResult.cyclesPerSecondEquivalent),
      putUs: e.latency.put,
      freeUs: e.latency.free,
      finalDiskMB: f ? r3(f.diskBytes / 1e6) : null,
      finalLivePayloadMB: f ? r3(f.livePayloadBytes / 1e6) : null,
      finalSpaceAmplification: f?.spaceAmplification ?? null,
      znsSpaceAmplification: f?.zns?.spaceAmplification ?? null,
      znsWriteAmplification: f?.zns?.writeAmplification ?? null,
      wcharWriteAmplification: f?.wcharWriteAmplification ?? null,
      steadyWriteAmplification: steadyWa(e),
      finalRssMB: f ? r3(f.rssBytes / 1e6) : null,
      maxRssMB: rss.length ? r3(Math.max(...rss) / 1e6) : null,
      flatAfterWarmup: flatness(e) ?? null,
      error: e.error ?? null,
    };
  }
  const targets: Report['targets'] = [];
  const gcOn = by('zns-gc');
  const gcOff = by('zns-nogc');
  const ep = by('zns-epochs');
  const lm = by('lmdb');
  if (gcOn) {
    const f = last(gcOn.samples)!;
    const fe = ep ? last(ep.samples) : undefined;
    const fl = lm ? last(lm.samples) : undefined;
    targets.push({
      target: 'disk ≤ 1.5× live payload bytes (lmdb-js was about 2.8×)',
      measured: `GC on ${f.spaceAmplification.toFixed(2)}×${fe ? `, with epochs ${fe.spaceAmplification.toFixed(2)}×` : ''}${fl ? `; lmdb-js ${fl.spaceAmplification.toFixed(2)}× in this run` : ''} (final disk / live payload)`,
      met: f.spaceAmplification <= 1.5 && (fe === undefined || fe.spaceAmplification <= 1.5),
    });
    const wa = f.zns?.writeAmplification ?? null;
    const swa = steadyWa(gcOn);
    targets.push({
      target: 'write amplification ≤ 2.0',
      measured: `GC on: ${wa?.toFixed(2)} over the whole run (device bytes written / payload bytes put, fill included), ${swa.zns?.toFixed(2)} over the second half; wchar / payload ${f.wcharWriteAmplification?.toFixed(2)} (catalog included)`,
      met: wa === null ? null : wa <= 2.0 && (swa.zns === null || swa.zns <= 2.0),
    });
    if (gcOff) {
      const ratio = gcOn.latency.put.p999Us / gcOff.latency.put.p999Us;
      targets.push({
        target: 'put p999 with GC ≤ 2× without GC',
        measured: `${us(gcOn.latency.put.p999Us)} µs vs ${us(gcOff.latency.put.p999Us)} µs: ${ratio.toFixed(2)}× (p99 ${us(gcOn.latency.put.p99Us)} vs ${us(gcOff.latency.put.p99Us)} µs; max ${us(gcOn.latency.put.maxUs)} vs ${us(gcOff.latency.put.maxUs)} µs)`,
        met: ratio <= 2,
      });
    }
    const fl1 = flatness(gcOn);
    const fl2 = ep ? flatness(ep) : undefined;
    if (fl1) {
      targets.push({
        target: 'disk curve flat after warm-up (second half of the cycles: spread (max − min) / median ≤ 10%)',
        measured: `GC on: ${fl1.minMB.toFixed(1)}–${fl1.maxMB.toFixed(1)} MB, spread ${fl1.spreadPct.toFixed(1)}%${fl2 ? `; with epochs ${fl2.minMB.toFixed(1)}–${fl2.maxMB.toFixed(1)} MB, spread ${fl2.spreadPct.toFixed(1)}%` : ''}`,
        met: fl1.spreadPct <= 10 && (fl2 === undefined || fl2.spreadPct <= 10),
      });
    }
  }
  return { summary, targets };
}

// ----- printing ----------------------------------------------------------------------------

function mb(x: number | null | undefined): string {
  return x === null || x === undefined ? '–' : (x / 1e6).toFixed(1);
}
function us(x: number): string {
  return x >= 1000 ? x.toFixed(0) : x >= 100 ? x.toFixed(1) : x.toFixed(2);
}

function printReport(r: Report): void {
  say('');
  say(`churn: ${r.config.cycles} cycles, ${r.config.live} live objects (${r.config.minSize}–${r.config.maxSize} B), ${r.machine.cpus} cpus, node ${r.machine.node}, ${r.machine.filesystem}`);
  say(`${'engine'.padEnd(24)} ${'cyc/s'.padStart(8)} ${'put p50'.padStart(8)} ${'p99'.padStart(8)} ${'p999'.padStart(8)} ${'max'.padStart(8)} ${'free p50'.padStart(8)} ${'p99'.padStart(7)} ${'p999'.padStart(7)} ${'max'.padStart(8)} ${'disk MB'.padStart(8)} ${'×live'.padStart(6)} ${'WA'.padStart(6)} ${'wchar'.padStart(6)} ${'RSS MB'.padStart(7)}`);
  for (const e of r.engines) {
    const f = last(e.samples);
    say(
      `${e.label.padEnd(24)} ${String(e.cyclesPerSecond).padStart(8)} ${us(e.latency.put.p50Us).padStart(8)} ${us(e.latency.put.p99Us).padStart(8)} ${us(e.latency.put.p999Us).padStart(8)} ${us(e.latency.put.maxUs).padStart(8)} ${us(e.latency.free.p50Us).padStart(8)} ${us(e.latency.free.p99Us).padStart(7)} ${us(e.latency.free.p999Us).padStart(7)} ${us(e.latency.free.maxUs).padStart(8)} ${mb(f?.diskBytes).padStart(8)} ${(f?.spaceAmplification.toFixed(2) ?? '–').padStart(6)} ${String(f?.zns?.writeAmplification ?? '–').padStart(6)} ${String(f?.wcharWriteAmplification ?? '–').padStart(6)} ${mb(f?.rssBytes).padStart(7)}` +
        (e.error ? `  ERROR ${e.error}` : ''),
    );
  }
  say(`device floor: ${r.floor.MBps} MB/s sequential (${mb(r.floor.bytes)} MB in ${r.floor.seconds} s) = ${r.floor.cyclesPerSecondEquivalent} cycles/s if a cycle cost only its payload's write`);
  for (const t of r.targets) say(`target: ${t.target}: ${t.measured} -> ${t.met === null ? '?' : t.met ? 'met' : 'NOT met'}`);
  if (MARKDOWN) say('\n' + markdown(r));
}

function markdown(r: Report): string {
  const lines: string[] = [];
  lines.push('| engine | cycles/s | put p50 | put p99 | put p999 | put max | free p50 | free p99 | free p999 | free max | flush p50 / max (ms) | final disk MB | disk / live | WA (engine) | wchar / payload | RSS MB |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const e of r.engines) {
    const f = last(e.samples);
    const p = e.latency.put;
    const q = e.latency.free;
    lines.push(
      `| ${e.label}${e.error ? ' (stopped)' : ''} | ${e.cyclesPerSecond.toLocaleString('en-US')} | ${us(p.p50Us)} | ${us(p.p99Us)} | ${us(p.p999Us)} | ${us(p.maxUs)} | ${us(q.p50Us)} | ${us(q.p99Us)} | ${us(q.p999Us)} | ${us(q.maxUs)} | ${(e.latency.flush.p50Us / 1000).toFixed(1)} / ${(e.latency.flush.maxUs / 1000).toFixed(1)} | ${mb(f?.diskBytes)} | ${f?.spaceAmplification.toFixed(2) ?? '–'} | ${f?.zns?.writeAmplification?.toFixed(2) ?? '–'} | ${f?.wcharWriteAmplification?.toFixed(2) ?? '–'} | ${mb(f?.rssBytes)} |`,
    );
  }
  lines.push('');
  lines.push('| zns-slab | zns space amp. (device / live slots) | WA, 2nd half | GC zones collected | GC MB moved | GC s | zone resets | zones finished early | epochs advanced / closed |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const e of r.engines) {
    const z = last(e.samples)?.zns;
    if (!z) continue;
    lines.push(
      `| ${e.label} | ${z.spaceAmplification?.toFixed(2) ?? '–'} | ${steadyWa(e).zns?.toFixed(2) ?? '–'} | ${z.gcZonesCollected.toLocaleString('en-US')} | ${(z.gcBytesMoved / 1e6).toFixed(0)} | ${(z.gcMs / 1000).toFixed(2)} | ${z.zoneResets.toLocaleString('en-US')} | ${z.zonesFinishedEarly} | ${e.epochs ? `${e.epochs.advanced} / ${e.epochs.closed}` : '–'} |`,
    );
  }
  lines.push('');
  lines.push('| target | measured | met? |');
  lines.push('|---|---|---|');
  for (const t of r.targets) lines.push(`| ${t.target} | ${t.measured} | ${t.met === null ? '?' : t.met ? '**yes**' : '**no**'} |`);
  return lines.join('\n');
}

// ----- the SVG -----------------------------------------------------------------------------

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Two panels side by side: every engine at full scale, and a zoom on the engines that stay
 * within 3x the live payload (lines above it are clipped). Live payload bytes dashed. The
 * legend (final disk, x live payload) below.
 */
function svgChart(r: Report): string {
  const W = 1040;
  const top = 84;
  const ph = 380;
  const rows = Math.ceil((r.engines.length + 1) / 2);
  const H = top + ph + 70 + rows * 24 + 6;
  const pw = 400;
  const left = [78, 78 + pw + 92];
  const maxX = r.config.cycles;
  const live = r.engines[0]?.samples ?? [];
  const liveMax = Math.max(1, ...live.map((s) => s.livePayloadBytes / 1e6));
  let maxAll = liveMax;
  for (const e of r.engines) for (const s of e.samples) maxAll = Math.max(maxAll, s.diskBytes / 1e6);
  let maxZoom = liveMax;
  for (const e of r.engines) for (const s of e.samples) if (s.diskBytes / 1e6 <= 3 * liveMax) maxZoom = Math.max(maxZoom, s.diskBytes / 1e6);
  const fmtX = (c: number) => (c === 0 ? '0' : maxX >= 1e6 ? `${Number((c / 1e6).toFixed(2))}M` : `${Number((c / 1e3).toFixed(0))}k`);
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  o.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="${left[0]}" y="24" font-size="16" font-weight="bold">${esc(`Disk under churn: ${r.config.cycles.toLocaleString('en-US')} free + put cycles, ${r.config.live.toLocaleString('en-US')} live objects of ${r.config.minSize} B–${r.config.maxSize / 1024} KiB`)}</text>`);
  o.push(`<text x="${left[0]}" y="44" fill="#555">${esc(`${r.date.slice(0, 10)}, ${r.machine.cpus}-core shared machine, ${r.machine.filesystem.split(' ')[0]}; disk = allocated blocks of each store's files, every ${r.config.sampleEvery.toLocaleString('en-US')} cycles (bench/churn.bench.ts)`)}</text>`);
  const panel = (x0: number, yMax: number, title: string, id: string) => {
    const yStep = niceStep(yMax, 6);
    const yTop = Math.ceil((yMax * 1.04) / yStep) * yStep;
    const xStep = niceStep(maxX, 5);
    const X = (c: number) => x0 + (c / maxX) * pw;
    const Y = (v: number) => top + ph - (v / yTop) * ph;
    o.push(`<text x="${x0}" y="${top - 8}" font-weight="bold">${esc(title.replace('{top}', String(Number(yTop.toFixed(3)))))}</text>`);
    for (let v = 0; v <= yTop + 1e-9; v += yStep) {
      o.push(`<line x1="${x0}" y1="${Y(v).toFixed(1)}" x2="${x0 + pw}" y2="${Y(v).toFixed(1)}" stroke="#e6e6e6"/>`);
      o.push(`<text x="${x0 - 7}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${Number(v.toFixed(3))}</text>`);
    }
    for (let c = 0; c <= maxX + 1e-9; c += xStep) {
      o.push(`<line x1="${X(c).toFixed(1)}" y1="${top}" x2="${X(c).toFixed(1)}" y2="${top + ph}" stroke="#f2f2f2"/>`);
      o.push(`<text x="${X(c).toFixed(1)}" y="${top + ph + 18}" text-anchor="middle">${fmtX(c)}</text>`);
    }
    o.push(`<line x1="${x0}" y1="${top + ph}" x2="${x0 + pw}" y2="${top + ph}" stroke="#333"/>`);
    o.push(`<line x1="${x0}" y1="${top}" x2="${x0}" y2="${top + ph}" stroke="#333"/>`);
    o.push(`<text x="${x0 + pw / 2}" y="${top + ph + 40}" text-anchor="middle">cycles</text>`);
    o.push(`<text transform="translate(${x0 - 56} ${top + ph / 2}) rotate(-90)" text-anchor="middle">disk, MB (10^6 bytes)</text>`);
    o.push(`<clipPath id="${id}"><rect x="${x0}" y="${top}" width="${pw}" height="${ph}"/></clipPath>`);
    o.push(`<g clip-path="url(#${id})">`);
    const pts = (ss: Sample[], f: (s: Sample) => number) => ss.map((s) => `${X(s.cycle).toFixed(1)},${Y(f(s) / 1e6).toFixed(1)}`).join(' ');
    o.push(`<polyline fill="none" stroke="#222" stroke-width="1.6" stroke-dasharray="6 4" points="${pts(live, (s) => s.livePayloadBytes)}"/>`);
    for (const e of r.engines) {
      o.push(`<polyline fill="none" stroke="${COLORS[e.engine]}" stroke-width="2.2" stroke-linejoin="round" points="${pts(e.samples, (s) => s.diskBytes)}"/>`);
      for (const s of e.samples) o.push(`<circle cx="${X(s.cycle).toFixed(1)}" cy="${Y(s.diskBytes / 1e6).toFixed(1)}" r="2.3" fill="${COLORS[e.engine]}"/>`);
      const f = last(e.samples);
      if (e.error && f) o.push(`<text x="${X(f.cycle).toFixed(1)}" y="${(Y(f.diskBytes / 1e6) - 8).toFixed(1)}" text-anchor="middle" fill="${COLORS[e.engine]}" font-weight="bold">× stopped</text>`);
    }
    o.push('</g>');
  };
  panel(left[0]!, maxAll, 'All engines', 'all');
  panel(left[1]!, maxZoom, 'Zoom: 0–{top} MB (lines above it are cut off)', 'zoom');
  // legend below: two columns
  const ly0 = top + ph + 70;
  const items: { color: string; dash: boolean; label: string; detail: string }[] = r.engines.map((e) => {
    const f = last(e.samples);
    return { color: COLORS[e.engine], dash: false, label: e.label, detail: f ? `final ${(f.diskBytes / 1e6).toFixed(0)} MB = ${f.spaceAmplification.toFixed(2)}× live payload${e.error ? ' (stopped)' : ''}` : '' };
  });
  const fl = last(live);
  items.push({ color: '#222', dash: true, label: 'live payload bytes', detail: fl ? `${(fl.livePayloadBytes / 1e6).toFixed(0)} MB` : '' });
  items.forEach((it, i) => {
    const lx = left[0]! + (i % 2) * 470;
    const ly = ly0 + Math.floor(i / 2) * 24;
    o.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 26}" y2="${ly - 4}" stroke="${it.color}" stroke-width="${it.dash ? 1.6 : 3}"${it.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
    o.push(`<text x="${lx + 34}" y="${ly}"><tspan font-weight="bold">${esc(it.label)}</tspan><tspan dx="8" fill="#555">${esc(it.detail)}</tspan></text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}

// ----- main --------------------------------------------------------------------------------

function emit(r: Report): void {
  printReport(r);
  const json = JSON.stringify(r, null, 2) + '\n';
  process.stdout.write(json);
  if (OUT) fs.writeFileSync(OUT, json);
  if (SVG) {
    fs.writeFileSync(SVG, svgChart(r));
    say(`wrote ${SVG}`);
  }
}

async function main(): Promise<void> {
  if (CHILD_ENGINE !== undefined) {
    if (!(ENGINES as readonly string[]).includes(CHILD_ENGINE) || CHILD_ROOT === undefined) throw new Error(`--engine must be one of ${ENGINES.join(', ')}, with --root`);
    const result = await runEngine(CHILD_ENGINE as EngineName, CHILD_ROOT);
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  if (FROM !== undefined) {
    const saved = JSON.parse(fs.readFileSync(FROM, 'utf8')) as Report;
    emit({ ...saved, ...summarize(saved.engines, saved.floor) });
    return;
  }
  const only = argValue('--engines')?.split(',');
  for (const e of only ?? []) if (!(ENGINES as readonly string[]).includes(e)) throw new Error(`--engines: unknown engine ${e} (${ENGINES.join(', ')})`);
  const engines = ENGINES.filter((e) => only === undefined || only.includes(e));
  const root = benchRoot();
  const loadAverageStart = os.loadavg().map(r3);
  say(`churn: ${CYCLES} cycles, ${LIVE} live objects (${MIN_SIZE}–${MAX_SIZE} B), flush every ${FLUSH_EVERY}, samples every ${SAMPLE_EVERY}; engines ${engines.join(', ')}; in ${root} (${fsType(root)}); load ${loadAverageStart.join(' ')}`);
  const results: EngineResult[] = [];
  try {
    for (const engine of engines) {
      say(`${LABELS[engine]}:`);
      const t0 = performance.now();
      const r = await runChild(engine, root);
      results.push(r);
      say(`  ${engine} done in ${((performance.now() - t0) / 1000).toFixed(1)} s${r.error ? ` (stopped: ${r.error})` : ''}`);
    }
    const bytes = results[0] ? last(results[0].samples)?.userBytesPut ?? 0 : 0;
    const fillBytes = results[0]?.samples[0]?.userBytesPut ?? 0;
    const fl = floor(root, bytes);
    const cycleBytes = bytes - fillBytes;
    const floorResult = { ...fl, cyclesPerSecondEquivalent: Math.round(CYCLES / (cycleBytes / 1e6 / fl.MBps)) };
    say(`device floor: ${fl.MBps} MB/s for ${mb(bytes)} MB`);
    const { summary, targets } = summarize(results, floorResult);
    const report: Report = {
      benchmark: 'churn (issue 11, zone GC): bench/churn.bench.ts',
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memoryGiB: r3(os.totalmem() / 2 ** 30),
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
        filesystem: fsType(root),
        loadAverageStart,
        loadAverageEnd: os.loadavg().map(r3),
      },
      config: { cycles: CYCLES, live: LIVE, minSize: MIN_SIZE, maxSize: MAX_SIZE, seed: SEED, sampleEvery: SAMPLE_EVERY, flushEvery: FLUSH_EVERY, epochEvery: EPOCH_EVERY, geometry: GEOMETRY, gcSpaceAmplification: GC_SPACE_AMP ?? 'default', gcStepBytes: GC_STEP_BYTES ?? 'default', quick: QUICK },
      engines: results,
      floor: floorResult,
      summary,
      targets,
      notes: [
        'Each engine runs in its own child process (node --expose-gc), one after another, on the same seeded operation sequence; RSS is that process\'s, sampled after gc().',
        'Latency: every free and every put timed on its own with performance.now() into preallocated Float64Arrays; timerOverheadNs is the median cost of an empty timer pair. Flushes (and epoch advance/close) are timed apart.',
        'cycles/s = cycles / time of the timed loop, which includes the flushes and epoch work and leaves out the sampling.',
        'Disk = allocated blocks (stat.blocks x 512) of every file of the store (zns-slab: zone files + catalog; lmdb-js: data.mdb + lock.mdb; better-sqlite3: db + WAL + shm).',
        'Live payload = the sizes of the live objects as put (the benchmark\'s own count); space amplification = disk / live payload. zns-slab\'s own spaceAmplification divides device bytes by the live objects\' slot bytes (header + class size), so it reads lower.',
        'wchar = bytes the process passed to write calls (/proc/self/io), from just before the store opened; on tmpfs write_bytes stays 0. wchar / payload is a write amplification all engines can be held to (zns-slab: zone writes + catalog; lmdb-js: page writes; SQLite: WAL + checkpoints).',
        'Objects: bytes 0-3 hold the object\'s id, the rest is the same fixed random bytes; at the end 2000 random live objects are read back and compared.',
        'Device floor: the total payload bytes (fill + cycles) written sequentially to one file on the same filesystem, 256 KiB per write, wrapping at 256 MiB, then fsync.',
      ],
    };
    emit(report);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  say(String(err instanceof Error ? err.stack : err));
  process.exitCode = 1;
});
