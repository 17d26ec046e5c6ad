/**
 * get: readKeys 1 KiB values loaded and flushed (untimed, so the files are in the page cache),
 * readWarmupOps random gets untimed, then readOps random gets, each timed on its own.
 * mixed: the same load, then readOps operations: a put (an overwrite of a random key with new
 * bytes; not durable) with probability mixedPutFraction, else a get of a random key.
 */
import { dist, r3 } from '../../lib/stats.js';
import { gc, timerOverheadNs } from '../../lib/system.js';
import { rng } from '../../rng.js';
import type { Sizes } from '../config.js';
import type { Kv } from '../kv.js';
import { type Measured, distMetrics } from '../result.js';
import { valueOf } from '../values.js';
import { load, randomKeys, settle, verify } from './common.js';

export async function randomGets(kv: Kv, z: Sizes, seed: number): Promise<Measured> {
  await load(kv, z.readKeys, z.readBytes, z.bulkTxnOps);
  await settle(kv.flush());
  const warm = randomKeys(seed ^ 0x77a2, z.readWarmupOps, z.readKeys);
  let missing = 0;
  for (const k of warm) if (kv.get(k) === undefined) missing++;
  const keys = randomKeys(seed, z.readOps, z.readKeys);
  const samples = new Float64Array(z.readOps);
  const overheadNs = timerOverheadNs();
  gc();
  const t0 = performance.now();
  for (let i = 0; i < z.readOps; i++) {
    const a = performance.now();
    const v = kv.get(keys[i]!);
    samples[i] = performance.now() - a;
    if (v === undefined) missing++;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (missing > 0) throw new Error(`${missing} gets of loaded keys found nothing`);
  return {
    metrics: { opsPerSec: Math.round(z.readOps / seconds), seconds: r3(seconds), ...distMetrics('get', dist(samples, z.readOps)) },
    detail: { timerOverheadNs: overheadNs },
    verify: verify(kv, seed ^ 0x3333, z.verifySample, z.readKeys, z.readBytes),
  };
}

export async function mixed(kv: Kv, z: Sizes, seed: number): Promise<Measured> {
  await load(kv, z.readKeys, z.readBytes, z.bulkTxnOps);
  await settle(kv.flush());
  const keys = randomKeys(seed, z.readOps, z.readKeys);
  const coin = rng(seed ^ 0x5eed);
  const isPut = Uint8Array.from({ length: z.readOps }, () => (coin() < z.mixedPutFraction ? 1 : 0));
  const gens = new Uint8Array(z.readKeys);
  const getMs = new Float64Array(z.readOps);
  const putMs = new Float64Array(z.readOps);
  let gets = 0;
  let puts = 0;
  let missing = 0;
  gc();
  const t0 = performance.now();
  for (let i = 0; i < z.readOps; i++) {
    const k = keys[i]!;
    if (isPut[i] === 1) {
      // Generations wrap at 256: the bytes differ from the last put, which is all that matters.
      const g = (gens[k] = (gens[k]! + 1) & 0xff);
      const v = valueOf(k, z.readBytes, g);
      // Awaited only when the engine returned a promise: a sync engine pays no microtask turn.
      const a = performance.now();
      const p = kv.put(k, v);
      if (p) await p;
      putMs[puts++] = performance.now() - a;
    } else {
      const a = performance.now();
      const v = kv.get(k);
      getMs[gets++] = performance.now() - a;
      if (v === undefined) missing++;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (missing > 0) throw new Error(`${missing} gets of loaded keys found nothing`);
  return {
    metrics: { opsPerSec: Math.round(z.readOps / seconds), seconds: r3(seconds), gets, puts, ...distMetrics('get', dist(getMs, gets)), ...distMetrics('put', dist(putMs, puts)) },
    verify: verify(kv, seed ^ 0x4444, z.verifySample, z.readKeys, z.readBytes, gens),
  };
}
