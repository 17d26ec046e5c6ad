#!/usr/bin/env node
/**
 * npm run sim -- [--seed N] [--seeds K] [--ops M] [--no-faults] [--soak] [--replay FILE] [--shrink-ms MS]
 *                [--cache | --no-cache] [--help]
 *
 * Runs the deterministic simulator: K seeds from N (default: the fixed CI set plus one random
 * seed, printed), M operations each. A failure prints its seed, the shortest failing operation
 * list it found (also written to sim-failures/seed-N.json) and how to replay it; exit 1.
 * JSON summary on stdout, progress and failures on stderr.
 *
 * The cache (sim/cacheRunner.ts) has seeds of its own: with no --seed/--soak both CI sets run
 * (the store's, then the cache's, each with one random seed); `--cache` runs cache seeds only
 * (--seed, --seeds, --soak, --ops apply to them; failures go to sim-failures/cache-seed-N.json),
 * `--no-cache` the store's only. `--replay` reads which simulator a file is for from it.
 *
 * Each store seed runs one geometry (seed % 3) and one configuration (sim/runner.ts SIM_CONFIGS:
 * zone GC off or on with which options, a classic or long-lived-epoch workload), printed with
 * the seed. A saved failure records the seed's gc options (`gc`), and a replay runs with them;
 * a replay file without `gc` runs with the seed's configuration.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Op } from './ops.js';
import type { GcOptions } from '../engine/gc.js';
import { type RunResult, type SimDeviceProfile, backgroundWritesFor, deviceProfileFor, emptyResult, replayProfile, runOps, runSeed, simConfigFor } from './runner.js';
import { type CacheOp, type CacheRunResult, cacheConfigFor, runCacheOps, runCacheSeed, shrinkCache } from './cacheRunner.js';
import { runAsMain } from './main.js';
import { shrink } from './shrink.js';

/** The seeds CI runs every time (docs/RELIABILITY.md says what they cover). */
export const CI_SEEDS = Array.from({ length: 24 }, (_, i) => i + 1);
export const CI_OPS = 1500;
/** The cache's CI seeds (sim/cacheRunner.ts; the seed picks one of four shapes, by seed % 4). */
export const CACHE_CI_SEEDS = Array.from({ length: 16 }, (_, i) => i + 1);
export const CACHE_CI_OPS = 1500;

interface Args {
  seeds: number[];
  /** Cache seeds to run. */
  cacheSeeds: number[];
  ops: number;
  cacheOps: number;
  faults: boolean;
  replay?: string;
  shrinkMs: number;
}

function parseArgs(argv: string[]): Args {
  let seed: number | undefined;
  let count: number | undefined;
  let ops: number | undefined;
  let faults = true;
  let which: 'both' | 'cache' | 'engine' = 'both';
  let replay: string | undefined;
  let shrinkMs = 120_000;
  let soak = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === '--seed') seed = Number(value());
    else if (a === '--seeds') count = Number(value());
    else if (a === '--ops') ops = Number(value());
    else if (a === '--no-faults') faults = false;
    else if (a === '--replay') replay = value();
    else if (a === '--shrink-ms') shrinkMs = Number(value());
    else if (a === '--soak') soak = true;
    else if (a === '--cache') which = 'cache';
    else if (a === '--no-cache') which = 'engine';
    else if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    } else throw new RangeError(`unknown argument ${a} (--help lists the options)`);
  }
  for (const [name, v] of [['--seed', seed], ['--seeds', count], ['--ops', ops]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`${name} takes a non-negative integer`);
  }
  let seeds: number[];
  if (seed !== undefined) seeds = Array.from({ length: count ?? 1 }, (_, i) => seed! + i);
  else if (soak) {
    const base = Date.now() % 1_000_000_000;
    seeds = Array.from({ length: count ?? 100 }, (_, i) => base + i);
  } else seeds = [...CI_SEEDS, Math.floor(Math.random() * 1_000_000_000)];
  let cacheSeeds: number[] = [];
  if (which === 'cache') {
    // --seed and --soak name cache seeds; without them, the cache's CI set and a random seed.
    cacheSeeds = seed !== undefined || soak ? seeds : [...CACHE_CI_SEEDS, Math.floor(Math.random() * 1_000_000_000)];
    seeds = [];
  } else if (which === 'both' && seed === undefined && !soak) {
    cacheSeeds = [...CACHE_CI_SEEDS, Math.floor(Math.random() * 1_000_000_000)];
  }
  return { seeds, cacheSeeds, ops: ops ?? CI_OPS, cacheOps: ops ?? CACHE_CI_OPS, faults, ...(replay ? { replay } : {}), shrinkMs };
}

const HELP = `npm run sim -- [options]
  --seed N        first seed (default: the CI set 1-24 plus one random seed)
  --seeds K       how many seeds from --seed (default 1; with --soak 100)
  --ops M         operations per seed (default ${CI_OPS})
  --no-faults     no injected device or catalog faults (crashes still)
  --soak          K fresh seeds from the clock
  --replay FILE   run a saved failure (sim-failures/seed-N.json, test/sim/replays/*.json)
  --shrink-ms MS  time to shrink a failure (default 120000)
  --cache         the cache's simulator only; --no-cache the store's only
Store seeds: geometry seed % 3, configuration (zone GC options, workload) floor(seed / 3) % 5,
background device writes unless seed % 4 = 0, device profile (atomic, null_blk, nvme)
(seed + floor(seed / 3)) % 3.
`;

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.replay !== undefined) {
    const saved = JSON.parse(fs.readFileSync(args.replay, 'utf8')) as { seed: number; kind?: string; gc?: GcOptions | false; backgroundWrites?: boolean; splitWrites?: boolean; profile?: SimDeviceProfile; ops: Op[] };
    const result =
      saved.kind === 'cache'
        ? await runCacheOps(saved.seed, saved.ops as unknown as CacheOp[], { faults: args.faults })
        : await runOps(saved.seed, saved.ops, { ...(saved.gc !== undefined ? { gc: saved.gc } : {}), backgroundWrites: saved.backgroundWrites ?? false, profile: replayProfile(saved) });
    process.stdout.write(JSON.stringify({ replay: args.replay, seed: saved.seed, result }, null, 2) + '\n');
    if (result.failure) process.stderr.write(`still fails at step ${result.failure.step}: ${result.failure.message}\n`);
    else process.stderr.write('passes now\n');
    return result.failure ? 1 : 0;
  }
  const started = Date.now();
  const totals = newTotals();
  const failures: { seed: number; step: number; message: string; shrunkOps: number; file: string }[] = [];
  for (const seed of args.seeds) {
    const t0 = Date.now();
    const { result, ops } = await runSeed(seed, args.ops, { faults: args.faults });
    add(totals, result);
    process.stderr.write(
      `seed ${seed} (${simConfigFor(seed).name}): ${result.ops} ops, ${result.crashes} crashes, ${result.faults} faults, ${result.reopens} reopens, ${result.recoveries} recovered catalogs, ` +
        `gc: ${result.gcOps} calls, ${result.gcZonesCollected} zones collected, ${result.gcSlabsMoved} slabs moved, ${result.gcStepFailures} failed steps; ${result.sealWriteFailures} background seal writes failed, ${result.gcMoveWriteFailures} GC move writes; ` +
        `${Date.now() - t0} ms` +
        (result.failure ? `  FAILED at step ${result.failure.step}: ${result.failure.message}` : '') + '\n',
    );
    if (result.failure) {
      process.stderr.write(`shrinking (up to ${args.shrinkMs} ms)...\n`);
      const kind = failureKind(result.failure.message);
      const small = await shrink(seed, ops, args.shrinkMs, (n) => process.stderr.write(`  ${n} ops still fail\n`), {}, (m) => failureKind(m) === kind);
      const dir = path.resolve('sim-failures');
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `seed-${seed}.json`);
      fs.writeFileSync(file, JSON.stringify({ seed, gc: simConfigFor(seed).gc, backgroundWrites: backgroundWritesFor(seed), profile: deviceProfileFor(seed), failure: small.result.failure, ops: small.ops }, null, 1) + '\n');
      process.stderr.write(
        `seed ${seed} fails with ${small.ops.length} ops (${small.trials} trials): ${small.result.failure?.message}\n` +
          `  replay: npm run sim -- --replay ${path.relative(process.cwd(), file)}   (or --seed ${seed} --ops ${args.ops})\n`,
      );
      failures.push({ seed, step: result.failure.step, message: result.failure.message, shrunkOps: small.ops.length, file });
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const cache = await runCacheSeeds(args);
  const summary = { ...totals, seconds, opsPerSeed: args.ops, seedList: args.seeds, failures, ...(cache ? { cache } : {}) };
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  if (args.seeds.length > 0) {
    process.stderr.write(
      `sim: ${totals.seeds} seeds, ${totals.ops} ops, ${totals.crashes} crashes, ${totals.faults} faults, ${totals.recoveries} recovered catalogs, ` +
        `gc: ${totals.gcOps} calls, ${totals.churns} churns, ${totals.gcZonesCollected} zones collected, ${totals.gcSlabsMoved} slabs moved, ` +
        `crashes inside gc calls ${JSON.stringify(totals.crashesInGcOps)}, faults inside gc calls ${totals.faultsInGcOps}, background seal writes failed ${totals.sealWriteFailures}, GC move writes ${totals.gcMoveWriteFailures}` +
        `: ${failures.length === 0 ? '0 failures' : `${failures.length} FAILED`}\n`,
    );
  }
  if (cache) {
    process.stderr.write(
      `sim (cache): ${cache.seeds} seeds, ${cache.ops} ops, ${cache.crashes} crashes, ${cache.faults} faults, ${cache.reopens} clean reopens, ${cache.evictedEpochs} epochs evicted, ${cache.expiredEpochs} expired: ${cache.failures.length === 0 ? '0 failures' : `${cache.failures.length} FAILED`}\n`,
    );
  }
  return failures.length === 0 && (cache?.failures.length ?? 0) === 0 ? 0 : 1;
}

interface CacheTotals {
  seeds: number;
  ops: number;
  crashes: number;
  faults: number;
  reopens: number;
  sets: number;
  gets: number;
  checkedAfterReopen: number;
  verifies: number;
  evictedEpochs: number;
  reinsertedEntries: number;
  expiredEpochs: number;
  failedSetsThatStored: number;
  seconds: number;
  opsPerSeed: number;
  seedList: number[];
  failures: { seed: number; step: number; message: string; shrunkOps: number; file: string }[];
}

/** The cache's seeds (sim/cacheRunner.ts): as the store's, failures shrunk and saved for --replay. */
async function runCacheSeeds(args: Args): Promise<CacheTotals | undefined> {
  if (args.cacheSeeds.length === 0) return undefined;
  const started = Date.now();
  const t: CacheTotals = { seeds: 0, ops: 0, crashes: 0, faults: 0, reopens: 0, sets: 0, gets: 0, checkedAfterReopen: 0, verifies: 0, evictedEpochs: 0, reinsertedEntries: 0, expiredEpochs: 0, failedSetsThatStored: 0, seconds: 0, opsPerSeed: args.cacheOps, seedList: args.cacheSeeds, failures: [] };
  /** Failures shrunk so far: past three, the rest are reported by seed only (a broken build should not take CI hours). */
  let shrunk = 0;
  for (const seed of args.cacheSeeds) {
    const t0 = Date.now();
    const { result, ops } = await runCacheSeed(seed, args.cacheOps, { faults: args.faults });
    addCache(t, result);
    process.stderr.write(
      `cache seed ${seed} (${cacheConfigFor(seed).name}): ${result.ops} ops, ${result.crashes} crashes, ${result.faults} faults, ${result.reopens} reopens, ${result.evictedEpochs} evicted epochs, ${result.expiredEpochs} expired, ${Date.now() - t0} ms` +
        (result.failure ? `  FAILED at step ${result.failure.step}: ${result.failure.message}` : '') + '\n',
    );
    if (!result.failure) continue;
    if (shrunk >= 3) {
      process.stderr.write(`  not shrunk (three failures shrunk already): replay with --cache --seed ${seed} --ops ${args.cacheOps}\n`);
      t.failures.push({ seed, step: result.failure.step, message: result.failure.message, shrunkOps: ops.length, file: '' });
      continue;
    }
    shrunk++;
    process.stderr.write(`shrinking (up to ${args.shrinkMs} ms)...\n`);
    const small = await shrinkCache(seed, ops, args.shrinkMs, (n) => process.stderr.write(`  ${n} ops still fail\n`));
    const dir = path.resolve('sim-failures');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `cache-seed-${seed}.json`);
    fs.writeFileSync(file, JSON.stringify({ kind: 'cache', seed, failure: small.result.failure, ops: small.ops }, null, 1) + '\n');
    process.stderr.write(
      `cache seed ${seed} fails with ${small.ops.length} ops (${small.trials} trials): ${small.result.failure?.message}\n` +
        `  replay: npm run sim -- --replay ${path.relative(process.cwd(), file)}   (or --cache --seed ${seed} --ops ${args.cacheOps})\n`,
    );
    t.failures.push({ seed, step: result.failure.step, message: result.failure.message, shrunkOps: small.ops.length, file });
  }
  t.seconds = (Date.now() - started) / 1000;
  return t;
}

function addCache(t: CacheTotals, r: CacheRunResult): void {
  t.seeds++;
  t.ops += r.ops;
  t.crashes += r.crashes;
  t.faults += r.faults;
  t.reopens += r.reopens;
  t.sets += r.sets;
  t.gets += r.gets;
  t.checkedAfterReopen += r.checkedAfterReopen;
  t.verifies += r.verifies;
  t.evictedEpochs += r.evictedEpochs;
  t.reinsertedEntries += r.reinsertedEntries;
  t.expiredEpochs += r.expiredEpochs;
  t.failedSetsThatStored += r.failedSetsThatStored;
}

/** A failure's kind, to keep a shrink on the same bug: its message with numbers blanked, cut short. */
export function failureKind(message: string): string {
  return message.replace(/\d+/g, 'N').slice(0, 48);
}

/** A run's totals: every count of RunResult summed over the seeds (one list of fields: RunResult's). */
type Totals = Omit<RunResult, 'failure'> & { seeds: number; failures: number };

function newTotals(): Totals {
  return { ...emptyResult(), seeds: 0, failures: 0 };
}

function add(t: Totals, r: RunResult): void {
  const sums = t as unknown as Record<string, number>;
  for (const [key, value] of Object.entries(r)) if (typeof value === 'number') sums[key] = (sums[key] ?? 0) + value;
  for (const [where, n] of Object.entries(r.crashesInGcOps)) t.crashesInGcOps[where] = (t.crashesInGcOps[where] ?? 0) + n;
  t.seeds++;
  if (r.failure) t.failures++;
}

runAsMain(import.meta.url, main);
