/**
 * The real-process crash loop, short: writers killed by SIGKILL at random times and at named
 * crash points (zone GC's among them, in the churn writers' rounds), every handle checked in
 * this process after each kill. `.ci/run` runs a longer
 * loop through `npm run crashloop`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const built = path.join(here, '..', '..', 'dist', 'sim', 'crashloop.js');

beforeAll(() => {
  if (!fs.existsSync(built)) throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
});

it('8 SIGKILLs: the store opens after each, flushed objects survive, no handle returns other bytes', async () => {
  // The built module: its writer children run from dist/ too.
  const { crashLoop } = (await import(built)) as typeof import('../../sim/crashloop.js');
  const result = await crashLoop({ kills: 8, seed: 20261128 });
  expect(result.failures).toEqual([]);
  expect(result.kills).toBe(8);
  expect(result.refusedToOpen).toBe(0);
  expect(result.lost).toBe(0);
  expect(result.wrong).toBe(0);
  expect(result.handlesChecked).toBeGreaterThan(1000);
  // Zone GC under real kills: churn writers ran, GC committed moves and collections, and some
  // kills landed in a collection (after a slab moved, or anywhere inside a gc() call).
  expect(result.modes.churn).toBeGreaterThan(0);
  expect(result.gcZonesCollected).toBeGreaterThan(0);
  expect(result.gcSlabsMoved).toBeGreaterThan(0);
  const insideGc = Object.values(result.killsInsideGc).reduce((a, b) => a + b, 0);
  expect((result.killsAtPoints['gc.moved'] ?? 0) + insideGc).toBeGreaterThan(0);
}, 120_000);
