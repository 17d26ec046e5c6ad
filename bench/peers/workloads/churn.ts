/**
 * churn: bench/churn.bench.ts's workload, shorter, through the same adapters
 * (lib/churnEngines.ts; classic-level's in engines/level.ts): churnLive objects of
 * churnMinBytes..churnMaxBytes (seeded), then churnCycles cycles of "free a random live object,
 * put a new one of a random size in its place", each free and put timed on its own, a flush
 * every churnFlushEvery cycles (timed apart, counted in cycles/s).
 */
import { diskUsage } from '../../../tools/diskUsage.js';
import type { AsyncChurnImpl } from '../../lib/churnEngines.js';
import { churnPayload } from '../../lib/payload.js';
import { dist, r3 } from '../../lib/stats.js';
import { gc } from '../../lib/system.js';
import { rng } from '../../rng.js';
import type { Sizes } from '../config.js';
import { type Measured, distMetrics } from '../result.js';
import { settle } from './common.js';

export async function churn(impl: AsyncChurnImpl, dir: string, z: Sizes, seed: number): Promise<Measured> {
  const live = z.churnLive;
  const cycles = z.churnCycles;
  const random = rng(seed);
  const { views, idWord } = churnPayload(seed ^ 0x5a5a5a5a, z.churnMaxBytes);
  const randomSize = () => z.churnMinBytes + Math.floor(random() * (z.churnMaxBytes - z.churnMinBytes + 1));
  const sizes = new Uint32Array(live);
  const ids = new Uint32Array(live);
  const putMs = new Float64Array(cycles);
  const freeMs = new Float64Array(cycles);
  const flushMs = new Float64Array(Math.ceil(cycles / z.churnFlushEvery) + 1);
  let flushes = 0;
  let livePayload = 0;
  for (let i = 0; i < live; i++) {
    const size = randomSize();
    sizes[i] = size;
    ids[i] = i;
    idWord[0] = i;
    await settle(impl.put(i, i, views[size]!));
    livePayload += size;
  }
  await settle(impl.flush());
  gc();
  const t0 = performance.now();
  for (let c = 0; c < cycles; c++) {
    const slot = Math.floor(random() * live);
    const size = randomSize();
    const id = live + c;
    idWord[0] = id;
    // Awaited only when the engine returned a promise: a sync engine pays no microtask turn.
    const a = performance.now();
    const f = impl.free(slot);
    if (f) await f;
    const b = performance.now();
    const p = impl.put(slot, id, views[size]!);
    if (p) await p;
    const e = performance.now();
    freeMs[c] = b - a;
    putMs[c] = e - b;
    livePayload += size - sizes[slot]!;
    sizes[slot] = size;
    ids[slot] = id;
    if ((c + 1) % z.churnFlushEvery === 0 || c + 1 === cycles) {
      const f0 = performance.now();
      await settle(impl.flush());
      flushMs[flushes++] = performance.now() - f0;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const disk = diskUsage(dir);
  // Read back a sample: every object must be its own bytes (its id in bytes 0-3).
  const pick = rng(seed ^ 0x77777777);
  let wrong = 0;
  for (let i = 0; i < z.verifySample; i++) {
    const slot = Math.floor(pick() * live);
    idWord[0] = ids[slot]!;
    const got = impl.read(slot);
    if (got === undefined || !views[sizes[slot]!]!.equals(got)) wrong++;
  }
  const flush = dist(flushMs, flushes);
  return {
    metrics: {
      cyclesPerSec: Math.round(cycles / seconds),
      seconds: r3(seconds),
      ...distMetrics('put', dist(putMs, cycles)),
      ...distMetrics('free', dist(freeMs, cycles)),
      flushP50Ms: r3(flush.p50Us / 1000),
      flushMaxMs: r3(flush.maxUs / 1000),
      diskMB: r3(disk / 1e6),
      livePayloadMB: r3(livePayload / 1e6),
      diskPerLive: r3(disk / livePayload),
    },
    detail: { durability: impl.durability, flushOp: impl.flushOp },
    verify: { checked: z.verifySample, wrong },
  };
}
