/**
 * The key-value cache: a zns-slab store whose epochs are the unit of eviction and expiry.
 *
 * - Every entry is one object (cache/record.ts: key, value, expiry, sequence); the index
 *   (cache/keyIndex.ts) maps the key's hash to its handle, and a read compares the full key.
 * - Entries without a TTL go to the current epoch, which rotates every `segmentBytes`; when the
 *   cache holds more than `maxBytes`, the oldest epoch closes (its zones reset: no per-entry
 *   work on the device, no copying). Before it closes, entries read since they were written
 *   are written again into the current epoch, up to REINSERTION_BUDGET_FRACTION of its bytes
 *   (CacheLib Navy's reinsertion; CLOCK's second chance).
 * - Entries with a TTL go to an epoch of their expiry time bucket; when the bucket's end passes,
 *   its epoch closes. A read checks the entry's own expiry, so nothing is served late.
 * - `flush()` makes every set and delete before it durable (the store's flush), then may write
 *   an index checkpoint (cache/checkpoint.ts); reopen loads it and reconciles it with the
 *   store's live objects, reading only those it lacks.
 *
 * The cache sits on the engine's public API: it never touches slabs, zones or the catalog.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import type { Store, StoreOptions } from '../engine/store.js';
import { openStoreWith } from '../engine/store.js';
import { EpochState } from '../engine/epoch.js';
import type { DeviceGeometry } from '../zns/device.js';
import type { CatalogHooks } from '../catalog/catalog.js';
import { DEFAULT_EMULATED_GEOMETRY, fsError } from '../zns/emulated.js';
import { readCheckpoint, syncDir, writeCheckpoint } from './checkpoint.js';
import { KeyIndex, hashKey, hashString } from './keyIndex.js';
import {
  type Key,
  checkRecord,
  encodeValue,
  recordExpiresAt,
  recordHasKey,
  recordKey,
  recordLength,
  recordSequence,
  recordValue,
  toKey,
  writeRecord,
} from './record.js';

export { MAX_KEY_BYTES } from './record.js';

/** The store's purpose in its catalog: a plain openStore refuses to write it. */
export const CACHE_PURPOSE = 'cache';
export const DESCRIPTOR_FILE = 'cache.json';
const DESCRIPTOR_FORMAT = 'zns-slab-cache';
const DESCRIPTOR_VERSION = 1;

/** FIFO epochs the cache aims to hold under maxBytes: the eviction step is 1/16 of the cache. */
export const EPOCHS_PER_CACHE = 16;
/** Of an evicted epoch's bytes, at most this share is written again (the reinsertion budget). */
export const REINSERTION_BUDGET_FRACTION = 0.1;
/** Smallest zone the cache makes for its own device: the largest object must fit a slab. */
export const MIN_ZONE_BYTES = 1024 * 1024;
/** Largest zone the cache makes for its own device. */
export const MAX_ZONE_BYTES = 16 * 1024 * 1024;
/** Smallest maxBytes: four of the smallest zones. */
export const MIN_MAX_BYTES = 4 * MIN_ZONE_BYTES;
/** Default width of a TTL bucket (ms); a bucket is at least 1/8 of its entries' TTL wide. */
export const DEFAULT_TTL_RESOLUTION_MS = 1000;
/** Zones kept free of TTL buckets under the device's active-zone limit. */
const ACTIVE_ZONES_KEPT_FOR_FIFO = 4;
/** A flush writes a checkpoint when this share of the entries changed since the last one. */
export const CHECKPOINT_CHANGE_FRACTION = 0.25;

export interface CacheOptions {
  /**
   * Device bytes the entries may take (slots at their size class, overwritten entries until
   * their epoch closes). Required to create a cache; on reopen it defaults to the saved one.
   */
  maxBytes?: number;
  /** Write entries read since they were set into the current epoch before theirs closes. Default true. */
  reinsertion?: boolean;
  /** Narrowest TTL bucket, ms (default 1000). Expiry is exact on read either way. */
  ttlResolutionMs?: number;
  /** The clock, ms: TTLs and expiry read it (inject one in tests). Default Date.now. */
  clock?: () => number;
  /** A zoned device (path or object) instead of the emulated one in `<dir>/device`. */
  device?: StoreOptions['device'];
  /** Geometry of a new emulated device; default: sized from maxBytes. */
  geometry?: Partial<DeviceGeometry>;
}

export interface SetOptions {
  /** Time to live, ms; 0 or absent: no expiry. */
  ttl?: number;
}

export interface CacheStats {
  entries: number;
  hits: number;
  misses: number;
  /** hits / (hits + misses); null before the first get. */
  hitRatio: number | null;
  sets: number;
  deletes: number;
  evictions: { entries: number; bytes: number; epochs: number };
  reinsertions: { entries: number; bytes: number };
  expirations: { entries: number; epochs: number };
  /** Key and value bytes given to set (reinsertions not counted). */
  userBytes: number;
  /** Bytes the store wrote to the device. */
  deviceBytes: number;
  /** deviceBytes / userBytes; null before any write. */
  writeAmplification: number | null;
  /** Device bytes the live epochs hold, against maxBytes. */
  heldBytes: number;
  maxBytes: number;
  segmentBytes: number;
  epochs: number;
  ttlBuckets: number;
  index: { bytes: number; bytesPerEntry: number | null; capacity: number };
  checkpoints: number;
}

interface Counters {
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
  evictedEntries: number;
  evictedBytes: number;
  evictedEpochs: number;
  reinsertedEntries: number;
  reinsertedBytes: number;
  expiredEntries: number;
  expiredEpochs: number;
  userBytes: number;
  checkpoints: number;
}

function newCounters(): Counters {
  return {
    hits: 0,
    misses: 0,
    sets: 0,
    deletes: 0,
    evictedEntries: 0,
    evictedBytes: 0,
    evictedEpochs: 0,
    reinsertedEntries: 0,
    reinsertedBytes: 0,
    expiredEntries: 0,
    expiredEpochs: 0,
    userBytes: 0,
    checkpoints: 0,
  };
}

interface Descriptor {
  format: string;
  version: number;
  maxBytes: number;
  ttlResolutionMs: number;
  reinsertion: boolean;
  /** [epoch, bucket end]: the TTL buckets. */
  buckets: [number, number][];
  counters: Counters;
  /** As of the write: for `zns-slab stats` on a closed cache. */
  entries?: number;
  heldBytes?: number;
  indexBytes?: number;
  savedAt?: string;
}

/** One live epoch, as the cache sees it. */
interface CacheEpoch {
  readonly id: number;
  /** Device bytes written into it (slots at their stride). */
  bytes: number;
  /** A TTL bucket's end (ms); 0 for a FIFO epoch. */
  readonly bucketEnd: number;
}

/** Slab ids are 22 bits: `hi >>> 10` of a handle. */
const SLAB_ID_SHIFT = 10;
const SLOT_MASK_LO = 0xff << 10;

export class Cache implements Disposable {
  readonly path: string;
  readonly #store: Store;
  readonly #clock: () => number;
  #index: KeyIndex;
  /** The epoch of each slab id that has entries (index: slab id). */
  #slabEpoch = new Uint32Array(1024);
  /** Live epochs, oldest first. */
  readonly #epochs = new Map<number, CacheEpoch>();
  readonly #buckets = new Map<number, CacheEpoch>();
  #current!: CacheEpoch;
  #heldBytes = 0;
  #nextExpiry = Infinity;
  #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #reinsertion: boolean;
  readonly #ttlResolutionMs: number;
  readonly #maxBuckets: number;
  readonly #strides: Int32Array;
  #nextSequence = 1;
  #changes = 0;
  readonly #counters: Counters;
  #scratch = Buffer.alloc(4096);
  readonly #inflight = new Map<string, Promise<unknown>>();
  #closed = false;
  // The key a lookup is probing for, and the record that matched it (no closure per call).
  #probe: Key | undefined;
  #probeRecord: Buffer | undefined;
  readonly #matches = (handle: bigint): boolean => {
    const rec = this.#read(handle);
    if (!recordHasKey(rec, this.#probe!)) return false;
    this.#probeRecord = rec;
    return true;
  };

  /** Use `openCache`. */
  constructor(dir: string, store: Store, options: ResolvedOptions, saved: Descriptor | undefined) {
    this.path = dir;
    this.#store = store;
    this.#clock = options.clock;
    this.#maxBytes = options.maxBytes;
    this.#reinsertion = options.reinsertion;
    this.#ttlResolutionMs = options.ttlResolutionMs;
    const g = store.device.geometry;
    this.#segmentBytes = Math.max(g.zoneCapacity, Math.floor(options.maxBytes / EPOCHS_PER_CACHE));
    this.#maxBuckets = Math.max(1, g.maxActiveZones === 0 ? 32 : g.maxActiveZones - ACTIVE_ZONES_KEPT_FOR_FIFO);
    this.#strides = Int32Array.from(store.sizeClasses.classes, (c) => c.stride);
    this.#counters = { ...newCounters(), ...(saved?.counters ?? {}) };
    this.#index = new KeyIndex();
    this.#load(saved);
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The value, or undefined (absent, expired or evicted). Marks the entry as read. */
  get(key: string | Buffer): unknown {
    this.#checkOpen();
    const k = toKey(key);
    const slot = this.#find(k);
    if (slot < 0) {
      this.#counters.misses++;
      return undefined;
    }
    const rec = this.#probeRecord!;
    this.#probeRecord = undefined;
    const expiresAt = recordExpiresAt(rec);
    if (expiresAt !== 0 && this.#expired(expiresAt, slot)) {
      this.#counters.misses++;
      return undefined;
    }
    this.#index.markAccessed(slot);
    this.#counters.hits++;
    return recordValue(rec);
  }

  /** Whether a live, unexpired entry exists (does not count as a read). */
  has(key: string | Buffer): boolean {
    this.#checkOpen();
    const slot = this.#find(toKey(key));
    if (slot < 0) return false;
    const expiresAt = recordExpiresAt(this.#probeRecord!);
    this.#probeRecord = undefined;
    return expiresAt === 0 || !this.#expired(expiresAt, slot);
  }

  getMany(keys: readonly (string | Buffer)[]): unknown[] {
    if (!Array.isArray(keys)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'getMany: keys must be an array');
    return keys.map((k) => this.get(k));
  }

  /**
   * The value, loading it on a miss with `loader` and caching what it returns (undefined is not
   * cached). Concurrent fetches of one key share one load.
   */
  async fetch<T>(key: string | Buffer, loader: (key: string | Buffer) => T | Promise<T>, options?: SetOptions): Promise<T | undefined> {
    if (typeof loader !== 'function') throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'fetch: loader must be a function');
    const k = toKey(key);
    checkTtl(options);
    const hit = this.get(key);
    if (hit !== undefined) return hit as T;
    const id = k.isString ? `s${k.string}` : `b${Buffer.from(k.bytes!).toString('latin1')}`;
    const pending = this.#inflight.get(id);
    if (pending !== undefined) return pending as Promise<T | undefined>;
    const load = (async () => {
      try {
        const value = await loader(key);
        if (value !== undefined && !this.#closed) this.set(key, value, options);
        return value;
      } finally {
        this.#inflight.delete(id);
      }
    })();
    this.#inflight.set(id, load);
    return load;
  }

  /** Entries (not yet evicted; possibly expired but not read since) in the index. */
  get size(): number {
    return this.#index.size;
  }

  /**
   * Keys of live, unexpired entries, read lazily over a snapshot of the index taken at the
   * call. Entries set, deleted, evicted or reinserted (moved) during the iteration may or may
   * not be seen; the others are seen exactly once.
   */
  *keys(): Generator<string | Buffer, void, undefined> {
    for (const rec of this.#records()) yield recordKey(rec);
  }

  *entries(): Generator<[string | Buffer, unknown], void, undefined> {
    for (const rec of this.#records()) yield [recordKey(rec), recordValue(rec)];
  }

  *values(): Generator<unknown, void, undefined> {
    for (const rec of this.#records()) yield recordValue(rec);
  }

  [Symbol.iterator](): Generator<[string | Buffer, unknown], void, undefined> {
    return this.entries();
  }

  // ---- writes ------------------------------------------------------------------------------

  /** Stores the value (a set of undefined deletes the key). Durable after `flush()`. */
  set(key: string | Buffer, value: unknown, options?: SetOptions): this {
    this.#checkOpen();
    const k = toKey(key);
    const ttl = checkTtl(options);
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    const v = encodeValue(value);
    const length = recordLength(k, v);
    if (length > this.#store.maxObjectSize) {
      throw new ZnsSlabError(ErrorCode.OBJECT_TOO_LARGE, `the entry takes ${length} bytes (key, value and a 20-byte header); this cache's largest is ${this.#store.maxObjectSize}`);
    }
    const now = this.#clock();
    if (now >= this.#nextExpiry) this.#expireDue(now);
    const expiresAt = ttl > 0 ? now + ttl : 0;
    const epoch = expiresAt > 0 ? this.#bucketFor(expiresAt) : this.#current;
    if (this.#scratch.length < length) this.#scratch = Buffer.alloc(Math.max(length, this.#scratch.length * 2));
    writeRecord(this.#scratch, k, v, expiresAt, this.#nextSequence++);
    const handle = this.#put(this.#scratch.subarray(0, length), epoch);
    let old: bigint | undefined;
    try {
      this.#probe = k;
      old = this.#index.set(hashOf(k), handle, this.#matches);
    } catch (err) {
      this.#store.free(handle); // nothing stored half-way
      throw err;
    } finally {
      this.#probeRecord = undefined;
    }
    if (old !== undefined) this.#store.free(old);
    this.#counters.sets++;
    this.#counters.userBytes += k.byteLength + v.byteLength;
    this.#changes++;
    this.#afterWrite();
    return this;
  }

  setMany(entries: Iterable<readonly [string | Buffer, unknown, SetOptions?]>): void {
    if (entries === null || typeof (entries as Iterable<unknown>)?.[Symbol.iterator] !== 'function') {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'setMany: entries must be an iterable of [key, value, options?]');
    }
    for (const [key, value, options] of entries) this.set(key, value, options);
  }

  /** Removes the key; true if it was there. Durable after `flush()`. */
  delete(key: string | Buffer): boolean {
    this.#checkOpen();
    const slot = this.#find(toKey(key));
    if (slot < 0) return false;
    this.#probeRecord = undefined;
    this.#remove(slot);
    this.#counters.deletes++;
    return true;
  }

  /** Removes every entry: every epoch closes and its zones reset. Durable on return. */
  clear(): void {
    this.#checkOpen();
    // A failed commit still closes each epoch in memory (see #closeEpoch): go on through all
    // of them, so the cache and the store agree, then report the first failure.
    let failure: unknown;
    for (const epoch of [...this.#epochs.values()]) {
      try {
        this.#store.epochClose(epoch.id);
      } catch (err) {
        failure ??= err;
      }
      assert(this.#store.epochState(epoch.id) === EpochState.CLOSED, `epoch ${epoch.id} closed in memory`);
    }
    this.#epochs.clear();
    this.#buckets.clear();
    this.#nextExpiry = Infinity;
    this.#heldBytes = 0;
    this.#changes += this.#index.size + 1;
    this.#index.clear();
    this.#slabEpoch.fill(0);
    this.#current = this.#addEpoch(this.#store.epochCurrent(), 0, 0);
    if (failure !== undefined) throw failure;
    this.#writeDescriptor();
  }

  // ---- durability --------------------------------------------------------------------------

  /** Every set and delete before it is durable when it returns. */
  flush(): void {
    this.#checkOpen();
    const now = this.#clock();
    if (now >= this.#nextExpiry) this.#expireDue(now);
    this.#store.flush();
    if (this.#changes > 0 && this.#changes >= this.#index.size * CHECKPOINT_CHANGE_FRACTION) this.#checkpoint();
    this.#writeDescriptor();
  }

  /** Flushes, writes a checkpoint and closes. Idempotent. */
  close(): void {
    if (this.#closed) return;
    try {
      this.flush();
      if (this.#changes > 0) this.#checkpoint();
      this.#writeDescriptor();
    } finally {
      this.#closed = true;
      this.#store.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * @internal For the simulator and crash tests: the process dies here. Nothing is flushed,
   * checkpointed or committed (Store.abandon).
   */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#store.abandon();
  }

  // ---- observability -----------------------------------------------------------------------

  stats(): CacheStats {
    this.#checkOpen();
    const c = this.#counters;
    const deviceBytes = this.#store.statsGlobal().counters.deviceBytesWritten;
    const lookups = c.hits + c.misses;
    const indexBytes = this.#index.bytes + this.#slabEpoch.byteLength;
    return {
      entries: this.#index.size,
      hits: c.hits,
      misses: c.misses,
      hitRatio: lookups === 0 ? null : c.hits / lookups,
      sets: c.sets,
      deletes: c.deletes,
      evictions: { entries: c.evictedEntries, bytes: c.evictedBytes, epochs: c.evictedEpochs },
      reinsertions: { entries: c.reinsertedEntries, bytes: c.reinsertedBytes },
      expirations: { entries: c.expiredEntries, epochs: c.expiredEpochs },
      userBytes: c.userBytes,
      deviceBytes,
      writeAmplification: c.userBytes === 0 ? null : deviceBytes / c.userBytes,
      heldBytes: this.#heldBytes,
      maxBytes: this.#maxBytes,
      segmentBytes: this.#segmentBytes,
      epochs: this.#epochs.size,
      ttlBuckets: this.#buckets.size,
      index: { bytes: indexBytes, bytesPerEntry: this.#index.size === 0 ? null : indexBytes / this.#index.size, capacity: this.#index.capacity },
      checkpoints: c.checkpoints,
    };
  }

  /** The store underneath, for its own stats (statsGlobal, statsZones); do not write to it. */
  get store(): Store {
    return this.#store;
  }

  /**
   * Recounts the cache against the store and throws ERR_INTERNAL on the first difference: every
   * index entry is a live object of the epoch the cache thinks, and every live object is an
   * entry. O(entries) with a read each: for tests and the simulator.
   */
  verify(): void {
    this.#checkOpen();
    this.#store.verify();
    this.#index.verify();
    const live = this.#store.epochsLive();
    assert(live.length === this.#epochs.size && live.every((id) => this.#epochs.has(id)), `cache epochs [${[...this.#epochs.keys()]}] are the store's live epochs [${live}]`);
    assert(this.#current.id === this.#store.epochCurrent(), 'the cache writes into the store\'s current epoch');
    let objects = 0;
    let held = 0;
    for (const epoch of this.#epochs.values()) {
      for (const _ of this.#store.handles(epoch.id)) objects++;
      held += epoch.bytes;
      if (epoch.bucketEnd !== 0) assert(this.#buckets.get(epoch.bucketEnd) === epoch, `bucket epoch ${epoch.id} is listed under its end`);
    }
    assert(held === this.#heldBytes, `held bytes ${this.#heldBytes}, recounted ${held}`);
    assert(objects === this.#index.size, `${this.#index.size} entries in the index, ${objects} live objects in the store`);
    for (const [hash, handle] of this.#index.entries()) {
      assert(this.#store.isLive(handle), `index entry ${handle} is a live object`);
      const epoch = this.#store.epochOf(handle);
      assert(this.#slabEpoch[Number(handle >> 42n)] === epoch, `slab of ${handle} is in epoch ${epoch}`);
      const rec = this.#read(handle);
      const key = recordKey(rec);
      assert(hashOf(toKey(key)) === hash || (hashOf(toKey(key)) === 0 && hash === 1), `entry ${handle} is filed under its key's hash`);
    }
  }

  // ---- internals ---------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new ZnsSlabError(ErrorCode.CLOSED, `cache at ${this.path} is closed`);
  }

  #read(handle: bigint): Buffer {
    const rec = this.#store.get(handle);
    checkRecord(rec);
    return rec;
  }

  /** The key's slot, with its record in #probeRecord; -1 when absent. */
  #find(k: Key): number {
    this.#probe = k;
    this.#probeRecord = undefined;
    return this.#index.find(hashOf(k), this.#matches);
  }

  /** An entry found expired on read is removed at once (its bucket may close later). */
  #expired(expiresAt: number, slot: number): boolean {
    const now = this.#clock();
    if (now < expiresAt) return false;
    this.#remove(slot);
    this.#counters.expiredEntries++;
    if (now >= this.#nextExpiry) this.#expireDue(now);
    return true;
  }

  #remove(slot: number): void {
    const handle = this.#index.handleAt(slot);
    this.#index.deleteAt(slot);
    this.#store.free(handle);
    this.#changes++;
  }

  /** Puts a record; a full device first gives back the oldest epochs. */
  #put(record: Buffer, epoch: CacheEpoch): bigint {
    for (;;) {
      try {
        const handle = this.#store.put(record, epoch === this.#current ? undefined : { epoch: epoch.id });
        this.#placed(handle, epoch);
        return handle;
      } catch (err) {
        if (!(err instanceof ZnsSlabError && err.code === ErrorCode.DEVICE_FULL)) throw err;
        const victim = this.#oldestEvictable(epoch);
        if (victim === undefined) throw err;
        this.#evict(victim, false);
      }
    }
  }

  /** Bookkeeping of a new object: its slab's epoch, and the epoch's bytes. */
  #placed(handle: bigint, epoch: CacheEpoch): void {
    const hi = Number(handle >> 32n);
    const lo = Number(handle & 0xffffffffn);
    const slabId = hi >>> SLAB_ID_SHIFT;
    if (slabId >= this.#slabEpoch.length) {
      const grown = new Uint32Array(Math.max(slabId + 1, this.#slabEpoch.length * 2));
      grown.set(this.#slabEpoch);
      this.#slabEpoch = grown;
    }
    this.#slabEpoch[slabId] = epoch.id;
    const stride = this.#strides[(lo >>> 2) & 0xff]!;
    epoch.bytes += stride;
    this.#heldBytes += stride;
  }

  /** Rotates the current epoch when it is full, and evicts while the cache holds too much. */
  #afterWrite(): void {
    if (this.#current.bytes >= this.#segmentBytes) {
      const full = this.#current;
      this.#current = this.#addEpoch(this.#store.epochAdvance(), 0, 0);
      // Its partial slabs go to the device now: RAM holds only the current epoch's (and the
      // TTL buckets') slabs, not every live epoch's until the next flush.
      this.#store.epochSeal(full.id);
    }
    while (this.#heldBytes > this.#maxBytes) {
      const victim = this.#oldestEvictable(this.#current);
      if (victim === undefined) break;
      this.#evict(victim, true);
    }
  }

  #oldestEvictable(keep: CacheEpoch): CacheEpoch | undefined {
    for (const epoch of this.#epochs.values()) if (epoch !== this.#current && epoch !== keep) return epoch;
    return undefined;
  }

  /**
   * Closes an epoch: its entries leave the index (in one sweep, no device reads), except those
   * read since they were written, which are written again into the current epoch while the
   * budget lasts. Then the store resets its zones.
   */
  #evict(victim: CacheEpoch, reinsert: boolean): void {
    let budget = reinsert && this.#reinsertion ? victim.bytes * REINSERTION_BUDGET_FRACTION : 0;
    const now = budget > 0 ? this.#clock() : 0;
    const slabEpoch = this.#slabEpoch;
    const index = this.#index;
    const target = this.#current;
    let reinserted = 0;
    const evicted = this.#retire(victim, (slot, hi) => {
      if (slabEpoch[hi >>> SLAB_ID_SHIFT] !== victim.id) return true;
      if (budget <= 0 || !index.accessedAt(slot)) return false;
      let handle: bigint;
      try {
        const rec = this.#read(index.handleAt(slot));
        const expiresAt = recordExpiresAt(rec);
        if (expiresAt !== 0 && expiresAt <= now) return false;
        handle = this.#store.put(rec);
      } catch {
        // No room or a failing device: reinsertion is best effort, the rest goes as evicted
        // (the store keeps any slab it could not write, and the next flush reports the error).
        budget = 0;
        return false;
      }
      this.#placed(handle, target);
      index.replaceAt(slot, handle);
      const stride = this.#strides[(Number(handle & 0xffffffffn) >>> 2) & 0xff]!;
      budget -= stride;
      reinserted++;
      this.#counters.reinsertedEntries++;
      this.#counters.reinsertedBytes += stride;
      return true;
    }, () => reinserted > 0);
    this.#changes += evicted + reinserted;
    this.#counters.evictedEntries += evicted;
    this.#counters.evictedBytes += victim.bytes;
    this.#counters.evictedEpochs++;
  }

  /** Closes every TTL bucket whose end has passed. */
  #expireDue(now: number): void {
    for (const epoch of [...this.#buckets.values()]) {
      if (epoch.bucketEnd > now) continue;
      const id = epoch.id;
      const removed = this.#retire(epoch, (_slot, hi) => this.#slabEpoch[hi >>> SLAB_ID_SHIFT] !== id, () => false);
      this.#changes += removed;
      this.#counters.expiredEntries += removed;
      this.#counters.expiredEpochs++;
    }
  }

  /**
   * Takes an epoch's entries out of the index (`keep` decides, and never throws), then closes
   * it in the store. The close commits every change so far, so first every other epoch's
   * partial slabs are sealed: an overwrite's new record must not stay in memory while the
   * commit makes the free of the old one durable. A failure there throws before anything
   * changed. Records reinserted by `keep` are sealed too when `sealAgain` says so; if that
   * fails they wait for the next flush, and a crash before it loses them as if evicted. If the
   * close's commit fails, the store has closed the epoch in memory all the same (its next
   * flush makes that durable), and so does the cache before the error goes on.
   */
  #retire(victim: CacheEpoch, keep: (slot: number, hi: number, lo: number) => boolean, sealAgain: () => boolean): number {
    for (const other of this.#epochs.values()) if (other !== victim) this.#store.epochSeal(other.id);
    const removed = this.#index.sweep(keep);
    if (sealAgain()) {
      try {
        this.#store.epochSeal(this.#current.id);
      } catch {
        // see above: best effort
      }
    }
    try {
      this.#store.epochClose(victim.id);
    } finally {
      assert(this.#store.epochState(victim.id) === EpochState.CLOSED, `epoch ${victim.id} is closed in memory once its entries left the index`);
      this.#forget(victim);
    }
    return removed;
  }

  #forget(epoch: CacheEpoch): void {
    this.#epochs.delete(epoch.id);
    this.#heldBytes -= epoch.bytes;
    if (epoch.bucketEnd !== 0) {
      this.#buckets.delete(epoch.bucketEnd);
      this.#nextExpiry = Math.min(Infinity, ...[...this.#buckets.keys()]);
    }
  }

  /**
   * The epoch for entries expiring at `expiresAt`: the bucket ending at or after it, at least
   * 1/8 of the TTL wide. Past the bucket limit, the nearest later bucket, else the current epoch.
   */
  #bucketFor(expiresAt: number): CacheEpoch {
    const ttl = expiresAt - this.#clock();
    const width = Math.max(this.#ttlResolutionMs, 2 ** Math.ceil(Math.log2(Math.max(1, ttl / 8))));
    const end = Math.ceil(expiresAt / width) * width;
    const existing = this.#buckets.get(end);
    if (existing !== undefined) return existing;
    if (this.#buckets.size >= this.#maxBuckets) {
      let best: CacheEpoch | undefined;
      for (const b of this.#buckets.values()) if (b.bucketEnd >= expiresAt && (best === undefined || b.bucketEnd < best.bucketEnd)) best = b;
      return best ?? this.#current;
    }
    const epoch = this.#addEpoch(this.#store.epochCreate(), 0, end);
    // Named before anything is put in it: after a crash the store either never heard of the
    // epoch, or the descriptor says what it is.
    this.#writeDescriptor();
    return epoch;
  }

  #addEpoch(id: number, bytes: number, bucketEnd: number): CacheEpoch {
    const epoch: CacheEpoch = { id, bytes, bucketEnd };
    this.#epochs.set(id, epoch);
    this.#heldBytes += bytes;
    if (bucketEnd !== 0) {
      this.#buckets.set(bucketEnd, epoch);
      this.#nextExpiry = Math.min(this.#nextExpiry, bucketEnd);
    }
    return epoch;
  }

  /** A snapshot of the index's handles, then each live, unexpired entry's record. */
  *#records(): Generator<Buffer, void, undefined> {
    this.#checkOpen();
    const { table } = this.#index.arrays();
    const handles: bigint[] = [];
    for (let s = 0; s < table.length; s += 3) if (table[s] !== 0) handles.push((BigInt(table[s + 1]!) << 32n) | BigInt(table[s + 2]!));
    for (const handle of handles) {
      this.#checkOpen();
      if (!this.#store.isLive(handle)) continue;
      const rec = this.#read(handle);
      const expiresAt = recordExpiresAt(rec);
      if (expiresAt !== 0 && expiresAt <= this.#clock()) continue;
      yield rec;
    }
  }

  #checkpoint(): void {
    writeCheckpoint(this.path, this.#index, this.#store.storeId, this.#nextSequence);
    this.#changes = 0;
    this.#counters.checkpoints++;
  }

  #writeDescriptor(): void {
    const d: Descriptor = {
      format: DESCRIPTOR_FORMAT,
      version: DESCRIPTOR_VERSION,
      maxBytes: this.#maxBytes,
      ttlResolutionMs: this.#ttlResolutionMs,
      reinsertion: this.#reinsertion,
      buckets: [...this.#buckets.values()].map((e) => [e.id, e.bucketEnd]),
      counters: this.#counters,
      entries: this.#index.size,
      heldBytes: this.#heldBytes,
      indexBytes: this.#index.bytes + this.#slabEpoch.byteLength,
      savedAt: new Date().toISOString(),
    };
    writeDescriptorFile(this.path, d);
  }

  /**
   * Rebuilds the in-memory state from the store: its live epochs (TTL buckets named by the
   * descriptor), the checkpoint's entries that are still live objects, and a read of every
   * live object the checkpoint lacks (sealed after it). Of two records of one key (an
   * overwrite whose free was lost in a crash), the later set wins and the other is freed.
   */
  #load(saved: Descriptor | undefined): void {
    const store = this.#store;
    const bucketOf = new Map(saved?.buckets ?? []);
    for (const id of store.epochsLive()) {
      const end = bucketOf.get(id) ?? 0;
      this.#addEpoch(id, store.statsEpoch(id).deviceBytes, end !== 0 && !this.#buckets.has(end) ? end : 0);
    }
    const current = this.#epochs.get(store.epochCurrent());
    assert(current !== undefined && current.bucketEnd === 0, 'the store\'s current epoch is a FIFO epoch');
    this.#current = current;

    // Live objects by slab: the generation and class bits of the handle, and which slots.
    const slabs = new Map<number, { hi: number; loBase: number; live: Uint32Array }>();
    for (const epoch of this.#epochs.values()) {
      for (const handle of store.handles(epoch.id)) {
        const hi = Number(handle >> 32n);
        const lo = Number(handle & 0xffffffffn);
        const slabId = hi >>> SLAB_ID_SHIFT;
        let s = slabs.get(slabId);
        if (s === undefined) {
          s = { hi, loBase: (lo & ~SLOT_MASK_LO) >>> 0, live: new Uint32Array(8) };
          slabs.set(slabId, s);
          this.#placedSlab(slabId, epoch.id);
        }
        const slot = (lo >>> 10) & 0xff;
        s.live[slot >>> 5]! |= 1 << (slot & 31);
      }
    }
    const checkpoint = readCheckpoint(this.path, store.storeId);
    if (checkpoint !== undefined) {
      this.#index = checkpoint.index;
      this.#nextSequence = Math.max(this.#nextSequence, checkpoint.nextSequence);
      // Keep the entries that are still live objects; mark them found.
      const dropped = this.#index.sweep((_slot, hi, lo) => {
        const s = slabs.get(hi >>> SLAB_ID_SHIFT);
        if (s === undefined || s.hi !== hi || s.loBase !== (lo & ~SLOT_MASK_LO) >>> 0) return false;
        const slot = (lo >>> 10) & 0xff;
        const bit = 1 << (slot & 31);
        if ((s.live[slot >>> 5]! & bit) === 0) return false;
        s.live[slot >>> 5]! &= ~bit;
        return true;
      });
      this.#changes += dropped;
    }
    // Whatever is live and not in the index yet: read it.
    for (const s of slabs.values()) {
      for (let slot = 0; slot < 256; slot++) {
        if ((s.live[slot >>> 5]! & (1 << (slot & 31))) === 0) continue;
        const lo = (s.loBase | (slot << 10)) >>> 0;
        this.#replay((BigInt(s.hi) << 32n) | BigInt(lo));
      }
    }
    const now = this.#clock();
    if (now >= this.#nextExpiry) this.#expireDue(now);
    this.#writeDescriptor();
  }

  #placedSlab(slabId: number, epoch: number): void {
    if (slabId >= this.#slabEpoch.length) {
      const grown = new Uint32Array(Math.max(slabId + 1, this.#slabEpoch.length * 2));
      grown.set(this.#slabEpoch);
      this.#slabEpoch = grown;
    }
    this.#slabEpoch[slabId] = epoch;
  }

  #replay(handle: bigint): void {
    const rec = this.#read(handle);
    const sequence = recordSequence(rec);
    this.#nextSequence = Math.max(this.#nextSequence, sequence + 1);
    const k = toKey(recordKey(rec));
    const slot = this.#find(k);
    this.#changes++;
    if (slot < 0) {
      this.#index.set(hashOf(k), handle, () => false);
      return;
    }
    const other = this.#probeRecord!;
    this.#probeRecord = undefined;
    if (recordSequence(other) >= sequence) {
      this.#store.free(handle);
      return;
    }
    this.#store.free(this.#index.handleAt(slot));
    this.#index.replaceAt(slot, handle);
  }
}

function hashOf(k: Key): number {
  return k.isString ? hashString(k.string) : hashKey(k.bytes!);
}

function checkTtl(options: SetOptions | undefined): number {
  if (options === undefined) return 0;
  if (typeof options !== 'object' || options === null) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `options must be an object, got ${typeof options}`);
  const ttl = options.ttl;
  if (ttl === undefined) return 0;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `options.ttl must be a non-negative number of milliseconds, got ${String(ttl)}`);
  }
  return ttl;
}

// ---- opening -------------------------------------------------------------------------------

interface ResolvedOptions {
  maxBytes: number;
  reinsertion: boolean;
  ttlResolutionMs: number;
  clock: () => number;
}

const CACHE_OPTION_KEYS: readonly string[] = ['maxBytes', 'reinsertion', 'ttlResolutionMs', 'clock', 'device', 'geometry'];

function readDescriptor(dir: string): Descriptor | undefined {
  const file = path.join(dir, DESCRIPTOR_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(err, `reading ${file}`);
  }
  let d: Descriptor;
  try {
    d = JSON.parse(text) as Descriptor;
  } catch (err) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (d.format !== DESCRIPTOR_FORMAT) throw new ZnsSlabError(ErrorCode.NOT_A_CACHE, `${file} is not a zns-slab cache descriptor`);
  if (d.version !== DESCRIPTOR_VERSION) throw new ZnsSlabError(ErrorCode.FORMAT_VERSION, `${file} is cache format ${d.version}; this release reads ${DESCRIPTOR_VERSION}`);
  return d;
}

function writeDescriptorFile(dir: string, d: Descriptor): void {
  const file = path.join(dir, DESCRIPTOR_FILE);
  const tmp = `${file}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(d, null, 1));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    syncDir(dir);
  } catch (err) {
    throw fsError(err, `writing ${file}`);
  }
}

/** A closed (or running) cache's counters as of its last flush, from its descriptor. */
export interface SavedCacheStats {
  savedAt: string | null;
  entries: number | null;
  maxBytes: number;
  heldBytes: number | null;
  ttlBuckets: number;
  hits: number;
  misses: number;
  hitRatio: number | null;
  sets: number;
  deletes: number;
  evictions: { entries: number; bytes: number; epochs: number };
  reinsertions: { entries: number; bytes: number };
  expirations: { entries: number; epochs: number };
  userBytes: number;
  indexBytesPerEntry: number | null;
  checkpoints: number;
}

/** Reads a cache folder's saved stats without opening it (for `zns-slab stats`); undefined for a plain store. */
export function readCacheStats(dir: string): SavedCacheStats | undefined {
  const d = readDescriptor(dir);
  if (d === undefined) return undefined;
  const c = { ...newCounters(), ...d.counters };
  const lookups = c.hits + c.misses;
  return {
    savedAt: d.savedAt ?? null,
    entries: d.entries ?? null,
    maxBytes: d.maxBytes,
    heldBytes: d.heldBytes ?? null,
    ttlBuckets: d.buckets.length,
    hits: c.hits,
    misses: c.misses,
    hitRatio: lookups === 0 ? null : c.hits / lookups,
    sets: c.sets,
    deletes: c.deletes,
    evictions: { entries: c.evictedEntries, bytes: c.evictedBytes, epochs: c.evictedEpochs },
    reinsertions: { entries: c.reinsertedEntries, bytes: c.reinsertedBytes },
    expirations: { entries: c.expiredEntries, epochs: c.expiredEpochs },
    userBytes: c.userBytes,
    indexBytesPerEntry: d.entries && d.indexBytes !== undefined ? d.indexBytes / d.entries : null,
    checkpoints: c.checkpoints,
  };
}

function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}

/** The emulated device a new cache makes for itself: zones of about 1/16 of maxBytes. */
export function cacheGeometry(maxBytes: number): Partial<DeviceGeometry> {
  const zone = Math.min(MAX_ZONE_BYTES, Math.max(MIN_ZONE_BYTES, pow2Floor(maxBytes / EPOCHS_PER_CACHE)));
  const zones = 2 * Math.ceil(maxBytes / zone) + DEFAULT_EMULATED_GEOMETRY.maxActiveZones + 8;
  return { zoneSize: zone, zoneCapacity: zone, zoneCount: zones };
}

/**
 * Opens the cache in folder `dir`, creating it (with an emulated zoned device sized for
 * `maxBytes`) when it does not exist. The folder is a zns-slab store made for the cache:
 * `openStore` refuses to write it (ERR_IS_A_CACHE), and `openCache` refuses a plain store
 * (ERR_NOT_A_CACHE).
 */
export function openCache(dir: string, options: CacheOptions = {}): Cache {
  return openCacheWith(dir, options, {});
}

/** @internal `openCache` with the store's fault-injection hooks (the simulator's). */
export function openCacheWith(dir: string, options: CacheOptions, internal: { catalogHooks?: CatalogHooks }): Cache {
  if (typeof dir !== 'string' || dir.length === 0) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openCache: dir must be a folder path');
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openCache: options must be an object');
  for (const key of Object.keys(options)) {
    if (!CACHE_OPTION_KEYS.includes(key)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openCache: unknown option '${key}' (options are ${CACHE_OPTION_KEYS.join(', ')})`);
  }
  const { maxBytes, reinsertion, ttlResolutionMs, clock } = options;
  if (maxBytes !== undefined && (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < MIN_MAX_BYTES)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openCache: options.maxBytes must be an integer of at least ${MIN_MAX_BYTES} (4 MiB), got ${String(maxBytes)}`);
  }
  if (reinsertion !== undefined && typeof reinsertion !== 'boolean') throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openCache: options.reinsertion must be a boolean');
  if (ttlResolutionMs !== undefined && (typeof ttlResolutionMs !== 'number' || !Number.isFinite(ttlResolutionMs) || ttlResolutionMs < 1)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openCache: options.ttlResolutionMs must be a number of at least 1, got ${String(ttlResolutionMs)}`);
  }
  if (clock !== undefined && typeof clock !== 'function') throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openCache: options.clock must be a function returning ms');

  const exists = fs.existsSync(path.join(dir, 'catalog.db'));
  const saved = exists ? readDescriptor(dir) : undefined;
  const resolvedMax = maxBytes ?? saved?.maxBytes;
  if (resolvedMax === undefined) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openCache: options.maxBytes is required to create a cache');
  // No zone GC: the cache gives space back by evicting whole epochs (regions, as in Navy), and
  // moving entries that FIFO eviction drops soon after would only add writes.
  const storeOptions: StoreOptions = { gc: false };
  if (options.device !== undefined) storeOptions.device = options.device;
  if (options.geometry !== undefined) storeOptions.geometry = options.geometry;
  else if (!exists && options.device === undefined) storeOptions.geometry = cacheGeometry(resolvedMax);
  const store = openStoreWith(dir, storeOptions, { purpose: CACHE_PURPOSE, ...(internal.catalogHooks ? { catalogHooks: internal.catalogHooks } : {}) });
  try {
    const g = store.device.geometry;
    const needZones = Math.ceil(resolvedMax / g.zoneCapacity) + 4;
    if (g.zoneCount < needZones) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openCache: maxBytes ${resolvedMax} needs at least ${needZones} zones of ${g.zoneCapacity} bytes; the device has ${g.zoneCount}`);
    }
    return new Cache(
      dir,
      store,
      {
        maxBytes: resolvedMax,
        reinsertion: reinsertion ?? saved?.reinsertion ?? true,
        ttlResolutionMs: ttlResolutionMs ?? saved?.ttlResolutionMs ?? DEFAULT_TTL_RESOLUTION_MS,
        clock: clock ?? (() => Date.now()), // looked up per call: fake timers installed later apply
      },
      saved,
    );
  } catch (err) {
    store.close();
    throw err;
  }
}
