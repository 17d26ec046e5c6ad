/**
 * The Trust II issue's six damage cases, each as found by a user, each refused with a code or
 * repaired, never a store that returns wrong bytes or resets a device silently.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { CATALOG_FILE, openStore, type Store } from '../../engine/store.js';
import { emulatedZoneFile } from '../../zns/emulated.js';
import { payloadFor } from '../../sim/rng.js';
import { SMALL_GEOMETRY, codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
const GEOMETRY = { ...SMALL_GEOMETRY, zoneCount: 24 };

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

/** A store with `count` objects over three epochs, flushed and closed; returns handle -> bytes. */
function fillStore(dir: string, count: number, from = 0): Map<bigint, Buffer> {
  const store = openStore(dir, { geometry: GEOMETRY });
  const kept = new Map<bigint, Buffer>();
  for (let i = from; i < from + count; i++) {
    if (i > from && i % Math.ceil(count / 3) === 0) store.epochAdvance();
    const bytes = payloadFor(i, 100 + (i % 2000));
    kept.set(store.put(bytes), bytes);
  }
  store.close();
  return kept;
}

function zoneFiles(dir: string): number {
  return fs.readdirSync(path.join(dir, 'device')).filter((f) => f.startsWith('zone-')).length;
}

function expectAll(store: Store, kept: Map<bigint, Buffer>): void {
  let wrong = 0;
  for (const [h, bytes] of kept) if (!store.get(h).equals(bytes)) wrong++;
  expect(wrong).toBe(0);
}

function recover(dir: string, ...flags: string[]): { status: number | null; report: Record<string, unknown>; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'recover', dir, ...flags], { encoding: 'utf8' });
  return { status: r.status, report: r.stdout ? (JSON.parse(r.stdout) as Record<string, unknown>) : {}, stderr: r.stderr };
}

describe('1: a deleted catalog', () => {
  it('is ERR_CATALOG_MISSING, resets nothing, and `zns-slab recover` brings every object back', () => {
    const dir = path.join(tmp.dir, 's');
    const kept = fillStore(dir, 3000);
    const files = zoneFiles(dir);
    fs.rmSync(path.join(dir, CATALOG_FILE));
    expect(codeOf(() => openStore(dir))).toBe(ErrorCode.CATALOG_MISSING);
    expect(codeOf(() => openStore(dir, { readOnly: true }))).toBe(ErrorCode.CATALOG_MISSING);
    expect(zoneFiles(dir)).toBe(files);
    expect(fs.existsSync(path.join(dir, CATALOG_FILE))).toBe(false);

    const r = recover(dir);
    expect(r.status).toBe(0);
    expect(r.report.objects).toBe(kept.size);
    expect(r.report.objectsCorrupt).toBe(0);
    const store = openStore(dir);
    expectAll(store, kept);
    // New writes never take an old handle's place.
    const fresh = Array.from({ length: 500 }, (_, i) => store.put(payloadFor(90_000 + i, 300)));
    for (const h of fresh) expect(kept.has(h)).toBe(false);
    expectAll(store, kept);
    store.verify();
    store.close();
  });

  it('two rebuilds in a row never hand out a generation twice (the floor is kept with the device)', () => {
    const dir = path.join(tmp.dir, 's');
    fillStore(dir, 200);
    const handed = new Set<bigint>();
    for (let round = 0; round < 3; round++) {
      fs.rmSync(path.join(dir, CATALOG_FILE));
      for (const f of ['-wal', '-shm', '.reserve']) fs.rmSync(path.join(dir, CATALOG_FILE + f), { force: true });
      expect(recover(dir).status).toBe(0);
      const store = openStore(dir);
      // Objects that never reach the device (fewer than one slab holds): their handles die with the catalog.
      for (let i = 0; i < 100; i++) {
        const h = store.put(payloadFor(round * 1000 + i, 40));
        expect(handed.has(h)).toBe(false);
        handed.add(h);
      }
      store.abandon();
    }
  });

  it('a -wal lost after a crash before the first checkpoint is the same case', () => {
    const dir = path.join(tmp.dir, 's');
    const kept = fillStore(dir, 500);
    // What a crash before the first checkpoint leaves: the header written, nothing else.
    fs.rmSync(path.join(dir, CATALOG_FILE));
    new Database(path.join(dir, CATALOG_FILE)).close();
    expect(codeOf(() => openStore(dir))).toBe(ErrorCode.CATALOG_MISSING);
    fs.rmSync(path.join(dir, CATALOG_FILE));
    expect(recover(dir).status).toBe(0);
    const store = openStore(dir, { readOnly: true });
    expectAll(store, kept);
    store.close();
  });

  it('overwriteDevice starts a new store there, on purpose', () => {
    const dir = path.join(tmp.dir, 's');
    fillStore(dir, 200);
    fs.rmSync(path.join(dir, CATALOG_FILE));
    const store = openStore(dir, { overwriteDevice: true });
    expect(zoneFiles(dir)).toBe(0);
    store.close();
  });
});

describe('2: catalogs tied to their device', () => {
  it('swapped catalogs are ERR_CATALOG_MISMATCH, and nothing is changed', () => {
    const a = path.join(tmp.dir, 'a');
    const b = path.join(tmp.dir, 'b');
    fillStore(a, 600);
    fillStore(b, 600);
    const filesA = zoneFiles(a);
    const swap = path.join(tmp.dir, 'swap.db');
    fs.renameSync(path.join(a, CATALOG_FILE), swap);
    fs.renameSync(path.join(b, CATALOG_FILE), path.join(a, CATALOG_FILE));
    fs.renameSync(swap, path.join(b, CATALOG_FILE));
    expect(codeOf(() => openStore(a))).toBe(ErrorCode.CATALOG_MISMATCH);
    expect(codeOf(() => openStore(b, { readOnly: true }))).toBe(ErrorCode.CATALOG_MISMATCH);
    expect(zoneFiles(a)).toBe(filesA);
  });

  it('a catalog copied onto a device that does not record its owner is refused from the slabs themselves', () => {
    const a = path.join(tmp.dir, 'a');
    const b = path.join(tmp.dir, 'b');
    fillStore(a, 600);
    fillStore(b, 600);
    for (const d of [a, b]) {
      const meta = path.join(d, 'device', 'device.json');
      const json = JSON.parse(fs.readFileSync(meta, 'utf8')) as { owner?: string };
      delete json.owner; // as on a raw device: only the slab headers say whose it is
      fs.writeFileSync(meta, JSON.stringify(json));
    }
    fs.copyFileSync(path.join(b, CATALOG_FILE), path.join(a, CATALOG_FILE));
    expect(codeOf(() => openStore(a))).toBe(ErrorCode.CATALOG_MISMATCH);
  });

  it('an older copy of the catalog is ERR_CATALOG_STALE', () => {
    const dir = path.join(tmp.dir, 's');
    fillStore(dir, 600);
    const old = path.join(tmp.dir, 'old.db');
    fs.copyFileSync(path.join(dir, CATALOG_FILE), old);
    fillStore(dir, 900, 10_000);
    fs.copyFileSync(old, path.join(dir, CATALOG_FILE));
    expect(codeOf(() => openStore(dir))).toBe(ErrorCode.CATALOG_STALE);
  });
});

describe('3: one damaged zone', () => {
  it('refuses a normal open, and a salvage open serves the healthy zones', () => {
    const dir = path.join(tmp.dir, 's');
    const kept = fillStore(dir, 3000);
    const victim = emulatedZoneFile(path.join(dir, 'device'), 1);
    fs.truncateSync(victim, 8192);
    expect(codeOf(() => openStore(dir))).toBe(ErrorCode.DEVICE_MISMATCH);
    const store = openStore(dir, { salvage: true });
    const damaged = store.statsZones().filter((z) => z.damaged).map((z) => z.index);
    expect(damaged).toEqual([1]);
    let served = 0;
    let lost = 0;
    for (const [h, bytes] of kept) {
      try {
        expect(store.get(h).equals(bytes)).toBe(true);
        served++;
      } catch (err) {
        expect((err as ZnsSlabError).code).toBe(ErrorCode.ZONE_LOST);
        lost++;
      }
    }
    expect(served).toBeGreaterThan(lost);
    expect(lost).toBeGreaterThan(0);
    expect(codeOf(() => store.put(Buffer.from('x')))).toBe(ErrorCode.READ_ONLY);
    store.close();
  });
});

describe('4: one owner per device', () => {
  it('a second store on the same device is ERR_DEVICE_LOCKED, in this process and in another', () => {
    const a = path.join(tmp.dir, 'a');
    const store = openStore(a, { geometry: GEOMETRY });
    store.put(Buffer.from('mine'));
    store.flush();
    const device = path.join(a, 'device');
    expect(codeOf(() => openStore(path.join(tmp.dir, 'b'), { device }))).toBe(ErrorCode.DEVICE_LOCKED);
    const script = `import('${path.join(root, 'dist', 'index.js')}').then(({ openStore }) => { try { openStore(${JSON.stringify(path.join(tmp.dir, 'c'))}, { device: ${JSON.stringify(device)} }); console.log('opened'); } catch (e) { console.log(e.code); } })`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe(ErrorCode.DEVICE_LOCKED);
    store.close();
    // Closed: the device is free again, but holds a store, so a new catalog is not made on it.
    expect(codeOf(() => openStore(path.join(tmp.dir, 'b'), { device }))).toBe(ErrorCode.CATALOG_MISSING);
    openStore(a).close();
  });

  it('a lock left by a process that died is taken over', () => {
    const a = path.join(tmp.dir, 'a');
    openStore(a, { geometry: GEOMETRY }).close();
    fs.writeFileSync(path.join(a, 'device', 'device.lock'), '999999999\n');
    openStore(a).close();
  });
});

describe('6: the error contract', () => {
  it('refuses wrong options by name', () => {
    const dir = path.join(tmp.dir, 's');
    const cases: [unknown, RegExp][] = [
      [5, /options must be an object/],
      [{ device: 42 }, /options\.device/],
      [{ device: {} }, /options\.device/],
      [{ geometry: 'abc' }, /options\.geometry/],
      [{ geometry: { zoneCount: -1 } }, /options\.geometry\.zoneCount/],
      [{ geometry: { zoneSise: 4 } }, /zoneSise/],
      [{ readonly: true }, /unknown option 'readonly'/],
      [{ readOnly: 'yes' }, /options\.readOnly/],
    ];
    for (const [options, message] of cases) {
      let thrown: unknown;
      try {
        openStore(dir, options as never);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ZnsSlabError);
      expect((thrown as ZnsSlabError).code).toBe(ErrorCode.INVALID_ARGUMENT);
      expect((thrown as Error).message).toMatch(message);
    }
    expect(codeOf(() => openStore(dir, { geometry: { zoneCapacity: 3 } }))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('a path that is a file, a corrupt catalog, bad device metadata: coded errors', () => {
    const file = path.join(tmp.dir, 'file');
    fs.writeFileSync(file, 'x');
    expect(codeOf(() => openStore(file))).toBe(ErrorCode.INVALID_STORE);
    expect(codeOf(() => openStore(path.join(file, 'inside')))).toBe(ErrorCode.INVALID_STORE);
    const dir = path.join(tmp.dir, 's');
    fillStore(dir, 100);
    fs.writeFileSync(path.join(dir, 'device', 'device.json'), '{ not json');
    expect(codeOf(() => openStore(dir))).toBe(ErrorCode.INVALID_STORE);
    const dir2 = path.join(tmp.dir, 's2');
    fillStore(dir2, 100);
    const db = path.join(dir2, CATALOG_FILE);
    const bytes = fs.readFileSync(db);
    bytes.fill(0x5a, 4096, 8192); // a page of garbage
    fs.writeFileSync(db, bytes);
    const code = codeOf(() => {
      const s = openStore(dir2);
      s.close();
    });
    expect([ErrorCode.INVALID_STORE, ErrorCode.CATALOG_IO]).toContain(code);
  });

  it("takes an object's length from the typed array, not a getter a subclass overrides", () => {
    class Liar extends Uint8Array {
      override get length(): number {
        return 100;
      }
    }
    const store = openStore(path.join(tmp.dir, 's'), { geometry: GEOMETRY });
    const liar = new Liar(72).fill(7);
    const h = store.put(liar);
    const back = store.get(h);
    expect(back.length).toBe(72);
    expect(back.equals(Buffer.alloc(72, 7))).toBe(true);
    expect(codeOf(() => store.put('text' as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    store.close();
  });
});
