/**
 * The deterministic simulator under `npm test`: every saved replay (a bug the simulator found,
 * kept as its shortest failing operation list) and a share of the CI seeds. `.ci/run` runs the
 * whole CI seed set and a fresh random seed through `npm run sim` as well.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CI_OPS, CI_SEEDS } from '../../sim/cli.js';
import type { GcOptions } from '../../engine/gc.js';
import type { Op } from '../../sim/ops.js';
import { type SimDeviceProfile, replayProfile, runOps, runSeed, simConfigFor } from '../../sim/runner.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const replays = fs.readdirSync(path.join(here, 'replays')).filter((f) => f.endsWith('.json'));

/**
 * A saved replay: the seed (its geometry), the store's gc options (`false` for the replays
 * found before zone GC), and its operations. A replay of a bug not fixed yet may be saved
 * with `knownBug` (its name) and `failsWith` (a pattern of its failure message): it must then
 * still fail that way; once the engine is fixed it passes, and dropping the two fields makes it
 * guard the fix like the others.
 */
interface Replay {
  seed: number;
  gc?: GcOptions | false;
  backgroundWrites?: boolean;
  splitWrites?: boolean;
  profile?: SimDeviceProfile;
  knownBug?: string;
  failsWith?: string;
  ops: Op[];
}

describe('saved replays of bugs the simulator found', () => {
  it('has replays to run', () => {
    expect(replays.length).toBeGreaterThan(0);
  });
  for (const file of replays) {
    const saved = JSON.parse(fs.readFileSync(path.join(here, 'replays', file), 'utf8')) as Replay;
    const options = { ...(saved.gc !== undefined ? { gc: saved.gc } : {}), backgroundWrites: saved.backgroundWrites ?? false, profile: replayProfile(saved) };
    if (saved.knownBug !== undefined) {
      it(`${file} (known engine bug ${saved.knownBug}, not fixed yet: still fails with it)`, async () => {
        expect(saved.failsWith, `${file}: a knownBug replay says what it fails with`).toBeDefined();
        const result = await runOps(saved.seed, saved.ops, options);
        expect(result.failure?.message, 'this replay passes now: drop its knownBug and failsWith').toMatch(new RegExp(saved.failsWith!));
      });
      continue;
    }
    it(file, async () => {
      const result = await runOps(saved.seed, saved.ops, options);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(saved.ops.length);
    });
  }
});

describe('CI seeds', () => {
  // Every fourth CI seed here; `npm run sim` runs all of them.
  const seeds = CI_SEEDS.filter((s) => s % 4 === 1);

  it('cover zone GC off and on, and the long-lived-epoch workload', () => {
    const configs = seeds.map(simConfigFor);
    expect(configs.some((c) => c.gc === false)).toBe(true);
    expect(configs.some((c) => c.gc !== false && c.workload === 'classic')).toBe(true);
    expect(configs.some((c) => c.gc !== false && c.workload === 'longLived')).toBe(true);
  });

  for (const seed of seeds) {
    const config = simConfigFor(seed);
    it(`seed ${seed} (${config.name}): ${CI_OPS} operations with crashes and faults, the model agrees`, async () => {
      const { result } = await runSeed(seed, CI_OPS);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(CI_OPS);
      expect(result.crashes).toBeGreaterThan(0);
      expect(result.faults).toBeGreaterThan(0);
      expect(result.verifiedAfterReopen).toBeGreaterThan(0);
      // store.gc() runs in every seed (with GC off too); each call that did not crash is followed by a full content check.
      expect(result.gcOps).toBeGreaterThan(0);
      expect(result.gcContentChecks).toBeGreaterThan(0);
      expect(result.gcContentChecks).toBeLessThanOrEqual(result.gcOps);
      if (config.workload === 'longLived') {
        // Long-lived epochs with churn: GC moves slabs and collects zones, in the background and when called.
        expect(result.churns).toBeGreaterThan(0);
        expect(result.gcZonesCollected).toBeGreaterThan(0);
        expect(result.gcSlabsMoved).toBeGreaterThan(0);
      }
    });
  }
});
