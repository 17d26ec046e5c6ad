/**
 * bulk-1k / bulk-64k: keys [0, count) put in order (the peers commit every bulkTxnOps puts, not
 * synced; the store takes them one by one), then one durable flush; the time runs from the first
 * put until the flush returns. durable-100: every durableEvery puts a durable commit, each batch
 * timed (puts and commit).
 */
import { dist, r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import type { Kv } from '../kv.js';
import { type Measured, distMetrics } from '../result.js';
import { valueOf } from '../values.js';
import { bulkMetrics, load, settle, verify } from './common.js';

export async function bulk(kv: Kv, count: number, bytes: number, txnOps: number, verifySample: number, seed: number): Promise<Measured> {
  gc();
  const t0 = performance.now();
  await load(kv, count, bytes, txnOps);
  const t1 = performance.now();
  await settle(kv.flush());
  const t2 = performance.now();
  return {
    metrics: bulkMetrics(count, bytes, t0, t1, t2, kv.diskBytes()),
    verify: verify(kv, seed, verifySample, count, bytes),
  };
}

export async function durableBatches(kv: Kv, count: number, every: number, bytes: number, verifySample: number, seed: number): Promise<Measured> {
  const batches = Math.ceil(count / every);
  const commitMs = new Float64Array(batches);
  const value = (k: number) => valueOf(k, bytes);
  gc();
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const a = performance.now();
    await settle(kv.putBatch(b * every, Math.min(count, (b + 1) * every), value));
    commitMs[b] = performance.now() - a;
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    metrics: {
      opsPerSec: Math.round(count / seconds),
      commitsPerSec: r3(batches / seconds),
      MBps: r3((count * bytes) / 1e6 / seconds),
      seconds: r3(seconds),
      ...distMetrics('commit', dist(commitMs, batches)),
    },
    verify: verify(kv, seed, verifySample, count, bytes),
  };
}
