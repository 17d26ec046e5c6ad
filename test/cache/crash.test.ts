/**
 * The cache's real-process crash loop, short: writers (sim/cacheCrashChild.ts) killed by SIGKILL
 * at random times and at named crash points, every key checked in this process after each kill
 * against what the writer had flushed and tried since (docs/CACHE-RELIABILITY.md). `npm run
 * crashloop -- --cache --kills 30` runs a longer loop.
 *
 * The children run built JavaScript: dist/ (`npm test` builds it first), or the folder named by
 * ZNS_SLAB_BUILT_DIR (e.g. a side build: `npx tsc -p tsconfig.build.json --outDir node_modules/.cache/x`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { openCache } from '../../cache/cache.js';
import { rebuildCatalog } from '../../engine/rebuild.js';
import { openEmulatedDevice } from '../../zns/emulated.js';
import { tempDir } from '../helpers/tmp.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const builtDir = process.env.ZNS_SLAB_BUILT_DIR ? path.resolve(root, process.env.ZNS_SLAB_BUILT_DIR) : path.join(root, 'dist');
const built = path.join(builtDir, 'sim', 'cacheCrashloop.js');

it('10 SIGKILLs of a cache writer: the cache opens after each, flushed entries survive, no key returns a value it may not hold', async () => {
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` (npm test does it for you)`);
  // The built module: its writer children run from the same build.
  const { cacheCrashLoop } = (await import(built)) as typeof import('../../sim/cacheCrashloop.js');
  const result = await cacheCrashLoop({ kills: 10, seed: 20261129 });
  expect(result.failures).toEqual([]);
  expect(result.kills).toBe(10);
  expect(result.refusedToOpen).toBe(0);
  expect(result.lost).toBe(0);
  expect(result.wrong).toBe(0);
  expect(result.flushes).toBeGreaterThan(50);
  expect(result.valuesChecked).toBeGreaterThan(500);
}, 180_000);

it('a cache whose catalog was lost: recover rebuilds it as a cache, and the newest record of each key wins', () => {
  // `zns-slab recover` runs rebuildCatalog. Frees made after a slab's last seal come back with
  // it (docs/RELIABILITY.md): here both records of each overwritten key, which is what the
  // cache's "higher sequence wins" on open is for.
  const { dir: tmp, cleanup } = tempDir('zns-cache-recover-');
  try {
    const dir = path.join(tmp, 'cache');
    let cache = openCache(dir, { maxBytes: 8 * 1024 * 1024 });
    for (let i = 0; i < 50; i++) cache.set(`k${i}`, `v${i}`);
    cache.flush();
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, `w${i}`);
    cache.delete('k20');
    cache.close();
    for (const suffix of ['', '-wal', '-shm', '.reserve']) fs.rmSync(path.join(dir, `catalog.db${suffix}`), { force: true });
    const device = openEmulatedDevice(path.join(dir, 'device'), { exclusive: true });
    try {
      rebuildCatalog(device, path.join(dir, 'catalog.db'), 'device', () => {}, { purpose: 'cache' }); // what `zns-slab recover` passes for a folder with cache.json
    } finally {
      device.close();
    }
    cache = openCache(dir);
    try {
      for (let i = 0; i < 10; i++) expect(cache.get(`k${i}`)).toBe(`w${i}`);
      for (let i = 10; i < 50; i++) if (i !== 20) expect(cache.get(`k${i}`)).toBe(`v${i}`);
      expect([undefined, 'v20']).toContain(cache.get('k20')); // a delete after the last seal may come back
      cache.verify();
    } finally {
      cache.close();
    }
  } finally {
    cleanup();
  }
});
