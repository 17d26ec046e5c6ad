/** Pieces the peers workloads share: loading keys, timing loops, checking values. */
import { rng } from '../../rng.js';
import type { Kv } from '../kv.js';
import { sameBytes, valueOf } from '../values.js';

/** Awaits what an operation returned when it is a promise (classic-level's writes are). */
export async function settle(r: void | Promise<void>): Promise<void> {
  if (r) await r;
}

/** Loads keys [0, count) of `bytes` bytes in commits of `txnOps` keys (untimed by the caller, or timed as a whole). */
export async function load(kv: Kv, count: number, bytes: number, txnOps: number): Promise<void> {
  const value = (k: number) => valueOf(k, bytes);
  for (let from = 0; from < count; from += txnOps) await settle(kv.putBatch(from, Math.min(count, from + txnOps), value));
}

/** `n` keys drawn uniformly from [0, keys) by the shared seeded rng. */
export function randomKeys(seed: number, n: number, keys: number): Uint32Array {
  const next = rng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * keys);
  return out;
}

/** Reads back `sample` random keys of [from, keys) and compares each with its value (generation from `gens` when given). */
export function verify(kv: Kv, seed: number, sample: number, keys: number, bytes: number, gens?: Uint8Array, from = 0): { checked: number; wrong: number } {
  const picks = randomKeys(seed, sample, keys - from);
  let wrong = 0;
  for (const p of picks) {
    const k = from + p;
    if (!sameBytes(kv.get(k), valueOf(k, bytes, gens?.[k] ?? 0))) wrong++;
  }
  return { checked: picks.length, wrong };
}
