/**
 * A Keyv 5 storage adapter over the zns-slab cache: `new Keyv({ store: new KeyvZnsSlab(dir, { maxBytes }) })`.
 *
 * - Keyv hands the adapter keys already prefixed with `namespace:` and values already serialized
 *   (a string, or the raw `{ value, expires }` object when Keyv is made with
 *   `serialize: undefined`); the adapter stores them as given, the string on the cache's string
 *   fast path, an object through msgpackr.
 * - Keyv's ttl (ms) becomes the entry's TTL in the cache, so an entry expires exactly on the
 *   cache's clock, whether or not Keyv reads it (`has` and the iterator see it gone too).
 * - `clear()` removes the keys of the current namespace (a scan of the cache: O(entries) with a
 *   device read each); with no namespace, everything (every epoch closes at once).
 * - `disconnect()` closes a cache the adapter opened (flush and checkpoint: everything set is
 *   durable and there on reopen); a cache it was given is flushed and left open.
 *
 * Nothing here is loaded from 'keyv' at run time (types only): the adapter needs no dependency
 * beyond zns-slab itself.
 */
import { EventEmitter } from 'node:events';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { Cache, type CacheOptions, type SetOptions, openCache } from './cache.js';

/** What `opts` holds; Keyv reads `dialect` and `url`. */
export interface KeyvZnsSlabOptions {
  /**
   * Keyv 5 wires `keyv.iterator()` only for adapters whose `opts.dialect` (or `opts.url`) names
   * one of its known backends (sqlite, postgres, mysql, mongo, redis, valkey, etcd). This adapter
   * reports 'sqlite' (its catalog is SQLite; nothing else reads the field) so that Keyv exposes
   * the iterator, which it implements in full.
   */
  dialect: 'sqlite';
  /** `zns-slab://<cache folder>`: informative. */
  url: string;
  /** The cache folder. */
  path: string;
  /** The adapter opened the cache (and closes it on disconnect). */
  ownsCache: boolean;
  [key: string]: unknown;
}

/**
 * Keyv's adapter type, except that setMany resolves to one boolean per entry (what `keyv.setMany`
 * returns to its caller) where the type says void.
 */
type AdapterContract = Omit<KeyvStoreAdapter, 'setMany'> & { setMany(values: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]> };

export class KeyvZnsSlab extends EventEmitter implements AdapterContract {
  /** Set by Keyv: the keys this adapter's `clear()` and `iterator()` cover are `${namespace}:...`. */
  namespace?: string | undefined;
  opts: KeyvZnsSlabOptions;
  readonly #cache: Cache;
  readonly #owns: boolean;

  /** Wraps a cache you opened: `disconnect()` flushes it and leaves it open (it is yours to close). */
  constructor(cache: Cache);
  /** Opens (or creates) the cache in folder `dir`: `disconnect()` closes it. */
  constructor(dir: string, options?: CacheOptions);
  constructor(cacheOrDir: Cache | string, options?: CacheOptions) {
    super();
    if (cacheOrDir instanceof Cache) {
      if (options !== undefined) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'KeyvZnsSlab: options go with a folder path, not with an open Cache');
      this.#cache = cacheOrDir;
      this.#owns = false;
    } else {
      this.#cache = openCache(cacheOrDir, options);
      this.#owns = true;
    }
    this.opts = { dialect: 'sqlite', url: `zns-slab://${this.#cache.path}`, path: this.#cache.path, ownsCache: this.#owns };
  }

  /** The cache underneath: for stats(), flush(), or direct use. */
  get cache(): Cache {
    return this.#cache;
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    return this.#cache.get(key) as StoredData<Value> | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    return this.#cache.getMany(keys) as Array<StoredData<Value | undefined>>;
  }

  /** `ttl` in ms; undefined, 0 or Infinity: no expiry. Resolves true. */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    this.#cache.set(key, value, ttlOption(ttl));
    return true;
  }

  /**
   * Sets each entry; one that fails (a key too long, a value too large) does not stop the
   * others. Resolves to one boolean per entry. A failure is emitted as 'error' (Keyv forwards
   * it); with no 'error' listener, the first one rejects after every entry was tried.
   */
  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]> {
    const results: boolean[] = [];
    let first: unknown;
    for (const { key, value, ttl } of entries) {
      try {
        this.#cache.set(key, value, ttlOption(ttl));
        results.push(true);
      } catch (err) {
        results.push(false);
        if (this.listenerCount('error') > 0) this.emit('error', err);
        else first ??= err;
      }
    }
    if (first !== undefined) throw first;
    return results;
  }

  async has(key: string): Promise<boolean> {
    return this.#cache.has(key);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return keys.map((k) => this.#cache.has(k));
  }

  /** True if the key was there. */
  async delete(key: string): Promise<boolean> {
    return this.#cache.delete(key);
  }

  /** True if any of the keys was there (as @keyv/redis and @keyv/sqlite answer). */
  async deleteMany(keys: string[]): Promise<boolean> {
    let any = false;
    for (const k of keys) if (this.#cache.delete(k)) any = true;
    return any;
  }

  /**
   * Removes the current namespace's keys; with no namespace, every entry of the cache
   * (including ones set on the Cache directly).
   */
  async clear(): Promise<void> {
    const ns = this.namespace;
    if (ns === undefined || ns === '') {
      this.#cache.clear();
      return;
    }
    const prefix = `${ns}:`;
    const doomed: string[] = [];
    for (const key of this.#cache.keys()) if (typeof key === 'string' && key.startsWith(prefix)) doomed.push(key);
    for (const key of doomed) this.#cache.delete(key);
  }

  /**
   * [key, stored value] of each live, unexpired entry whose key starts with `${namespace}:` (all
   * string keys when namespace is undefined), keys in full as Keyv expects. A snapshot of the
   * index taken at the first step; entries deleted meanwhile are skipped.
   */
  async *iterator<Value>(namespace?: string): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    const prefix = namespace ? `${namespace}:` : undefined;
    for (const [key, value] of this.#cache.entries()) {
      if (typeof key !== 'string') continue;
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      yield [key, value as Awaited<Value>];
    }
  }

  /** Makes every set and delete so far durable (Cache.flush). */
  async flush(): Promise<void> {
    this.#cache.flush();
  }

  /** Closes the cache if the adapter opened it (everything is durable and there on reopen); else flushes it. */
  async disconnect(): Promise<void> {
    if (this.#owns) {
      this.#cache.close(); // idempotent
      return;
    }
    try {
      this.#cache.flush();
    } catch (err) {
      // Closed by its owner already: nothing left to make durable.
      if (!(err instanceof ZnsSlabError && err.code === ErrorCode.CLOSED)) throw err;
    }
  }
}

function ttlOption(ttl: number | undefined): SetOptions | undefined {
  if (ttl === undefined || ttl === 0 || ttl === Infinity) return undefined;
  return { ttl }; // the cache refuses a negative or NaN ttl (ERR_INVALID_ARGUMENT)
}
