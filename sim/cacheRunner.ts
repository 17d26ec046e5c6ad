/**
 * The cache's simulated run: random operations against the real cache (cache/cache.ts, on a
 * real SQLite catalog and the emulated device wrapped in the simulator's FaultyDevice) held
 * against a plain model, a map of key -> { value, expiresAt } plus what the last successful
 * flush made durable. Deterministic: the same seed and operations give the same run (the
 * cache's clock is the model's, moved only by `tick`).
 *
 * What the model allows (docs/CACHE.md, Durability and Simulation):
 * - in a session, get/has/entries() give exactly the model's unexpired entries; an entry the
 *   cache evicted (whole epochs, when it holds more than maxBytes) is learned from the
 *   eviction counters and `has`, and is gone from then on;
 * - after a clean close and reopen: exactly the model's unexpired entries;
 * - after a crash, per key: its durable value, or a value set (or tried) after the last
 *   flush; absent only if it was absent at the flush, deleted (or a delete tried) since, or
 *   its durable record may be gone (its epoch evicted or its entry reinsertion-moved since the
 *   flush, a clear or an eviction under way when the crash struck) or expired;
 * - never another key's value, a value never set for that key, a value overwritten or deleted
 *   before the last flush, or an expired value;
 * - `cache.verify()` after every operation and every reopen.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { type Cache, openCacheWith } from '../cache/cache.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import type { DeviceGeometry } from '../zns/device.js';
import { createEmulatedDevice, openEmulatedDevice } from '../zns/emulated.js';
import { CrashSignal, FaultController, FaultyDevice, type FaultKind, type FaultTarget } from './faults.js';
import { Rng, payloadFor } from './rng.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** The cache's clock at the start of every run (ms). */
export const CACHE_SIM_EPOCH_MS = 1_700_000_000_000;

// ---- configurations ---------------------------------------------------------------------------

export interface CacheSimConfig {
  /** Short name for reports. */
  name: string;
  maxBytes: number;
  geometry: DeviceGeometry;
  reinsertion: boolean;
  ttlResolutionMs: number;
  /** Keys 0..keySpace-1: small, so overwrites and deletes hit. */
  keySpace: number;
  /** maxBytes small against the writes: evictions are expected (values run larger). */
  evicting: boolean;
}

function geometryFor(maxBytes: number, zone: number, maxActiveZones: number, maxOpenZones: number): DeviceGeometry {
  return {
    zoneCount: 2 * Math.ceil(maxBytes / zone) + maxActiveZones + 8,
    zoneSize: zone,
    zoneCapacity: zone,
    logicalBlockSize: 4096,
    maxOpenZones,
    maxActiveZones,
  };
}

/** Four shapes, by seed: two where nothing is evicted (exact checks), two where eviction runs often (with and without reinsertion). */
export function cacheConfigFor(seed: number): CacheSimConfig {
  switch (seed % 4) {
    case 0:
      return { name: 'large/40 keys', maxBytes: 32 * MiB, geometry: geometryFor(32 * MiB, MiB, 10, 10), reinsertion: true, ttlResolutionMs: 1000, keySpace: 40, evicting: false };
    case 1:
      return { name: 'large/120 keys', maxBytes: 16 * MiB, geometry: geometryFor(16 * MiB, MiB, 6, 5), reinsertion: true, ttlResolutionMs: 100, keySpace: 120, evicting: false };
    case 2:
      return { name: 'evicting/reinsert', maxBytes: 4 * MiB, geometry: geometryFor(4 * MiB, 512 * KiB, 8, 8), reinsertion: true, ttlResolutionMs: 250, keySpace: 60, evicting: true };
    default:
      return { name: 'evicting/no reinsert', maxBytes: 4 * MiB, geometry: geometryFor(4 * MiB, 512 * KiB, 7, 6), reinsertion: false, ttlResolutionMs: 1000, keySpace: 200, evicting: true };
  }
}

// ---- keys and values ------------------------------------------------------------------------

/**
 * Key `i`: mostly `key-<i>`; every fifth a Buffer with the bytes of the string key before it (a
 * different key: string and Buffer keys never meet); some non-ASCII strings.
 */
export function cacheKey(i: number): string | Buffer {
  if (i % 5 === 4) return Buffer.from(`key-${i - 1}`);
  if (i % 7 === 5) return `ключ-${i}-é`;
  return `key-${i}`;
}

function keyId(key: string | Buffer): string {
  return typeof key === 'string' ? `s${key}` : `b${key.toString('latin1')}`;
}

export type ValueKind = 'bytes' | 'string' | 'object' | 'number';

/**
 * Value number `n` of key `key`: every value carries its key and its number, so a value of
 * another key, or one never set, is told apart from the right one.
 */
export function cacheValue(key: number, n: number, kind: ValueKind, size: number): unknown {
  switch (kind) {
    case 'bytes':
      return Buffer.concat([Buffer.from(`${key}:${n}:`), payloadFor(n, size)]);
    case 'string': {
      const unit = ['a', 'é', '漢', 'z', '\u{1F600}'][n % 5]!;
      return `${key}:${n}:` + unit.repeat(Math.max(0, Math.floor(size / Buffer.byteLength(unit))));
    }
    case 'object':
      return {
        key,
        n,
        pad: 'p'.repeat(size),
        when: new Date(n * 1000),
        tags: new Set([key, `t${n}`]),
        byId: new Map<unknown, unknown>([[n, [key, 2n ** 70n + BigInt(n)]]]),
        big: BigInt(n) << 64n,
        list: [null, true, n + 0.5, 'é'],
        bin: payloadFor(n + 1, Math.min(size, 64)),
      };
    case 'number':
      return n * 4096 + key + 0.25;
  }
}

/** The key and number a value says it is; undefined when it is no value of this simulator's. */
export function identifyValue(value: unknown): { key: number; n: number } | undefined {
  const parse = (s: string) => {
    const m = /^(\d+):(\d+):/.exec(s);
    return m ? { key: Number(m[1]), n: Number(m[2]) } : undefined;
  };
  if (Buffer.isBuffer(value)) return parse(value.subarray(0, 32).toString('latin1'));
  if (typeof value === 'string') return parse(value.slice(0, 32));
  if (typeof value === 'number') return { key: Math.floor(value) % 4096, n: Math.floor(value / 4096) };
  if (typeof value === 'object' && value !== null && typeof (value as { key?: unknown }).key === 'number' && typeof (value as { n?: unknown }).n === 'number') {
    return { key: (value as { key: number }).key, n: (value as { n: number }).n };
  }
  return undefined;
}

// ---- operations -----------------------------------------------------------------------------

export type CacheOp =
  /** opts: 0 no options, 1 { ttl }, 2 {} (no ttl). */
  | { k: 'set'; key: number; kind: ValueKind; size: number; ttl: number; opts: 0 | 1 | 2 }
  | { k: 'get'; key: number }
  | { k: 'has'; key: number }
  /** viaUndefined: `set(key, undefined)`, lru-cache's delete. */
  | { k: 'delete'; key: number; viaUndefined: boolean }
  | { k: 'flush' }
  /** Moves the clock: TTL buckets pass. */
  | { k: 'tick'; ms: number }
  | { k: 'clear' }
  /** entries(): the whole cache against the model. */
  | { k: 'scan' }
  | { k: 'reopen' }
  | { k: 'crash'; pick: number }
  | { k: 'crashAt'; after: number; pick: number }
  | { k: 'fault'; target: FaultTarget; kind: FaultKind; after: number };

function pickKey(rng: Rng, space: number): number {
  // Half the operations go to a hot quarter: overwrites and deletes of live keys.
  return rng.chance(0.5) ? rng.below(Math.max(1, Math.floor(space / 4))) : rng.below(space);
}

function valueSize(rng: Rng, evicting: boolean, max: number): number {
  const r = rng.below(100);
  let size: number;
  if (evicting) {
    if (r < 30) size = rng.below(200);
    else if (r < 65) size = 200 + rng.below(8_000);
    else if (r < 95) size = 8_000 + rng.below(56_000);
    else size = 64_000 + rng.below(Math.max(1, max - 64_000));
  } else if (r < 70) size = rng.below(200);
  else if (r < 94) size = 200 + rng.below(4_000);
  else if (r < 99) size = 4_000 + rng.below(40_000);
  else size = 44_000 + rng.below(Math.max(1, max - 44_000));
  return Math.min(size, max);
}

const TTLS = [1, 40, 250, 900, 1_000, 2_500, 8_000, 30_000, 120_000] as const;

export function generateCacheOp(rng: Rng, cfg: CacheSimConfig, faults: boolean, maxValue: number): CacheOp {
  const k = rng.weighted({
    set: 38,
    get: 24,
    has: 7,
    delete: 7,
    flush: 6,
    tick: 4,
    // Rarer where eviction is the point: a clear empties the cache.
    clear: cfg.evicting ? 0.06 : 0.25,
    scan: 0.6,
    reopen: 0.8,
    crash: 1.2,
    crashAt: 1.2,
    fault: faults ? 2.5 : 0,
  });
  switch (k) {
    case 'set': {
      const withTtl = rng.chance(0.3);
      const ttl = withTtl ? (rng.chance(0.8) ? TTLS[rng.below(TTLS.length)]! : 1 + rng.below(200_000)) : 0;
      const kind = rng.weighted({ bytes: 3, string: 2, object: 3, number: 0.5 } as const);
      return { k, key: pickKey(rng, cfg.keySpace), kind, size: valueSize(rng, cfg.evicting, maxValue), ttl, opts: withTtl ? 1 : rng.chance(0.3) ? 2 : 0 };
    }
    case 'get':
    case 'has':
      return { k, key: pickKey(rng, cfg.keySpace) };
    case 'delete':
      return { k, key: pickKey(rng, cfg.keySpace), viaUndefined: rng.chance(0.15) };
    case 'tick':
      return { k, ms: [1, 37, 400, 1000, 1000, 3100][rng.below(6)]! + rng.below(500) };
    case 'crash':
      return { k, pick: rng.u32() };
    case 'crashAt':
      return { k, after: rng.below(10), pick: rng.u32() };
    case 'fault': {
      const target = rng.weighted({ read: 1.5, write: 3, flush: 2, reset: 1.5, finish: 0.5, commit: 2.5 } as const);
      const kind = target === 'write' ? rng.weighted({ eio: 2, enospc: 1, short: 2 } as const) : target === 'commit' ? rng.weighted({ eio: 1, enospc: 1 } as const) : 'eio';
      return { k, target, kind, after: rng.below(6) };
    }
    default:
      return { k } as CacheOp;
  }
}

// ---- the model ------------------------------------------------------------------------------

/** One value set: the model's copy (regenerated from key, n, kind, size). */
interface Val {
  n: number;
  key: number;
  kind: ValueKind;
  size: number;
  /** ms on the cache's clock; 0: never. */
  expiresAt: number;
  /** A get returned it (its access bit may be set: a reinsertion candidate). Only ever set. */
  accessed: boolean;
  /**
   * The epoch its record is in, when the model knows: an entry without a TTL goes to the store's
   * current epoch. Undefined for TTL entries (their bucket's epoch) and after a reinsertion may
   * have moved it.
   */
  epoch: number | undefined;
}

interface KeyState {
  /** What the cache holds now (in memory). */
  cur: Val | undefined;
  /** What the last successful flush (or clean close, or reopen) made durable. */
  durable: Val | undefined;
  /** Values set, or tried, since then: a crash may keep any of them. */
  since: Val[];
  /** Deleted, or a delete tried, or evicted, since then: a crash may lose it. */
  absentSince: boolean;
  /** Its durable record may be gone in ways the model cannot see (an eviction of its epoch, a reinsertion move, a clear or eviction cut short). */
  mayLose: boolean;
  /** The index may still hold an expired entry of the key (so a delete may return true). */
  ghost: boolean;
}

export class CacheSimFailure extends Error {
  constructor(message: string, readonly step: number) {
    super(message);
    this.name = 'CacheSimFailure';
  }
}

export interface CacheRunResult {
  ops: number;
  crashes: number;
  faults: number;
  /** Clean closes and reopens. */
  reopens: number;
  sets: number;
  gets: number;
  /** Keys checked after reopens (clean and crash). */
  checkedAfterReopen: number;
  verifies: number;
  evictedEntries: number;
  evictedEpochs: number;
  reinsertedEntries: number;
  expiredEpochs: number;
  /**
   * Sets that threw (on an injected fault) and yet stored their value: the fault struck after
   * the put, in the eviction or expiry the set ran. Counted, not failed: the caller is told of
   * the fault, and the key holds the value it asked for.
   */
  failedSetsThatStored: number;
  failure?: { step: number; message: string };
}

function emptyResult(): CacheRunResult {
  return { ops: 0, crashes: 0, faults: 0, reopens: 0, sets: 0, gets: 0, checkedAfterReopen: 0, verifies: 0, evictedEntries: 0, evictedEpochs: 0, reinsertedEntries: 0, expiredEpochs: 0, failedSetsThatStored: 0 };
}

export interface CacheRunOptions {
  /** Folder for the run (removed after); default: a fresh one under /dev/shm or the OS temp dir. */
  dir?: string;
  faults?: boolean;
  progress?: (step: number) => void;
}

interface Counts {
  evictedEntries: number;
  evictedEpochs: number;
  reinsertedEntries: number;
  expiredEpochs: number;
}

class CacheSim {
  readonly ctl = new FaultController();
  readonly result = emptyResult();
  readonly cfg: CacheSimConfig;
  private cache!: Cache;
  private device!: FaultyDevice;
  private readonly cacheDir: string;
  private readonly deviceDir: string;
  private readonly keys: KeyState[];
  private readonly keyIndexById = new Map<string, number>();
  private now = CACHE_SIM_EPOCH_MS;
  private nextValue = 1;
  private step = 0;
  /** Counters as of the last look (they survive reopen: the descriptor keeps them). */
  private counts: Counts = { evictedEntries: 0, evictedEpochs: 0, reinsertedEntries: 0, expiredEpochs: 0 };
  maxValue = 0;

  constructor(dir: string, seed: number) {
    this.cfg = cacheConfigFor(seed);
    this.cacheDir = path.join(dir, 'cache');
    this.deviceDir = path.join(dir, 'device');
    this.keys = Array.from({ length: this.cfg.keySpace }, () => ({ cur: undefined, durable: undefined, since: [], absentSince: false, mayLose: false, ghost: false }));
    for (let i = 0; i < this.cfg.keySpace; i++) this.keyIndexById.set(keyId(cacheKey(i)), i);
    createEmulatedDevice(this.deviceDir, this.cfg.geometry).close();
    this.open();
    // Room for the key, the record header and msgpack's overhead of an object value.
    this.maxValue = this.cache.store.maxObjectSize - 600;
  }

  fail(message: string): never {
    throw new CacheSimFailure(message, this.step);
  }

  private open(): void {
    this.ctl.enabled = false;
    try {
      this.device = new FaultyDevice(openEmulatedDevice(this.deviceDir), this.ctl);
      this.cache = openCacheWith(
        this.cacheDir,
        { maxBytes: this.cfg.maxBytes, clock: () => this.now, reinsertion: this.cfg.reinsertion, ttlResolutionMs: this.cfg.ttlResolutionMs, device: this.device },
        { catalogHooks: this.ctl.catalogHooks() },
      );
    } catch (err) {
      this.fail(`the cache refused to open: ${describeError(err)}`);
    } finally {
      this.ctl.enabled = true;
    }
  }

  private expired(v: Val): boolean {
    return v.expiresAt !== 0 && this.now >= v.expiresAt;
  }

  /** The value the model has for key `i` now, or undefined (absent or expired). */
  private live(i: number): Val | undefined {
    const v = this.keys[i]!.cur;
    return v === undefined || this.expired(v) ? undefined : v;
  }

  private describeVal(v: Val | undefined): string {
    if (v === undefined) return 'absent';
    return `value #${v.n} (${v.kind}, ${v.size} bytes${v.expiresAt === 0 ? '' : `, expires at +${v.expiresAt - CACHE_SIM_EPOCH_MS} ms`})`;
  }

  private describeKey(i: number): string {
    const k = cacheKey(i);
    return `key ${i} (${typeof k === 'string' ? JSON.stringify(k) : `Buffer ${JSON.stringify(k.toString())}`})`;
  }

  /** Model checks run without injected faults, and without moving an armed crash's countdown. */
  private quietly<T>(fn: () => T): T {
    const was = this.ctl.enabled;
    this.ctl.enabled = false;
    try {
      return fn();
    } finally {
      this.ctl.enabled = was;
    }
  }

  /**
   * `got` (a value the cache returned for key `i`) must be one of `allowed`, with exactly its
   * contents. Returns the model's value it is.
   */
  private matchValue(i: number, got: unknown, allowed: readonly (Val | undefined)[], when: string): Val {
    const id = identifyValue(got);
    if (id === undefined) this.fail(`${when}: ${this.describeKey(i)} returned a value that is no value of this run: ${util.inspect(got, { depth: 1 }).slice(0, 200)}`);
    if (id.key !== i) this.fail(`${when}: ${this.describeKey(i)} returned a value of ${this.describeKey(id.key)} (value #${id.n})`);
    const v = allowed.find((a) => a !== undefined && a.n === id.n);
    if (v === undefined) {
      const list = allowed.filter((a) => a !== undefined).map((a) => `#${a!.n}`).join(', ') || 'none';
      this.fail(`${when}: ${this.describeKey(i)} returned value #${id.n}, which it may not hold now (allowed: ${list}, or absent)`);
    }
    if (this.expired(v)) this.fail(`${when}: ${this.describeKey(i)} returned ${this.describeVal(v)}, expired ${this.now - v.expiresAt} ms ago`);
    const want = cacheValue(v.key, v.n, v.kind, v.size);
    if (!util.isDeepStrictEqual(got, want)) this.fail(`${when}: ${this.describeKey(i)} returned ${this.describeVal(v)} with other contents`);
    return v;
  }

  // ---- running ------------------------------------------------------------------------------

  async run(op: CacheOp, step: number): Promise<void> {
    this.step = step;
    this.ctl.takeFired();
    try {
      this.exec(op);
    } catch (err) {
      if (err instanceof CacheSimFailure) throw err;
      if (this.ctl.crashed) {
        this.recoverFromCrash(op.k === 'crash' || op.k === 'crashAt' ? op.pick : step, op);
        return;
      }
      this.fail(`${op.k} threw ${describeError(err)}`);
    }
    if (this.ctl.crashed) {
      this.recoverFromCrash(step, op);
      return;
    }
    this.verify(`after ${op.k}`);
  }

  private verify(when: string): void {
    this.quietly(() => {
      try {
        this.cache.verify();
      } catch (err) {
        this.fail(`cache.verify() ${when}: ${describeError(err)}`);
      }
    });
    this.result.verifies++;
  }

  /**
   * Runs a cache call. A coded error after an injected fault is the call's failure (returned);
   * a crash passes through; anything else (or a coded error with no fault behind it, outside
   * `allowed`) is a failure of the run.
   */
  private attempt<T>(what: string, fn: () => T, allowed: readonly string[] = []): { ok: true; value: T } | { ok: false; code: string } {
    try {
      return { ok: true, value: fn() };
    } catch (err) {
      if (err instanceof CacheSimFailure || err instanceof CrashSignal || this.ctl.crashed) throw err;
      if (!(err instanceof ZnsSlabError)) this.fail(`${what} threw an uncoded error: ${describeError(err)}`);
      const faulted = this.ctl.takeFired() > 0;
      if (err.code === ErrorCode.INTERNAL) this.fail(`${what}: ${err.message}`);
      if (!faulted && !allowed.includes(err.code)) this.fail(`${what} failed with ${err.code} (${err.message})`);
      if (faulted) this.result.faults++;
      return { ok: false, code: err.code };
    }
  }

  private exec(op: CacheOp): void {
    switch (op.k) {
      case 'set':
        return this.set(op);
      case 'get':
        return this.get(op.key);
      case 'has':
        return this.has(op.key);
      case 'delete':
        return this.delete(op.key, op.viaUndefined);
      case 'flush':
        return this.flush();
      case 'tick':
        this.now += op.ms;
        return;
      case 'clear':
        return this.clear();
      case 'scan':
        return this.scan('in session');
      case 'reopen':
        return this.reopen();
      case 'crash':
        this.ctl.crashNow();
        return;
      case 'crashAt':
        this.ctl.armCrash(op.after);
        return;
      case 'fault':
        this.ctl.armFault(op.target, op.kind, op.after);
        return;
    }
  }

  private liveEpochs(): number[] {
    return this.quietly(() => this.cache.store.epochsLive());
  }

  private readCounts(): Counts {
    const s = this.quietly(() => this.cache.stats());
    return { evictedEntries: s.evictions.entries, evictedEpochs: s.evictions.epochs, reinsertedEntries: s.reinsertions.entries, expiredEpochs: s.expirations.epochs };
  }

  /**
   * After a call that may have evicted: learns which keys went (the counters say an eviction
   * ran; `has` says which entries left the index), and what a crash may now lose.
   */
  private afterWrite(before: Counts, liveBefore: readonly number[]): void {
    const after = this.readCounts();
    this.counts = after;
    const evicted = after.evictedEntries - before.evictedEntries;
    const epochs = after.evictedEpochs - before.evictedEpochs;
    const reinserted = after.reinsertedEntries - before.reinsertedEntries;
    this.result.expiredEpochs += after.expiredEpochs - before.expiredEpochs;
    if (epochs === 0 && evicted === 0 && reinserted === 0) return;
    this.result.evictedEntries += evicted;
    this.result.evictedEpochs += epochs;
    this.result.reinsertedEntries += reinserted;
    const liveAfter = new Set(this.quietly(() => this.cache.store.epochsLive()));
    const closed = new Set(liveBefore.filter((e) => !liveAfter.has(e)));
    let gone = 0;
    for (let i = 0; i < this.keys.length; i++) {
      const st = this.keys[i]!;
      if (this.live(i) !== undefined && !this.quietly(() => this.cache.has(cacheKey(i)))) {
        gone++;
        st.cur = undefined;
        st.absentSince = true;
      }
      const d = st.durable;
      // The durable record of an overwritten key is lost with its epoch (if the model does not
      // know that epoch, with any); a reinserted entry's durable record was in the evicted
      // epoch, and its copy is not durable yet.
      if (d !== undefined && ((d !== st.cur && (d.epoch === undefined || closed.has(d.epoch))) || (reinserted > 0 && d.accessed))) st.mayLose = true;
    }
    if (reinserted > 0) for (const st of this.keys) for (const v of [st.cur, st.durable]) if (v?.accessed) v.epoch = undefined;
    if (gone > evicted) this.fail(`an eviction of ${epochs} epoch(s) counted ${evicted} entries, but ${gone} live keys left the cache`);
  }

  /**
   * After a call failed on an injected fault: what it did is uncertain, so the model takes what
   * the cache holds (entries()) where that is allowed: `tried` (the value a failed set tried)
   * or the model's own value; a key may be missing only if an eviction or a clear may have run.
   */
  private resync(what: string, tried: Val | undefined, clearing: boolean): void {
    const have = this.snapshot(`after a failed ${what}`);
    const mayDrop = clearing || this.cfg.evicting;
    for (let i = 0; i < this.keys.length; i++) {
      const st = this.keys[i]!;
      const got = have.get(i);
      const cur = this.live(i);
      if (got !== undefined) {
        const v = this.matchValue(i, got, [cur, tried?.key === i ? tried : undefined], `after a failed ${what}`);
        if (v === tried && what === 'set') this.result.failedSetsThatStored++;
        st.cur = v;
      } else if (cur !== undefined && !(tried?.key === i && what === 'delete')) {
        if (!mayDrop) this.fail(`a failed ${what} lost ${this.describeKey(i)}: it held ${this.describeVal(cur)}`);
        st.cur = undefined;
        st.absentSince = true;
      } else if (cur !== undefined || st.cur === undefined) st.cur = undefined;
      // else: expired, and the index may still hold it (entries() skips it): the model keeps it.
      if (mayDrop && st.durable !== undefined) st.mayLose = true;
    }
    this.counts = this.readCounts();
  }

  /** entries(), as key index -> value; an entry of a key outside the run, or twice, is a failure. */
  private snapshot(when: string): Map<number, unknown> {
    const out = new Map<number, unknown>();
    this.quietly(() => {
      let entries: [string | Buffer, unknown][];
      try {
        entries = [...this.cache.entries()];
      } catch (err) {
        this.fail(`entries() ${when} threw ${describeError(err)}`);
      }
      for (const [key, value] of entries) {
        const i = this.keyIndexById.get(keyId(key));
        if (i === undefined) this.fail(`entries() ${when} gave a key never set: ${util.inspect(key)}`);
        if (out.has(i)) this.fail(`entries() ${when} gave ${this.describeKey(i)} twice`);
        out.set(i, value);
      }
    });
    return out;
  }

  private newVal(op: Extract<CacheOp, { k: 'set' }>): Val {
    const size = Math.min(op.size, this.maxValue);
    const epoch = op.ttl > 0 ? undefined : this.quietly(() => this.cache.store.epochCurrent());
    return { n: this.nextValue++, key: op.key, kind: op.kind, size, expiresAt: op.ttl > 0 ? this.now + op.ttl : 0, accessed: false, epoch };
  }

  private set(op: Extract<CacheOp, { k: 'set' }>): void {
    const v = this.newVal(op);
    const st = this.keys[op.key]!;
    st.since.push(v); // from here a crash may keep it
    const value = cacheValue(v.key, v.n, v.kind, v.size);
    const options = op.opts === 1 ? { ttl: op.ttl } : op.opts === 2 ? {} : undefined;
    const before = this.counts;
    const liveBefore = this.liveEpochs();
    const r = this.attempt(`set of ${this.describeKey(op.key)} to ${this.describeVal(v)}`, () => this.cache.set(cacheKey(op.key), value, options), this.cfg.evicting ? [ErrorCode.DEVICE_FULL] : []);
    if (!r.ok) {
      this.resync('set', v, false);
      return;
    }
    if (r.value !== this.cache) this.fail('set did not return the cache');
    st.cur = v;
    st.ghost = false;
    this.result.sets++;
    this.afterWrite(before, liveBefore);
  }

  private get(i: number): void {
    const want = this.live(i);
    const before = this.counts;
    const liveBefore = this.liveEpochs();
    const r = this.attempt(`get of ${this.describeKey(i)}`, () => this.cache.get(cacheKey(i)));
    this.result.gets++;
    if (!r.ok) {
      this.resync('get', undefined, false);
      return;
    }
    if (r.value === undefined) {
      if (want !== undefined) this.fail(`get of ${this.describeKey(i)} missed; the model holds ${this.describeVal(want)}`);
      // An expired entry read is removed.
      this.keys[i]!.cur = undefined;
      this.keys[i]!.ghost = false;
    } else {
      const v = this.matchValue(i, r.value, [want], 'get in session');
      v.accessed = true;
    }
    this.afterWrite(before, liveBefore); // a read may close passed TTL buckets
  }

  private has(i: number): void {
    const want = this.live(i);
    const r = this.attempt(`has of ${this.describeKey(i)}`, () => this.cache.has(cacheKey(i)));
    if (!r.ok) {
      this.resync('has', undefined, false);
      return;
    }
    if (r.value !== (want !== undefined)) this.fail(`has(${this.describeKey(i)}) is ${r.value}; the model holds ${this.describeVal(want)}`);
  }

  private delete(i: number, viaUndefined: boolean): void {
    const st = this.keys[i]!;
    const want = this.live(i);
    st.absentSince = true; // from here a crash may lose it
    const r = this.attempt(`delete of ${this.describeKey(i)}`, () => (viaUndefined ? (this.cache.set(cacheKey(i), undefined), undefined) : this.cache.delete(cacheKey(i))));
    if (!r.ok) {
      this.resync('delete', { n: -1, key: i, kind: 'number', size: 0, expiresAt: 0, accessed: false, epoch: undefined }, false);
      return;
    }
    // An expired entry still in the index is deleted too (true); one already dropped is not.
    if (r.value !== undefined && want !== undefined && r.value !== true) this.fail(`delete of ${this.describeKey(i)} returned false; the model holds ${this.describeVal(want)}`);
    if (r.value === true && st.cur === undefined && !st.ghost) this.fail(`delete of ${this.describeKey(i)} returned true; the key was never set or was removed`);
    st.cur = undefined;
    st.ghost = false;
  }

  private flush(): void {
    const before = this.counts;
    const liveBefore = this.liveEpochs();
    const r = this.attempt('flush', () => this.cache.flush());
    if (!r.ok) {
      this.resync('flush', undefined, false);
      return;
    }
    this.madeDurable();
    this.afterWrite(before, liveBefore);
  }

  /** A flush or clean close returned: everything so far is durable. */
  private madeDurable(): void {
    for (const st of this.keys) {
      st.durable = st.cur;
      st.since = [];
      st.absentSince = false;
      st.mayLose = false;
    }
  }

  private clear(): void {
    // From here a crash may find it done in part.
    for (const st of this.keys) if (st.durable !== undefined) st.mayLose = true;
    const r = this.attempt('clear', () => this.cache.clear());
    if (!r.ok) {
      this.resync('clear', undefined, true);
      return;
    }
    // Durable on return.
    for (const st of this.keys) {
      st.cur = undefined;
      st.durable = undefined;
      st.since = [];
      st.absentSince = false;
      st.mayLose = false;
      st.ghost = false;
    }
    const size = this.quietly(() => this.cache.size);
    if (size !== 0) this.fail(`after clear() the cache holds ${size} entries`);
    this.counts = this.readCounts();
  }

  /** entries() against the model: exactly its unexpired entries. */
  private scan(when: string): void {
    const have = this.snapshot(when);
    for (let i = 0; i < this.keys.length; i++) {
      const want = this.live(i);
      const got = have.get(i);
      if (got === undefined) {
        if (want !== undefined) this.fail(`entries() ${when} lacks ${this.describeKey(i)}: the model holds ${this.describeVal(want)}`);
      } else this.matchValue(i, got, [want], `entries() ${when}`);
    }
  }

  private reopen(): void {
    const r = this.attempt('close', () => this.cache.close());
    if (this.ctl.crashed) return;
    if (r.ok) this.madeDurable();
    this.open();
    this.result.reopens++;
    this.reconcile(r.ok);
  }

  private recoverFromCrash(pick: number, op: CacheOp): void {
    this.result.crashes++;
    // A crash inside a write of an evicting cache may have closed epochs durably first.
    if (this.cfg.evicting && op.k !== 'crash') for (const st of this.keys) if (st.durable !== undefined) st.mayLose = true;
    try {
      this.cache.abandon();
    } catch (err) {
      if (!(err instanceof CrashSignal)) this.fail(`abandon threw ${describeError(err)}`);
    }
    this.device.loseUnflushed(new Rng(pick ^ 0x5eed));
    this.ctl.crashed = false;
    this.ctl.disarm();
    this.ctl.takeFired();
    this.open();
    this.reconcile(false);
  }

  /**
   * After a reopen, every key against the model: after a clean close exactly the model's
   * unexpired entries; after a crash (or a close that failed) what the durability rules allow.
   * Then the model takes what the cache holds: that is durable now.
   */
  private reconcile(clean: boolean): void {
    const when = clean ? 'after a clean close and reopen' : 'after a crash and reopen';
    this.verify(when);
    const have = this.snapshot(when);
    for (let i = 0; i < this.keys.length; i++) {
      const st = this.keys[i]!;
      const got = have.get(i);
      let v: Val | undefined;
      if (clean) {
        const want = this.live(i);
        if (got === undefined && want !== undefined) this.fail(`${when}: ${this.describeKey(i)} is missing; it held ${this.describeVal(want)}`);
        if (got !== undefined) v = this.matchValue(i, got, [want], when);
      } else {
        const allowed = [st.durable, ...st.since].filter((a) => a !== undefined && !this.expired(a));
        if (got === undefined) {
          // Absent: nothing durable, or it expired, or a delete or an eviction since, or an
          // overwrite since that may have been kept and has expired.
          const absentOk = st.durable === undefined || this.expired(st.durable) || st.absentSince || st.mayLose || st.since.some((a) => this.expired(a));
          if (!absentOk) {
            this.fail(`${when}: ${this.describeKey(i)} is missing; its durable ${this.describeVal(st.durable)} was flushed, and neither deleted nor evicted since`);
          }
        } else v = this.matchValue(i, got, allowed, when);
      }
      const has = this.quietly(() => this.cache.has(cacheKey(i)));
      if (has !== (got !== undefined)) this.fail(`${when}: has(${this.describeKey(i)}) is ${has}, entries() ${got === undefined ? 'lacks it' : 'has it'}`);
      if ((i + this.step) % 3 === 0) {
        // get itself, on a third of the keys (a get marks the entry read: a reinsertion candidate).
        const g = this.quietly(() => this.cache.get(cacheKey(i)));
        if (g === undefined ? v !== undefined : v === undefined || !util.isDeepStrictEqual(g, cacheValue(v.key, v.n, v.kind, v.size))) {
          this.fail(`${when}: get(${this.describeKey(i)}) disagrees with entries(): ${this.describeVal(v)}`);
        }
        if (v !== undefined) v.accessed = true;
      }
      // entries() skips expired entries the index may still hold.
      st.ghost = v === undefined && (st.ghost || [st.cur, st.durable, ...st.since].some((a) => a !== undefined && this.expired(a)));
      st.cur = v;
      st.durable = v;
      st.since = [];
      st.absentSince = false;
      st.mayLose = false;
      this.result.checkedAfterReopen++;
    }
    this.counts = this.readCounts();
    this.verify(`${when} (after the checks)`);
  }

  close(): void {
    try {
      this.cache.close();
    } catch {
      this.cache.abandon();
    }
  }
}

function describeError(err: unknown): string {
  if (err instanceof ZnsSlabError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

function baseTmp(): string {
  return fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

/** Generates and runs `count` operations from `seed`; returns the run and the operations it ran. */
export async function runCacheSeed(seed: number, count: number, options: CacheRunOptions = {}): Promise<{ result: CacheRunResult; ops: CacheOp[] }> {
  const rng = new Rng(seed ^ 0xcace);
  const ops: CacheOp[] = [];
  const result = await runCacheWith(seed, options, (sim) => {
    if (ops.length >= count) return undefined;
    const op = generateCacheOp(rng, sim.cfg, options.faults ?? true, sim.maxValue);
    ops.push(op);
    return op;
  });
  return { result, ops };
}

/** Runs a fixed list of operations (a replay, or a shrinking trial). */
export async function runCacheOps(seed: number, ops: readonly CacheOp[], options: CacheRunOptions = {}): Promise<CacheRunResult> {
  let i = 0;
  return runCacheWith(seed, options, () => ops[i++]);
}

async function runCacheWith(seed: number, options: CacheRunOptions, next: (sim: CacheSim) => CacheOp | undefined): Promise<CacheRunResult> {
  const owned = options.dir === undefined;
  const dir = options.dir ?? fs.mkdtempSync(path.join(baseTmp(), 'zns-slab-cachesim-'));
  let sim: CacheSim | undefined;
  let step = 0;
  try {
    sim = new CacheSim(dir, seed);
    for (let op = next(sim); op !== undefined; op = next(sim)) {
      await sim.run(op, step);
      step++;
      if (options.progress && step % 1000 === 0) options.progress(step);
    }
    sim.result.ops = step;
    sim.close();
    return { ...sim.result, crashes: sim.ctl.counts.crashes, faults: sim.ctl.counts.faults };
  } catch (err) {
    const result = sim?.result ?? emptyResult();
    result.ops = step + 1;
    try {
      sim?.close();
    } catch {
      // wedged by the very bug found; the folder is removed below
    }
    const message = err instanceof CacheSimFailure ? err.message : `simulator error: ${describeError(err)}${err instanceof Error && err.stack ? `\n${err.stack.split('\n').slice(1, 4).join('\n')}` : ''}`;
    return { ...result, ...(sim ? { crashes: sim.ctl.counts.crashes, faults: sim.ctl.counts.faults } : {}), failure: { step: err instanceof CacheSimFailure ? err.step : step, message } };
  } finally {
    if (owned) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Shrinks a failing cache run as sim/shrink.ts does the store's: chunks removed while it still fails. */
export async function shrinkCache(
  seed: number,
  ops: readonly CacheOp[],
  budgetMs: number,
  onProgress?: (length: number) => void,
): Promise<{ ops: CacheOp[]; result: CacheRunResult; trials: number }> {
  const deadline = Date.now() + budgetMs;
  let best = [...ops];
  let bestResult = await runCacheOps(seed, best);
  let trials = 1;
  if (bestResult.failure === undefined) return { ops: best, result: bestResult, trials };
  best = best.slice(0, bestResult.failure.step + 1);
  let chunk = Math.max(1, Math.floor(best.length / 2));
  while (chunk >= 1 && Date.now() < deadline) {
    let removed = false;
    for (let start = 0; start < best.length && Date.now() < deadline; ) {
      const candidate = [...best.slice(0, start), ...best.slice(start + chunk)];
      const result = await runCacheOps(seed, candidate);
      trials++;
      if (result.failure !== undefined) {
        best = candidate.slice(0, result.failure.step + 1);
        bestResult = result;
        removed = true;
        onProgress?.(best.length);
      } else start += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return { ops: best, result: bestResult, trials };
}
