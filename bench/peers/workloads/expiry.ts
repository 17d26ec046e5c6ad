/**
 * expiry: expiryCount 1 KiB values loaded and flushed (the store puts them into epochs of
 * expiryEpochObjects keys, its time buckets), then the oldest expiryOldest expire, durably: the
 * store closes the epochs that hold them; the peers delete those keys. Disk before and after,
 * and after the engine's own compaction where it has one (timed apart).
 */
import { r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import type { Sizes } from '../config.js';
import { type Kv, timeMs } from '../kv.js';
import type { Measured } from '../result.js';
import { load, settle, verify } from './common.js';

export async function expiry(kv: Kv, z: Sizes, seed: number): Promise<Measured> {
  await load(kv, z.expiryCount, z.expiryBytes, z.bulkTxnOps);
  await settle(kv.flush());
  const diskBefore = kv.diskBytes();
  gc();
  const outcome = await kv.expireOldest(z.expiryOldest);
  const diskAfter = kv.diskBytes();
  const gone = [0, z.expiryOldest - 1].every((k) => !kv.has(k));
  const kept = [z.expiryOldest, z.expiryCount - 1].every((k) => kv.has(k));
  if (!gone || !kept) throw new Error(`after expiry: oldest keys gone ${gone}, the rest kept ${kept}`);
  const metrics: Record<string, number> = {
    expireMs: r3(outcome.expireMs),
    diskBeforeMB: r3(diskBefore / 1e6),
    diskAfterMB: r3(diskAfter / 1e6),
    diskReturnedMB: r3((diskBefore - diskAfter) / 1e6),
  };
  const detail: Record<string, unknown> = { expire: outcome.how };
  if (kv.compact) {
    const compact = kv.compact;
    metrics.compactMs = r3(await timeMs(() => compact.run(z.expiryOldest)));
    metrics.diskAfterCompactMB = r3(kv.diskBytes() / 1e6);
    detail.compact = compact.how;
  }
  return { metrics, detail, verify: verify(kv, seed ^ 0x5555, z.verifySample, z.expiryCount, z.expiryBytes, undefined, z.expiryOldest) };
}
