/**
 * The cache's deterministic simulator (sim/cacheRunner.ts) under `npm test`: every saved
 * replay of a cache bug it found (test/sim/replays-cache/), one CI seed of each of its four
 * shapes, and the bugs it found written out as plain regression tests. `npm run sim` runs the
 * whole cache CI set (docs/CACHE-RELIABILITY.md).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cache, openCacheWith } from '../../cache/cache.js';
import { ErrorCode } from '../../errors.js';
import { CACHE_CI_OPS, CACHE_CI_SEEDS } from '../../sim/cli.js';
import { type CacheOp, cacheConfigFor, runCacheOps, runCacheSeed } from '../../sim/cacheRunner.js';
import { FaultController, FaultyDevice } from '../../sim/faults.js';
import { Rng } from '../../sim/rng.js';
import { createEmulatedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { tempDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const replayDir = path.join(here, 'replays-cache');
const replays = fs.readdirSync(replayDir).filter((f) => f.endsWith('.json'));

describe('saved replays of cache bugs the simulator found', () => {
  it('has replays to run', () => {
    expect(replays.length).toBeGreaterThan(0);
  });
  for (const file of replays) {
    it(file, async () => {
      const saved = JSON.parse(fs.readFileSync(path.join(replayDir, file), 'utf8')) as { kind: string; seed: number; ops: CacheOp[] };
      expect(saved.kind).toBe('cache');
      const result = await runCacheOps(saved.seed, saved.ops);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(saved.ops.length);
    });
  }
});

describe('cache CI seeds', () => {
  // One seed of each shape (seed % 4); `npm run sim` runs all of them.
  for (const seed of CACHE_CI_SEEDS.slice(0, 4)) {
    const cfg = cacheConfigFor(seed);
    it(`seed ${seed} (${cfg.name}): ${CACHE_CI_OPS} operations with crashes and faults, the model agrees`, async () => {
      const { result } = await runCacheSeed(seed, CACHE_CI_OPS);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(CACHE_CI_OPS);
      expect(result.crashes).toBeGreaterThan(0);
      expect(result.faults).toBeGreaterThan(0);
      expect(result.checkedAfterReopen).toBeGreaterThan(0);
      expect(result.expiredEpochs).toBeGreaterThan(0);
      if (cfg.evicting) expect(result.evictedEpochs).toBeGreaterThan(0);
      else expect(result.evictedEpochs).toBe(0);
    });
  }
});

// ---- the bugs, as plain tests -------------------------------------------------------------------

const MiB = 1024 * 1024;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A cache on the simulator's fault-injecting device, with its clock and a crash that keeps only what was made durable. */
function simCache(): { cache: () => Cache; clock: { now: number }; ctl: FaultController; crash: () => void; reopen: () => void } {
  const { dir, cleanup } = tempDir('zns-cache-sim-');
  const ctl = new FaultController();
  const clock = { now: 1_700_000_000_000 };
  const deviceDir = path.join(dir, 'device');
  createEmulatedDevice(deviceDir, { zoneCount: 40, zoneSize: MiB, zoneCapacity: MiB, maxOpenZones: 8, maxActiveZones: 8 }).close();
  let device!: FaultyDevice;
  let cache!: Cache;
  const open = () => {
    ctl.enabled = false;
    device = new FaultyDevice(openEmulatedDevice(deviceDir), ctl);
    cache = openCacheWith(path.join(dir, 'cache'), { maxBytes: 8 * MiB, clock: () => clock.now, device }, { catalogHooks: ctl.catalogHooks() });
    ctl.enabled = true;
  };
  open();
  cleanups.push(() => {
    cache.abandon();
    cleanup();
  });
  return {
    cache: () => cache,
    clock,
    ctl,
    crash: () => {
      ctl.crashNow();
      cache.abandon();
      device.loseUnflushed(new Rng(1));
      ctl.crashed = false;
      ctl.disarm();
      open();
    },
    reopen: () => {
      cache.close();
      open();
    },
  };
}

describe('found by the cache simulator', () => {
  it('an overwrite after a flush does not lose the flushed value when a TTL bucket closes before a crash', () => {
    // overwrite-lost-to-expiry-commit.json: the bucket's epochClose commits the free of the
    // old record while the new one is still in an unsealed slab.
    const s = simCache();
    s.cache().set('k', 'flushed');
    s.cache().set('t', 1, { ttl: 100 });
    s.cache().flush();
    s.cache().set('k', 'newer');
    s.clock.now += 5_000;
    expect(s.cache().get('t')).toBeUndefined(); // closes the passed bucket: a catalog commit
    s.crash();
    expect(['flushed', 'newer']).toContain(s.cache().get('k'));
    s.cache().verify();
  });

  it('a failed commit while a TTL bucket closes leaves the cache working (no ERR_EPOCH_CLOSED on every later write)', () => {
    // failed-expiry-close-wedges-cache.json
    const s = simCache();
    s.cache().set('t', 1, { ttl: 100 });
    s.cache().flush();
    s.clock.now += 5_000;
    s.ctl.armFault('flush', 'eio', 0); // the device flush of the bucket's epochClose
    expect(codeOf(() => s.cache().set('a', 1))).toBe(ErrorCode.DEVICE_IO);
    expect(codeOf(() => s.cache().set('b', 2))).toBeUndefined();
    expect(s.cache().get('b')).toBe(2);
    expect(codeOf(() => s.cache().flush())).toBeUndefined();
    s.cache().verify();
    s.reopen();
    expect(s.cache().get('b')).toBe(2);
  });

  it('a failed commit inside clear() leaves the cache consistent', () => {
    // failed-clear-leaves-closed-epoch.json
    const s = simCache();
    s.cache().set('a', 1);
    s.cache().flush();
    s.ctl.armFault('flush', 'eio', 0);
    expect(codeOf(() => s.cache().clear())).toBe(ErrorCode.DEVICE_IO);
    expect([undefined, 1]).toContain(s.cache().get('a')); // not ERR_STALE_HANDLE
    expect(codeOf(() => s.cache().flush())).toBeUndefined();
    s.cache().verify();
    s.cache().set('b', 2);
    expect(s.cache().get('b')).toBe(2);
    s.cache().verify();
  });
});
