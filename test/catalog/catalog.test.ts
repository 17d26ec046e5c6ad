import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CATALOG_FORMAT_VERSION, Catalog, type CatalogMeta } from '../../catalog/catalog.js';
import { ErrorCode } from '../../errors.js';
import { codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const META: CatalogMeta = {
  formatVersion: CATALOG_FORMAT_VERSION,
  geometry: { zoneCount: 8, zoneSize: 4096 },
  deviceKind: 'emulated',
  devicePath: 'device',
  createdAt: 1,
  nextSlabId: 1,
  nextEpochId: 2,
  currentEpoch: 1,
  storeId: '00112233445566778899aabbccddeeff',
  commitSequence: 0,
  sealSequence: 0,
};

let tmp: ReturnType<typeof tempDir>;
let file: string;
beforeEach(() => {
  tmp = tempDir();
  file = path.join(tmp.dir, 'catalog.db');
});
afterEach(() => tmp.cleanup());

function initialized(): Catalog {
  const c = new Catalog(file);
  c.initialize(META, { id: 1, state: 'ACTIVE', createdAt: 1, closingAt: null, closedAt: null });
  return c;
}

describe('catalog', () => {
  it('persists meta, epochs, zones and slab rows in WAL mode', () => {
    const c = initialized();
    c.commit({
      epochs: [{ id: 2, state: 'CLOSING', createdAt: 2, closingAt: 3, closedAt: null }],
      zonesOwned: [{ zone: 3, epoch: 2 }],
      slabs: [
        { slabId: 1, generation: 0, genLimit: 16, state: 'sealed', epoch: 2, sizeClass: 0, zone: 3, offset: 0, length: 4096, slotCount: 2, liveCount: 1, liveBitmap: new Uint8Array(32).fill(1, 0, 1) },
        { slabId: 2, generation: 16, genLimit: 16, state: 'free', epoch: null, sizeClass: null, zone: null, offset: null, length: null, slotCount: null, liveCount: null, liveBitmap: null },
      ],
      meta: { nextSlabId: 3, currentEpoch: 2 },
    });
    c.close();
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const again = new Catalog(file);
    expect(again.readMeta()).toMatchObject({ nextSlabId: 3, currentEpoch: 2, geometry: META.geometry });
    expect(again.epochs().map((e) => [e.id, e.state])).toEqual([[1, 'ACTIVE'], [2, 'CLOSING']]);
    expect(again.zones()).toEqual([{ zone: 3, epoch: 2, written: null }]);
    const slabs = [...again.slabs()];
    expect(slabs.map((s) => s.state)).toEqual(['sealed', 'free']);
    expect(slabs[0]!.liveBitmap![0]).toBe(1);
    again.commit({ zonesReleased: [3] });
    expect(again.zones()).toEqual([]);
    again.close();
  });

  it('rolls back a batch that breaks a constraint: all or nothing', () => {
    const c = initialized();
    expect(() =>
      c.commit({
        zonesOwned: [{ zone: 1, epoch: 1 }],
        // A sealed slab with its generation at its lease limit violates the CHECK.
        slabs: [{ slabId: 5, generation: 16, genLimit: 16, state: 'sealed', epoch: 1, sizeClass: 0, zone: 1, offset: 0, length: 4096, slotCount: 1, liveCount: 1, liveBitmap: new Uint8Array(32) }],
      }),
    ).toThrow();
    expect(c.zones()).toEqual([]);
    c.close();
  });

  it('locks the catalog against a second writer', () => {
    const c = initialized();
    expect(codeOf(() => new Catalog(file))).toBe(ErrorCode.STORE_LOCKED);
    c.close();
    new Catalog(file).close();
  });

  it('refuses a catalog of another format version, and files that are not catalogs', () => {
    initialized().close();
    const raw = new Database(file);
    raw.prepare("UPDATE meta SET value = '99' WHERE key = 'format_version'").run();
    raw.close();
    const c = new Catalog(file);
    expect(codeOf(() => c.readMeta())).toBe(ErrorCode.FORMAT_VERSION);
    c.close();
    const junk = path.join(tmp.dir, 'junk.db');
    fs.writeFileSync(junk, 'this is not sqlite, just text that is long enough to have a header'.repeat(20));
    expect(codeOf(() => new Catalog(junk))).toBe(ErrorCode.INVALID_STORE);
  });
});
