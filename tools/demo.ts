/**
 * `npm start`: zns-slab on its embedded default, the emulated zoned device, in ./data.
 * Writes objects across three epochs, frees some, closes the oldest epoch (its zones reset,
 * the disk space comes back), reopens the store and checks every byte.
 * Human text goes to stderr; a JSON summary to stdout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { openStore, type Store } from '../engine/store.js';
import { ZnsSlabError } from '../errors.js';
import { diskUsage } from './diskUsage.js';

const DIR = path.resolve(process.argv[2] ?? 'data');
const OBJECTS_PER_EPOCH = 20_000;

function say(line: string): void {
  process.stderr.write(line + '\n');
}

/** Deterministic object i: a mix of small records and a few larger blobs. */
function objectBytes(epoch: string, i: number): Buffer {
  const size = i % 50 === 0 ? 20_000 + (i % 7) * 5_000 : 16 + ((i * 2654435761) >>> 0) % 2_000;
  const seed = createHash('sha256').update(`${epoch}:${i}`).digest();
  const out = Buffer.allocUnsafe(size);
  for (let k = 0; k < size; k += seed.length) seed.copy(out, k, 0, Math.min(seed.length, size - k));
  return out;
}


const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

function fill(store: Store, name: string): { handles: bigint[] } {
  const handles: bigint[] = [];
  for (let i = 0; i < OBJECTS_PER_EPOCH; i++) {
    handles.push(store.put(objectBytes(name, i)));
    if ((i + 1) % 5_000 === 0) say(`  epoch ${name}: ${i + 1}/${OBJECTS_PER_EPOCH} objects`);
  }
  return { handles };
}

function main(): void {
  if (fs.existsSync(DIR)) {
    if (!fs.existsSync(path.join(DIR, 'catalog.db'))) {
      say(`zns-slab demo: ${DIR} exists and is not a zns-slab store; not touching it.`);
      process.exit(2);
    }
    say(`zns-slab demo: replacing the previous demo store in ${DIR}`);
    fs.rmSync(DIR, { recursive: true, force: true });
  }
  const started = performance.now();
  let store = openStore(DIR);
  const g = store.device.geometry;
  say(`zns-slab demo: store in ${DIR}, emulated zoned device: ${g.zoneCount} zones of ${mib(g.zoneSize)}, ` +
    `at most ${g.maxOpenZones} open / ${g.maxActiveZones} active`);

  const epochA = store.epochCurrent();
  say(`epoch ${epochA} (A): a batch that will be dropped as a whole`);
  const a = fill(store, 'A');
  store.flush();

  const epochB = store.epochAdvance();
  say(`epoch ${epochB} (B): long-lived objects; every fourth one freed`);
  const b = fill(store, 'B');
  const bLive: { h: bigint; i: number }[] = [];
  b.handles.forEach((h, i) => {
    if (i % 4 === 0) store.free(h);
    else bLive.push({ h, i });
  });

  const epochC = store.epochAdvance();
  say(`epoch ${epochC} (C): the current epoch`);
  const c = fill(store, 'C');
  store.flush();

  const diskBefore = diskUsage(DIR);
  say(`closing epoch ${epochA}: its ${store.statsGlobal().epochs.find((e) => e.epoch === epochA)!.zones} zones are reset, no copying`);
  store.epochClose(epochA);
  const diskAfter = diskUsage(DIR);
  const afterClose = store.statsGlobal();
  say(`  disk usage ${mib(diskBefore)} -> ${mib(diskAfter)}`);

  store.close();
  say('reopening the store and checking every byte');
  store = openStore(DIR);
  let verified = 0;
  for (const { h, i } of bLive) {
    if (!store.get(h).equals(objectBytes('B', i))) throw new Error(`epoch B object ${i} came back different`);
    verified++;
  }
  c.handles.forEach((h, i) => {
    if (!store.get(h).equals(objectBytes('C', i))) throw new Error(`epoch C object ${i} came back different`);
    verified++;
  });
  let stale = 0;
  for (const h of [...a.handles, ...b.handles.filter((_, i) => i % 4 === 0)]) {
    try {
      store.get(h);
      throw new Error('a dropped object was still readable');
    } catch (err) {
      if (!(err instanceof ZnsSlabError) || err.code !== 'ERR_STALE_HANDLE') throw err;
      stale++;
    }
  }
  const after = store.statsGlobal();
  store.close();

  const summary = {
    store: DIR,
    geometry: g,
    epochs: after.epochs,
    objectsLive: after.liveObjects,
    objectsVerified: verified,
    handlesStale: stale,
    zonesOwned: after.zones.owned,
    zonesReset: afterClose.counters.zoneResets,
    zonesFinishedEarly: afterClose.counters.zonesFinishedEarly,
    bytesPut: afterClose.counters.userBytesPut,
    bytesWrittenToDevice: afterClose.counters.deviceBytesWritten,
    diskBytesBeforeClose: diskBefore,
    diskBytesAfterClose: diskAfter,
    seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
  };
  say(`done: ${verified} objects verified byte for byte after reopen, ${stale} dropped handles refused as stale, ` +
    `${summary.zonesOwned} zones in use, ${mib(summary.bytesWrittenToDevice)} written for ${mib(summary.bytesPut)} put, in ${summary.seconds} s`);
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
}

main();
