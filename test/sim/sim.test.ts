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
import type { Op } from '../../sim/ops.js';
import { runOps, runSeed } from '../../sim/runner.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const replays = fs.readdirSync(path.join(here, 'replays')).filter((f) => f.endsWith('.json'));

describe('saved replays of bugs the simulator found', () => {
  it('has replays to run', () => {
    expect(replays.length).toBeGreaterThan(0);
  });
  for (const file of replays) {
    it(file, async () => {
      const saved = JSON.parse(fs.readFileSync(path.join(here, 'replays', file), 'utf8')) as { seed: number; ops: Op[] };
      const result = await runOps(saved.seed, saved.ops);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(saved.ops.length);
    });
  }
});

describe('CI seeds', () => {
  // Every fourth CI seed here; `npm run sim` runs all of them.
  for (const seed of CI_SEEDS.filter((s) => s % 4 === 1)) {
    it(`seed ${seed}: ${CI_OPS} operations with crashes and faults, the model agrees`, async () => {
      const { result } = await runSeed(seed, CI_OPS);
      expect(result.failure).toBeUndefined();
      expect(result.ops).toBe(CI_OPS);
      expect(result.crashes).toBeGreaterThan(0);
      expect(result.faults).toBeGreaterThan(0);
      expect(result.verifiedAfterReopen).toBeGreaterThan(0);
    });
  }
});
