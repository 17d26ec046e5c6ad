/**
 * KeyvZnsSlab (cache/keyv.ts) under Keyv 5: the official @keyv/test-suite (api, values,
 * namespaces, iterator) in three setups, then what the suite does not check: TTL that expires on
 * the cache's own clock, namespaces over one cache, the iterator's filtering, errors as Keyv
 * reports them, and reopening after disconnect().
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as vitest from 'vitest';
import { afterEach, describe, expect, it } from 'vitest';
import Keyv, { type KeyvOptions } from 'keyv';
import { keyvApiTests, keyvIteratorTests, keyvNamespaceTest, keyvValueTests } from '@keyv/test-suite';
import { type Cache, type CacheOptions, openCache } from '../../cache/cache.js';
import { KeyvZnsSlab } from '../../cache/keyv.js';
import { ErrorCode, ZnsSlabError } from '../../errors.js';

const MiB = 1024 * 1024;
const MAX_BYTES = 4 * MiB;

/** Fresh folders on tmpfs when there is one (the emulated device does real file I/O). */
const TMP_ROOT = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
const folders: string[] = [];
function folder(): string {
  const dir = fs.mkdtempSync(path.join(TMP_ROOT, 'zns-keyv-'));
  folders.push(dir);
  return path.join(dir, 'cache');
}

/** Caches and adapters to close after each test (before their folders go). */
const open: { close(): unknown }[] = [];
afterEach(() => {
  for (const c of open.splice(0).reverse()) c.close();
  for (const dir of folders.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function newCache(options: CacheOptions = {}): Cache {
  const cache = openCache(folder(), { maxBytes: MAX_BYTES, ...options });
  open.push(cache);
  return cache;
}

/** An adapter that opens (and owns) a cache in a fresh folder. */
function ownAdapter(options: CacheOptions = {}): KeyvZnsSlab {
  const adapter = new KeyvZnsSlab(folder(), { maxBytes: MAX_BYTES, ...options });
  open.push(adapter.cache);
  return adapter;
}

/** Keyv that hands the adapter the raw `{ value, expires }` object (serialize: undefined), unless told otherwise. */
class RawKeyv extends Keyv {
  constructor(options?: KeyvOptions) {
    super({ serialize: undefined, deserialize: undefined, ...options } as KeyvOptions);
  }
}

// ---- the official suite ------------------------------------------------------------------------

/**
 * The suite calls `store()` several times per test (in beforeEach, for each Keyv) and expects
 * what one adapter wrote to be there for the next, as with a database file (@keyv/sqlite's own
 * tests open one file per call). A cache folder can be open once per process (ERR_STORE_LOCKED),
 * so `store()` gives a new adapter over the test's one cache, opened in a fresh folder on the
 * test's first call and closed after it: every adapter keeps its own namespace (Keyv sets it on
 * the adapter), and every test starts from an empty folder.
 */
function sharedPerTest(): () => KeyvZnsSlab {
  let cache: Cache | undefined;
  afterEach(() => {
    cache = undefined; // closed by the file's afterEach, which runs after the suite's own
  });
  return () => {
    cache ??= newCache();
    return new KeyvZnsSlab(cache);
  };
}

/** The literal reading: each `store()` an adapter that opens its own cache in a fresh folder. */
function folderPerStore(): () => KeyvZnsSlab {
  return () => ownAdapter();
}

const setups: [string, typeof Keyv, () => () => KeyvZnsSlab][] = [
  ['serialized values, one cache per test', Keyv, sharedPerTest],
  ['raw values (serialize: undefined), one cache per test', RawKeyv as unknown as typeof Keyv, sharedPerTest],
  ['serialized values, one folder per store()', Keyv, folderPerStore],
];

for (const [name, KeyvClass, factory] of setups) {
  describe(`@keyv/test-suite: ${name}`, () => {
    const store = factory();
    describe('api', () => keyvApiTests(vitest, KeyvClass, store));
    describe('values', () => keyvValueTests(vitest, KeyvClass, store));
    describe('namespaces', () => keyvNamespaceTest(vitest, KeyvClass, store));
    describe('iterator', () => keyvIteratorTests(vitest, KeyvClass, store));
  });
}

// ---- beyond the suite ----------------------------------------------------------------------------

describe('KeyvZnsSlab', () => {
  it('is a Keyv store adapter: Keyv accepts it, forwards its errors, and wires keyv.iterator()', async () => {
    const adapter = ownAdapter();
    const keyv = new Keyv({ store: adapter });
    expect(keyv.store).toBe(adapter);
    expect(typeof keyv.iterator).toBe('function');
    expect(adapter.namespace).toBe('keyv'); // Keyv's default, set on the adapter
    expect(adapter.opts).toMatchObject({ dialect: 'sqlite', url: `zns-slab://${adapter.cache.path}`, path: adapter.cache.path, ownsCache: true });
    const errors: unknown[] = [];
    keyv.on('error', (e) => errors.push(e));
    adapter.emit('error', new Error('from the adapter'));
    expect(errors).toHaveLength(1);
  });

  it('stores what Keyv hands it as given: a serialized string on the string path, or the raw object', async () => {
    const cache = newCache();
    const keyv = new Keyv({ store: new KeyvZnsSlab(cache) });
    await keyv.set('s', { a: 1, b: Buffer.from('xy') });
    const stored = cache.get('keyv:s');
    expect(typeof stored).toBe('string');
    expect(JSON.parse(stored as string)).toMatchObject({ value: { a: 1 } });

    const raw = new Keyv({ store: new KeyvZnsSlab(cache), namespace: 'raw', serialize: undefined, deserialize: undefined });
    const value = { when: new Date(1234), big: 2n ** 70n, tags: new Set(['a']), bytes: Buffer.from([0, 255]) };
    await raw.set('r', value);
    expect(cache.get('raw:r')).toEqual({ value, expires: undefined });
    expect(await raw.get('r')).toEqual(value); // msgpackr keeps Date, bigint, Set, Buffer
  });

  it('passes Keyv ttl to the cache: the entry expires on the cache clock, for get, has and the iterator alike', async () => {
    const clock = fakeClock();
    const adapter = ownAdapter({ clock: clock.now });
    const keyv = new Keyv({ store: adapter });
    await keyv.set('short', 'gone soon', 1000);
    await keyv.set('forever', 'stays');
    expect(adapter.cache.stats().ttlBuckets).toBe(1); // the TTL reached the cache, not only Keyv's `expires`
    clock.advance(999);
    expect(await keyv.get('short')).toBe('gone soon');
    expect(await keyv.has('short')).toBe(true);
    clock.advance(1);
    // Keyv's own `expires` (real time) says fresh: only the cache's clock can have expired it.
    expect(await keyv.has('short')).toBe(false);
    expect(await keyv.get('short')).toBeUndefined();
    expect(await keyv.get(['short', 'forever'])).toEqual([undefined, 'stays']);
    const seen: string[] = [];
    for await (const [key] of keyv.iterator!(undefined)) seen.push(key as string);
    expect(seen).toEqual(['forever']);
    expect(adapter.cache.stats().expirations.entries).toBeGreaterThanOrEqual(1);
  });

  it("applies Keyv's default ttl and ttl 0 / Infinity as no expiry; a negative ttl is refused", async () => {
    const clock = fakeClock();
    const adapter = ownAdapter({ clock: clock.now });
    const keyv = new Keyv({ store: adapter, ttl: 500 });
    await keyv.set('default', 'd');
    await keyv.set('zero', 'z', 0); // Keyv: 0 means no expiry
    expect(await adapter.set('keyv:inf', JSON.stringify({ value: 'i' }), Infinity)).toBe(true);
    clock.advance(500);
    expect(await keyv.get('default')).toBeUndefined();
    expect(await keyv.get('zero')).toBe('z');
    expect(await keyv.get('inf')).toBe('i');
    const errors: unknown[] = [];
    keyv.on('error', (e) => errors.push(e));
    expect(await keyv.set('neg', 'n', -1)).toBe(false);
    expect((errors[0] as ZnsSlabError).code).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('keeps namespaces apart over one cache; clear() takes only its own namespace, or everything without one', async () => {
    const cache = newCache();
    const users = new Keyv({ store: new KeyvZnsSlab(cache), namespace: 'users' });
    const sessions = new Keyv({ store: new KeyvZnsSlab(cache), namespace: 'sessions' });
    const usersX = new Keyv({ store: new KeyvZnsSlab(cache), namespace: 'usersX' }); // 'users' is a prefix of it
    await users.set('1', 'ada');
    await users.set('2', 'bob');
    await sessions.set('1', 'token');
    await usersX.set('1', 'other');
    cache.set(Buffer.from('users:1'), 'a Buffer key of the same bytes');
    cache.set('plain', 'set on the Cache directly');
    expect(await users.get('1')).toBe('ada');
    expect(await sessions.get('1')).toBe('token');

    expect(await users.delete('1')).toBe(true);
    expect(await sessions.get('1')).toBe('token');
    await users.set('1', 'ada');

    await users.clear();
    expect(await users.get(['1', '2'])).toEqual([undefined, undefined]);
    expect(await sessions.get('1')).toBe('token');
    expect(await usersX.get('1')).toBe('other');
    expect(cache.get(Buffer.from('users:1'))).toBe('a Buffer key of the same bytes');
    expect(cache.get('plain')).toBe('set on the Cache directly');

    const everything = new Keyv({ store: new KeyvZnsSlab(cache), namespace: undefined }); // no namespace: the whole cache
    await everything.clear();
    expect(cache.size).toBe(0);
    expect(await sessions.get('1')).toBeUndefined();
  });

  it('iterates its namespace only, with full keys from the adapter and bare keys from keyv.iterator()', async () => {
    const clock = fakeClock();
    const cache = newCache({ clock: clock.now });
    const a = new KeyvZnsSlab(cache);
    const keyvA = new Keyv({ store: a, namespace: 'a' });
    const keyvB = new Keyv({ store: new KeyvZnsSlab(cache), namespace: 'b' });
    for (let i = 0; i < 50; i++) await keyvA.set(`k${i}`, i);
    await keyvA.set('brief', 'x', 10);
    await keyvB.set('k0', 'b-side');
    cache.set(Buffer.from('a:buffer'), 'skipped: not a string key');
    clock.advance(10);

    const fromAdapter = new Map<string, unknown>();
    for await (const [key, value] of a.iterator('a')) fromAdapter.set(key as string, value);
    expect(fromAdapter.size).toBe(50);
    expect(JSON.parse(fromAdapter.get('a:k7') as string)).toEqual({ value: 7 });

    const fromKeyv = new Map<string, unknown>();
    for await (const [key, value] of keyvA.iterator!(undefined)) fromKeyv.set(key as string, value);
    expect(fromKeyv.size).toBe(50);
    expect(fromKeyv.get('k49')).toBe(49);
    expect(fromKeyv.has('brief')).toBe(false);

    let all = 0;
    for await (const _ of a.iterator(undefined)) all++;
    expect(all).toBe(51); // every live string key: 50 in a, 1 in b

    // Deleting while iterating (as Keyv does with expired entries) neither breaks nor repeats.
    const visited: string[] = [];
    for await (const [key] of a.iterator('a')) {
      visited.push(key as string);
      await a.delete(key as string);
    }
    expect(new Set(visited).size).toBe(50);
    expect(await keyvB.get('k0')).toBe('b-side');
  });

  it('answers getMany, hasMany, deleteMany and setMany entry by entry; a failed entry does not stop the rest', async () => {
    const adapter = ownAdapter();
    const keyv = new Keyv({ store: adapter });
    const errors: unknown[] = [];
    keyv.on('error', (e) => errors.push(e));
    const tooLong = 'k'.repeat(2000);
    expect(await keyv.setMany([{ key: 'a', value: 1 }, { key: tooLong, value: 2 }, { key: 'c', value: 3, ttl: 60_000 }])).toEqual([true, false, true]);
    expect((errors[0] as ZnsSlabError).code).toBe(ErrorCode.KEY_TOO_LONG);
    expect(await keyv.get(['a', 'b', 'c'])).toEqual([1, undefined, 3]);
    expect(await keyv.has(['a', 'b', 'c'])).toEqual([true, false, true]);
    expect(await keyv.deleteMany(['a', 'b'])).toBe(true); // any was there
    expect(await keyv.deleteMany(['a', 'b'])).toBe(false);
    // Standalone (no 'error' listener), setMany rejects with the first failure after trying all.
    const bare = new KeyvZnsSlab(adapter.cache);
    await expect(bare.setMany([{ key: tooLong, value: 'x' }, { key: 'keyv:d', value: 'y' }])).rejects.toMatchObject({ code: ErrorCode.KEY_TOO_LONG });
    expect(await bare.get('keyv:d')).toBe('y');
  });

  it('reports cache errors the Keyv way: set resolves false with an error event; throwOnErrors rejects', async () => {
    const adapter = ownAdapter();
    const keyv = new Keyv({ store: adapter });
    const errors: unknown[] = [];
    keyv.on('error', (e) => errors.push(e));
    expect(await keyv.set('k'.repeat(2000), 'v')).toBe(false);
    expect(errors[0]).toBeInstanceOf(ZnsSlabError);
    expect((errors[0] as ZnsSlabError).code).toBe(ErrorCode.KEY_TOO_LONG);
    const big = 'x'.repeat(adapter.cache.store.maxObjectSize);
    expect(await keyv.set('big', big)).toBe(false);
    expect((errors[1] as ZnsSlabError).code).toBe(ErrorCode.OBJECT_TOO_LARGE);
    const strict = new Keyv({ store: new KeyvZnsSlab(adapter.cache), throwOnErrors: true });
    strict.on('error', () => {});
    await expect(strict.set('k'.repeat(2000), 'v')).rejects.toMatchObject({ code: ErrorCode.KEY_TOO_LONG });
  });

  it('keeps everything across disconnect() and reopen, TTLs included; the closed adapter refuses work', async () => {
    const clock = fakeClock();
    const dir = folder();
    const first = new KeyvZnsSlab(dir, { maxBytes: MAX_BYTES, clock: clock.now });
    const keyv = new Keyv({ store: first, namespace: 'app' });
    for (let i = 0; i < 200; i++) await keyv.set(`user:${i}`, { id: i, name: `n${i}` });
    await keyv.set('session', 'short-lived', 5_000);
    await keyv.delete('user:7');
    await keyv.disconnect();
    await keyv.disconnect(); // twice is fine

    const errors: unknown[] = [];
    keyv.on('error', (e) => errors.push(e));
    expect(await keyv.set('after', 'close')).toBe(false);
    expect((errors[0] as ZnsSlabError).code).toBe(ErrorCode.CLOSED);
    await expect(first.get('app:user:1')).rejects.toMatchObject({ code: ErrorCode.CLOSED });

    const second = new KeyvZnsSlab(dir, { clock: clock.now }); // maxBytes: the saved one
    open.push(second.cache);
    const again = new Keyv({ store: second, namespace: 'app' });
    expect(await again.get('user:0')).toEqual({ id: 0, name: 'n0' });
    expect(await again.get('user:199')).toEqual({ id: 199, name: 'n199' });
    expect(await again.get('user:7')).toBeUndefined();
    expect(await again.get('session')).toBe('short-lived');
    expect(second.cache.size).toBe(200);
    clock.advance(5_000);
    expect(await again.get('session')).toBeUndefined();
  });

  it('flushes a Cache it was given on disconnect() and leaves it open; options go only with a folder', async () => {
    const dir = folder();
    const cache = openCache(dir, { maxBytes: MAX_BYTES });
    open.push(cache);
    const keyv = new Keyv({ store: new KeyvZnsSlab(cache) });
    expect((keyv.store as KeyvZnsSlab).opts.ownsCache).toBe(false);
    await keyv.set('k', 'v');
    await keyv.disconnect();
    expect(cache.get('keyv:k')).toBe(JSON.stringify({ value: 'v' }));
    cache.close();
    await keyv.disconnect(); // the owner closed it first: nothing to do
    const reopened = openCache(dir);
    open.push(reopened);
    expect(reopened.get('keyv:k')).toBe(JSON.stringify({ value: 'v' }));
    const Untyped = KeyvZnsSlab as unknown as new (cache: Cache, options: CacheOptions) => KeyvZnsSlab;
    expect(() => new Untyped(reopened, { maxBytes: MAX_BYTES })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => new KeyvZnsSlab(folder())).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
  });

  // Regression: a string key with a lone surrogate was written as UTF-8 (U+FFFD) and never
  // matched again; such keys (and values) are now stored as UTF-16LE. Keyv passes keys as given.
  it('finds a key holding a lone surrogate (stored as UTF-16LE, since UTF-8 cannot carry it)', async () => {
    const adapter = ownAdapter();
    const keyv = new Keyv({ store: adapter });
    await keyv.set('bad\ud800key', 'v1');
    await keyv.set('bad\ud800key', 'v2');
    expect(adapter.cache.size).toBe(1);
    expect(await keyv.get('bad\ud800key')).toBe('v2');
  });
});
