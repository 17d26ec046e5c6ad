/** better-sqlite3 behind the peers' key-value face (bench/peers/kv.ts). */
import path from 'node:path';
import Database from 'better-sqlite3';
import { diskUsage } from '../../../tools/diskUsage.js';
import { type ExpiryOutcome, type Kv, type KvOptions, timeMs } from '../kv.js';

export function sqliteKv(dir: string, o: KvOptions): Kv {
  const lazy = o.mode === 'lazy';
  const db = new Database(path.join(dir, 'kv.db'));
  db.pragma('journal_mode = WAL');
  // NORMAL: a commit is not synced (the WAL is, at checkpoints); FULL: every commit syncs the WAL.
  db.pragma(`synchronous = ${lazy ? 'NORMAL' : 'FULL'}`);
  db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  const upsert = db.prepare('INSERT OR REPLACE INTO kv (id, v) VALUES (?, ?)');
  const select = db.prepare<[number], Buffer>('SELECT v FROM kv WHERE id = ?').pluck();
  const exists = db.prepare<[number], number>('SELECT 1 FROM kv WHERE id = ?').pluck();
  const removeBelow = db.prepare('DELETE FROM kv WHERE id < ?');
  const batch = db.transaction((from: number, to: number, value: (key: number) => Uint8Array) => {
    for (let k = from; k < to; k++) upsert.run(k, value(k));
  });
  // In WAL mode with synchronous=NORMAL, a checkpoint syncs the WAL, copies it in and syncs the database.
  const flush = (): void => void (lazy ? db.pragma('wal_checkpoint(PASSIVE)') : undefined);
  return {
    description: `WAL, synchronous=${lazy ? 'NORMAL' : 'FULL'}, table (id INTEGER PRIMARY KEY, v BLOB), prepared INSERT OR REPLACE; a batch is one transaction, a single put an autocommit${lazy ? '; flush = PRAGMA wal_checkpoint(PASSIVE)' : ' (each commit syncs the WAL)'}`,
    putBatch: (from, to, value) => void batch(from, to, value),
    put: (key, value) => void upsert.run(key, value),
    get: (key) => select.get(key),
    flush,
    async expireOldest(n): Promise<ExpiryOutcome> {
      const expireMs = await timeMs(() => {
        removeBelow.run(n);
        flush();
      });
      return { expireMs, how: `DELETE FROM kv WHERE id < ${n} (autocommit), then ${lazy ? 'wal_checkpoint(PASSIVE)' : 'nothing more (synchronous=FULL)'}; freed pages stay in the file` };
    },
    compact: {
      how: 'VACUUM, then wal_checkpoint(TRUNCATE)',
      run(): void {
        db.exec('VACUUM');
        db.pragma('wal_checkpoint(TRUNCATE)');
      },
    },
    has: (key) => exists.get(key) !== undefined,
    diskBytes: () => diskUsage(dir),
    close: () => void db.close(),
  };
}
