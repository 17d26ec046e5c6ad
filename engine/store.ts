/**
 * The Store: objects in slabs, slabs on zones, epochs reclaimed by zone reset, all of it
 * recorded in the catalog. The API is synchronous, like better-sqlite3 and lmdb-js's get:
 * no promise per object.
 *
 * Durability: a put is readable at once (from memory until its slab is sealed) and durable
 * once `flush()` returns. Epoch transitions and frees become durable at the next flush;
 * `epochClose` is durable when it returns. Writes reach the device (and are flushed) before
 * the catalog commits anything that points at them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { types as utilTypes } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { crashPoint } from '../crashpoints.js';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { CATALOG_FORMAT_VERSION, Catalog, type CatalogHooks, type CatalogMeta } from '../catalog/catalog.js';
import { type DeviceGeometry, type ZonedDevice, ZoneCondition } from '../zns/device.js';
import { sameGeometry } from '../zns/emulated.js';
import { openZonedDevice } from '../zns/open.js';
import { fsError, isEmulatedDevice } from '../zns/emulated.js';
import { type ClassCounters, type SavedCounters, type StoreCounters, newClassCounters, newStoreCounters, restoreCounters } from './counters.js';
import { type DomainHost, EpochDomain } from './domain.js';
import { Epoch, EpochState } from './epoch.js';
import { HANDLE_VERSION, encodeHandle, unpackHandle } from './handle.js';
import { CatalogWriter } from './catalogWriter.js';
import { GC_IDLE_STEP_MS, GC_RESERVE_ZONES, type GcOptions, type GcResult, ZoneGc, checkGcOptions } from './gc.js';
import { checkDevice, restoreSlabs } from './recovery.js';
import { FIRST_SLAB_ID, SlabRegistry } from './registry.js';
import { SLOT_HEADER_BYTES, SizeClassTable } from './sizeClass.js';
import { Slab, type SlabPlace, SlabState, decodeSlot, giveBack, storeSeed } from './slab.js';
import { type ClassStats, type EpochStats, type GlobalStats, type StatsSource, type ZoneStats, classStats, epochStats, globalStats, zoneStats } from './stats.js';
import { NO_OWNER, ZoneManager } from './zones.js';

export const CATALOG_FILE = 'catalog.db';
export const DEFAULT_DEVICE_DIR = 'device';
const FIRST_EPOCH = 1;
/** Reads `getMany` keeps in flight unless told otherwise (see docs/ARCHITECTURE.md, Reads). */
export const DEFAULT_QUEUE_DEPTH = 16;
/** The most reads `getMany` keeps in flight: each holds a buffer of its own. */
export const MAX_QUEUE_DEPTH = 4096;
/** An async read whose slab moved (zone GC) while it was in flight is tried again this many times. */
const READ_RETRIES = 3;
const HANDLE_MAX = (1n << 64n) - 1n;
/**
 * The hot-path handle decoder's scratch: a bigint stored into a BigUint64Array comes out as two
 * 32-bit halves, with no bigint arithmetic and nothing allocated (engine/handle.ts has the
 * layout; unpackHandle is the readable version).
 */
const handleWord = new BigUint64Array(1);
const handleHalves = new Uint32Array(handleWord.buffer);
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;

export interface GetManyOptions {
  /** Device reads kept in flight at once (1 … MAX_QUEUE_DEPTH). Default DEFAULT_QUEUE_DEPTH. */
  queueDepth?: number;
}

export interface StoreOptions {
  /**
   * The zoned device: a `ZonedDevice` (the store takes it over and closes it), or a path to a
   * block device or an emulated device folder. Default: the emulated device in `<store>/device`.
   */
  device?: ZonedDevice | string;
  /** Geometry of a new emulated device; for an existing store it must match (else ERR_GEOMETRY_MISMATCH). */
  geometry?: Partial<DeviceGeometry>;
  /**
   * Inspect without changing anything: no lock is taken (a store open elsewhere is refused with
   * ERR_STORE_LOCKED), nothing is reset or repaired, and every write is ERR_READ_ONLY.
   */
  readOnly?: boolean;
  /**
   * Open read-only even when zones are missing, truncated or unreadable: objects in healthy
   * zones are served, the others give ERR_ZONE_LOST, and `statsZones()` marks the damaged
   * zones. For getting data out of a damaged store.
   */
  salvage?: boolean;
  /**
   * Create a new store even though the device holds data and there is no catalog: every zone
   * is reset. Without it, that case is ERR_CATALOG_MISSING (run `zns-slab recover` instead).
   */
  overwriteDevice?: boolean;
  /**
   * Zone garbage collection (engine/gc.ts): on by default; `false` turns it off (no reserve
   * zone, no steps but explicit `store.gc()` calls), an object tunes it.
   */
  gc?: GcOptions | false;
  /**
   * Direct I/O: the emulated device opens its zone files with O_DIRECT, so reads and writes
   * skip the page cache as on a real device (whose I/O is always direct: there this changes
   * nothing). ERR_DIRECT_IO_UNSUPPORTED where the filesystem refuses O_DIRECT. With a
   * `ZonedDevice` given as `device`, that device must already be direct.
   */
  direct?: boolean;
}

const STORE_OPTION_KEYS: readonly string[] = ['device', 'geometry', 'readOnly', 'salvage', 'overwriteDevice', 'gc', 'direct'];
const GEOMETRY_KEYS: readonly string[] = ['zoneCount', 'zoneSize', 'zoneCapacity', 'logicalBlockSize', 'maxOpenZones', 'maxActiveZones'];
const DEVICE_METHODS: readonly string[] = ['reportZones', 'read', 'write', 'resetZone', 'openZone', 'closeZone', 'finishZone', 'flush', 'close'];
/** Bytes of a store id. */
const STORE_ID_BYTES = 16;

/** Refuses, by name, options of the wrong shape: unknown keys, wrong types. */
function checkStoreOptions(options: unknown): StoreOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options must be an object, got ${describe(options)}`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!STORE_OPTION_KEYS.includes(key)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: unknown option '${key}' (options are ${STORE_OPTION_KEYS.join(', ')})`);
  }
  const d = o.device;
  if (d !== undefined && !(typeof d === 'string' && d.length > 0)) {
    const dev = d as Record<string, unknown> | null;
    const ok = typeof dev === 'object' && dev !== null && typeof dev.geometry === 'object' && DEVICE_METHODS.every((m) => typeof dev[m] === 'function');
    if (!ok) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.device must be a device path or a ZonedDevice, got ${describe(d)}`);
  }
  const g = o.geometry;
  if (g !== undefined) {
    if (typeof g !== 'object' || g === null || Array.isArray(g)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.geometry must be an object, got ${describe(g)}`);
    for (const [key, value] of Object.entries(g)) {
      if (!GEOMETRY_KEYS.includes(key)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: unknown geometry field options.geometry.${key} (fields are ${GEOMETRY_KEYS.join(', ')})`);
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.geometry.${key} must be a non-negative integer, got ${describe(value)}`);
      }
    }
  }
  for (const key of ['readOnly', 'salvage', 'overwriteDevice', 'direct'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.${key} must be a boolean, got ${describe(o[key])}`);
  }
  checkGcOptions(o.gc);
  if (o.salvage === true && o.readOnly === false) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openStore: options.salvage opens read-only; it cannot go with readOnly: false');
  if (o.direct === true && typeof d === 'object' && (d as ZonedDevice).direct !== true) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'openStore: options.direct asks for direct I/O, and the ZonedDevice given as options.device is not direct (open it with direct: true)');
  }
  return o as StoreOptions;
}

/** Does the device hold anything (a written zone, or an owner recorded)? */
function deviceHoldsData(device: ZonedDevice): number {
  let written = 0;
  for (const z of device.reportZones()) if (z.condition !== ZoneCondition.EMPTY && z.condition !== ZoneCondition.OFFLINE && z.condition !== ZoneCondition.READ_ONLY) written++;
  return written;
}

export interface GcCallOptions {
  /** Stop after moving about this many bytes (a slab is never split). Default: no limit. */
  maxBytes?: number;
  /** Stop after about this many milliseconds (checked between slabs). Default: no limit. */
  maxMs?: number;
}

export interface PutOptions {
  /** The epoch to allocate in; it must be ACTIVE. Default: the current epoch. */
  epoch?: number;
}

function now(): number {
  return Date.now();
}

export class Store implements Disposable, DomainHost {
  readonly path: string;
  /** The implicit epoch domain of each async context (see engine/domain.ts). */
  readonly domainContext = new AsyncLocalStorage<EpochDomain>();
  readonly device: ZonedDevice;
  readonly sizeClasses: SizeClassTable;
  private readonly catalog: Catalog;
  private readonly registry: SlabRegistry;
  private readonly zones: ZoneManager;
  private readonly epochs = new Map<number, Epoch>();
  private readonly storeCounters: StoreCounters = newStoreCounters();
  private readonly classCounters: ClassCounters[];
  private readonly blockSize: number;
  private readonly readOnly: boolean;
  private readonly writer: CatalogWriter;
  /** The store's identity: 32 hex digits, also in every slab image and the device's metadata. */
  readonly storeId: string;
  private readonly storeIdBytes: Buffer;
  /** The seed of every slot's checksum, from four bytes of the id (engine/slab.ts storeSeed). */
  private readonly storeTag: number;
  private sealSequence: number;
  /** Zones a salvage open found damaged: their objects give ERR_ZONE_LOST. */
  private readonly damaged: ReadonlySet<number>;
  private current: Epoch;
  private nextEpochId: number;
  /** Set by the first domain: until then put never looks up an implicit domain. */
  private domainsInUse = false;
  private closed = false;
  /** Zone GC; undefined when turned off or read-only. */
  private readonly collector: ZoneGc | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** For `gc()` on a store opened with `gc: false`. */
  private manualCollector: ZoneGc | undefined;
  /** A put or free happened since the idle timer last looked. */
  private busy = false;
  /** getInto's device reads land here (reused; grown to the largest stride read). */
  private scratch: Buffer | undefined;
  /**
   * Slabs whose background write failed after their seal returned: OPEN again (their bytes
   * never left memory), sealed again by the next put that needs a slab, or by flush.
   */
  private readonly unsealed = new Set<Slab>();
  /** Why the last background seal write failed (flush throws it if the retry fails too). */
  private lastSealError: ZnsSlabError | undefined;
  /** Why the last zone GC move's background write failed (zone GC's step reports it). */
  private lastMoveError: ZnsSlabError | undefined;

  /** Use `openStore`. */
  constructor(dir: string, catalog: Catalog, device: ZonedDevice, readOnly = false, salvage = false, gc: GcOptions | false | undefined = undefined) {
    this.path = dir;
    this.catalog = catalog;
    this.device = device;
    this.readOnly = readOnly;
    const g = device.geometry;
    this.blockSize = g.logicalBlockSize;
    this.sizeClasses = new SizeClassTable(g.zoneCapacity, g.logicalBlockSize);
    this.classCounters = this.sizeClasses.classes.map(() => newClassCounters());
    const meta = catalog.readMeta();
    if (meta.counters !== undefined) restoreCounters(parseCounters(meta.counters), this.storeCounters, this.classCounters);
    this.registry = new SlabRegistry(meta.nextSlabId);
    this.storeId = meta.storeId;
    this.storeIdBytes = Buffer.from(meta.storeId, 'hex');
    this.storeTag = storeSeed(this.storeIdBytes.readUInt32LE(0));
    this.sealSequence = meta.sealSequence;

    let maxEpoch = 0;
    const epochRows = catalog.epochs({ includeClosed: true });
    for (const row of epochRows) {
      maxEpoch = Math.max(maxEpoch, row.id);
      if (row.state === 'CLOSED') continue;
      const epoch = new Epoch(row.id, row.state as EpochState, row.createdAt, this.sizeClasses.classes.length);
      epoch.closingAt = row.closingAt;
      this.epochs.set(row.id, epoch);
    }
    this.nextEpochId = Math.max(meta.nextEpochId, maxEpoch + 1);

    const committedZones = catalog.zones();
    this.writer = new CatalogWriter(catalog, committedZones, epochRows.map((r) => r.id));
    this.zones = new ZoneManager(device, this.storeCounters, this.writer);
    const owners = new Map<number, { epoch: number; written: number | null }>();
    const orphaned: number[] = []; // owned in the catalog by an epoch that is gone
    for (const { zone, epoch, written } of committedZones) {
      if (this.epochs.has(epoch)) owners.set(zone, { epoch, written: written ?? null });
      else orphaned.push(zone);
    }
    const report = device.reportZones();
    const slabRows = [...catalog.slabs()];
    // Before anything is reset: is this device's data this catalog's, and not newer than it?
    const seen = { sealSequence: 0 };
    this.damaged = checkDevice(device, report, { storeId: meta.storeId, commitSequence: catalog.commitSequence }, slabRows, salvage, seen);
    this.sealSequence = Math.max(this.sealSequence, seen.sealSequence);
    this.zones.load(report, owners, readOnly);
    restoreSlabs(slabRows, { registry: this.registry, epochs: this.epochs, zones: this.zones, sizeClasses: this.sizeClasses, storeTag: this.storeTag, damaged: this.damaged });
    this.zones.chooseHeads(readOnly);

    const current = this.epochs.get(meta.currentEpoch);
    this.current = current !== undefined && current.state === EpochState.ACTIVE ? current : this.createEpoch();
    const self = this;
    this.writer.bind({
      registry: this.registry,
      epoch: (id) => self.epochs.get(id),
      zoneOwner: (zone) => self.zones.zones[zone]!.owner,
      zoneWritten: (zone) => {
        const z = self.zones.zones[zone]!;
        return z.full && z.written < self.device.geometry.zoneCapacity ? z.written : null;
      },
      currentEpoch: () => self.current,
      nextEpochId: () => self.nextEpochId,
      sealSequence: () => self.sealSequence,
      counters: () => self.savedCounters(),
      slabCommitted: (slab) => self.zones.slabCommitted(slab),
    });
    const gcOptions = checkGcOptions(gc);
    if (readOnly) {
      this.collector = undefined;
      return;
    }
    if (gcOptions !== undefined) {
      this.zones.reserveZones = GC_RESERVE_ZONES;
      this.collector = this.newCollector(gcOptions);
      if (gcOptions.idleMs > 0) {
        this.idleTimer = setInterval(() => self.onIdle(), gcOptions.idleMs);
        this.idleTimer.unref();
      }
    } else this.collector = undefined;
    for (const zone of orphaned) this.writer.zoneChanged(zone);
    // Sealed slabs with nothing live (an older release kept them in ACTIVE epochs) go now.
    for (const epoch of this.epochs.values()) this.recycleEmptySlabs(epoch);
    // Let the catalog go of orphaned zones now, so they are reset and free from the start.
    if (orphaned.length > 0) this.commitAll();
  }

  // ---- objects ---------------------------------------------------------------------------

  /** Stores `bytes` (copied) in an epoch; returns its handle. Readable at once, durable after `flush()`. */
  put(bytes: Uint8Array, options?: PutOptions): bigint {
    this.checkWritable();
    // The real length from the typed array itself: a subclass's `length` getter may lie.
    const length = byteLengthOf(bytes);
    const classIndex = this.sizeClasses.classFor(length);
    let epoch = this.current;
    if (options?.epoch !== undefined) epoch = this.epochForPut(options.epoch, classIndex);
    else if (this.domainsInUse) {
      const domain = this.domainContext.getStore();
      if (domain !== undefined) epoch = this.epochForPut(domain.epoch, classIndex);
    }
    let slab = epoch.openSlabs[classIndex];
    if (slab === undefined || slab.isFull) slab = this.nextSlab(epoch, classIndex, slab);
    const slot = slab.append(bytes, length);
    this.busy = true;
    const counters = this.classCounters[classIndex]!;
    counters.puts++;
    counters.userBytesPut += length;
    epoch.objectPut(classIndex);
    const handle = encodeHandle(slab.id, slab.generation, slot, classIndex);
    // Zone GC's pace: a put after a seal moves one slab (engine/gc.ts).
    if (this.collector !== undefined && this.collector.credit > 0) this.collector.onPut();
    return handle;
  }

  /**
   * The object's bytes (a copy). Stale, forged or corrupt handles get a coded error, never other
   * bytes. Served from memory while the slab's image is there (open, or sealed with its write
   * in flight), else read from the device (the page cache, in buffered mode) and checked against
   * the slot's crc. Synchronous: the fastest read when the bytes are in memory or cached.
   */
  get(handle: bigint): Buffer {
    const slab = this.lookup(handle);
    const slot = (handleHalves[LO]! >>> 10) & 0xff;
    this.storeCounters.gets++;
    if (slab.buffer !== undefined) return copyFromMemory(slab, slot);
    return decodeSlot(this.device.read(this.slotPlace(slab, slot), slab.cls.stride), slab.storeTag, slab.id, slab.generation, slot, slab.cls, true);
  }

  /**
   * Copies the object's bytes into `target` and returns how many there are: nothing is
   * allocated when the slab is in memory, and a device read goes into a buffer the store reuses.
   * A target shorter than the object is ERR_INVALID_ARGUMENT (nothing is written; the message
   * gives the object's length). Errors otherwise as `get`.
   */
  getInto(handle: bigint, target: Uint8Array): number {
    if (!utilTypes.isUint8Array(target)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `getInto: target must be a Buffer or Uint8Array, got ${describe(target)}`);
    const slab = this.lookup(handle);
    const slot = (handleHalves[LO]! >>> 10) & 0xff;
    this.storeCounters.gets++;
    const room = typedArrayByteLength.call(target) as number;
    const memory = slab.buffer;
    if (memory !== undefined) {
      const at = slab.memorySlotOffset(slot) + SLOT_HEADER_BYTES;
      const length = memoryLength(slab, memory, at);
      if (length > room) throw targetTooSmall(room, length);
      target.set(new Uint8Array(memory.buffer, memory.byteOffset + at, length));
      return length;
    }
    const stride = slab.cls.stride;
    if (this.scratch === undefined || this.scratch.length < stride) this.scratch = Buffer.allocUnsafeSlow(Math.max(stride, 2 * (this.scratch?.length ?? 0)));
    const bytes = this.scratch.subarray(0, stride);
    const place = this.slotPlace(slab, slot);
    if (this.device.readInto !== undefined) this.device.readInto(place, bytes);
    else bytes.set(this.device.read(place, stride));
    const payload = decodeSlot(bytes, slab.storeTag, slab.id, slab.generation, slot, slab.cls, true);
    if (payload.length > room) throw targetTooSmall(room, payload.length);
    payload.copy(target);
    return payload.length;
  }

  /**
   * `get` without blocking the event loop on the device: the read goes to libuv's thread pool
   * (device.readAsync) and many may be in flight. Memory-served objects resolve at once. Every
   * error is a rejection, with the codes `get` throws; if the object is freed, its epoch closed
   * or its slab reused while the read is in flight, ERR_STALE_HANDLE (the handle is checked
   * again when the bytes arrive, and the slot's crc covers its identity).
   */
  getAsync(handle: bigint): Promise<Buffer> {
    try {
      const got = this.startGet(handle);
      return got instanceof Promise ? got : Promise.resolve(got);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The objects of `handles`, in their order, keeping up to `queueDepth` device reads in flight
   * (memory-served objects do not take a place in the queue). Never throws: bad arguments and
   * bad handles reject. A bad handle stops new reads; once the reads in flight are done, the
   * promise rejects with the error of the lowest index that failed, its code the one `get`
   * gives (the message names `handles[i]`; the original is its cause).
   */
  getMany(handles: readonly bigint[], options?: GetManyOptions): Promise<Buffer[]> {
    let depth: number;
    try {
      this.checkOpen();
      if (!Array.isArray(handles)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `getMany: handles must be an array of handles, got ${describe(handles)}`);
      depth = checkQueueDepth(options);
    } catch (err) {
      return Promise.reject(err);
    }
    const n = handles.length;
    const out = new Array<Buffer>(n);
    return new Promise<Buffer[]>((resolve, reject) => {
      let next = 0;
      let inFlight = 0;
      let failedAt = n;
      let failure: unknown;
      const fail = (i: number, err: unknown): void => {
        if (i < failedAt) {
          failedAt = i;
          failure = err;
        }
      };
      const pump = (): void => {
        while (failedAt === n && next < n && inFlight < depth) {
          const i = next++;
          let got: Buffer | Promise<Buffer>;
          try {
            got = this.startGet(handles[i]!);
          } catch (err) {
            fail(i, err);
            break;
          }
          if (!(got instanceof Promise)) {
            out[i] = got;
            continue;
          }
          inFlight++;
          got.then(
            (bytes) => {
              out[i] = bytes;
              inFlight--;
              pump();
            },
            (err: unknown) => {
              fail(i, err);
              inFlight--;
              pump();
            },
          );
        }
        if (inFlight > 0) return;
        if (failedAt < n) reject(failure instanceof ZnsSlabError ? new ZnsSlabError(failure.code, `getMany: handles[${failedAt}]: ${failure.message}`, { cause: failure }) : failure);
        else if (next === n) resolve(out);
      };
      pump();
    });
  }

  /** Frees the object. Its handle (and any copy of it) goes stale at once. */
  free(handle: bigint): void {
    this.checkWritable();
    const { slab, slot } = this.resolve(handle);
    slab.clearLive(slot);
    this.busy = true;
    this.classCounters[slab.cls.index]!.frees++;
    this.epochs.get(slab.epoch)!.objectFreed(slab.cls.index);
    if (slab.state === SlabState.SEALED) {
      this.zones.slotFreed(slab);
      this.writer.slabChanged(slab.id);
    }
    if (slab.liveCount === 0) this.onSlabEmpty(slab);
  }

  /** Whether the handle names a live object (false for stale, freed or forged handles; never throws for a bigint). */
  isLive(handle: bigint): boolean {
    this.checkOpen();
    try {
      this.resolve(handle);
      return true;
    } catch (err) {
      if (err instanceof ZnsSlabError && (err.code === ErrorCode.STALE_HANDLE || err.code === ErrorCode.INVALID_HANDLE)) return false;
      throw err;
    }
  }

  /** The epoch a live object belongs to (ERR_STALE_HANDLE once it is freed or its epoch closed). */
  epochOf(handle: bigint): number {
    this.checkOpen();
    return this.resolve(handle).slab.epoch;
  }

  /**
   * The handles of every live object of a live epoch, open slabs included, slab by slab. For
   * bulk scans (a cache rebuilding its index); do not put, free or close meanwhile.
   */
  *handles(epochId: number): Generator<bigint, void, undefined> {
    this.checkOpen();
    const epoch = this.liveEpoch(epochId);
    for (const slab of epoch.slabs) {
      for (let slot = 0; slot < slab.slotCount; slot++) {
        if (slab.isLive(slot)) yield encodeHandle(slab.id, slab.generation, slot, slab.cls.index);
      }
    }
  }

  /** Largest object this store accepts (depends on the zone capacity). */
  get maxObjectSize(): number {
    return this.sizeClasses.maxObjectSize;
  }

  // ---- epochs ----------------------------------------------------------------------------

  epochCurrent(): number {
    this.checkOpen();
    return this.current.id;
  }

  /**
   * Starts a new ACTIVE epoch beside the current one (which stays current): for objects that
   * must go away together at a time of their own, such as a cache's entries that expire in
   * one time bucket. Put into it with `{ epoch }`; it is durable at the next flush.
   */
  epochCreate(): number {
    this.checkWritable();
    return this.createEpoch().id;
  }

  /**
   * Writes a live epoch's partial slabs to its zones now, instead of at the next flush, so an
   * epoch that takes no more puts (a cache's rotated-out epoch) stops holding slab buffers in
   * memory. Durable at the next flush, like any seal.
   */
  epochSeal(epochId: number): void {
    this.checkWritable();
    const epoch = this.liveEpoch(epochId);
    if (epoch.ephemeral) return; // scoped to its domain: its slabs stay in memory
    for (const slab of epoch.openSlabs) if (slab !== undefined && slab.slotCount > 0) this.seal(slab);
  }

  /** Live epochs (ACTIVE and CLOSING), oldest first. */
  epochsLive(): number[] {
    this.checkOpen();
    return [...this.epochs.keys()].filter((id) => !this.epochs.get(id)!.ephemeral).sort((a, b) => a - b);
  }

  /** The current epoch becomes CLOSING and a new ACTIVE one starts; returns the new epoch. */
  epochAdvance(): number {
    this.checkWritable();
    const old = this.current;
    this.startClosing(old);
    this.current = this.createEpoch();
    return this.current.id;
  }

  /**
   * Closes an epoch: its zones are reset and their space returned; every handle into it goes
   * stale. Closing the current epoch first advances to a new one. Durable on return: when the
   * catalog knows the epoch, this commits (with everything sealed so far) before the resets.
   * If that commit fails, the epoch is closed in memory all the same (its handles are stale),
   * and the next successful flush makes it durable and resets its zones.
   */
  epochClose(epochId: number): void {
    this.checkWritable();
    const epoch = this.liveEpoch(epochId);
    if (epoch === this.current) this.epochAdvance();
    if (epoch.state === EpochState.ACTIVE) this.startClosing(epoch);
    for (const slab of [...epoch.slabs]) this.drop(epoch, slab);
    epoch.state = EpochState.CLOSED;
    epoch.closedAt = now();
    this.writer.epochChanged(epoch);
    this.epochs.delete(epoch.id);
    // Zones the catalog never recorded reset at once; the others after the commit below.
    for (const zone of [...this.zones.zonesOf(epoch.id)]) this.zones.release(zone);
    if (this.writer.refersTo(epoch)) this.commitAll();
  }

  /** The epoch's state; epochs closed long ago report CLOSED. */
  epochState(epochId: number): EpochState {
    this.checkOpen();
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch !== undefined) return epoch.state;
    if (epochId < this.nextEpochId) return EpochState.CLOSED;
    throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
  }

  // ---- epoch domains (engine/domain.ts) ----------------------------------------------------

  /**
   * An auto-closing domain over a new epoch: when its last user exits (or it is disposed with
   * nobody inside), the epoch closes and its zones reset. Its objects live in memory until a
   * slab fills, and flush() does not persist them: they never outlive the domain.
   */
  epochDomainCreate(): EpochDomain {
    this.checkWritable();
    this.domainsInUse = true;
    return new EpochDomain(this, this.createEpoch(true).id, true);
  }

  /** A manual-control domain over an existing live epoch: exiting never closes it. */
  epochDomainWrap(epochId: number): EpochDomain {
    this.checkWritable();
    const epoch = this.liveEpoch(epochId);
    this.domainsInUse = true;
    return new EpochDomain(this, epoch.id, false);
  }

  /** The domain whose `run` the caller is in (undefined outside any). */
  epochDomainCurrent(): EpochDomain | undefined {
    return this.domainsInUse ? this.domainContext.getStore() : undefined;
  }

  /**
   * @internal For EpochDomain. After the store closed there is nothing left to reclaim: an
   * ephemeral epoch's spilled zones are unowned in the catalog and reset at the next open.
   */
  closeDomainEpoch(epochId: number): void {
    if (!this.closed && this.epochs.has(epochId)) this.epochClose(epochId);
  }

  /** @internal For EpochDomain. */
  isEpochClosed(epochId: number): boolean {
    return this.closed || !this.epochs.has(epochId);
  }

  // ---- durability ------------------------------------------------------------------------

  /**
   * Seals every partial slab to its zone, flushes the device, then commits the catalog.
   * Everything put, freed or advanced before the call is durable when it returns. Zones of
   * CLOSING epochs that no longer hold a live object are reset here.
   */
  flush(): void {
    this.checkWritable();
    this.sealPartialSlabs();
    for (const epoch of this.epochs.values()) {
      // A CLOSING epoch takes no more puts: its head zones too go once nothing in them is live.
      for (const zone of [...this.zones.zonesOf(epoch.id)]) {
        if (epoch.state !== EpochState.CLOSING) this.zones.releaseIfEmpty(zone);
        else if (this.zones.zones[zone]!.slabs.size === 0) this.zones.release(zone);
      }
    }
    this.collector?.background(this.collector.options.stepBytes, Infinity);
    this.storeCounters.flushes++;
    this.commitAll();
    if (this.unsealed.size > 0) {
      // A background write failed while this flush waited for it: once more, synchronously
      // ordered behind the commit above, and if that fails too the caller hears why.
      this.sealUnsealed();
      this.commitAll();
      if (this.unsealed.size > 0) throw this.lastSealError ?? new ZnsSlabError(ErrorCode.DEVICE_IO, 'a slab could not be written');
    }
  }

  /**
   * Like `flush()`, without blocking the event loop while the device writes: partial slabs are
   * sealed now, the writes in flight are awaited, then the device is flushed and the catalog
   * commits (both synchronous, as in flush: the commit is one SQLite transaction).
   */
  async flushAsync(): Promise<void> {
    this.checkWritable();
    this.sealPartialSlabs();
    await this.zones.settleAsync();
    this.flush();
  }

  /** What a flush writes: the slabs whose background write failed, then every partial slab. */
  private sealPartialSlabs(): void {
    this.sealUnsealed();
    for (const epoch of this.epochs.values()) {
      if (epoch.ephemeral) continue; // scoped to its domain: nothing to make durable
      for (const slab of epoch.openSlabs) if (slab !== undefined && slab.slotCount > 0) this.seal(slab);
    }
  }

  /**
   * Runs zone garbage collection now (engine/gc.ts): commits what is pending (frees become
   * durable, as at a flush, without sealing partial slabs), then collects the zones worth collecting
   * (those that give back GC_MIN_GAIN_FRACTION of a zone, at least), within the budget, and commits what it moved.
   * Handles do not change. Works with `gc: false` too (then only when called).
   */
  gc(options: GcCallOptions = {}): GcResult {
    this.checkWritable();
    const maxBytes = checkBudget(options, 'maxBytes');
    const maxMs = checkBudget(options, 'maxMs');
    const collector = this.collector ?? (this.manualCollector ??= this.newCollector({ spaceAmplification: Infinity, stepBytes: 0, idleMs: 0 }));
    // Frees so far made durable first: until then a move keeps their slots (engine/slab.ts
    // pendingFrees), so they would give nothing back.
    this.commitAll();
    const result = collector.step({ maxBytes, maxMs, urgent: false, commitAtEnd: true, reportMore: true });
    return result;
  }


  /**
   * Recounts every total from scratch (epochs, zones, the registry) and checks it against the
   * incremental values and the device's zone report; throws ERR_INTERNAL on the first
   * difference. O(slabs + zones): for tests, the simulator and `zns-slab` diagnostics.
   */
  verify(): void {
    this.checkOpen();
    this.registry.verify();
    this.zones.verify();
    let slabs = 0;
    for (const epoch of this.epochs.values()) {
      epoch.verify();
      for (const slab of epoch.slabs) {
        assert(this.registry.get(slab.id) === slab, `epoch ${epoch.id} holds slab ${slab.id}, which the registry does not`);
        if (slab.state === SlabState.SEALED) assert(this.zones.zones[slab.zone]!.slabs.has(slab), `sealed slab ${slab.id} is listed in its zone ${slab.zone}`);
        slabs++;
      }
      for (const zone of this.zones.zonesOf(epoch.id)) assert(this.zones.zones[zone]!.owner === epoch.id, `epoch ${epoch.id} owns zone ${zone}`);
    }
    assert(slabs === this.registry.liveSlabs, `${this.registry.liveSlabs} live slabs in the registry, ${slabs} in epochs`);
    for (const zone of this.zones.zones) {
      if (zone.owner !== NO_OWNER) assert(this.epochs.has(zone.owner), `zone ${zone.index} is owned by epoch ${zone.owner}, which is not live`);
    }
  }

  /**
   * @internal For the simulator: the process dies here. Nothing is flushed or committed; the
   * catalog and device are let go as a crash would (the device decides what it keeps).
   */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.idleTimer);
    try {
      this.catalog.close();
    } finally {
      this.device.close();
    }
  }

  /** Flushes and closes the store and its device. Idempotent. */
  close(): void {
    if (this.closed) return;
    clearInterval(this.idleTimer);
    try {
      if (!this.readOnly) {
        this.flush();
        crashPoint('store.close');
        this.writer.commit(); // the counters of resets the flush did after its own commit
        this.registry.committed();
      }
    } finally {
      this.closed = true;
      this.catalog.close();
      this.device.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ---- observability (engine/stats.ts) ----------------------------------------------------

  /** Store-wide snapshot: counters, derived metrics, zones, every live epoch and active class. */
  statsGlobal(): GlobalStats {
    this.checkOpen();
    return globalStats(this.statsSource());
  }

  /** One size class (its index, as in handles), across all live epochs. */
  statsClass(sizeClass: number): ClassStats {
    this.checkOpen();
    const cls = typeof sizeClass === 'number' && Number.isInteger(sizeClass) ? this.sizeClasses.classes[sizeClass] : undefined;
    if (cls === undefined) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `size class must be an integer in [0, ${this.sizeClasses.classes.length - 1}], got ${describe(sizeClass)}`);
    }
    return classStats(this.statsSource(), cls);
  }

  /** One live epoch (ACTIVE or CLOSING). A closed epoch has nothing left: ERR_EPOCH_CLOSED. */
  statsEpoch(epochId: number): EpochStats {
    this.checkOpen();
    return epochStats(this.statsSource(), this.liveEpoch(epochId));
  }

  /** Every zone of the device, joined with the engine's ownership and live/dead bytes. */
  statsZones(): ZoneStats[] {
    this.checkOpen();
    return zoneStats(this.device.reportZones(), this.statsSource());
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * The live slab a handle names: as `resolve` checks it (version, slab id and generation,
   * class, slot handed out, live), with no allocation on success; the handle's halves stay in
   * `handleHalves` for the caller to take the slot from. Anything it refuses goes to `resolve`,
   * which names what is wrong.
   */
  private lookup(handle: bigint): Slab {
    if (this.closed) this.checkOpen();
    if (typeof handle === 'bigint' && handle >= 0n && handle <= HANDLE_MAX) {
      handleWord[0] = handle;
      const lo = handleHalves[LO]!;
      const hi = handleHalves[HI]!;
      const slab = this.registry.get(hi >>> 10);
      const slot = (lo >>> 10) & 0xff;
      if (
        slab !== undefined &&
        (lo & 0b11) === HANDLE_VERSION &&
        slab.generation === (hi & 0x3ff) * 16384 + (lo >>> 18) &&
        slab.cls.index === ((lo >>> 2) & 0xff) &&
        slot < slab.slotCount &&
        (slab.live[slot >>> 5]! & (1 << (slot & 31))) !== 0
      ) {
        return slab;
      }
    }
    this.resolve(handle);
    throw new ZnsSlabError(ErrorCode.INTERNAL, `zns-slab invariant violated: handle ${String(handle)} refused by the fast path, accepted by resolve`);
  }

  /** Where a sealed slab's slot is on the device (ERR_ZONE_LOST in a damaged zone of a salvage open). */
  private slotPlace(slab: Slab, slot: number): number {
    const zone = this.zones.zones[slab.zone]!;
    if (this.damaged.size > 0 && this.damaged.has(zone.index)) {
      throw new ZnsSlabError(ErrorCode.ZONE_LOST, `zone ${zone.index}, which holds slab ${slab.id}, is damaged (see statsZones())`);
    }
    return zone.start + slab.slotOffset(slot);
  }

  /** A get started: the bytes now (memory, or a device without readAsync), or a read in flight. Throws what `get` throws. */
  private startGet(handle: bigint): Buffer | Promise<Buffer> {
    const slab = this.lookup(handle);
    const slot = (handleHalves[LO]! >>> 10) & 0xff;
    this.storeCounters.gets++;
    if (slab.buffer !== undefined) return copyFromMemory(slab, slot);
    if (this.device.readAsync === undefined) {
      return decodeSlot(this.device.read(this.slotPlace(slab, slot), slab.cls.stride), slab.storeTag, slab.id, slab.generation, slot, slab.cls, true);
    }
    return this.readSlotAsync(handle, slab, slot);
  }

  /**
   * One slot read on the device's thread pool. When the bytes arrive, the handle is looked up
   * again: freed, closed or reused meanwhile is ERR_STALE_HANDLE (a store closed meanwhile,
   * ERR_CLOSED), whatever the bytes say. A slab moved by zone GC (or back in memory) meanwhile
   * is read again where it is now, should the old place fail.
   */
  private async readSlotAsync(handle: bigint, slab: Slab, slot: number): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      const place = this.slotPlace(slab, slot);
      let bytes: Buffer | undefined;
      let readError: unknown;
      try {
        bytes = await this.device.readAsync!(place, slab.cls.stride);
      } catch (err) {
        readError = err;
      }
      const now = this.lookup(handle);
      const moved = now !== slab || now.buffer !== undefined || this.zones.zones[now.zone]!.start + now.slotOffset(slot) !== place;
      if (readError === undefined) {
        try {
          return decodeSlot(bytes!, now.storeTag, now.id, now.generation, slot, now.cls, true);
        } catch (err) {
          if (!moved || attempt >= READ_RETRIES || !(err instanceof ZnsSlabError && err.code === ErrorCode.CHECKSUM)) throw err;
        }
      } else if (!moved || attempt >= READ_RETRIES) throw readError;
      if (now.buffer !== undefined) return copyFromMemory(now, slot);
      slab = now;
    }
  }

  private resolve(handle: bigint): { slab: Slab; slot: number } {
    const h = unpackHandle(handle);
    if (h.version !== HANDLE_VERSION) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle version ${h.version} is not ${HANDLE_VERSION}`);
    }
    const slab = this.registry.lookup(h.slabId, h.generation);
    if (slab.cls.index !== h.sizeClass) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle says size class ${h.sizeClass}; slab ${h.slabId} is class ${slab.cls.index}`);
    }
    if (h.slot >= slab.slotCount) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle names slot ${h.slot}; slab ${h.slabId} has handed out ${slab.slotCount}`);
    }
    if (!slab.isLive(h.slot)) {
      throw new ZnsSlabError(ErrorCode.STALE_HANDLE, `slot ${h.slot} of slab ${h.slabId} was freed`);
    }
    return { slab, slot: h.slot };
  }

  /** Slow path of put: the (epoch, class) has no partial slab, or it is full. */
  private nextSlab(epoch: Epoch, classIndex: number, full: Slab | undefined): Slab {
    this.zones.poll();
    if (this.unsealed.size > 0) this.sealUnsealed();
    const counters = this.classCounters[classIndex]!;
    if (full === undefined) counters.currentPartialNull++;
    else {
      counters.currentPartialFull++;
      // seal() restarts a full slab whose objects were all freed in place, instead of writing it.
      this.seal(full);
      if (epoch.openSlabs[classIndex] === full && !full.isFull) return full;
    }
    counters.slowPathCacheMiss++;
    if (!this.registry.hasLeasedId()) this.lease();
    const { slabId, generation } = this.registry.acquire();
    if (generation > 0) counters.slabsRecycled++;
    else counters.slabsOverflowed++;
    const slab = new Slab(slabId, generation, this.sizeClasses.classes[classIndex]!, epoch.id, this.storeTag);
    this.registry.attach(slab);
    epoch.addSlab(slab);
    epoch.openSlabs[classIndex] = slab;
    return slab;
  }

  private lease(): void {
    this.registry.lease((rows, nextSlabId) => {
      this.storeCounters.leaseCommits++;
      this.writer.commitLease(rows, nextSlabId);
    });
  }

  /**
   * Appends an OPEN slab to its epoch's head zone. A slab with no live object is not written:
   * the epoch's current partial slab restarts in place, any other is dropped. If the write
   * fails the slab stays open and current, so a later put or flush writes it.
   */
  private seal(slab: Slab): void {
    const epoch = this.epochs.get(slab.epoch)!;
    if (slab.liveCount === 0) {
      if (epoch.state === EpochState.ACTIVE && epoch.openSlabs[slab.cls.index] === slab && this.registry.renew(slab)) {
        this.classCounters[slab.cls.index]!.slabsReusedHot++;
        return;
      }
      this.drop(epoch, slab);
      return;
    }
    const image = slab.sealImage(this.blockSize, { storeId: this.storeIdBytes, sealSequence: this.sealSequence + 1, commitSequence: this.catalog.commitSequence, ephemeral: epoch.ephemeral });
    // The write goes on in the background (when the device can): `put` does not wait for it,
    // reads come from the image in memory until it ends, and a failure reopens the slab.
    const owned = slab.buffer!;
    let placedAt = -1;
    let placedOffset = -1;
    const onEnd = (error: ZnsSlabError | undefined) => this.sealEnded(slab, owned, placedAt, placedOffset, error);
    let placed: { zone: number; offset: number };
    try {
      placed = this.zones.append(epoch.id, image, 'user', onEnd);
    } catch (err) {
      // Out of zones: zone GC collects until one is free, then the seal tries once more.
      if (!(err instanceof ZnsSlabError && err.code === ErrorCode.DEVICE_FULL && this.collector?.reclaim() === true)) throw err;
      placed = this.zones.append(epoch.id, image, 'user', onEnd);
    }
    placedAt = placed.zone;
    placedOffset = placed.offset;
    this.sealSequence++;
    slab.markSealed(placed.zone, placed.offset, image.length, this.zones.zones[placed.zone]!.writing !== undefined);
    epoch.slabSealed(slab);
    this.zones.placeSlab(slab);
    this.writer.slabChanged(slab.id);
    this.classCounters[slab.cls.index]!.slabsSealed++;
    this.collector?.sealed();
  }

  /**
   * A seal's background write ended. Written: the image in memory goes. Failed: the zone
   * manager has already taken the zone's write pointer back; the slab (if it is still there,
   * where that write put it) is OPEN again with the same slots, and sealed again later.
   */
  private sealEnded(slab: Slab, image: Buffer, zone: number, offset: number, error: ZnsSlabError | undefined): void {
    const here = this.registry.get(slab.id) === slab && slab.state === SlabState.SEALED && slab.zone === zone && slab.offset === offset && slab.buffer === image;
    if (error === undefined || !here) {
      if (slab.buffer === image) slab.buffer = undefined;
      giveBack(image);
      if (error === undefined) return;
    }
    this.storeCounters.sealWriteFailures++;
    this.lastSealError = error;
    if (!here) return; // emptied and dropped, or moved, meanwhile: nothing of it is lost
    const epoch = this.epochs.get(slab.epoch)!;
    this.zones.removeSlab(slab);
    epoch.slabUnsealed(slab);
    slab.markUnsealed();
    this.writer.slabChanged(slab.id);
    this.unsealed.add(slab);
  }

  /** Seals the slabs whose background write failed (they are OPEN, full or not). */
  private sealUnsealed(): void {
    for (const slab of [...this.unsealed]) {
      this.unsealed.delete(slab);
      try {
        this.seal(slab);
      } catch (err) {
        if (this.registry.get(slab.id) === slab && slab.state === SlabState.OPEN) this.unsealed.add(slab);
        throw err;
      }
    }
  }

  /** Zone GC over this store's zones (engine/gc.ts is the policy; the moves and commits are here). */
  private newCollector(options: Required<GcOptions>): ZoneGc {
    return new ZoneGc(
      {
        zones: this.zones,
        counters: this.storeCounters,
        collectable: (epoch) => this.epochs.get(epoch)?.ephemeral === false,
        relocate: (slab) => this.relocate(slab),
        takeMoveError: () => {
          const err = this.lastMoveError;
          this.lastMoveError = undefined;
          return err;
        },
        commit: () => this.commitAll(),
      },
      options,
    );
  }

  /**
   * Zone GC's move of one sealed slab (engine/gc.ts, step 2): its live slots, packed, go to the
   * GC head of its epoch; id, generation and slot numbers stay, so every handle still works.
   * Durable at the next commit; until then the catalog points at the old place, which stays
   * intact until that commit lets its zone go. Returns the device bytes written.
   */
  private relocate(slab: Slab): number {
    const epoch = this.epochs.get(slab.epoch)!;
    assert(slab.state === SlabState.SEALED && !epoch.ephemeral, `relocate sealed slab ${slab.id} of a persistent epoch`);
    if (slab.liveCount === 0) {
      this.drop(epoch, slab);
      return 0;
    }
    if (slab.buffer !== undefined) {
      // Its image's write is in flight: that write ends first, so a move never depends on a
      // write that may yet fail (a failed seal reopens the slab: then there is nothing to move).
      this.zones.settle(slab.zone);
      if (this.registry.get(slab.id) !== slab || slab.state !== SlabState.SEALED) return 0;
    }
    const from = this.zones.zones[slab.zone]!;
    const current = this.device.read(from.start + slab.offset, slab.length);
    const stamp = { storeId: this.storeIdBytes, sealSequence: this.sealSequence + 1, commitSequence: this.catalog.commitSequence, ephemeral: false };
    const { image, bitmap, buffer } = slab.packedImage(current, this.blockSize, stamp);
    const oldPlace = slab.place();
    // The write goes on in the background, as a seal's does; the slab reads from the packed
    // image in memory until it ends; its old place stays intact until a commit lets that zone go.
    let to = -1;
    let toOffset = -1;
    const { zone, offset } = this.zones.append(epoch.id, image, 'gc', (error) => this.moveEnded(slab, buffer, oldPlace, to, toOffset, error));
    to = zone;
    toOffset = offset;
    this.sealSequence++;
    const oldLength = slab.length;
    this.zones.removeSlab(slab);
    slab.markMoved(zone, offset, image.length, bitmap);
    slab.buffer = this.zones.zones[zone]!.writing !== undefined ? buffer : undefined;
    epoch.slabMoved(slab, oldLength);
    this.zones.placeSlab(slab);
    this.writer.slabChanged(slab.id);
    crashPoint('gc.moved');
    return image.length;
  }

  /**
   * A zone GC move's background write ended. Written: the packed image in memory goes. Failed:
   * the slab (if it is still there) goes back to its old place, which is intact: the zone
   * manager lets no zone go while an append is in flight (ZoneManager.release), so the old
   * zone is still its epoch's. The victim then still holds it, and is not let go.
   */
  private moveEnded(slab: Slab, image: Buffer, from: SlabPlace, zone: number, offset: number, error: ZnsSlabError | undefined): void {
    const here = this.registry.get(slab.id) === slab && slab.state === SlabState.SEALED && slab.zone === zone && slab.offset === offset;
    if (slab.buffer === image) slab.buffer = undefined;
    giveBack(image);
    if (error === undefined) return;
    this.storeCounters.gcMoveWriteFailures++;
    this.lastMoveError = error;
    if (!here) return; // freed, dropped or moved again meanwhile: nothing of it is lost
    const epoch = this.epochs.get(slab.epoch)!;
    assert(this.zones.zones[from.zone]!.owner === slab.epoch, `slab ${slab.id}'s old zone ${from.zone} is still its epoch's when its move fails`);
    const movedLength = slab.length;
    this.zones.removeSlab(slab);
    slab.restorePlace(from);
    epoch.slabMoved(slab, movedLength);
    this.zones.placeSlab(slab);
    this.writer.slabChanged(slab.id);
  }

  /**
   * The idle timer: when nothing was put or freed since the last tick, the frees so far are
   * committed (so zone GC can count them as gain) and a GC step runs.
   */
  private onIdle(): void {
    if (this.closed || this.collector === undefined) return;
    if (this.busy) {
      this.busy = false;
      return;
    }
    if (this.writer.pending) {
      try {
        this.commitAll();
      } catch (err) {
        if (!(err instanceof ZnsSlabError)) throw err;
        this.storeCounters.gcStepFailures++;
        return;
      }
    }
    this.collector.background(Infinity, GC_IDLE_STEP_MS, true);
  }

  private onSlabEmpty(slab: Slab): void {
    const epoch = this.epochs.get(slab.epoch)!;
    if (epoch.state === EpochState.ACTIVE && slab.state === SlabState.OPEN) {
      // The allocator's Phase 2.1: ACTIVE epochs keep their empty partial slab (latency first):
      // it restarts at slot 0 under its next generation at once (every handle into it is
      // already freed).
      if (epoch.openSlabs[slab.cls.index] === slab) {
        if (this.registry.renew(slab)) this.classCounters[slab.cls.index]!.slabsReusedHot++;
        else this.drop(epoch, slab);
      }
      return;
    }
    // A sealed slab with nothing live is only dead bytes on its zone: let it go, and the zone
    // with it when it was the zone's last.
    this.drop(epoch, slab);
  }

  /** Takes a slab out of its epoch and zone and recycles its id (an emptied slab, or a closing epoch's). */
  private drop(epoch: Epoch, slab: Slab): void {
    // A write in flight ends first, so its end finds the slab where it left it (a failed one
    // reopens it: then it is dropped as an OPEN slab).
    if (slab.state === SlabState.SEALED && slab.buffer !== undefined) this.zones.settle(slab.zone);
    this.unsealed.delete(slab);
    if (slab.state === SlabState.SEALED) {
      this.zones.removeSlab(slab);
      this.zones.releaseIfEmpty(slab.zone);
    } else slab.releaseBuffer();
    epoch.removeSlab(slab);
    this.registry.recycle(slab, !epoch.ephemeral);
    this.writer.slabChanged(slab.id);
    this.classCounters[slab.cls.index]!.slabsFreed++;
  }

  private startClosing(epoch: Epoch): void {
    assert(epoch.state === EpochState.ACTIVE, 'only an ACTIVE epoch starts closing');
    epoch.state = EpochState.CLOSING;
    epoch.closingAt = now();
    this.writer.epochChanged(epoch);
    this.recycleEmptySlabs(epoch);
  }

  /** The allocator's Phase 2.1 proactive scan: a CLOSING epoch gives back its already-empty slabs. */
  private recycleEmptySlabs(epoch: Epoch): void {
    for (const slab of [...epoch.slabs]) if (slab.liveCount === 0) this.drop(epoch, slab);
  }

  private createEpoch(ephemeral = false): Epoch {
    const epoch = new Epoch(this.nextEpochId++, EpochState.ACTIVE, now(), this.sizeClasses.classes.length, ephemeral);
    this.epochs.set(epoch.id, epoch);
    return epoch;
  }

  private epochForPut(epochId: number, classIndex: number): Epoch {
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch === undefined && epochId >= this.nextEpochId) {
      throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
    }
    if (epoch === undefined || epoch.state !== EpochState.ACTIVE) {
      this.classCounters[classIndex]!.slowPathEpochClosed++;
      throw new ZnsSlabError(ErrorCode.EPOCH_CLOSED, `epoch ${epochId} is ${epoch?.state ?? EpochState.CLOSED}: it takes no new objects`);
    }
    return epoch;
  }

  private liveEpoch(epochId: number): Epoch {
    checkEpochId(epochId);
    const epoch = this.epochs.get(epochId);
    if (epoch !== undefined) return epoch;
    if (epochId < this.nextEpochId) throw new ZnsSlabError(ErrorCode.EPOCH_CLOSED, `epoch ${epochId} is already closed`);
    throw new ZnsSlabError(ErrorCode.UNKNOWN_EPOCH, `epoch ${epochId} does not exist`);
  }

  /**
   * The one way to the catalog (besides leases): the device is flushed first, so every sealed
   * row committed points at durable bytes; zones let go are reset only after the commit.
   */
  private commitAll(): void {
    // Every append in flight ends first: one that failed must not be committed as written.
    this.zones.settle();
    this.device.flush();
    this.writer.commit();
    this.registry.committed();
    this.zones.resetReleased();
    this.collector?.committed();
  }

  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `store at ${this.path} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new ZnsSlabError(ErrorCode.READ_ONLY, `store at ${this.path} was opened read-only`);
  }

  private savedCounters(): string {
    const saved: SavedCounters = { store: this.storeCounters, classes: this.classCounters };
    return JSON.stringify(saved);
  }


  private statsSource(): StatsSource {
    return {
      store: this.path,
      device: this.device,
      classes: this.sizeClasses.classes,
      blockSize: this.blockSize,
      epochs: [...this.epochs.values()],
      epochCurrent: this.current.id,
      zones: this.zones.zones,
      zonesOf: (epoch) => this.zones.zonesOf(epoch),
      damaged: this.damaged,
      zoneCounts: { free: this.zones.freeZoneCount(), active: this.zones.activeZones, open: this.zones.openZones },
      storeCounters: this.storeCounters,
      classCounters: this.classCounters,
      headOf: (zone) => {
        const owner = this.zones.zones[zone]!.owner;
        if (owner === NO_OWNER) return null;
        return this.zones.head(owner, 'user') === zone ? 'user' : this.zones.head(owner, 'gc') === zone ? 'gc' : null;
      },
      gc: {
        enabled: this.collector !== undefined,
        collecting: this.collector !== undefined && this.collector.victim >= 0 ? this.collector.victim : null,
        reserveZones: this.zones.reserveZones,
        bytesWritten: this.zones.bytesWritten,
        bytesLive: this.zones.bytesLive,
        lastError: this.collector?.lastError?.message ?? null,
      },
    };
  }
}

/**
 * A copy of a slot's payload from its slab's image in memory. The bytes were written by this
 * process (an append, or a seal's image waiting for its write): the registry has already
 * checked the handle's identity, so the stored length is checked and the crc is not (it
 * guards bytes that crossed a device: every device read is checked).
 */
function copyFromMemory(slab: Slab, slot: number): Buffer {
  const memory = slab.buffer!;
  const at = slab.memorySlotOffset(slot) + SLOT_HEADER_BYTES;
  const length = memoryLength(slab, memory, at);
  const out = Buffer.allocUnsafe(length);
  out.set(new Uint8Array(memory.buffer, memory.byteOffset + at, length));
  return out;
}

/** The payload length stored in front of the slot's bytes at `at` (ERR_INTERNAL if it cannot be: memory is ours). */
function memoryLength(slab: Slab, memory: Buffer, at: number): number {
  const length = memory.readUInt32LE(at - SLOT_HEADER_BYTES);
  if (length > slab.cls.size || at + length > memory.length) {
    throw new ZnsSlabError(ErrorCode.INTERNAL, `zns-slab invariant violated: slot at ${at} of slab ${slab.id} in memory holds length ${length}, over its ${slab.cls.size}-byte class`);
  }
  return length;
}

function targetTooSmall(room: number, length: number): ZnsSlabError {
  return new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `getInto: target holds ${room} bytes; the object has ${length}`);
}

function checkQueueDepth(options: unknown): number {
  if (options === undefined) return DEFAULT_QUEUE_DEPTH;
  if (typeof options !== 'object' || options === null) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `getMany: options must be an object, got ${describe(options)}`);
  const depth = (options as GetManyOptions).queueDepth;
  if (depth === undefined) return DEFAULT_QUEUE_DEPTH;
  if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 1 || depth > MAX_QUEUE_DEPTH) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `getMany: options.queueDepth must be an integer in [1, ${MAX_QUEUE_DEPTH}], got ${describe(depth)}`);
  }
  return depth;
}

function checkBudget(options: GcCallOptions, key: 'maxBytes' | 'maxMs'): number {
  if (typeof options !== 'object' || options === null) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `gc: options must be an object, got ${describe(options)}`);
  const v = options[key];
  if (v === undefined) return Infinity;
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `gc: options.${key} must be a non-negative number, got ${describe(v)}`);
  return v;
}

function checkEpochId(epochId: unknown): asserts epochId is number {
  if (typeof epochId !== 'number' || !Number.isSafeInteger(epochId) || epochId < FIRST_EPOCH) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `an epoch is a positive integer, got ${describe(epochId)}`);
  }
}

const typedArrayByteLength = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'byteLength')!.get!;

/** A Uint8Array's (or Buffer's) true byte length, from the intrinsic getter; anything else is refused by name. */
function byteLengthOf(bytes: unknown): number {
  // (Measured: the intrinsic getter costs ~8 ns, a prototype check first ~20 ns.)
  if (!utilTypes.isUint8Array(bytes)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `put: bytes must be a Buffer or Uint8Array, got ${describe(bytes)}`);
  }
  return typedArrayByteLength.call(bytes) as number;
}

function parseCounters(json: string): SavedCounters {
  try {
    return JSON.parse(json) as SavedCounters;
  } catch (err) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `the catalog's saved counters are not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Relative when inside the store, so a store folder can be moved as a whole. */
export function storeRelative(dir: string, target: string): string {
  const rel = path.relative(path.resolve(dir), path.resolve(target));
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(target) : rel;
}

/**
 * Opens the store in folder `dir`, creating it (and, by default, an emulated zoned device in
 * `dir/device`) when it does not exist yet.
 */
export function openStore(dir: string, options: StoreOptions = {}): Store {
  return openStoreWith(dir, options, {});
}

/**
 * @internal `openStore` with fault-injection hooks on the catalog (the simulator's). Not part
 * of the package's API.
 */
export function openStoreWith(dir: string, rawOptions: StoreOptions, internal: { catalogHooks?: CatalogHooks; purpose?: string }): Store {
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: dir must be a folder path, got ${describe(dir)}`);
  }
  const options = checkStoreOptions(rawOptions);
  const salvage = options.salvage ?? false;
  const readOnly = (options.readOnly ?? false) || salvage;
  const catalogFile = path.join(dir, CATALOG_FILE);
  const defaultDevice = path.join(dir, DEFAULT_DEVICE_DIR);
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw fsError(err, `openStore: ${dir}`);
  }
  if (stat !== undefined && !stat.isDirectory()) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `openStore: ${dir} is a file, not a store folder`);
  const catalogExisted = fs.existsSync(catalogFile);
  if (readOnly && !catalogExisted) {
    if (typeof options.device !== 'object' && isEmulatedDevice(typeof options.device === 'string' ? options.device : defaultDevice)) {
      throw new ZnsSlabError(ErrorCode.CATALOG_MISSING, `${dir} has a device but no ${CATALOG_FILE}: run 'zns-slab recover ${dir}' to rebuild it`);
    }
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, stat === undefined ? `${dir} does not exist` : `${dir} is not a zns-slab store (no ${CATALOG_FILE})`);
  }
  if (!readOnly) {
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') throw new ZnsSlabError(ErrorCode.INVALID_STORE, `openStore: ${dir} (or a folder above it) is a file`, { cause: err });
      throw fsError(err, `openStore: creating ${dir}`);
    }
  }
  const catalog = new Catalog(catalogFile, { readonly: readOnly, mustExist: readOnly, ...(internal.catalogHooks ? { hooks: internal.catalogHooks } : {}) });
  let device: ZonedDevice | undefined = typeof options.device === 'object' ? options.device : undefined;
  let created = false;
  try {
    if (catalog.isEmpty()) {
      if (readOnly) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} holds an empty catalog, not a zns-slab store`);
      const target = typeof options.device === 'string' ? options.device : defaultDevice;
      device ??= openZonedDevice(target, { create: true, exclusive: true, direct: options.direct === true, ...(options.geometry ? { geometry: options.geometry } : {}) });
      const written = deviceHoldsData(device);
      if (written > 0 || device.owner !== undefined) {
        if (options.overwriteDevice !== true) {
          throw new ZnsSlabError(
            ErrorCode.CATALOG_MISSING,
            `device ${device.path} holds a store's data (${written} zones written${device.owner ? `, store ${device.owner}` : ''}) but ${dir} has no catalog: ` +
              `run 'zns-slab recover ${dir}' to rebuild it, or open with { overwriteDevice: true } to start a new store there (every zone is reset)`,
          );
        }
        for (const z of device.reportZones()) if (z.condition !== ZoneCondition.EMPTY && z.condition !== ZoneCondition.OFFLINE && z.condition !== ZoneCondition.READ_ONLY) device.resetZone(z.index);
      }
      const storeId = randomBytes(STORE_ID_BYTES).toString('hex');
      const meta: CatalogMeta = {
        formatVersion: CATALOG_FORMAT_VERSION,
        geometry: { ...device.geometry },
        deviceKind: device.kind,
        devicePath: storeRelative(dir, device.path),
        createdAt: now(),
        nextSlabId: FIRST_SLAB_ID,
        nextEpochId: FIRST_EPOCH + 1,
        currentEpoch: FIRST_EPOCH,
        storeId,
        commitSequence: 0,
        sealSequence: 0,
        ...(internal.purpose !== undefined ? { purpose: internal.purpose } : {}),
      };
      // The device names its owner first: a crash between the two leaves a device that says
      // it is owned and no catalog, which the next open refuses rather than silently reuses.
      device.setOwner?.(storeId);
      catalog.initialize(meta, { id: FIRST_EPOCH, state: 'ACTIVE', createdAt: meta.createdAt, closingAt: null, closedAt: null });
      created = true;
    } else {
      const meta = catalog.readMeta();
      // A layer's store (a cache's) is written only through that layer; anyone may inspect it.
      if (!readOnly && meta.purpose !== internal.purpose) {
        if (meta.purpose === 'cache') throw new ZnsSlabError(ErrorCode.IS_A_CACHE, `${dir} holds a zns-slab cache: open it with openCache(), not openStore() (nothing was changed)`);
        if (internal.purpose === 'cache') throw new ZnsSlabError(ErrorCode.NOT_A_CACHE, `${dir} holds a plain zns-slab store, not a cache: open it with openStore() (nothing was changed)`);
        throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} holds a store made for '${meta.purpose ?? 'plain use'}', not '${internal.purpose ?? 'plain use'}'`);
      }
      const recorded = meta.geometry as unknown as DeviceGeometry;
      if (options.geometry && !sameGeometry(recorded, { ...recorded, ...options.geometry })) {
        throw new ZnsSlabError(
          ErrorCode.GEOMETRY_MISMATCH,
          `store at ${dir} was made with geometry ${JSON.stringify(recorded)}; asked for ${JSON.stringify(options.geometry)}`,
        );
      }
      const target = typeof options.device === 'string' ? options.device : path.resolve(dir, meta.devicePath);
      device ??= openZonedDevice(target, { exclusive: !readOnly, direct: options.direct === true });
      if (!sameGeometry(device.geometry, recorded)) {
        throw new ZnsSlabError(
          ErrorCode.GEOMETRY_MISMATCH,
          `device ${device.path} has geometry ${JSON.stringify(device.geometry)}; the store was made with ${JSON.stringify(recorded)}`,
        );
      }
      if (device.owner !== undefined && device.owner !== meta.storeId) {
        throw new ZnsSlabError(
          ErrorCode.CATALOG_MISMATCH,
          `device ${device.path} belongs to store ${device.owner}; the catalog in ${dir} is store ${meta.storeId}: catalogs were swapped or copied (nothing was changed)`,
        );
      }
    }
    return new Store(dir, catalog, device, readOnly, salvage, options.gc);
  } catch (err) {
    catalog.close();
    try {
      device?.close();
    } catch {
      // the first error is the one to report
    }
    // A catalog file this call created for a store it then refused to make is not left behind.
    if (!catalogExisted && !created) for (const f of [catalogFile, `${catalogFile}-wal`, `${catalogFile}-shm`, `${catalogFile}.reserve`]) fs.rmSync(f, { force: true });
    throw err;
  }
}
