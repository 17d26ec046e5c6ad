/**
 * The fault table of docs/RELIABILITY.md, one row each: an injected fault gives the caller a
 * coded ZnsSlabError, the store stays usable (the next flush succeeds once the fault is gone),
 * and after a clean close and reopen every acknowledged object is there with its bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CATALOG_RESERVE_BYTES } from '../../catalog/catalog.js';
import { openStoreWith, type Store } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { createEmulatedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { FaultController, type FaultKind, type FaultTarget, FaultyDevice } from '../../sim/faults.js';
import { payloadFor } from '../../sim/rng.js';
import { SMALL_GEOMETRY, codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: ReturnType<typeof tempDir>;
let ctl: FaultController;

function open(): Store {
  const device = new FaultyDevice(openEmulatedDevice(path.join(tmp.dir, 'device')), ctl);
  return openStoreWith(path.join(tmp.dir, 'store'), { device }, { catalogHooks: ctl.catalogHooks() });
}

beforeEach(() => {
  tmp = tempDir();
  ctl = new FaultController();
  createEmulatedDevice(path.join(tmp.dir, 'device'), { ...SMALL_GEOMETRY, zoneCount: 8 }).close();
});
afterEach(() => tmp.cleanup());

interface Row {
  fault: string;
  target: FaultTarget;
  kind: FaultKind;
  /** What runs into the fault. */
  act: (store: Store, kept: Map<bigint, Buffer>) => void;
  code: string;
  /** Faults armed in a row (default 1). */
  times?: number;
}

/** Enough 3 KiB objects to fill slabs and need zones. */
function fill(store: Store, kept: Map<bigint, Buffer>, from: number, count: number): void {
  for (let i = from; i < from + count; i++) {
    const bytes = payloadFor(i, 3000);
    kept.set(store.put(bytes), bytes);
  }
}

const rows: Row[] = [
  { fault: 'EIO on write (a seal)', target: 'write', kind: 'eio', code: ErrorCode.DEVICE_IO, act: (s, k) => fill(s, k, 1000, 400) },
  { fault: 'short write (the kernel split it; part landed)', target: 'write', kind: 'short', code: ErrorCode.DEVICE_IO, act: (s, k) => fill(s, k, 1000, 400) },
  { fault: 'ENOSPC on write', target: 'write', kind: 'enospc', code: ErrorCode.DISK_FULL, act: (s, k) => fill(s, k, 1000, 400) },
  { fault: 'EIO on device flush', target: 'flush', kind: 'eio', code: ErrorCode.DEVICE_IO, act: (s) => s.flush() },
  { fault: 'SQLITE_IOERR on catalog commit', target: 'commit', kind: 'eio', code: ErrorCode.CATALOG_IO, act: (s) => s.flush() },
  // Twice: the first is absorbed by the catalog's reserve (see the test after this table).
  { fault: 'SQLITE_FULL on catalog commit, reserve spent', target: 'commit', kind: 'enospc', code: ErrorCode.DISK_FULL, act: (s) => s.flush(), times: 2 },
  { fault: 'EIO on read', target: 'read', kind: 'eio', code: ErrorCode.DEVICE_IO, act: (s, k) => void s.get([...k.keys()][0]!) },
];

describe('fault table', () => {
  for (const row of rows) {
    it(`${row.fault}: ${row.code}, the store goes on, nothing acknowledged is lost`, () => {
      const kept = new Map<bigint, Buffer>();
      let store = open();
      fill(store, kept, 0, 300);
      store.flush();
      fill(store, kept, 300, 50);
      for (let i = 0; i < (row.times ?? 1); i++) ctl.armFault(row.target, row.kind, 0);
      expect(codeOf(() => row.act(store, kept))).toBe(row.code);
      expect(ctl.takeFired()).toBe(row.times ?? 1);
      store.verify();
      // Usable: every object reads back, more puts go in, a flush succeeds.
      for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
      fill(store, kept, 2000, 100);
      store.flush();
      store.close();
      store = open();
      for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
      store.verify();
      store.close();
    });
  }

  it('SQLITE_FULL once: the catalog gives up its reserve and the commit goes through', () => {
    const kept = new Map<bigint, Buffer>();
    let store = open();
    fill(store, kept, 0, 300);
    const reserve = path.join(tmp.dir, 'store', 'catalog.db.reserve');
    expect(fs.statSync(reserve).size).toBe(CATALOG_RESERVE_BYTES);
    ctl.armFault('commit', 'enospc', 0);
    store.flush();
    expect(ctl.takeFired()).toBe(1);
    // Made again by that same commit, now that there is room.
    expect(fs.statSync(reserve).size).toBe(CATALOG_RESERVE_BYTES);
    store.close();
    store = open();
    for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
    store.close();
  });

  it('EIO on a zone reset: epochClose still closes; the zone is reset later and space comes back', () => {
    const kept = new Map<bigint, Buffer>();
    let store = open();
    const first = store.epochCurrent();
    fill(store, kept, 0, 300);
    store.flush();
    const doomed = [...kept.keys()];
    kept.clear();
    store.epochAdvance();
    fill(store, kept, 300, 50);
    ctl.armFault('reset', 'eio', 0);
    store.epochClose(first); // a failed reset is counted and retried, not thrown
    expect(ctl.takeFired()).toBe(1);
    expect(store.statsGlobal().counters.zoneResetFailures).toBe(1);
    for (const h of doomed) expect(codeOf(() => store.get(h))).toBe(ErrorCode.STALE_HANDLE);
    // Fill the device: the failed zone is reset again when a free zone is needed.
    fill(store, kept, 1000, 1200);
    store.flush();
    store.verify();
    store.close();
    store = open();
    for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
    store.close();
  });

  it('EIO on a zone finish: the put gets ERR_DEVICE_IO and the next one goes on', () => {
    const kept = new Map<bigint, Buffer>();
    const store = open();
    ctl.armFault('finish', 'eio', 0);
    let code: string | undefined;
    for (let i = 0; i < 3000 && code === undefined; i++) {
      // Big objects: a head zone that cannot take the next slab is finished early.
      code = codeOf(() => {
        const bytes = payloadFor(i, 70_000 + (i % 7) * 1000);
        kept.set(store.put(bytes), bytes);
      });
      if (i % 5 === 4) store.epochAdvance();
    }
    expect(code).toBe(ErrorCode.DEVICE_IO);
    fill(store, kept, 5000, 10);
    store.flush();
    for (const [h, bytes] of kept) expect(store.get(h).equals(bytes)).toBe(true);
    store.verify();
    store.close();
  });
});
