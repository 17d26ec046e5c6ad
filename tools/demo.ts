/**
 * `npm start`: zns-slab on its embedded default, the emulated zoned device, in ./data.
 * Writes objects across three epochs, frees some, closes the oldest epoch (its zones reset,
 * the disk space comes back), reopens the store and checks every byte.
 * Then the cache on the same engine, in <dir>-cache: set/get, expiry by whole epochs, eviction
 * with reinsertion under maxBytes, and a reopen that finds every entry.
 * Human text goes to stderr; a JSON summary to stdout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { openStore, type Store } from '../engine/store.js';
import { openCache } from '../cache/cache.js';
import { ZnsSlabError } from '../errors.js';
import { diskUsage } from './diskUsage.js';

const ARGS = process.argv.slice(2);
/** `--json`: the run's numbers as JSON on stdout, instead of the closing summary. */
const JSON_OUT = ARGS.includes('--json');
const DIR = path.resolve(ARGS.find((a) => !a.startsWith('--')) ?? 'data');
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
  const cache = cacheDemo(`${DIR}-cache`);
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({ ...summary, cache }, null, 2) + '\n');
    return;
  }
  // The summary comes last, where a person looks (the numbers as JSON: --json).
  process.stdout.write(
    [
      '',
      `store ${summary.store}: ${summary.objectsVerified} objects verified after reopen, ${summary.handlesStale} handles of the closed epoch refused as stale,`,
      `  disk ${mib(summary.diskBytesBeforeClose)} -> ${mib(summary.diskBytesAfterClose)} after closing the epoch (${summary.zonesReset} zones reset), ${summary.seconds} s`,
      `cache ${cache.dir}: ${cache.entries} entries, ${cache.pagesVerified} pages verified after reopen, ${cache.sessionsExpired} sessions expired in ${cache.expiryMs} ms`,
      `inspect: npx zns-slab stats ${path.relative(process.cwd(), summary.store) || '.'}   npx zns-slab zones ${path.relative(process.cwd(), summary.store) || '.'}   (the numbers as JSON: npm start -- --json)`,
      '',
    ].join('\n'),
  );
}

const CACHE_MAX_BYTES = 32 * 1024 * 1024;
const SESSIONS = 10_000;
const PAGES = 60_000;
const SESSION_TTL_MS = 1000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function page(i: number): Buffer {
  const b = Buffer.alloc(1000, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

/** The cache: a set/get, sessions that expire as a whole epoch, pages past maxBytes, a reopen. */
function cacheDemo(dir: string): Record<string, unknown> {
  if (fs.existsSync(dir)) {
    if (!fs.existsSync(path.join(dir, 'cache.json'))) {
      say(`zns-slab demo: ${dir} exists and is not a zns-slab cache; not touching it.`);
      process.exit(2);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  say(`\nthe cache, in ${dir} (maxBytes ${mib(CACHE_MAX_BYTES)})`);
  let cache = openCache(dir, { maxBytes: CACHE_MAX_BYTES });
  cache.set('user:42', { name: 'Ada', since: new Date(0), roles: new Set(['admin']) });
  const user = cache.get('user:42') as { name: string; roles: Set<string> };
  say(`  set/get: user:42 -> ${user.name}, roles ${[...user.roles].join(',')} (msgpackr: Date, Set, Map, bigint survive)`);

  for (let i = 0; i < SESSIONS; i++) cache.set(`session:${i}`, `token-${i}`, { ttl: SESSION_TTL_MS });
  const withSessions = cache.stats();
  say(`  ${SESSIONS} sessions with a ${SESSION_TTL_MS} ms TTL: they share ${withSessions.ttlBuckets} expiry-bucket epoch(s); waiting for them to expire...`);
  sleep(2 * SESSION_TTL_MS + 100);
  const zonesBefore = cache.store.statsGlobal().zones.free;
  let t = performance.now();
  cache.set('tick', 1); // the first write after the bucket's end closes its epoch
  const expireMs = performance.now() - t;
  const expired = cache.stats();
  say(`  expiry: ${expired.expirations.entries} sessions gone in ${expireMs.toFixed(1)} ms by closing ${expired.expirations.epochs} epoch ` +
    `(zones free ${zonesBefore} -> ${cache.store.statsGlobal().zones.free}); get(session:1) -> ${String(cache.get('session:1'))}`);

  t = performance.now();
  for (let i = 0; i < PAGES; i++) {
    cache.set(`page:${i}`, page(i));
    if (i % 500 === 0) cache.get('page:0'); // page 0 is hot
  }
  const loaded = cache.stats();
  say(`  ${PAGES} pages of 1000 B (${mib(PAGES * 1000)}) into ${mib(CACHE_MAX_BYTES)}: ${loaded.evictions.epochs} oldest epochs closed ` +
    `(${loaded.evictions.entries} entries), ${loaded.reinsertions.entries} read ones reinserted; page:0 still cached: ${cache.has('page:0')}; ` +
    `${(PAGES / ((performance.now() - t) / 1000) / 1000).toFixed(0)}k sets/s`);
  const entries = cache.size;
  cache.close();
  t = performance.now();
  cache = openCache(dir);
  const reopenMs = performance.now() - t;
  let verified = 0;
  for (let i = 0; i < PAGES; i++) {
    const v = cache.get(`page:${i}`) as Buffer | undefined;
    if (v === undefined) continue;
    if (!v.equals(page(i))) throw new Error(`page ${i} came back different`);
    verified++;
  }
  if (cache.size !== entries) throw new Error(`reopen found ${cache.size} entries, closed with ${entries}`);
  const final = cache.stats();
  cache.close();
  say(`  reopened in ${reopenMs.toFixed(0)} ms: ${entries} entries, ${verified} pages verified byte for byte; ` +
    `index ${final.index.bytesPerEntry?.toFixed(1)} B/entry, write amplification ${final.writeAmplification?.toFixed(2)} (size classes round 1 KiB records up)`);
  return {
    dir,
    entries,
    pagesVerified: verified,
    sessionsExpired: expired.expirations.entries,
    expiryMs: Number(expireMs.toFixed(2)),
    epochsEvicted: loaded.evictions.epochs,
    reinserted: loaded.reinsertions.entries,
    hotPageKept: final.hits > 0,
    reopenMs: Number(reopenMs.toFixed(1)),
    stats: final,
  };
}

main();
