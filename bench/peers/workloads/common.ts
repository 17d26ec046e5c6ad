/** Pieces the peers workloads share: loading keys, timing loops, checking values. */
import { r3 } from '../../lib/stats.js';
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

/**
 * A bulk load's metrics, for an engine and for the Node floor alike: `t0` first put, `t1` last
 * put done, `t2` the durable flush returned (performance.now() milliseconds).
 */
export function bulkMetrics(count: number, bytes: number, t0: number, t1: number, t2: number, diskBytes: number): Record<string, number> {
  const seconds = (t2 - t0) / 1000;
  return {
    MBps: r3((count * bytes) / 1e6 / seconds),
    opsPerSec: Math.round(count / seconds),
    seconds: r3(seconds),
    putSeconds: r3((t1 - t0) / 1000),
    flushMs: r3(t2 - t1),
    diskMB: r3(diskBytes / 1e6),
    payloadMB: r3((count * bytes) / 1e6),
  };
}
