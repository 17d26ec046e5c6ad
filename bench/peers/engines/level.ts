/** classic-level (LevelDB) behind the peers' key-value face (bench/peers/kv.ts), and as a churn engine. */
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { diskUsage } from '../../../tools/diskUsage.js';
import type { AsyncChurnImpl, ChurnConfig } from '../../lib/churnEngines.js';
import { type ExpiryOutcome, type Kv, type KvOptions, timeMs } from '../kv.js';

/** Bytes of a key: a u32, big-endian, so LevelDB's byte order is the keys' numeric order. */
const KEY_BYTES = 4;
/** The key of flush()'s synced write: sorts after every u32 key, so no range here touches it. */
const SYNC_KEY = Buffer.alloc(KEY_BYTES + 1, 0xff);
const EMPTY = Buffer.alloc(0);

type Db = ClassicLevel<Buffer, Buffer>;

async function openLevel(dir: string): Promise<Db> {
  // LevelDB's defaults (4 MiB write buffer, Snappy compression: the values are random, so it gains nothing).
  const db = new ClassicLevel<Buffer, Buffer>(path.join(dir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

function keyOf(k: number): Buffer {
  const b = Buffer.allocUnsafe(KEY_BYTES);
  b.writeUInt32BE(k, 0);
  return b;
}

/** A write with sync: true: LevelDB fsyncs its log, and every write before it is durable with it. */
function syncWrite(db: Db): Promise<void> {
  return db.put(SYNC_KEY, EMPTY, { sync: true });
}

export async function levelKv(dir: string, o: KvOptions): Promise<Kv> {
  const lazy = o.mode === 'lazy';
  const db = await openLevel(dir);
  const keys: Buffer[] = Array.from({ length: o.keys }, (_, k) => keyOf(k));
  return {
    description: `new ClassicLevel(dir, { keyEncoding: buffer, valueEncoding: buffer }), LevelDB defaults; a batch is one db.batch()${lazy ? ', not synced; flush = a put with { sync: true }' : ' with { sync: true }'}; a single put is db.put() (awaited); gets are db.getSync()`,
    async putBatch(from, to, value) {
      const ops: { type: 'put'; key: Buffer; value: Buffer }[] = new Array(to - from);
      for (let k = from; k < to; k++) ops[k - from] = { type: 'put', key: keys[k]!, value: value(k) as Buffer };
      await db.batch(ops, { sync: !lazy });
    },
    put: (key, value) => db.put(keys[key]!, value as Buffer),
    get: (key) => db.getSync(keys[key]!),
    flush: () => syncWrite(db),
    async expireOldest(n): Promise<ExpiryOutcome> {
      const expireMs = await timeMs(async () => {
        await db.clear({ lt: keyOf(n) });
        await syncWrite(db);
      });
      return { expireMs, how: `db.clear({ lt: key(${n}) }) (a range delete: tombstones), then a synced write; space comes back only with compaction` };
    },
    compact: {
      how: 'db.compactRange(key(0), key(n))',
      run: (n) => db.compactRange(keyOf(0), keyOf(n)),
    },
    has: (key) => db.getSync(keys[key]!) !== undefined,
    diskBytes: () => diskUsage(dir),
    close: () => db.close(),
  };
}

/** The churn on classic-level: key = the object's id, db.put / db.del per operation (not synced), a synced write every flush. */
export async function levelChurnImpl(dir: string, config: ChurnConfig): Promise<AsyncChurnImpl> {
  const db = await openLevel(dir);
  const ids = new Uint32Array(config.live);
  return {
    durability: 'LevelDB defaults: each db.put / db.del its own write, not synced (the log is written, not fsynced); a put with { sync: true } every flush',
    flushOp: `a put with { sync: true } every ${config.flushEvery} cycles`,
    put(slot, id, bytes) {
      ids[slot] = id;
      return db.put(keyOf(id), bytes);
    },
    free: (slot) => db.del(keyOf(ids[slot]!)),
    flush: () => syncWrite(db),
    read: (slot) => db.getSync(keyOf(ids[slot]!)),
    close: () => db.close(),
  };
}
