/**
 * Zone GC (engine/gc.ts): slabs move whole and packed, handles stay, space comes back, and a
 * crash anywhere in a collection leaves every object readable from exactly one place.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CATALOG_FORMAT_VERSION } from '../../catalog/catalog.js';
import { ErrorCode } from '../../errors.js';
import { GC_MIN_DEAD_ZONES } from '../../engine/gc.js';
import { rebuildCatalog } from '../../engine/rebuild.js';
import { openStore, type Store } from '../../engine/store.js';
import { openEmulatedDevice } from '../../zns/emulated.js';
import { payload } from '../fixtures/payload.mjs';
import { codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, '..', 'fixtures', 'gcChild.mjs');

/** Small zones: a few hundred objects fill several. */
const GEOMETRY = { zoneCount: 24, zoneSize: 512 * 1024, zoneCapacity: 512 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
/** GC only when asked: the tests decide when it runs. */
const MANUAL = { idleMs: 0, spaceAmplification: 100 };

let tmp: ReturnType<typeof tempDir>;
let dir: string;
let store: Store | undefined;

beforeAll(() => {
  if (!fs.existsSync(path.join(here, '..', '..', 'dist', 'index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
});
beforeEach(() => {
  tmp = tempDir('zns-slab-gc-');
  dir = path.join(tmp.dir, 'store');
});
afterEach(() => {
  store?.close();
  store = undefined;
  tmp.cleanup();
});

/** Objects of about `size` bytes, each with its own bytes. */
function obj(i: number, size = 700): Buffer {
  const b = Buffer.alloc(size - (i % 50));
  b.writeUInt32LE(i, 0);
  b.fill(i & 0xff, 4);
  return b;
}

describe('relocation', () => {
  it('moves only live slots; every handle keeps its bytes, freed ones stay stale, across reopen', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: MANUAL });
    const hs = Array.from({ length: 3000 }, (_, i) => store!.put(obj(i)));
    store.flush();
    // Leave one object in nine: most slabs keep a few live slots, no zone empties by itself.
    const kept = new Map<bigint, Buffer>();
    const freed: bigint[] = [];
    hs.forEach((h, i) => {
      if (i % 9 === 0) kept.set(h, obj(i));
      else {
        store!.free(h);
        freed.push(h);
      }
    });
    // The frees made durable first: a move also packs slots freed since the last commit (a crash
    // may still bring them back), so only committed frees shrink what moves.
    store.flush();
    const before = store.statsGlobal();
    expect(before.counters.gcZonesCollected).toBe(0);
    const r = store.gc();
    expect(r.zonesCollected).toBeGreaterThan(0);
    expect(r.slabsMoved).toBeGreaterThan(0);
    // Packed: the moved bytes are about the live bytes, far less than the slabs' full images.
    const after = store.statsGlobal();
    expect(r.bytesMoved).toBeLessThan(before.gc.bytesLive * 1.5);
    expect(r.bytesFreed).toBeGreaterThan(r.bytesMoved);
    expect(after.gc.bytesWritten).toBeLessThan(before.gc.bytesWritten);
    expect(after.gc.bytesLive).toBe(before.gc.bytesLive);
    expect(after.counters.gcZonesCollected).toBe(r.zonesCollected);
    store.verify();
    for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
    for (const h of freed.slice(0, 200)) expect(codeOf(() => store!.get(h))).toBe(ErrorCode.STALE_HANDLE);
    store.close();
    store = openStore(dir, { gc: MANUAL });
    store.verify();
    for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
    for (const h of freed.slice(0, 200)) expect(codeOf(() => store!.get(h))).toBe(ErrorCode.STALE_HANDLE);
    // The catalog holds the moved slabs as packed rows.
    store.close();
    store = undefined;
    const db = new Database(path.join(dir, 'catalog.db'), { readonly: true });
    const packed = db.prepare("SELECT count(*) AS n FROM slabs WHERE state = 'sealed' AND packed_bitmap IS NOT NULL").get() as { n: number };
    db.close();
    expect(packed.n).toBeGreaterThan(0);
  });

  it('a moved slab frees, empties and goes like any other; moving it again packs it again', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: MANUAL });
    // Enough survivors to fill more than one GC zone, so a packed slab lands outside the GC head.
    const hs = Array.from({ length: 7000 }, (_, i) => store!.put(obj(i)));
    store.flush();
    const live = new Map<bigint, Buffer>();
    hs.forEach((h, i) => (i % 4 === 0 ? live.set(h, obj(i)) : store!.free(h)));
    expect(store.gc().zonesCollected).toBeGreaterThan(0);
    // Free half of what survived (now in packed slabs), then collect again.
    let k = 0;
    for (const h of [...live.keys()]) {
      if (k++ % 2 === 0) {
        store.free(h);
        live.delete(h);
      }
    }
    const second = store.gc();
    expect(second.slabsMoved + second.zonesCollected).toBeGreaterThan(0);
    store.verify();
    for (const [h, bytes] of live) expect(store.get(h).equals(bytes)).toBe(true);
    // Emptying everything lets every zone but the heads go, with no copying.
    for (const h of live.keys()) store.free(h);
    store.flush();
    const s = store.statsGlobal();
    expect(s.slabs).toBe(0);
    expect(s.zones.owned).toBeLessThanOrEqual(2); // at most the epoch's two heads
    store.verify();
  });

  it('closing the epoch resets the zones GC wrote to as well: GC stays inside the epoch', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: MANUAL });
    const e1 = store.epochCurrent();
    const hs = Array.from({ length: 2500 }, (_, i) => store!.put(obj(i)));
    store.flush();
    hs.forEach((h, i) => i % 6 !== 0 && store!.free(h));
    expect(store.gc().zonesCollected).toBeGreaterThan(0);
    const zones = store.statsZones().filter((z) => z.epoch === e1);
    expect(zones.some((z) => z.head === 'gc')).toBe(true);
    store.epochClose(e1);
    expect(store.statsZones().filter((z) => z.epoch === e1)).toEqual([]);
    for (const h of hs.filter((_, i) => i % 6 === 0).slice(0, 50)) expect(codeOf(() => store!.get(h))).toBe(ErrorCode.STALE_HANDLE);
    store.verify();
  });

  it('a budget stops a collection between slabs; the next call finishes it', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: MANUAL });
    const hs = Array.from({ length: 3000 }, (_, i) => store!.put(obj(i)));
    store.flush();
    hs.forEach((h, i) => i % 5 !== 0 && store!.free(h));
    const first = store.gc({ maxBytes: 1 });
    expect(first.slabsMoved).toBe(1); // a slab is never split: one moves, then the budget is spent
    expect(first.more).toBe(true);
    expect(store.statsGlobal().gc.collecting).not.toBeNull();
    expect(store.statsZones().filter((z) => z.collecting)).toHaveLength(1);
    const rest = store.gc();
    expect(rest.zonesCollected).toBeGreaterThan(0);
    expect(rest.more).toBe(false);
    expect(store.statsGlobal().gc.collecting).toBeNull();
    for (const [i, h] of hs.entries()) if (i % 5 === 0) expect(store.get(h).equals(obj(i))).toBe(true);
    store.verify();
  });
});

describe('space', () => {
  /**
   * One long epoch, churned: free a random object, put a new one; and every 20th cycle one more
   * that stays (a long-lived object in every slab, so slabs rarely empty by themselves).
   * Returns the refusals seen and what must be live.
   */
  function churn(s: Store, cycles: number): { full: number; live: Map<bigint, Buffer> } {
    const live = new Map<bigint, Buffer>();
    const keys: bigint[] = [];
    let x = 7;
    const rnd = (n: number) => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return x % n;
    };
    let full = 0;
    const put = (b: Buffer): bigint | undefined => {
      try {
        const h = s.put(b);
        live.set(h, b);
        return h;
      } catch (err) {
        if ((err as { code?: string }).code !== ErrorCode.DEVICE_FULL) throw err;
        full++;
        return undefined;
      }
    };
    for (let i = 0; i < 600; i++) keys.push(put(obj(i, 1500))!);
    for (let c = 0; c < cycles && keys.length > 0; c++) {
      const k = rnd(keys.length);
      s.free(keys[k]!);
      live.delete(keys[k]!);
      const h = put(obj(600 + 2 * c, 100 + rnd(1500)));
      if (h === undefined) keys.splice(k, 1);
      else keys[k] = h;
      if (c % 20 === 0) put(obj(601 + 2 * c, 100 + rnd(1500)));
      if (c % 500 === 0) {
        try {
          s.flush();
        } catch (err) {
          if ((err as { code?: string }).code !== ErrorCode.DEVICE_FULL) throw err;
          full++;
          break; // the partial slabs cannot be written: this store is full
        }
      }
    }
    return { full, live };
  }

  it('a churned long-lived epoch runs for ever with GC; without it the device fills', () => {
    // 600 churned objects of up to 1.5 KiB and 1,000 long-lived ones (~1.4 MiB live at the
    // end) on a 12 MiB device, 20,000 cycles (~17 MiB put).
    store = openStore(dir, { geometry: GEOMETRY, gc: { idleMs: 0 } });
    const withGc = churn(store, 20_000);
    expect(withGc.full).toBe(0);
    const s = store.statsGlobal();
    expect(s.counters.gcZonesCollected + s.counters.zoneResets).toBeGreaterThan(0);
    // Held bytes stay within the target, plus GC's slack (GC_MIN_DEAD_ZONES) and the two partly written heads.
    expect(s.gc.bytesWritten).toBeLessThanOrEqual(1.25 * s.gc.bytesLive + (GC_MIN_DEAD_ZONES + 2) * GEOMETRY.zoneCapacity);
    store.verify();
    for (const [h, b] of withGc.live) expect(store.get(h).equals(b)).toBe(true);
    store.close();
    store = undefined;

    const other = path.join(tmp.dir, 'nogc');
    const noGc = openStore(other, { geometry: GEOMETRY, gc: false });
    try {
      // With GC off, a slab goes only when every object in it is freed: the long-lived objects
      // keep every slab, and the zones fill.
      const without = churn(noGc, 20_000);
      expect(without.full).toBeGreaterThan(0);
    } finally {
      // Its partial slabs cannot be sealed either: close says so (and still closes).
      const code = codeOf(() => noGc.close());
      expect([undefined, ErrorCode.DEVICE_FULL]).toContain(code);
    }
  });

  it('when puts run out of zones, GC collects until one is free, beyond its usual step', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: { idleMs: 0, spaceAmplification: 100 } }); // only the urgent path
    const r = churn(store, 12_000);
    expect(r.full).toBe(0);
    expect(store.statsGlobal().counters.gcZonesCollected).toBeGreaterThan(0);
    store.verify();
  });

  it('the idle timer collects when nothing is put or freed', async () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: { idleMs: 20, spaceAmplification: 1.1 } });
    const hs = Array.from({ length: 3000 }, (_, i) => store!.put(obj(i)));
    store.flush();
    // Frees alone never seal, so nothing but the timer runs GC now.
    hs.forEach((h, i) => i % 7 !== 0 && store!.free(h));
    expect(store.statsGlobal().counters.gcZonesCollected).toBe(0);
    const deadline = Date.now() + 10_000;
    while (store.statsGlobal().counters.gcZonesCollected === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(store.statsGlobal().counters.gcZonesCollected).toBeGreaterThan(0);
    for (const [i, h] of hs.entries()) if (i % 7 === 0) expect(store.get(h).equals(obj(i))).toBe(true);
    store.verify();
  });

  it('live and dead bytes per zone are the same after a reopen, for zones finished early too', () => {
    // One active zone per epoch at most: many epochs force early finishes.
    store = openStore(dir, { geometry: { ...GEOMETRY, maxActiveZones: 3, maxOpenZones: 3 }, gc: MANUAL });
    const epochs = [store.epochCurrent(), store.epochCreate(), store.epochCreate(), store.epochCreate()];
    for (let round = 0; round < 4; round++) {
      for (const e of epochs) for (let i = 0; i < 30; i++) store.put(obj(round * 1000 + i, 2000), { epoch: e });
      store.flush();
    }
    expect(store.statsGlobal().counters.zonesFinishedEarly).toBeGreaterThan(0);
    const view = (s: Store) => s.statsZones().map((z) => ({ index: z.index, epoch: z.epoch, liveBytes: z.liveBytes, deadBytes: z.deadBytes }));
    const before = view(store);
    store.close();
    store = openStore(dir, { gc: MANUAL });
    expect(view(store)).toEqual(before);
    store.verify();
  });
});

describe('crash safety', () => {
  const CHILD_GEOMETRY = { zoneCount: 20, zoneSize: 256 * 1024, zoneCapacity: 256 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };

  function runChild(storeDir: string, crashAt: string | undefined, seed: number): { lines: string[]; signal: NodeJS.Signals | null; status: number | null } {
    const env = { ...process.env };
    if (crashAt !== undefined) env.ZNS_SLAB_CRASH_AT = crashAt;
    else delete env.ZNS_SLAB_CRASH_AT;
    const r = spawnSync(process.execPath, [child, storeDir, JSON.stringify(CHILD_GEOMETRY), '1500', String(seed)], { encoding: 'utf8', env });
    if (r.stderr) process.stderr.write(r.stderr);
    return { lines: r.stdout.split('\n').filter(Boolean), signal: r.signal, status: r.status };
  }

  /** After the child died: the durable set reads back exactly; anything else is exact or stale, never other bytes. */
  function check(storeDir: string, lines: string[]): { durable: number } {
    let durable: [string, number, number][] = [];
    const after = new Map<string, [number, number] | null>();
    for (const line of lines) {
      if (line.startsWith('D ')) {
        durable = JSON.parse(line.slice(2)) as [string, number, number][];
        after.clear();
      } else if (line.startsWith('f ')) after.set(line.slice(2), null);
      else if (line.startsWith('p ')) {
        const [, h, seed, i] = line.split(' ');
        after.set(h!, [Number(seed), Number(i)]);
      }
    }
    const s = openStore(storeDir);
    try {
      s.verify();
      for (const [h, seed, i] of durable) {
        if (after.has(h)) {
          // Freed since the last flush: back with its bytes, or gone.
          try {
            expect(s.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
          } catch (err) {
            expect((err as { code?: string }).code).toBe(ErrorCode.STALE_HANDLE);
          }
        } else expect(s.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
      }
      for (const [h, w] of after) {
        if (w === null) continue;
        try {
          expect(s.get(BigInt(h)).equals(payload(w[0], w[1]))).toBe(true);
        } catch (err) {
          expect((err as { code?: string }).code).toBe(ErrorCode.STALE_HANDLE);
        }
      }
      // And the store goes on: GC and puts work after the crash.
      s.gc();
      s.put(Buffer.from('after'));
      s.verify();
    } finally {
      s.close();
    }
    return { durable: durable.length };
  }

  it('the child churns with GC collecting zones (no crash): a clean run', () => {
    const r = runChild(dir, undefined, 1);
    expect(r.status).toBe(0);
    const end = JSON.parse(r.lines.at(-1)!.slice(2)) as { zones: number; slabs: number };
    expect(end.zones).toBeGreaterThan(0);
    expect(end.slabs).toBeGreaterThan(0);
    check(dir, r.lines);
  });

  for (const point of ['gc.moved:3', 'gc.moved:40', 'device.write:60', 'catalog.commit:12', 'zone.reset:6', 'device.flush:9']) {
    it(`SIGKILL at ${point} in a GC-heavy churn: every flushed object reads back exactly`, () => {
      const r = runChild(dir, point, 2);
      expect(r.signal).toBe('SIGKILL');
      const { durable } = check(dir, r.lines);
      expect(durable).toBeGreaterThan(0);
    });
  }

  it('a lost catalog is rebuilt from packed images: the moved objects come back', () => {
    const r = runChild(dir, undefined, 3);
    expect(r.status).toBe(0);
    // The child closed cleanly: its final live set is the last flushed one, then the puts and frees after it.
    const live = new Map<string, [number, number]>();
    for (const line of r.lines) {
      if (line.startsWith('D ')) {
        live.clear();
        for (const [h, seed, i] of JSON.parse(line.slice(2)) as [string, number, number][]) live.set(h, [seed, i]);
      } else if (line.startsWith('f ')) live.delete(line.slice(2));
      else if (line.startsWith('p ')) {
        const [, h, seed, i] = line.split(' ');
        live.set(h!, [Number(seed), Number(i)]);
      }
    }
    const durable = [...live].map(([h, [seed, i]]) => [h, seed, i] as const);
    fs.rmSync(path.join(dir, 'catalog.db'));
    const device = openEmulatedDevice(path.join(dir, 'device'));
    let report;
    try {
      report = rebuildCatalog(device, path.join(dir, 'catalog.db'), 'device');
    } finally {
      device.close();
    }
    expect(report.objectsCorrupt).toBe(0);
    const s = openStore(dir);
    try {
      for (const [h, seed, i] of durable) expect(s.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
      s.verify();
    } finally {
      s.close();
    }
  });
});

describe('options and formats', () => {
  it('refuses bad gc options by name', () => {
    expect(codeOf(() => openStore(dir, { geometry: GEOMETRY, gc: 'on' as never }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => openStore(dir, { geometry: GEOMETRY, gc: { spaceAmplification: 1 } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => openStore(dir, { geometry: GEOMETRY, gc: { stepBytes: 0 } }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => openStore(dir, { geometry: GEOMETRY, gc: { idle: 5 } as never }))).toBe(ErrorCode.INVALID_ARGUMENT);
    store = openStore(dir, { geometry: GEOMETRY });
    expect(codeOf(() => store!.gc({ maxBytes: -1 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => store!.gc({ maxMs: Number.NaN }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(store.gc()).toMatchObject({ zonesCollected: 0, slabsMoved: 0, more: false });
    const s = store.statsGlobal();
    expect(s.gc).toMatchObject({ enabled: true, reserveZones: 1, collecting: null, lastError: null });
    store.close();
    store = openStore(dir, { gc: false });
    expect(store.statsGlobal().gc).toMatchObject({ enabled: false, reserveZones: 0 });
    store.close();
    store = openStore(dir, { readOnly: true });
    expect(codeOf(() => store!.gc())).toBe(ErrorCode.READ_ONLY);
  });

  it('opens a format-2 catalog: read-only as it is, writable by upgrading it in place', () => {
    store = openStore(dir, { geometry: GEOMETRY, gc: MANUAL });
    const hs = Array.from({ length: 500 }, (_, i) => store!.put(obj(i)));
    store.close();
    store = undefined;
    // Make it what the previous release wrote: no new columns, format 2.
    const db = new Database(path.join(dir, 'catalog.db'));
    db.exec('ALTER TABLE slabs DROP COLUMN packed_bitmap; ALTER TABLE zones DROP COLUMN written');
    db.prepare("UPDATE meta SET value = '2' WHERE key = 'format_version'").run();
    db.close();
    store = openStore(dir, { readOnly: true });
    expect(store.get(hs[7]!).equals(obj(7))).toBe(true);
    store.close();
    store = openStore(dir);
    expect(store.get(hs[8]!).equals(obj(8))).toBe(true);
    store.close();
    store = undefined;
    const after = new Database(path.join(dir, 'catalog.db'), { readonly: true });
    const version = after.prepare("SELECT value FROM meta WHERE key = 'format_version'").get() as { value: string };
    const columns = (after.prepare('PRAGMA table_info(slabs)').all() as { name: string }[]).map((c) => c.name);
    after.close();
    expect(Number(version.value)).toBe(CATALOG_FORMAT_VERSION);
    expect(columns).toContain('packed_bitmap');
  });
});
