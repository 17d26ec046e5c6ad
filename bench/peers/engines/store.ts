/** zns-slab behind the peers' key-value face (bench/peers/kv.ts). */
import { openStore, type Store } from '../../../engine/store.js';
import { ErrorCode, ZnsSlabError } from '../../../errors.js';
import { diskUsage } from '../../../tools/diskUsage.js';
import { STORE_GEOMETRY } from '../config.js';
import { type ExpiryOutcome, type Kv, type KvOptions, MissingFeature, timeMs } from '../kv.js';

/** Opens the store; `direct`: on its O_DIRECT emulated device (MissingFeature where the filesystem refuses O_DIRECT). */
export function openStoreForBench(dir: string, direct: boolean): Store {
  try {
    return openStore(dir, direct ? { geometry: STORE_GEOMETRY, direct: true } : { geometry: STORE_GEOMETRY });
  } catch (err) {
    // The machine, not the store: a filesystem without O_DIRECT (tmpfs) cannot run these.
    if (direct && err instanceof ZnsSlabError && err.code === ErrorCode.DIRECT_IO_UNSUPPORTED) throw new MissingFeature(`O_DIRECT: ${err.message}`);
    throw err;
  }
}

export function storeKv(dir: string, o: KvOptions): Kv {
  const store = openStoreForBench(dir, o.direct === true);
  const handles = new BigUint64Array(o.keys);
  const present = new Uint8Array(o.keys);
  /** Epochs in put order, with the first key put into each (the expiry workload's buckets). */
  const epochs: { id: number; firstKey: number }[] = [{ id: store.epochCurrent(), firstKey: 0 }];
  const put = (key: number, value: Uint8Array): void => {
    if (o.epochEvery !== undefined && key > 0 && key % o.epochEvery === 0 && epochs[epochs.length - 1]!.firstKey !== key) {
      epochs.push({ id: store.epochAdvance(), firstKey: key });
    }
    const h = store.put(value);
    if (present[key] === 1) store.free(handles[key]!);
    handles[key] = h;
    present[key] = 1;
  };
  return {
    description:
      `openStore(dir, { geometry: ${STORE_GEOMETRY.zoneCount} zones of ${STORE_GEOMETRY.zoneSize >> 20} MiB${o.direct ? ', direct: true (O_DIRECT device)' : ''} }), GC defaults; ` +
      (o.mode === 'durable' ? 'store.flush() ends every batch (zone fsyncs, catalog commit)' : 'puts not durable until store.flush()') +
      '; an overwrite is put + free of the old handle' +
      (o.epochEvery !== undefined ? `; store.epochAdvance() every ${o.epochEvery} keys` : ''),
    putBatch(from, to, value) {
      for (let k = from; k < to; k++) put(k, value(k));
      if (o.mode === 'durable') store.flush();
    },
    put,
    get: (key) => store.get(handles[key]!),
    flush: () => store.flush(),
    async expireOldest(n): Promise<ExpiryOutcome> {
      const due: number[] = [];
      let closedUpTo = 0;
      for (let j = 0; j < epochs.length; j++) {
        const end = j + 1 < epochs.length ? epochs[j + 1]!.firstKey : Infinity;
        if (end > n) break;
        due.push(epochs[j]!.id);
        closedUpTo = end;
      }
      if (due.length === 0) throw new Error(`no epoch lies wholly within the oldest ${n} keys (epochEvery ${o.epochEvery})`);
      // epochClose is durable on return: it commits the catalog, then resets the epoch's zones.
      const expireMs = await timeMs(() => {
        for (const id of due) store.epochClose(id);
      });
      for (let k = 0; k < closedUpTo; k++) present[k] = 0;
      return { expireMs, how: `store.epochClose() of the ${due.length} oldest epochs (durable on return; zones reset, their files deleted)` };
    },
    has: (key) => present[key] === 1 && store.isLive(handles[key]!),
    diskBytes: () => diskUsage(dir),
    close: () => store.close(),
  };
}
