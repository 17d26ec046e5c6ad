/**
 * The catalog: an SQLite database (better-sqlite3, WAL, synchronous=FULL) holding what must
 * survive a restart: the slab registry, the epochs, zone ownership, the format version and the
 * device geometry. It knows SQL and rows; what the rows mean is the engine's business.
 *
 * The store holds the database in EXCLUSIVE locking mode for as long as it is open, so a second
 * opener (another process, or another Store in this one) is refused instead of racing.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { crashPoint } from '../crashpoints.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';

/**
 * 2: slab images carry a header, slots a store tag; the catalog a store id and commit sequence.
 * 3: slabs may be packed (moved by zone GC: `packed_bitmap`), zones record what was written
 *    before they were finished (`written`). A format-2 catalog is upgraded in place when a
 *    store opens it writable (two added columns, both empty for its rows).
 */
export const CATALOG_FORMAT_VERSION = 3;
/** Formats this release reads: the current one, and 2 (read as is, upgraded by a writable open). */
const READABLE_FORMAT_VERSIONS: readonly number[] = [2, 3];

/**
 * Bytes kept aside beside the catalog (`<catalog>.reserve`) so that on a full filesystem a
 * commit can still go through: the one that closes an epoch and so gives space back. Deleted
 * when a commit fails for space, and made again once a later commit finds room.
 */
export const CATALOG_RESERVE_BYTES = 2 * 1024 * 1024;

export type SlabRowState = 'sealed' | 'free' | 'retired';
export type EpochRowState = 'ACTIVE' | 'CLOSING' | 'CLOSED';

export interface SlabRow {
  slabId: number;
  /** For a sealed slab, its generation; for a free id, the next generation it may use. */
  generation: number;
  /** Generations below this may have been handed out; never reuse one (see engine/registry.ts). */
  genLimit: number;
  state: SlabRowState;
  epoch: number | null;
  sizeClass: number | null;
  zone: number | null;
  offset: number | null;
  length: number | null;
  slotCount: number | null;
  liveCount: number | null;
  liveBitmap: Uint8Array | null;
  /** A packed image (moved by zone GC): the slots it holds. Null (or absent) for a slab as sealed. */
  packedBitmap?: Uint8Array | null;
}

export interface EpochRow {
  id: number;
  state: EpochRowState;
  createdAt: number;
  closingAt: number | null;
  closedAt: number | null;
}

export interface ZoneRow {
  zone: number;
  epoch: number;
  /** For a zone finished before it was full: the bytes written before the finish. Else null. */
  written?: number | null;
}

export interface CatalogMeta {
  formatVersion: number;
  geometry: Readonly<Record<string, number>>;
  deviceKind: string;
  devicePath: string;
  createdAt: number;
  nextSlabId: number;
  nextEpochId: number;
  currentEpoch: number;
  /** The store's identity (32 hex digits), also in every slab image and the device's metadata. */
  storeId: string;
  /** Commits so far (every transaction but `initialize` adds one). */
  commitSequence: number;
  /** Slab seals so far, as of the last commit. */
  sealSequence: number;
  /** The engine's counters, as JSON it wrote (opaque here). */
  counters?: string;
  /** What the store is for, when a layer above made it ('cache'); absent for a plain store. */
  purpose?: string;
}

/**
 * Fault injection for the simulator (sim/): `beforeCommit` runs inside the transaction after
 * every statement, so throwing from it loses the whole batch, as a crash or an I/O error would.
 */
export interface CatalogHooks {
  beforeCommit?(batch: CatalogBatch): void;
}

export interface CatalogBatch {
  slabs?: Iterable<SlabRow>;
  zonesOwned?: Iterable<ZoneRow>;
  zonesReleased?: Iterable<number>;
  epochs?: Iterable<EpochRow>;
  meta?: Partial<Pick<CatalogMeta, 'nextSlabId' | 'nextEpochId' | 'currentEpoch' | 'counters' | 'sealSequence'>>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS epochs (
  id         INTEGER PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('ACTIVE', 'CLOSING', 'CLOSED')),
  created_at INTEGER NOT NULL,
  closing_at INTEGER,
  closed_at  INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS zones (
  zone    INTEGER PRIMARY KEY,
  epoch   INTEGER NOT NULL REFERENCES epochs(id),
  written INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS slabs (
  slab_id     INTEGER PRIMARY KEY,
  generation  INTEGER NOT NULL,
  gen_limit   INTEGER NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('sealed', 'free', 'retired')),
  epoch       INTEGER,
  size_class  INTEGER,
  zone        INTEGER,
  offset      INTEGER,
  length      INTEGER,
  slot_count  INTEGER,
  live_count  INTEGER,
  live_bitmap BLOB,
  packed_bitmap BLOB,
  CHECK (generation < gen_limit OR state <> 'sealed'),
  CHECK (state <> 'sealed' OR (zone IS NOT NULL AND offset IS NOT NULL AND live_bitmap IS NOT NULL))
) STRICT;
CREATE INDEX IF NOT EXISTS slabs_by_zone ON slabs(zone) WHERE state = 'sealed';
`;

interface RawSlabRow {
  slab_id: number;
  generation: number;
  gen_limit: number;
  state: SlabRowState;
  epoch: number | null;
  size_class: number | null;
  zone: number | null;
  offset: number | null;
  length: number | null;
  slot_count: number | null;
  live_count: number | null;
  live_bitmap: Buffer | null;
  /** Absent in a format-2 catalog opened read-only. */
  packed_bitmap?: Buffer | null;
}

interface RawEpochRow {
  id: number;
  state: EpochRowState;
  created_at: number;
  closing_at: number | null;
  closed_at: number | null;
}

export class Catalog {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly upsertSlab: Database.Statement;
  private readonly upsertEpoch: Database.Statement;
  private readonly insertZone: Database.Statement;
  private readonly deleteZone: Database.Statement;
  private readonly setMeta: Database.Statement;
  private readonly commitTx: (batch: CatalogBatch) => void;
  private closed = false;
  /** The last committed transaction's number (meta 'commit_sequence'). */
  commitSequence = 0;
  private readonly reserveFile: string;
  private reserved = false;

  /**
   * Opens (creating if needed) the catalog at `file`. `readonly` opens without taking the
   * store's lock, for inspection tools; it fails if a store holds the catalog open.
   */
  constructor(file: string, options: { readonly?: boolean; mustExist?: boolean; hooks?: CatalogHooks } = {}) {
    this.file = file;
    this.reserveFile = `${file}.reserve`;
    const hooks = options.hooks;
    try {
      this.db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.mustExist ?? false, timeout: 0 });
    } catch (err) {
      throw new ZnsSlabError(ErrorCode.INVALID_STORE, `cannot open catalog ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      if (!options.readonly) {
        this.db.pragma('locking_mode = EXCLUSIVE');
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = FULL');
        // Take the exclusive lock now, so a second opener fails at open and not mid-flush.
        this.db.exec('BEGIN IMMEDIATE');
        this.db.exec(SCHEMA);
        upgradeSchema(this.db);
        this.db.exec('COMMIT');
      } else {
        // A store open elsewhere holds the database EXCLUSIVE: find out now, not mid-read.
        this.db.prepare('SELECT count(*) FROM sqlite_master').get();
      }
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      this.db.close();
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new ZnsSlabError(ErrorCode.STORE_LOCKED, `catalog ${file} is held open by another store (another process, or this one)`, { cause: err });
      }
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${file} is not a zns-slab catalog: ${(err as Error).message}`, { cause: err });
      }
      throw catalogError(err, `cannot open catalog ${file}`);
    }
    try {
      const row = this.db.prepare("SELECT value FROM meta WHERE key = 'commit_sequence'").get() as { value: string } | undefined;
      this.commitSequence = row === undefined ? 0 : Number(row.value);
    } catch (err) {
      this.db.close();
      throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${file} is not a readable zns-slab catalog: ${(err as Error).message}`, { cause: err });
    }
    if (options.readonly) {
      // Statements that write are never run on a read-only catalog; prepare harmless stand-ins.
      const noop = this.db.prepare('SELECT 1');
      this.upsertSlab = this.upsertEpoch = this.insertZone = this.deleteZone = this.setMeta = noop;
      this.commitTx = () => {
        throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'catalog opened read-only');
      };
      return;
    }
    this.upsertSlab = this.db.prepare(`
      INSERT INTO slabs (slab_id, generation, gen_limit, state, epoch, size_class, zone, offset, length, slot_count, live_count, live_bitmap, packed_bitmap)
      VALUES (@slabId, @generation, @genLimit, @state, @epoch, @sizeClass, @zone, @offset, @length, @slotCount, @liveCount, @liveBitmap, @packedBitmap)
      ON CONFLICT(slab_id) DO UPDATE SET
        generation = excluded.generation, gen_limit = excluded.gen_limit, state = excluded.state,
        epoch = excluded.epoch, size_class = excluded.size_class, zone = excluded.zone, offset = excluded.offset,
        length = excluded.length, slot_count = excluded.slot_count, live_count = excluded.live_count,
        live_bitmap = excluded.live_bitmap, packed_bitmap = excluded.packed_bitmap`);
    this.upsertEpoch = this.db.prepare(`
      INSERT INTO epochs (id, state, created_at, closing_at, closed_at) VALUES (@id, @state, @createdAt, @closingAt, @closedAt)
      ON CONFLICT(id) DO UPDATE SET state = excluded.state, closing_at = excluded.closing_at, closed_at = excluded.closed_at`);
    this.reserved = fs.existsSync(this.reserveFile) && fs.statSync(this.reserveFile).size === CATALOG_RESERVE_BYTES;
    if (!this.reserved) this.makeReserve();
    this.insertZone = this.db.prepare('INSERT OR REPLACE INTO zones (zone, epoch, written) VALUES (@zone, @epoch, @written)');
    this.deleteZone = this.db.prepare('DELETE FROM zones WHERE zone = ?');
    this.setMeta = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.commitTx = this.db.transaction((batch: CatalogBatch) => {
      // Epochs first: zone rows reference them.
      for (const e of batch.epochs ?? []) this.upsertEpoch.run(e);
      for (const s of batch.slabs ?? []) {
        this.upsertSlab.run({
          ...s,
          liveBitmap: s.liveBitmap === null ? null : Buffer.from(s.liveBitmap),
          packedBitmap: s.packedBitmap == null ? null : Buffer.from(s.packedBitmap),
        });
      }
      for (const z of batch.zonesReleased ?? []) this.deleteZone.run(z);
      for (const z of batch.zonesOwned ?? []) this.insertZone.run({ zone: z.zone, epoch: z.epoch, written: z.written ?? null });
      const m = batch.meta ?? {};
      if (m.nextSlabId !== undefined) this.setMeta.run('next_slab_id', String(m.nextSlabId));
      if (m.nextEpochId !== undefined) this.setMeta.run('next_epoch_id', String(m.nextEpochId));
      if (m.currentEpoch !== undefined) this.setMeta.run('current_epoch', String(m.currentEpoch));
      if (m.counters !== undefined) this.setMeta.run('counters', m.counters);
      if (m.sealSequence !== undefined) this.setMeta.run('seal_sequence', String(m.sealSequence));
      this.setMeta.run('commit_sequence', String(this.commitSequence + 1));
      hooks?.beforeCommit?.(batch);
      crashPoint('catalog.commit');
    });
  }

  /** True until `initialize` has run on this catalog. */
  isEmpty(): boolean {
    return this.read('read', () => this.db.prepare("SELECT value FROM meta WHERE key = 'format_version'").get() === undefined);
  }

  initialize(meta: CatalogMeta, firstEpoch: EpochRow): void {
    this.db.transaction(() => {
      this.setMeta.run('format_version', String(meta.formatVersion));
      this.setMeta.run('geometry', JSON.stringify(meta.geometry));
      this.setMeta.run('device_kind', meta.deviceKind);
      this.setMeta.run('device_path', meta.devicePath);
      this.setMeta.run('created_at', String(meta.createdAt));
      this.setMeta.run('next_slab_id', String(meta.nextSlabId));
      this.setMeta.run('next_epoch_id', String(meta.nextEpochId));
      this.setMeta.run('current_epoch', String(meta.currentEpoch));
      this.setMeta.run('store_id', meta.storeId);
      this.setMeta.run('commit_sequence', String(meta.commitSequence));
      this.setMeta.run('seal_sequence', String(meta.sealSequence));
      if (meta.purpose !== undefined) this.setMeta.run('purpose', meta.purpose);
      this.upsertEpoch.run(firstEpoch);
    })();
    this.commitSequence = meta.commitSequence;
  }

  readMeta(): CatalogMeta {
    const rows = this.read('read meta', () => this.db.prepare('SELECT key, value FROM meta').all() as { key: string; value: string }[]);
    const m = new Map(rows.map((r) => [r.key, r.value]));
    const need = (key: string): string => {
      const v = m.get(key);
      if (v === undefined) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `catalog ${this.file} has no '${key}'`);
      return v;
    };
    const formatVersion = Number(need('format_version'));
    if (!READABLE_FORMAT_VERSIONS.includes(formatVersion)) {
      throw new ZnsSlabError(ErrorCode.FORMAT_VERSION, `catalog ${this.file} is format ${formatVersion}; this release reads ${CATALOG_FORMAT_VERSION}`);
    }
    return {
      formatVersion,
      geometry: this.read('parse geometry', () => JSON.parse(need('geometry')) as Record<string, number>),
      deviceKind: need('device_kind'),
      devicePath: need('device_path'),
      createdAt: Number(need('created_at')),
      nextSlabId: Number(need('next_slab_id')),
      nextEpochId: Number(need('next_epoch_id')),
      currentEpoch: Number(need('current_epoch')),
      storeId: need('store_id'),
      commitSequence: Number(need('commit_sequence')),
      sealSequence: Number(need('seal_sequence')),
      ...(m.has('counters') ? { counters: m.get('counters')! } : {}),
      ...(m.has('purpose') ? { purpose: m.get('purpose')! } : {}),
    };
  }

  *slabs(): IterableIterator<SlabRow> {
    const all = this.read('read slabs', () => this.db.prepare('SELECT * FROM slabs ORDER BY slab_id').all() as RawSlabRow[]);
    for (const r of all) {
      yield {
        slabId: r.slab_id,
        generation: r.generation,
        genLimit: r.gen_limit,
        state: r.state,
        epoch: r.epoch,
        sizeClass: r.size_class,
        zone: r.zone,
        offset: r.offset,
        length: r.length,
        slotCount: r.slot_count,
        liveCount: r.live_count,
        liveBitmap: r.live_bitmap === null ? null : new Uint8Array(r.live_bitmap),
        packedBitmap: r.packed_bitmap == null ? null : new Uint8Array(r.packed_bitmap),
      };
    }
  }

  epochs(options: { includeClosed?: boolean } = {}): EpochRow[] {
    const sql = options.includeClosed ? 'SELECT * FROM epochs ORDER BY id' : "SELECT * FROM epochs WHERE state <> 'CLOSED' ORDER BY id";
    return this.read('read epochs', () => this.db.prepare(sql).all() as RawEpochRow[]).map((r) => ({
      id: r.id,
      state: r.state,
      createdAt: r.created_at,
      closingAt: r.closing_at,
      closedAt: r.closed_at,
    }));
  }

  zones(): ZoneRow[] {
    return this.read('read zones', () => (this.db.prepare('SELECT * FROM zones ORDER BY zone').all() as ZoneRow[]).map((r) => ({ zone: r.zone, epoch: r.epoch, written: r.written ?? null })));
  }

  /**
   * One atomic, durable transaction. A failure commits nothing and is a ZnsSlabError:
   * ERR_DISK_FULL when the filesystem is full, else ERR_CATALOG_IO (SQLite's error as `cause`).
   */
  commit(batch: CatalogBatch): void {
    this.checkOpen();
    try {
      this.commitTx(batch);
    } catch (err) {
      const coded = catalogError(err, `commit to catalog ${this.file} failed`);
      // Out of space: give up the reserve and try once more (this commit may be the one that frees space).
      if (coded.code !== ErrorCode.DISK_FULL || !this.releaseReserve()) throw coded;
      try {
        this.commitTx(batch);
      } catch (again) {
        throw catalogError(again, `commit to catalog ${this.file} failed, even after releasing its ${CATALOG_RESERVE_BYTES}-byte reserve`);
      }
    }
    this.commitSequence++;
    if (!this.reserved) this.makeReserve();
  }

  /** Sets the reserve aside if there is room (never an error: without room it waits for a later commit). */
  makeReserve(): void {
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.reserveFile, 'w');
      fs.writeSync(fd, Buffer.alloc(CATALOG_RESERVE_BYTES));
      fs.fsyncSync(fd);
      this.reserved = true;
    } catch {
      fs.rmSync(this.reserveFile, { force: true });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  private releaseReserve(): boolean {
    if (!fs.existsSync(this.reserveFile)) return false;
    fs.rmSync(this.reserveFile, { force: true });
    this.reserved = false;
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `catalog ${this.file} is closed`);
  }

  /** A read, with SQLite's errors (a corrupt page, bad JSON) as the package's. */
  private read<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof ZnsSlabError) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || err instanceof SyntaxError) {
        throw new ZnsSlabError(ErrorCode.INVALID_STORE, `catalog ${this.file} is damaged (${what}): ${(err as Error).message}`, { cause: err });
      }
      throw catalogError(err, `catalog ${this.file}: ${what}`);
    }
  }
}

/**
 * Brings a format-2 catalog to format 3 (inside the open's transaction): the two columns added
 * since. A new or current catalog has them already; a catalog with no format yet gets its
 * format from `initialize`.
 */
function upgradeSchema(db: Database.Database): void {
  const has = (table: string, column: string): boolean => (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).some((c) => c.name === column);
  if (!has('slabs', 'packed_bitmap')) db.exec('ALTER TABLE slabs ADD COLUMN packed_bitmap BLOB');
  if (!has('zones', 'written')) db.exec('ALTER TABLE zones ADD COLUMN written INTEGER');
  db.prepare("UPDATE meta SET value = ? WHERE key = 'format_version' AND value = '2'").run(String(CATALOG_FORMAT_VERSION));
}

/** SQLite's and the filesystem's errors as the package's: the original stays as `cause`. */
export function catalogError(err: unknown, what: string): ZnsSlabError {
  if (err instanceof ZnsSlabError) return err;
  const code = (err as { code?: unknown }).code;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return new ZnsSlabError(ErrorCode.DISK_FULL, `${what}: the disk is full (${detail})`, { cause: err });
  return new ZnsSlabError(ErrorCode.CATALOG_IO, `${what}: ${detail}`, { cause: err });
}
