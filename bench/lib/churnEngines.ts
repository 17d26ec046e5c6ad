/**
 * The churn's engine adapters (bench/churn.bench.ts, and the churn workload of
 * bench/peers.bench.ts): one object per slot of a fixed live set, put and freed by slot, each
 * engine with its own durability setting and flush. Lifted out of churn.bench.ts so both
 * benchmarks drive the same code.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { openStore, type Store } from '../../engine/store.js';
import type { DeviceGeometry } from '../../zns/device.js';
import { diskUsage } from '../../tools/diskUsage.js';
import { r3 } from './stats.js';

const MiB = 1024 * 1024;
/** The churn's emulated device: small zones (1,024 of 4 MiB), so zone granularity does not dominate. */
export const CHURN_GEOMETRY = { zoneCount: 1024, zoneSize: 4 * MiB, zoneCapacity: 4 * MiB };

/** What every churn adapter needs: the live set's size and how often the benchmark flushes (for the descriptions). */
export interface ChurnConfig {
  live: number;
  flushEvery: number;
}

export interface ZnsChurnConfig extends ChurnConfig {
  geometry: Partial<DeviceGeometry>;
  /** zns-slab's gc options for the GC-on variants (undefined: the engine's defaults). */
  gcOptions?: { spaceAmplification?: number; stepBytes?: number } | undefined;
}

/** lmdb-js's RootDatabase.sync(callback): mdb_env_sync on a worker thread (not in lmdb-js's typings). */
export function lmdbEnvSync(db: RootDatabase<Buffer, number> | RootDatabase<Buffer, string>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    (db as unknown as { sync(cb: (err?: unknown) => void): void }).sync((err) => (err ? reject(err as Error) : resolve()));
  });
}

export interface ZnsSample {
  spaceAmplification: number | null;
  writeAmplification: number | null;
  deviceBytesWritten: number;
  userBytesPut: number;
  gcZonesCollected: number;
  gcSlabsMoved: number;
  gcBytesMoved: number;
  gcBytesFreed: number;
  gcMs: number;
  gcStepFailures: number;
  gcLastError: string | null;
  zoneResets: number;
  zonesFinishedEarly: number;
  finishWasteBytes: number;
  zonesFree: number;
  zonesOwned: number;
  epochsLive: number;
  liveObjects: number;
  /** Bytes written in owned zones, and the live slots in them (what GC's spaceAmplification divides). */
  zoneBytesWritten: number;
  zoneBytesLive: number;
  /** Slot bytes (header + class size) of the live objects: payload / this is the size classes' rounding. */
  liveSlotBytes: number;
  /** Allocated bytes of the device folder alone (the rest of the store's disk is the catalog). */
  deviceDiskBytes: number;
}

export interface ChurnImpl {
  durability: string;
  flushOp: string;
  put(slot: number, id: number, bytes: Buffer): void;
  free(slot: number): void;
  flush(): void | Promise<void>;
  read(slot: number): Buffer | undefined;
  zns?: () => ZnsSample;
  /** zns-slab with epochs: start a new epoch, returns its id. */
  advance?: () => number;
  /** The store's current epoch (for the bookkeeping of which slot is in which epoch). */
  currentEpoch?: () => number;
  /** Close an epoch the benchmark counts as empty; returns a mismatch message if the store disagrees. */
  closeEpoch?: (epoch: number) => string | undefined;
  verifyStore?: () => string;
  close(): void;
}

/** A churn adapter whose operations may be asynchronous (classic-level's are): the churn loop awaits what it returns. */
export type AsyncChurnImpl = Omit<ChurnImpl, 'put' | 'free' | 'close'> & {
  put(slot: number, id: number, bytes: Buffer): void | Promise<void>;
  free(slot: number): void | Promise<void>;
  close(): void | Promise<void>;
};

export function znsChurnImpl(dir: string, mode: 'gc' | 'nogc' | 'epochs', config: ZnsChurnConfig): ChurnImpl {
  const { geometry, gcOptions, flushEvery } = config;
  const store: Store = openStore(dir, mode === 'nogc' ? { geometry, gc: false } : gcOptions !== undefined ? { geometry, gc: gcOptions } : { geometry });
  const handles = new BigUint64Array(config.live);
  return {
    durability: 'durable at flush() (device fsync, then the catalog commits); no sync per operation',
    flushOp: `store.flush() every ${flushEvery} cycles`,
    put(slot, _id, bytes) {
      handles[slot] = store.put(bytes);
    },
    free(slot) {
      store.free(handles[slot]!);
    },
    flush() {
      store.flush();
    },
    read(slot) {
      return store.get(handles[slot]!);
    },
    zns() {
      const g = store.statsGlobal();
      const c = g.counters;
      return {
        spaceAmplification: g.derived.spaceAmplification === null ? null : r3(g.derived.spaceAmplification),
        writeAmplification: g.derived.writeAmplification === null ? null : r3(g.derived.writeAmplification),
        deviceBytesWritten: c.deviceBytesWritten,
        userBytesPut: c.userBytesPut,
        gcZonesCollected: c.gcZonesCollected,
        gcSlabsMoved: c.gcSlabsMoved,
        gcBytesMoved: c.gcBytesMoved,
        gcBytesFreed: c.gcBytesFreed,
        gcMs: r3(c.gcMs),
        gcStepFailures: c.gcStepFailures,
        gcLastError: g.gc.lastError,
        zoneResets: c.zoneResets,
        zonesFinishedEarly: c.zonesFinishedEarly,
        finishWasteBytes: c.finishWasteBytes,
        zonesFree: g.zones.free,
        zonesOwned: g.zones.owned,
        epochsLive: g.epochs.length,
        liveObjects: g.liveObjects,
        zoneBytesWritten: g.gc.bytesWritten,
        zoneBytesLive: g.gc.bytesLive,
        liveSlotBytes: g.derived.liveBytes,
        deviceDiskBytes: diskUsage(path.join(dir, 'device')),
      };
    },
    ...(mode === 'epochs'
      ? {
          advance: () => store.epochAdvance(),
          currentEpoch: () => store.epochCurrent(),
          closeEpoch: (epoch: number) => {
            const live = store.statsEpoch(epoch).liveObjects;
            if (live !== 0) return `epoch ${epoch}: the benchmark counts 0 live objects, statsEpoch says ${live} (not closed)`;
            store.epochClose(epoch);
            return undefined;
          },
        }
      : {}),
    verifyStore() {
      store.verify();
      return 'store.verify() passed';
    },
    close() {
      store.close();
    },
  };
}

export function lmdbChurnImpl(dir: string, config: ChurnConfig): ChurnImpl {
  const { flushEvery } = config;
  const db = openLmdb<Buffer, number>({ path: dir, noSync: true, encoding: 'binary', keyEncoding: 'uint32' });
  const ids = new Uint32Array(config.live);
  return {
    durability: 'open({ noSync: true }): each putSync/removeSync is its own committed write transaction, not synced; db.sync() (mdb_env_sync) every flush',
    flushOp: `await db.sync() every ${flushEvery} cycles`,
    put(slot, id, bytes) {
      ids[slot] = id;
      db.putSync(id, bytes);
    },
    free(slot) {
      db.removeSync(ids[slot]!);
    },
    flush() {
      return lmdbEnvSync(db);
    },
    read(slot) {
      return db.getBinary(ids[slot]!);
    },
    close() {
      db.close();
    },
  };
}

export function sqliteChurnImpl(dir: string, config: ChurnConfig): ChurnImpl {
  const { flushEvery } = config;
  const db = new Database(path.join(dir, 'churn.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  const remove = db.prepare('DELETE FROM t WHERE id = ?');
  const select = db.prepare<[number], Buffer>('SELECT v FROM t WHERE id = ?').pluck();
  const ids = new Uint32Array(config.live);
  return {
    durability: 'WAL, synchronous=NORMAL: each INSERT/DELETE its own autocommit transaction, no fsync per commit (the WAL is synced at checkpoints); default autocheckpoint (1000 pages)',
    flushOp: `PRAGMA wal_checkpoint(PASSIVE) every ${flushEvery} cycles (syncs the WAL, then the database)`,
    put(slot, id, bytes) {
      ids[slot] = id;
      insert.run(id, bytes);
    },
    free(slot) {
      remove.run(ids[slot]!);
    },
    flush() {
      db.pragma('wal_checkpoint(PASSIVE)');
    },
    read(slot) {
      return select.get(ids[slot]!);
    },
    verifyStore() {
      const ok = db.pragma('integrity_check', { simple: true });
      return `integrity_check: ${String(ok)}`;
    },
    close() {
      db.close();
    },
  };
}
