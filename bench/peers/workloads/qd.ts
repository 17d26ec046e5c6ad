/**
 * qd-read on the store: qdObjects values of qdValueBytes on the O_DIRECT emulated device, flushed,
 * the store closed and reopened (nothing left in memory), then random gets for
 * qdSecondsPerDepth at each queue depth: depth 1 is store.get() (a synchronous pread, each timed
 * on its own), depth N is store.getMany(handles, { queueDepth: N }). The zone files stay for the
 * floors (fio, Node O_DIRECT pread), which read the same files at the same depths.
 */
import { dist, r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import { QUEUE_DEPTHS, type Sizes } from '../config.js';
import { openStoreForBench } from '../engines/store.js';
import { type Measured, distMetrics } from '../result.js';
import { sameBytes, valueOf } from '../values.js';
import { randomKeys } from './common.js';

/** Handles per getMany call: enough that the call's own cost is spread over many reads. */
const HANDLES_PER_CALL_PER_DEPTH = 64;
const MIN_HANDLES_PER_CALL = 1024;

export async function qdReadStore(dir: string, z: Sizes, seed: number): Promise<Measured> {
  let store = openStoreForBench(dir, true);
  const handles: bigint[] = new Array<bigint>(z.qdObjects);
  for (let k = 0; k < z.qdObjects; k++) handles[k] = store.put(valueOf(k, z.qdValueBytes));
  store.close();
  store = openStoreForBench(dir, true);
  try {
    const order = randomKeys(seed, 1 << 20, z.qdObjects);
    let next = 0;
    const pick = (): number => order[next++ & (order.length - 1)]!;
    const metrics: Record<string, number> = {};
    const budgetMs = z.qdSecondsPerDepth * 1000;
    gc();
    // Depth 1: synchronous gets, each timed.
    {
      const samples = new Float64Array(1 << 21);
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs && n < samples.length) {
        const a = performance.now();
        store.get(handles[pick()]!);
        samples[n++] = performance.now() - a;
      }
      const seconds = (performance.now() - t0) / 1000;
      metrics.qd1OpsPerSec = Math.round(n / seconds);
      metrics.qd1MBps = r3((n * z.qdValueBytes) / 1e6 / seconds);
      Object.assign(metrics, distMetrics('qd1', dist(samples, n)));
    }
    for (const depth of QUEUE_DEPTHS) {
      const perCall = Math.max(MIN_HANDLES_PER_CALL, depth * HANDLES_PER_CALL_PER_DEPTH);
      const batch: bigint[] = new Array<bigint>(perCall);
      let reads = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs) {
        for (let i = 0; i < perCall; i++) batch[i] = handles[pick()]!;
        await store.getMany(batch, { queueDepth: depth });
        reads += perCall;
      }
      const seconds = (performance.now() - t0) / 1000;
      // Depth 1 through getMany too: the async path's own cost beside the synchronous get.
      metrics[depth === 1 ? 'qd1ManyOpsPerSec' : `qd${depth}OpsPerSec`] = Math.round(reads / seconds);
      metrics[depth === 1 ? 'qd1ManyMBps' : `qd${depth}MBps`] = r3((reads * z.qdValueBytes) / 1e6 / seconds);
    }
    // Check a sample through both paths.
    const keys = randomKeys(seed ^ 0x6666, z.verifySample, z.qdObjects);
    const many = await store.getMany(Array.from(keys, (k) => handles[k]!), { queueDepth: QUEUE_DEPTHS[QUEUE_DEPTHS.length - 1] });
    let wrong = 0;
    keys.forEach((k, i) => {
      const want = valueOf(k, z.qdValueBytes);
      if (!sameBytes(many[i], want) || !sameBytes(store.get(handles[k]!), want)) wrong++;
    });
    return { metrics, detail: { threadpool: process.env.UV_THREADPOOL_SIZE ?? 'default (4)' }, verify: { checked: keys.length, wrong } };
  } finally {
    store.close();
  }
}
