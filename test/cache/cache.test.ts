/**
 * The cache on a real store (SQLite catalog, emulated zoned device): values, bad input,
 * collisions, TTL by epoch, eviction with reinsertion, persistence and the checkpoint's
 * reconcile. Crashes with real child processes are in crash.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Cache, ErrorCode, MAX_KEY_BYTES, openCache, openStore } from '../../index.js';
import { hashString } from '../../cache/keyIndex.js';
import { CHECKPOINT_FILE } from '../../cache/checkpoint.js';
import { tempDir } from '../helpers/tmp.js';
import { codeOf } from '../helpers/store.js';

const MiB = 1024 * 1024;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function folder(): string {
  const { dir, cleanup } = tempDir('zns-cache-');
  cleanups.push(cleanup);
  return path.join(dir, 'cache');
}

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('values and keys', () => {
  it('round-trips msgpackr values, raw Buffers and strings, and keeps string and Buffer keys apart', () => {
    const cache = openCache(folder(), { maxBytes: 8 * MiB });
    const rich = { when: new Date(1234), tags: new Set(['a', 'b']), byId: new Map<unknown, unknown>([[1, { deep: [1, 2n ** 70n] }]]), big: 42n, bytes: Buffer.from('xy'), nested: { list: [null, true, 1.5, 'é'] } };
    cache.set('rich', rich);
    cache.set('buf', Buffer.from([0, 1, 2, 255]));
    cache.set('str', 'héllo wörld');
    cache.set(Buffer.from('str'), 'the Buffer key');
    cache.set('zero', 0).set('null', null).set('false', false).set('arr', [1, [2, [3]]]);
    expect(cache.get('rich')).toEqual(rich);
    expect(cache.get('buf')).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(cache.get('str')).toBe('héllo wörld');
    expect(cache.get(Buffer.from('str'))).toBe('the Buffer key');
    expect([cache.get('zero'), cache.get('null'), cache.get('false'), cache.get('arr')]).toEqual([0, null, false, [1, [2, [3]]]]);
    expect(cache.get('missing')).toBeUndefined();
    expect(cache.size).toBe(8);
    cache.set('str', undefined); // lru-cache's rule: setting undefined deletes
    expect(cache.has('str')).toBe(false);
    expect(cache.getMany(['buf', 'nope'])).toEqual([Buffer.from([0, 1, 2, 255]), undefined]);
    // Lone surrogates cannot go through UTF-8: such keys and values come back exactly.
    cache.set('bad\ud800key', 'v1').set('bad\ud800key', 'lone \udc00 value');
    cache.set('bad\udbffkey', 'another key');
    expect(cache.get('bad\ud800key')).toBe('lone \udc00 value');
    expect(cache.get('bad\udbffkey')).toBe('another key');
    expect([...cache.keys()].filter((k) => typeof k === 'string' && k.startsWith('bad'))).toHaveLength(2);
    cache.delete('bad\ud800key');
    cache.delete('bad\udbffkey');
    cache.setMany([['m1', 1], ['m2', 2, { ttl: 1000 }]]);
    expect(cache.getMany(['m1', 'm2'])).toEqual([1, 2]);
    cache.verify();
    cache.close();
  });

  it('tells two keys with one 32-bit hash apart: each gets its own value, never the other one', () => {
    // Find a real collision of the cache's string hash (about 2^16 keys per expected pair).
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const key = `user:${i}`;
      const h = hashString(key);
      const other = seen.get(h);
      if (other !== undefined) pair = [other, key];
      else seen.set(h, key);
    }
    const [a, b] = pair;
    expect(hashString(a)).toBe(hashString(b));
    const cache = openCache(folder(), { maxBytes: 8 * MiB });
    cache.set(a, 'value of a');
    expect(cache.get(b)).toBeUndefined();
    expect(cache.has(b)).toBe(false);
    cache.set(b, 'value of b');
    expect([cache.get(a), cache.get(b)]).toEqual(['value of a', 'value of b']);
    expect(cache.delete(a)).toBe(true);
    expect([cache.get(a), cache.get(b)]).toEqual([undefined, 'value of b']);
    cache.close();
  });
});

describe('bad input: a coded error, nothing stored half-way', () => {
  it('refuses wrong keys, values, TTLs and options by name', () => {
    const dir = folder();
    const cache = openCache(dir, { maxBytes: 8 * MiB });
    cache.set('k', 'old');
    const sizeBefore = cache.size;
    expect(codeOf(() => cache.set(5 as unknown as string, 'v'))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => cache.get({} as unknown as string))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => cache.set('x'.repeat(MAX_KEY_BYTES + 1), 'v'))).toBe(ErrorCode.KEY_TOO_LONG);
    expect(codeOf(() => cache.set('é'.repeat(MAX_KEY_BYTES / 2 + 1), 'v'))).toBe(ErrorCode.KEY_TOO_LONG); // UTF-8 bytes count
    expect(codeOf(() => cache.set('k', () => 1))).toBe(ErrorCode.VALUE_ENCODING);
    expect(codeOf(() => cache.set('k', Symbol('s')))).toBe(ErrorCode.VALUE_ENCODING);
    for (const ttl of [Number.NaN, -1, Number.POSITIVE_INFINITY, '5']) expect(codeOf(() => cache.set('k', 'v', { ttl: ttl as number }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => cache.set('k', Buffer.alloc(cache.store.maxObjectSize)))).toBe(ErrorCode.OBJECT_TOO_LARGE);
    expect(cache.size).toBe(sizeBefore);
    expect(cache.get('k')).toBe('old');
    cache.verify();
    cache.close();
    expect(codeOf(() => cache.get('k'))).toBe(ErrorCode.CLOSED);
    expect(codeOf(() => openCache(folder(), { maxBytes: 1000 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => openCache(folder(), {}))).toBe(ErrorCode.INVALID_ARGUMENT); // maxBytes needed to create
    expect(codeOf(() => openCache(folder(), { maxBytes: 8 * MiB, ttl: 5 } as never))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => openCache(folder(), { maxBytes: 8 * MiB, clock: 5 as never }))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('a cache folder is not a store to write, and a store folder is not a cache', () => {
    const cacheDir = folder();
    openCache(cacheDir, { maxBytes: 8 * MiB }).close();
    expect(codeOf(() => openStore(cacheDir))).toBe(ErrorCode.IS_A_CACHE);
    const ro = openStore(cacheDir, { readOnly: true }); // inspection is fine
    expect(ro.statsGlobal().epochs.length).toBeGreaterThan(0);
    ro.close();
    const storeDir = folder();
    openStore(storeDir).close();
    expect(codeOf(() => openCache(storeDir, { maxBytes: 8 * MiB }))).toBe(ErrorCode.NOT_A_CACHE);
    openStore(storeDir).close(); // and the refusal changed nothing
    openCache(cacheDir).close(); // maxBytes comes from the saved descriptor
  });
});

describe('expiry by epoch', () => {
  it('a get after expiry misses; the bucket epoch closes whole and its zones reset', () => {
    const clock = fakeClock();
    const cache = openCache(folder(), { maxBytes: 16 * MiB, clock: clock.now });
    for (let i = 0; i < 2000; i++) cache.set(`short:${i}`, Buffer.alloc(500, 1), { ttl: 10_000 });
    for (let i = 0; i < 100; i++) cache.set(`long:${i}`, 'stays', { ttl: 3_600_000 });
    cache.set('forever', 'no ttl');
    cache.flush();
    const zonesBefore = cache.store.statsGlobal().zones.free;
    expect(cache.stats().ttlBuckets).toBe(2);
    clock.advance(9_000);
    expect(cache.get('short:7')).toEqual(Buffer.alloc(500, 1));
    clock.advance(1_001);
    expect(cache.get('short:8')).toBeUndefined(); // expired on read, before its bucket closes
    clock.advance(2_000); // past the bucket's end (buckets are at least ttl/8 wide)
    cache.set('trigger', 1);
    const s = cache.stats();
    expect(s.expirations.epochs).toBe(1);
    expect(s.expirations.entries).toBe(2000);
    expect(cache.size).toBe(100 + 1 + 1);
    expect(cache.store.statsGlobal().zones.free).toBeGreaterThan(zonesBefore);
    expect(cache.get('long:3')).toBe('stays');
    expect(cache.get('forever')).toBe('no ttl');
    cache.verify();
    cache.close();
  });

  it('expired entries do not come back after reopen, and buckets due meanwhile close at open', () => {
    const dir = folder();
    const clock = fakeClock();
    const cache = openCache(dir, { maxBytes: 16 * MiB, clock: clock.now });
    cache.set('a', 1, { ttl: 5_000 }).set('b', 2, { ttl: 600_000 }).set('c', 3);
    cache.close();
    clock.advance(60_000);
    const again = openCache(dir, { clock: clock.now });
    expect([again.get('a'), again.get('b'), again.get('c')]).toEqual([undefined, 2, 3]);
    expect(again.stats().ttlBuckets).toBe(1);
    again.verify();
    again.close();
  });
});

describe('eviction by epoch', () => {
  function fill(cache: Cache, n: number, hot?: string): void {
    for (let i = 0; i < n; i++) {
      cache.set(`k:${i}`, Buffer.alloc(1000, i & 0xff));
      if (hot !== undefined && i % 200 === 0) cache.get(hot);
    }
  }

  it('holds at most maxBytes (plus one epoch) and returns space by closing the oldest epochs', () => {
    const cache = openCache(folder(), { maxBytes: 8 * MiB });
    fill(cache, 30_000);
    const s = cache.stats();
    expect(s.heldBytes).toBeLessThanOrEqual(s.maxBytes + s.segmentBytes);
    expect(s.evictions.epochs).toBeGreaterThan(5);
    expect(s.evictions.entries + s.entries).toBe(30_000);
    expect(cache.get('k:0')).toBeUndefined(); // the oldest went first
    expect(cache.get('k:29999')).toEqual(Buffer.alloc(1000, 29999 & 0xff));
    cache.verify();
    cache.close();
  });

  it('an entry read since it was written is reinserted before its epoch closes; without reinsertion it goes', () => {
    for (const reinsertion of [true, false]) {
      const cache = openCache(folder(), { maxBytes: 8 * MiB, reinsertion });
      cache.set('hot', 'read often');
      fill(cache, 30_000, 'hot');
      expect(cache.get('hot')).toBe(reinsertion ? 'read often' : undefined);
      const s = cache.stats();
      if (reinsertion) {
        expect(s.reinsertions.entries).toBeGreaterThan(0);
        expect(s.reinsertions.bytes).toBeLessThanOrEqual(0.1 * s.evictions.bytes + 4096);
      } else expect(s.reinsertions.entries).toBe(0);
      cache.verify();
      cache.close();
    }
  });
});

describe('persistence', () => {
  it('close and reopen restores exactly the entries, from the checkpoint', () => {
    const dir = folder();
    const cache = openCache(dir, { maxBytes: 32 * MiB });
    const model = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      const key = `key:${i % 1500}`;
      if (i % 7 === 3) {
        cache.delete(key);
        model.delete(key);
      } else {
        cache.set(key, `v${i}`);
        model.set(key, `v${i}`);
      }
    }
    cache.close();
    expect(fs.existsSync(path.join(dir, CHECKPOINT_FILE))).toBe(true);
    const again = openCache(dir);
    expect(again.size).toBe(model.size);
    for (const [k, v] of model) expect(again.get(k)).toBe(v);
    expect(new Set(again.keys())).toEqual(new Set(model.keys()));
    again.verify();
    again.close();
  });

  it('a stale checkpoint is reconciled with the store: later sets, overwrites and deletes win', () => {
    const dir = folder();
    const first = openCache(dir, { maxBytes: 32 * MiB });
    for (let i = 0; i < 1000; i++) first.set(`k${i}`, `old${i}`);
    first.close();
    const stale = fs.readFileSync(path.join(dir, CHECKPOINT_FILE));
    const second = openCache(dir);
    for (let i = 0; i < 300; i++) second.delete(`k${i}`);
    for (let i = 300; i < 600; i++) second.set(`k${i}`, `new${i}`);
    for (let i = 1000; i < 1200; i++) second.set(`k${i}`, `added${i}`);
    second.close();
    fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), stale); // as if the last checkpoint was lost
    const third = openCache(dir);
    expect(third.size).toBe(900);
    expect(third.get('k5')).toBeUndefined();
    expect(third.get('k400')).toBe('new400');
    expect(third.get('k800')).toBe('old800');
    expect(third.get('k1100')).toBe('added1100');
    third.verify();
    third.close();
  });

  it('rebuilds the index from the records when the checkpoint is missing or corrupt', () => {
    const dir = folder();
    const cache = openCache(dir, { maxBytes: 32 * MiB });
    for (let i = 0; i < 2000; i++) cache.set(`k${i}`, { i });
    cache.close();
    const file = path.join(dir, CHECKPOINT_FILE);
    const bytes = fs.readFileSync(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    fs.writeFileSync(file, bytes);
    const again = openCache(dir);
    expect(again.size).toBe(2000);
    expect(again.get('k1234')).toEqual({ i: 1234 });
    again.close();
    fs.rmSync(file);
    const third = openCache(dir);
    expect(third.get('k1999')).toEqual({ i: 1999 });
    third.verify();
    third.close();
  });
});

describe('the rest of the API', () => {
  it('fetch loads a missing key once for concurrent callers, and caches it', async () => {
    const cache = openCache(folder(), { maxBytes: 8 * MiB });
    let loads = 0;
    const loader = async (key: string | Buffer) => {
      loads++;
      await new Promise((r) => setTimeout(r, 20));
      return `loaded ${String(key)}`;
    };
    const all = await Promise.all([cache.fetch('x', loader), cache.fetch('x', loader), cache.fetch('x', loader)]);
    expect(all).toEqual(['loaded x', 'loaded x', 'loaded x']);
    expect(loads).toBe(1);
    expect(await cache.fetch('x', loader)).toBe('loaded x');
    expect(loads).toBe(1);
    await expect(cache.fetch('y', async () => Promise.reject(new Error('backend down')))).rejects.toThrow('backend down');
    expect(cache.has('y')).toBe(false);
    cache.close();
  });

  it('keys() and entries() are lazy snapshots that skip expired and deleted entries', () => {
    const clock = fakeClock();
    const cache = openCache(folder(), { maxBytes: 8 * MiB, clock: clock.now });
    for (let i = 0; i < 50; i++) cache.set(`k${i}`, i, i < 10 ? { ttl: 1000 } : undefined);
    clock.advance(1500);
    const seen: string[] = [];
    for (const key of cache.keys()) {
      seen.push(key as string);
      cache.delete('k49'); // changing the cache while iterating is allowed
    }
    expect(seen.length).toBeLessThanOrEqual(40);
    expect(seen.length).toBeGreaterThanOrEqual(39);
    expect(seen.every((k) => Number(k.slice(1)) >= 10)).toBe(true);
    expect(Object.fromEntries([...cache.entries()].map(([k, v]) => [k, v]))).toMatchObject({ k10: 10, k48: 48 });
    cache.close();
  });

  it('clear() empties the cache and its zones, durably', () => {
    const dir = folder();
    const cache = openCache(dir, { maxBytes: 8 * MiB });
    for (let i = 0; i < 3000; i++) cache.set(`k${i}`, Buffer.alloc(900));
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('k1')).toBeUndefined();
    expect(cache.stats().heldBytes).toBe(0);
    cache.set('after', 1);
    cache.verify();
    cache.close();
    const again = openCache(dir);
    expect([...again.keys()]).toEqual(['after']);
    again.close();
  });

  it('stats count what happened', () => {
    using cache = openCache(folder(), { maxBytes: 8 * MiB });
    cache.set('a', 'x').set('b', 'y');
    cache.get('a');
    cache.get('zz');
    cache.delete('b');
    const s = cache.stats();
    expect(s).toMatchObject({ entries: 1, hits: 1, misses: 1, hitRatio: 0.5, sets: 2, deletes: 1, userBytes: 4 });
    expect(s.deviceBytes).toBe(0); // nothing sealed yet
    cache.flush();
    expect(cache.stats().deviceBytes).toBeGreaterThan(0);
    expect(s.index.bytesPerEntry).toBeGreaterThan(0);
  });
});
