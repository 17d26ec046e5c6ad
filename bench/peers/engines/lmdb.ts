/** lmdb-js behind the peers' key-value face (bench/peers/kv.ts). */
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { diskUsage } from '../../../tools/diskUsage.js';
import { lmdbEnvSync } from '../../lib/churnEngines.js';
import { type ExpiryOutcome, type Kv, type KvOptions, timeMs } from '../kv.js';

export function lmdbKv(dir: string, o: KvOptions): Kv {
  const lazy = o.mode === 'lazy';
  // lazy: noSync, mdb_env_sync at flush(); durable: lmdb-js's defaults (overlappingSync: a commit
  // is durable when db.flushed resolves).
  const db = openLmdb<Buffer, number>({ path: path.join(dir, 'data.mdb'), encoding: 'binary', keyEncoding: 'uint32', noSync: lazy });
  const flush = (): Promise<void> => (lazy ? lmdbEnvSync(db) : db.flushed.then(() => undefined));
  return {
    description: lazy
      ? 'open({ noSync: true, encoding: binary, keyEncoding: uint32 }); a batch is one db.transactionSync() of putSync calls, a single put its own putSync transaction, none synced; flush = mdb_env_sync (db.sync)'
      : 'open({ encoding: binary, keyEncoding: uint32 }) (overlappingSync, the default); a batch is one db.transactionSync() of putSync calls, then await db.flushed (durable)',
    async putBatch(from, to, value) {
      db.transactionSync(() => {
        for (let k = from; k < to; k++) db.putSync(k, value(k) as Buffer);
      });
      if (!lazy) await db.flushed;
    },
    put: (key, value) => void db.putSync(key, value as Buffer),
    get: (key) => db.getBinary(key),
    flush,
    async expireOldest(n): Promise<ExpiryOutcome> {
      const expireMs = await timeMs(async () => {
        db.transactionSync(() => {
          for (let k = 0; k < n; k++) db.removeSync(k);
        });
        await flush();
      });
      return { expireMs, how: `db.removeSync() of keys 0..${n - 1} in one db.transactionSync(), then a sync (lmdb-js has no range delete; freed pages stay in the file for reuse)` };
    },
    has: (key) => db.doesExist(key),
    diskBytes: () => diskUsage(dir),
    close: () => db.close(),
  };
}
