/** Opens an engine behind the peers' key-value face. */
import type { EngineName } from '../config.js';
import type { Kv, KvOptions } from '../kv.js';
import { levelKv } from './level.js';
import { lmdbKv } from './lmdb.js';
import { sqliteKv } from './sqlite.js';
import { storeKv } from './store.js';

export async function openKv(engine: EngineName, dir: string, o: KvOptions): Promise<Kv> {
  switch (engine) {
    case 'store':
      return storeKv(dir, o);
    case 'store-direct':
      return storeKv(dir, { ...o, direct: true });
    case 'lmdb':
      return lmdbKv(dir, o);
    case 'sqlite':
      return sqliteKv(dir, o);
    case 'level':
      return levelKv(dir, o);
  }
}
