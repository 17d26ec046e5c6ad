/**
 * One run of bench:peers in a process of its own: `node --expose-gc dist/bench/peers/child.js
 * --engine X --workload Y --dir D [--quick]`. Runs engine (or Node floor) X on workload Y in
 * folder D, and prints one RunResult as JSON on stdout. The parent (bench/peers.bench.ts)
 * spawns these and interleaves them.
 */
import os from 'node:os';
import { CHURN_GEOMETRY, type AsyncChurnImpl, lmdbChurnImpl, sqliteChurnImpl, znsChurnImpl } from '../lib/churnEngines.js';
import { r3 } from '../lib/stats.js';
import { describeError } from '../lib/system.js';
import { ENGINES, type EngineName, FLOORS, SEED, type Sizes, type UnitName, WORKLOADS, type WorkloadName, argValue, sizesFor } from './config.js';
import { levelChurnImpl } from './engines/level.js';
import { openKv } from './engines/index.js';
import { appendFloor } from './floors/append.js';
import { directReadFloor } from './floors/directRead.js';
import { type Kv, type KvOptions, MissingFeature } from './kv.js';
import type { Measured, RunResult } from './result.js';
import { churn } from './workloads/churn.js';
import { expiry } from './workloads/expiry.js';
import { qdReadStore } from './workloads/qd.js';
import { mixed, randomGets } from './workloads/read.js';
import { bulk, durableBatches } from './workloads/write.js';

/** Each workload its own seed (the same for every engine and floor of that workload). */
function seedOf(w: WorkloadName): number {
  return (SEED ^ Math.imul(WORKLOADS.indexOf(w) + 1, 0x9e3779b1)) >>> 0;
}

function kvOptions(w: WorkloadName, z: Sizes): KvOptions {
  switch (w) {
    case 'bulk-1k':
      return { mode: 'lazy', keys: z.bulkSmallCount };
    case 'bulk-64k':
      return { mode: 'lazy', keys: z.bulkLargeCount };
    case 'durable-100':
      return { mode: 'durable', keys: z.durableCount };
    case 'get':
    case 'mixed':
      return { mode: 'lazy', keys: z.readKeys };
    case 'expiry':
      return { mode: 'lazy', keys: z.expiryCount, epochEvery: z.expiryEpochObjects };
    case 'churn':
    case 'qd-read':
      throw new Error(`${w} does not run through the key-value face`);
  }
}

async function onKv(kv: Kv, w: WorkloadName, z: Sizes, seed: number): Promise<Measured> {
  switch (w) {
    case 'bulk-1k':
      return bulk(kv, z.bulkSmallCount, z.bulkSmallBytes, z.bulkTxnOps, z.verifySample, seed);
    case 'bulk-64k':
      return bulk(kv, z.bulkLargeCount, z.bulkLargeBytes, z.bulkTxnOps, z.verifySample, seed);
    case 'durable-100':
      return durableBatches(kv, z.durableCount, z.durableEvery, z.durableBytes, z.verifySample, seed);
    case 'get':
      return randomGets(kv, z, seed);
    case 'mixed':
      return mixed(kv, z, seed);
    case 'expiry':
      return expiry(kv, z, seed);
    case 'churn':
    case 'qd-read':
      throw new Error(`${w} does not run through the key-value face`);
  }
}

async function churnImpl(engine: EngineName, dir: string, z: Sizes): Promise<AsyncChurnImpl> {
  const config = { live: z.churnLive, flushEvery: z.churnFlushEvery };
  switch (engine) {
    case 'store':
      return znsChurnImpl(dir, 'gc', { ...config, geometry: CHURN_GEOMETRY });
    case 'lmdb':
      return lmdbChurnImpl(dir, config);
    case 'sqlite':
      return sqliteChurnImpl(dir, config);
    case 'level':
      return levelChurnImpl(dir, config);
    case 'store-direct':
      throw new Error('the churn runs on the default store only');
  }
}

async function runEngine(engine: EngineName, w: WorkloadName, dir: string, z: Sizes, seed: number): Promise<Measured> {
  if (w === 'qd-read') {
    if (engine !== 'store-direct') throw new Error('qd-read runs on store-direct only');
    return qdReadStore(dir, z, seed);
  }
  if (w === 'churn') {
    const impl = await churnImpl(engine, dir, z);
    try {
      return await churn(impl, dir, z, seed);
    } finally {
      await impl.close();
    }
  }
  const kv = await openKv(engine, dir, kvOptions(w, z));
  try {
    const m = await onKv(kv, w, z, seed);
    return { ...m, detail: { ...m.detail, setup: kv.description } };
  } finally {
    await kv.close();
  }
}

async function run(unit: UnitName, w: WorkloadName, dir: string, z: Sizes): Promise<Measured> {
  const seed = seedOf(w);
  if ((ENGINES as readonly string[]).includes(unit)) return runEngine(unit as EngineName, w, dir, z, seed);
  if (unit === 'append') return appendFloor(w, dir, z, seed);
  if (unit === 'node-direct') return directReadFloor(dir, z, seed);
  throw new Error(`${unit} is not run in a child (the parent runs dd and fio)`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unit = argValue(args, '--engine');
  const w = argValue(args, '--workload');
  const dir = argValue(args, '--dir');
  if (unit === undefined || ![...ENGINES, ...FLOORS].includes(unit as UnitName)) throw new Error(`--engine must be one of ${[...ENGINES, ...FLOORS].join(', ')}`);
  if (w === undefined || !(WORKLOADS as readonly string[]).includes(w)) throw new Error(`--workload must be one of ${WORKLOADS.join(', ')}`);
  if (dir === undefined) throw new Error('--dir is required');
  const z = sizesFor(args.includes('--quick'));
  const t0 = performance.now();
  const base = { workload: w as WorkloadName, unit: unit as UnitName, pid: process.pid };
  let result: RunResult;
  try {
    const m = await run(unit as UnitName, w as WorkloadName, dir, z);
    result = { ...base, status: 'ok', ...m, wallMs: r3(performance.now() - t0) };
    if (m.verify && m.verify.wrong > 0) result = { ...result, status: 'error', note: `${m.verify.wrong} of ${m.verify.checked} values read back were wrong` };
  } catch (err) {
    const missing = err instanceof MissingFeature;
    result = { ...base, status: missing ? 'missing' : 'error', note: describeError(err), metrics: {}, wallMs: r3(performance.now() - t0) };
    if (!missing) process.stderr.write(`${unit} ${w}: ${err instanceof Error ? err.stack : String(err)}\n`);
  }
  result.detail = { ...result.detail, loadAverageEnd: os.loadavg().map(r3) };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(String(err instanceof Error ? err.stack : err) + '\n');
  process.exitCode = 1;
});
