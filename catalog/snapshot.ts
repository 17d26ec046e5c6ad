/**
 * A consistent copy of a catalog another process has open, read without taking any lock and
 * without writing to the store's files: for observers (`zns-slab zones --watch`, `serve`).
 *
 * A store holds its catalog in WAL mode under an EXCLUSIVE lock (catalog.ts), so a second SQLite
 * connection is refused (ERR_STORE_LOCKED). Plain reads of the files are not: this copies the
 * database file and its write-ahead log into a folder of the observer's own, then lets SQLite
 * recover the copy there. What the copy holds is the catalog as of its last commit (a flush, a
 * lease commit, an epoch change): SQLite's WAL recovery keeps only whole, checksummed commits
 * and drops a frame caught half written.
 *
 * The copy is consistent when the log was not restarted while it was taken: a checkpoint may
 * rewrite pages of the database file under the copy, but those pages are in the log the copy
 * takes afterwards, and recovery applies them again. A restart (the writer's first commit after
 * a complete checkpoint) gives the log a new salt, so the copy compares the log's header before
 * and after and tries again when it moved.
 *
 * Not for use in the process that has the store open: closing a descriptor of the database file
 * drops the POSIX locks SQLite holds on it in that process (see engine/observe.ts, which refuses).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { Catalog, type CatalogMeta, type EpochRow, type SlabRow, type ZoneRow } from './catalog.js';

/** Copies tried before giving up when the writer restarts its log under every one. */
export const SNAPSHOT_COPY_ATTEMPTS = 8;
/** Pause between two copy attempts, in milliseconds. */
export const SNAPSHOT_RETRY_MS = 5;
/** SQLite's WAL header: magic, version, page size, checkpoint sequence, two salts, two checksums. */
const WAL_HEADER_BYTES = 32;

/** The catalog's rows as of its last commit. */
export interface CatalogSnapshot {
  meta: CatalogMeta;
  /** Every epoch, CLOSED ones included. */
  epochs: EpochRow[];
  zones: ZoneRow[];
  slabs: SlabRow[];
  /** When the copy was taken (ms since the epoch). */
  copiedAt: number;
  /** The database file's and its log's modification times (ms): when the catalog last changed, at most. */
  changedAt: number;
}

interface FileState {
  size: number;
  mtimeMs: number;
}

function stateOf(file: string): FileState | undefined {
  try {
    const s = fs.statSync(file);
    return { size: s.size, mtimeMs: s.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ZnsSlabError(ErrorCode.CATALOG_IO, `cannot stat ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function sameState(a: FileState | undefined, b: FileState | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs);
}

/** The whole file (read-only), or undefined when it does not exist. */
function readWhole(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ZnsSlabError(ErrorCode.CATALOG_IO, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The log's header (its checkpoint sequence and salts change when it restarts), or '' without a log. */
function walHeader(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new ZnsSlabError(ErrorCode.CATALOG_IO, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(WAL_HEADER_BYTES);
    const n = fs.readSync(fd, buf, 0, WAL_HEADER_BYTES, 0);
    return buf.subarray(0, n).toString('hex');
  } finally {
    fs.closeSync(fd);
  }
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Reads the catalog at `file` into copies in `workDir` (the observer's own folder) and returns
 * its rows. Each call copies again only when the database file or its log changed since the
 * last one; otherwise the last rows are returned as they were.
 */
export class CatalogSnapshotReader {
  readonly file: string;
  private readonly workDir: string;
  private last: { db: FileState | undefined; wal: FileState | undefined; snapshot: CatalogSnapshot } | undefined;

  constructor(file: string, workDir: string) {
    this.file = file;
    this.workDir = workDir;
  }

  read(): CatalogSnapshot {
    const walFile = `${this.file}-wal`;
    const db = stateOf(this.file);
    if (db === undefined) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${this.file} does not exist`);
    const wal = stateOf(walFile);
    if (this.last !== undefined && sameState(this.last.db, db) && sameState(this.last.wal, wal)) return this.last.snapshot;
    const copy = path.join(this.workDir, 'catalog.db');
    for (let attempt = 1; ; attempt++) {
      const before = walHeader(walFile);
      const image = readWhole(this.file);
      const log = readWhole(walFile);
      const after = walHeader(walFile);
      if (image !== undefined && before === after) {
        for (const f of [copy, `${copy}-wal`, `${copy}-shm`, `${copy}-journal`]) fs.rmSync(f, { force: true });
        fs.writeFileSync(copy, image);
        if (log !== undefined && log.length > 0) fs.writeFileSync(`${copy}-wal`, log);
        const snapshot = this.load(copy, Math.max(db.mtimeMs, wal?.mtimeMs ?? 0));
        this.last = { db, wal, snapshot };
        return snapshot;
      }
      if (attempt >= SNAPSHOT_COPY_ATTEMPTS) {
        throw new ZnsSlabError(ErrorCode.CATALOG_IO, `catalog ${this.file} changed under ${SNAPSHOT_COPY_ATTEMPTS} copies in a row (its log restarted each time); try again`);
      }
      pause(SNAPSHOT_RETRY_MS);
    }
  }

  /** Recovers the copy (its log folded into the database file), then reads its rows as the catalog does. */
  private load(copy: string, changedAt: number): CatalogSnapshot {
    try {
      const db = new Database(copy, { fileMustExist: true });
      try {
        db.pragma('journal_mode = DELETE');
      } finally {
        db.close();
      }
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${this.file} is not a zns-slab catalog: ${(err as Error).message}`, { cause: err });
      }
      throw new ZnsSlabError(ErrorCode.CATALOG_IO, `cannot recover the copy of ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    const catalog = new Catalog(copy, { readonly: true, mustExist: true });
    try {
      if (catalog.isEmpty()) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${this.file} holds an empty catalog, not a zns-slab store (yet)`);
      return {
        meta: catalog.readMeta(),
        epochs: catalog.epochs({ includeClosed: true }),
        zones: catalog.zones(),
        slabs: [...catalog.slabs()],
        copiedAt: Date.now(),
        changedAt,
      };
    } finally {
      catalog.close();
    }
  }
}
