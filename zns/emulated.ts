/**
 * A zoned block device emulated in a folder of ordinary files: one file per zone, holding the
 * zone's written bytes, so the file's length is the write pointer and a reset deletes the file
 * (the filesystem gets the space back: `du` drops). It obeys the rules the kernel's null_blk
 * enforces (drivers/block/null_blk/zoned.c): writes only at the write pointer and within the
 * capacity, explicit and implicit open, the open and active limits (an implicitly open zone is
 * closed to make room, as null_blk does), finish, reset.
 *
 * Persistent state: `device.json` (geometry and which zones were finished or taken offline) and
 * the zone files. Open zones are volatile, as on a real drive after a power cycle: a partly
 * written zone reopens CLOSED. The exception is a zone explicitly opened through a handle made
 * with `keepOpenZones` (the zone tool, `zns-slab zones open`): it is recorded in `device.json` and
 * stays EXPLICIT_OPEN across opens of the device, as on a kernel device that is not power
 * cycled, until any opener closes, finishes or resets it or fills it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crashNow, crashPoint, crashPointReached } from '../crashpoints.js';
import { type FolderLock, lockFolder } from './lock.js';
import { BounceBuffer, DIRECT_IO_MIN_ALIGN, alignedBuffer, alignedShared, isAligned } from './aligned.js';
import { type WriteEnd, ZoneWrites } from './writeQueue.js';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import {
  type DeviceGeometry,
  type WriteEnded,
  type Zone,
  type ZonedDevice,
  MIN_ZONE_COUNT,
  ZoneCondition,
  ZoneType,
  checkZoneIndex,
  effectiveLimit,
  locateInZone,
  zoneIsActive,
  zoneIsOpen,
} from './device.js';

export const EMULATED_FORMAT = 'zns-slab-emulated-zoned-device';
export const EMULATED_FORMAT_VERSION = 1;
const META_FILE = 'device.json';

/** Limits of the emulation (a real device reports its own). */
export const EMULATED_MAX_ZONES = 1 << 20;
export const EMULATED_MIN_BLOCK_SIZE = 512;
export const EMULATED_MAX_BLOCK_SIZE = 64 * 1024;
/** Zone files kept open at once; others are reopened on demand. */
const MAX_CACHED_FDS = 64;

export const DEFAULT_EMULATED_GEOMETRY: DeviceGeometry = Object.freeze({
  zoneCount: 256,
  zoneSize: 16 * 1024 * 1024,
  zoneCapacity: 16 * 1024 * 1024,
  logicalBlockSize: 4096,
  maxOpenZones: 14,
  maxActiveZones: 14,
});

/**
 * Linux's `max_sectors_kb` for null_blk (124 KiB): the block layer splits a longer write into
 * requests of at most this many bytes, and the device checks each on its own.
 */
export const NULL_BLK_MAX_SECTORS_BYTES = 124 * 1024;
/** QEMU's NVMe controller's largest transfer (MDTS, 512 KiB): Linux's `max_sectors_kb` for it. */
export const NVME_MDTS_BYTES = 512 * 1024;

/** Errors of a split write that are not a request's answer (the call itself is wrong): they end the write. */
const NOT_A_REQUEST_ERROR: ReadonlySet<string> = new Set([ErrorCode.CLOSED, ErrorCode.INVALID_ARGUMENT, ErrorCode.UNALIGNED_IO]);

/**
 * Which device the emulation behaves as where devices differ (docs/DEVICES.md has the table):
 * - `null_blk`: Linux's null_blk (drivers/block/null_blk/zoned.c). Writes are split into
 *   requests of at most `maxSectorsBytes` and at zone ends, every one sent and checked on its
 *   own (a failed request does not stop the rest; see `write` for the error); the implicitly
 *   open zone closed to make room is found round-robin from the last one closed
 *   (null_close_imp_open_zone); a zone filled by writes reads 0xFF past its capacity.
 * - `nvme`: QEMU's NVMe ZNS (hw/nvme/ctrl.c), with the same splitting (at `maxSectorsBytes`,
 *   default the MDTS): the oldest implicitly opened zone is closed to make room, before the
 *   active limit is checked (nvme_zrm_auto_transition_zone, then nvme_aor_check); an opened
 *   zone closed with no data stays CLOSED and active (nvme_zrm_close); finish takes no
 *   resources (nvme_zrm_finish).
 * - `atomic`: the emulation before profiles: every write is one request, all or nothing;
 *   null_blk's rules otherwise, the lowest-numbered implicitly open zone closed for room.
 */
export type EmulatedProfileName = 'null_blk' | 'nvme' | 'atomic';

export interface EmulatedProfile {
  readonly name: EmulatedProfileName;
  /** Most bytes per request (a multiple of the block size is used: rounded down, at least one block). Ignored by `atomic`. */
  readonly maxSectorsBytes: number;
}

export const DEFAULT_EMULATED_PROFILE: EmulatedProfile = Object.freeze({ name: 'null_blk', maxSectorsBytes: NULL_BLK_MAX_SECTORS_BYTES });

/** A profile from its name (with that device's request size) or a full description. */
export function emulatedProfile(profile: EmulatedProfileName | Partial<EmulatedProfile> & { name: EmulatedProfileName }): EmulatedProfile {
  const name = typeof profile === 'string' ? profile : profile.name;
  if (name !== 'null_blk' && name !== 'nvme' && name !== 'atomic') {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `unknown emulated device profile ${JSON.stringify(name)} (null_blk, nvme or atomic)`);
  }
  const fallback = name === 'nvme' ? NVME_MDTS_BYTES : NULL_BLK_MAX_SECTORS_BYTES;
  const maxSectorsBytes = typeof profile === 'string' ? fallback : (profile.maxSectorsBytes ?? fallback);
  if (!Number.isSafeInteger(maxSectorsBytes) || maxSectorsBytes <= 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `maxSectorsBytes must be a positive integer (got ${String(maxSectorsBytes)})`);
  }
  return Object.freeze({ name, maxSectorsBytes });
}

function sameProfile(a: EmulatedProfile, b: EmulatedProfile): boolean {
  return a.name === b.name && a.maxSectorsBytes === b.maxSectorsBytes;
}

interface DeviceMeta {
  format: string;
  version: number;
  geometry: DeviceGeometry;
  /** The store that owns the device (its id), once one does. */
  owner?: string;
  /** Its owner's lowest generation after a catalog rebuild (opaque here). */
  generationFloor?: number;
  /** Zones finished early (FULL with fewer bytes than the capacity). */
  finished: number[];
  /** Zones taken offline (fault injection; a real drive does this to worn zones). */
  offline: number[];
  /** Zones explicitly opened by a `keepOpenZones` handle: EXPLICIT_OPEN at the next open too. */
  open?: number[];
  /** Which device it behaves as; absent in devices made before profiles: DEFAULT_EMULATED_PROFILE. */
  profile?: EmulatedProfile;
}

interface ZoneState {
  /** Bytes written from the zone start: the zone file's length. */
  written: number;
  condition: ZoneCondition;
  finished: boolean;
  /** When the zone last became IMPLICIT_OPEN (a counter): the nvme profile closes the oldest. */
  implicitSince: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function validateGeometry(g: DeviceGeometry): void {
  const bad = (why: string): never => {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `invalid device geometry: ${why}`);
  };
  for (const key of ['zoneCount', 'zoneSize', 'zoneCapacity', 'logicalBlockSize', 'maxOpenZones', 'maxActiveZones'] as const) {
    if (!Number.isSafeInteger(g[key]) || g[key] < 0) bad(`${key} must be a non-negative integer (got ${String(g[key])})`);
  }
  const lbs = g.logicalBlockSize;
  if (!isPowerOfTwo(lbs) || lbs < EMULATED_MIN_BLOCK_SIZE || lbs > EMULATED_MAX_BLOCK_SIZE) {
    bad(`logicalBlockSize must be a power of two in [${EMULATED_MIN_BLOCK_SIZE}, ${EMULATED_MAX_BLOCK_SIZE}]`);
  }
  if (g.zoneCount < MIN_ZONE_COUNT || g.zoneCount > EMULATED_MAX_ZONES) bad(`zoneCount must be in [${MIN_ZONE_COUNT}, ${EMULATED_MAX_ZONES}]`);
  if (g.zoneSize === 0 || g.zoneSize % lbs !== 0) bad('zoneSize must be a positive multiple of logicalBlockSize');
  if (g.zoneCapacity === 0 || g.zoneCapacity % lbs !== 0 || g.zoneCapacity > g.zoneSize) {
    bad('zoneCapacity must be a positive multiple of logicalBlockSize, at most zoneSize');
  }
  if (g.maxOpenZones > g.zoneCount || g.maxActiveZones > g.zoneCount) bad('zone limits cannot exceed zoneCount');
  if (g.maxActiveZones !== 0 && g.maxOpenZones > g.maxActiveZones) bad('maxOpenZones cannot exceed maxActiveZones');
  if (g.maxActiveZones !== 0 && g.maxOpenZones === 0) bad('maxOpenZones cannot be unlimited when maxActiveZones is limited');
}

export function sameGeometry(a: DeviceGeometry, b: DeviceGeometry): boolean {
  return (
    a.zoneCount === b.zoneCount &&
    a.zoneSize === b.zoneSize &&
    a.zoneCapacity === b.zoneCapacity &&
    a.logicalBlockSize === b.logicalBlockSize &&
    a.maxOpenZones === b.maxOpenZones &&
    a.maxActiveZones === b.maxActiveZones
  );
}

function zoneFileName(zone: number): string {
  return `zone-${String(zone).padStart(7, '0')}.bin`;
}

/** The file that holds a zone's written bytes (for fault injection and recovery tools). */
export function emulatedZoneFile(dir: string, zone: number): string {
  return path.join(dir, zoneFileName(zone));
}

export class EmulatedZonedDevice implements ZonedDevice {
  readonly kind = 'emulated' as const;
  readonly path: string;
  readonly geometry: DeviceGeometry;
  private readonly zones: ZoneState[];
  private readonly offline = new Set<number>();
  /** Zone -> fd, in least-recently-used order (Map keeps insertion order). */
  private readonly fds = new Map<number, number>();
  private readonly dirty = new Set<number>();
  /** Writes in the background (writeStart), one per zone. */
  private readonly background = new ZoneWrites((zone, length, end) => this.backgroundWriteEnded(zone, length, end));
  private readonly maxOpen: number;
  private readonly maxActive: number;
  private openCount = 0;
  private activeCount = 0;
  private closed = false;
  private ownerId: string | undefined;
  private floor: number | undefined;
  private lock: FolderLock | undefined;
  /** Zones explicitly open that stay so across opens (EmulatedOpenOptions.keepOpenZones), as `device.json` lists them. */
  private readonly keptOpen = new Set<number>();
  /** Explicit opens through this handle are kept (recorded in `device.json`). */
  private readonly keepOpenZones: boolean;
  /** Zone files are opened with O_DIRECT (EmulatedOpenOptions.direct): reads and writes skip the page cache. */
  readonly direct: boolean;
  /** Direct mode: buffers, offsets and lengths are aligned to this (the block size, at least a page). */
  private readonly align: number;
  private readonly bounce: BounceBuffer;
  /** fd -> readAsync calls in flight on it: such an fd is not closed under them. */
  private readonly pins = new Map<number, number>();
  /** fds let go (cache eviction, reset, close) while pinned: the last read to end closes them. */
  private readonly unpinnedClose = new Set<number>();
  /** Which device the emulation behaves as (EmulatedProfile). */
  readonly profile: EmulatedProfile;
  /** null_blk's `imp_close_zone_no`: where the round-robin search for a zone to close starts. */
  private impCloseZoneNo = 0;
  /** Counts transitions to IMPLICIT_OPEN (ZoneState.implicitSince). */
  private implicitClock = 0;

  /** Use `createEmulatedDevice` or `openEmulatedDevice`. */
  constructor(dir: string, meta: DeviceMeta, lock?: FolderLock, options: { direct?: boolean; keepOpenZones?: boolean } = {}) {
    this.path = dir;
    this.profile = meta.profile ?? DEFAULT_EMULATED_PROFILE;
    this.direct = options.direct === true;
    this.keepOpenZones = options.keepOpenZones === true;
    this.align = Math.max(meta.geometry.logicalBlockSize, DIRECT_IO_MIN_ALIGN);
    this.bounce = new BounceBuffer(this.align);
    if (this.direct) probeDirect(dir);
    this.ownerId = meta.owner;
    this.floor = meta.generationFloor;
    this.lock = lock;
    this.geometry = Object.freeze({ ...meta.geometry });
    this.maxOpen = effectiveLimit(meta.geometry.maxOpenZones, meta.geometry.zoneCount);
    this.maxActive = effectiveLimit(meta.geometry.maxActiveZones, meta.geometry.zoneCount);
    const finished = new Set(meta.finished);
    const kept = new Set(meta.open ?? []);
    for (const z of meta.offline) this.offline.add(z);
    this.zones = new Array<ZoneState>(meta.geometry.zoneCount);
    const lbs = meta.geometry.logicalBlockSize;
    for (let z = 0; z < meta.geometry.zoneCount; z++) {
      let written = 0;
      const file = path.join(dir, zoneFileName(z));
      try {
        written = fs.statSync(file).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      // A torn write after a crash can leave a partial block; the device never acknowledged it.
      const aligned = Math.min(written - (written % lbs), meta.geometry.zoneCapacity);
      if (aligned !== written) fs.truncateSync(file, aligned);
      let condition: ZoneCondition;
      if (this.offline.has(z)) condition = ZoneCondition.OFFLINE;
      else if (finished.has(z) || aligned === meta.geometry.zoneCapacity) condition = ZoneCondition.FULL;
      else if (aligned === 0) condition = ZoneCondition.EMPTY;
      else condition = ZoneCondition.CLOSED;
      // Kept open by a zone tool (a zone that was filled or taken offline since is not).
      if (kept.has(z) && (condition === ZoneCondition.EMPTY || condition === ZoneCondition.CLOSED)) {
        condition = ZoneCondition.EXPLICIT_OPEN;
        this.openCount++;
        this.keptOpen.add(z);
      }
      if (zoneIsActive(condition)) this.activeCount++;
      this.zones[z] = { written: aligned, condition, finished: finished.has(z), implicitSince: 0 };
    }
    // A device whose files were edited by hand could exceed the limit; the kernel would not
    // have let that happen, so we refuse rather than run outside the rules.
    if (this.activeCount > this.maxActive) {
      throw new ZnsSlabError(
        ErrorCode.INVALID_STORE,
        `emulated device at ${dir} has ${this.activeCount} partly written or open zones, over its active limit ${this.maxActive}`,
      );
    }
    if (this.openCount > this.maxOpen) {
      throw new ZnsSlabError(ErrorCode.INVALID_STORE, `emulated device at ${dir} lists ${this.openCount} open zones in ${META_FILE}, over its open limit ${this.maxOpen}`);
    }
  }

  /** The id of the store that owns the device, if one does (kept in device.json). */
  get owner(): string | undefined {
    return this.ownerId;
  }

  /** Records the owning store (durable on return). */
  setOwner(storeId: string): void {
    this.checkOpen();
    this.ownerId = storeId;
    this.saveMeta();
  }

  get generationFloor(): number | undefined {
    return this.floor;
  }

  /** Records the owner's generation floor (durable on return). */
  setGenerationFloor(floor: number): void {
    this.checkOpen();
    this.floor = floor;
    this.saveMeta();
  }

  reportZones(first = 0, count?: number): Zone[] {
    this.checkOpen();
    const g = this.geometry;
    if (!Number.isSafeInteger(first) || first < 0 || first >= g.zoneCount) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `first zone ${String(first)} out of range [0, ${g.zoneCount})`);
    }
    const end = count === undefined ? g.zoneCount : Math.min(g.zoneCount, first + count);
    const out: Zone[] = [];
    for (let z = first; z < end; z++) out.push(this.zoneInfo(z));
    return out;
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    this.readInto(offset, out);
    return out;
  }

  /**
   * Reads `target.byteLength` bytes at `offset` into `target`, with no allocation: straight
   * into it, or in direct mode through the aligned bounce buffer when the target, offset or
   * length is not aligned.
   */
  readInto(offset: number, target: Uint8Array): void {
    this.checkOpen();
    if (!(target instanceof Uint8Array)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'readInto: target must be a Uint8Array or Buffer');
    const length = target.byteLength;
    const { zone, within, fromFile, fill } = this.checkRead(offset, length);
    // Past its written bytes a FULL zone reads back zeroes, or 0xFF (null_blk, past the capacity).
    if (fromFile < length) target.fill(fill, fromFile);
    if (fromFile === 0) return;
    const what = `read in zone ${zone}`;
    if (!this.direct) {
      const n = readFully(this.fd(zone), target, 0, fromFile, within, what);
      if (n !== fromFile) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `short read in zone ${zone}: ${n} of ${fromFile} bytes`);
      return;
    }
    const from = within - (within % this.align);
    const to = Math.ceil((within + fromFile) / this.align) * this.align;
    const straight = from === within && to === within + fromFile && isAligned(target, this.align);
    const buf = straight ? target : this.bounce.get(to - from);
    // Past the file's end (the write pointer) a direct read stops short: enough is what we asked for.
    const n = readFully(this.fd(zone), buf, 0, to - from, from, what);
    if (n < within + fromFile - from) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `short read in zone ${zone}: ${n - (within - from)} of ${fromFile} bytes`);
    if (!straight) target.set(buf.subarray(within - from, within - from + fromFile));
  }

  /**
   * Reads [offset, offset + length) on libuv's thread pool (fs.read on the zone's fd, into a
   * buffer of its own: aligned in direct mode). Rejects with the errors `read` throws. The fd is
   * pinned while the read is in flight: the fd cache, a reset or `close` never closes it under
   * the read (a reset's read returns the bytes the zone held when it started); a read that
   * ends after `close` rejects with ERR_CLOSED.
   */
  readAsync(offset: number, length: number): Promise<Buffer> {
    let zone: number;
    let within: number;
    let fromFile: number;
    let fill: number;
    let fd: number;
    try {
      this.checkOpen();
      ({ zone, within, fromFile, fill } = this.checkRead(offset, length));
      fd = fromFile > 0 ? this.fd(zone) : -1;
    } catch (err) {
      return Promise.reject(err);
    }
    let buf: Buffer;
    let out: Buffer;
    let position: number;
    let need: number;
    if (this.direct) {
      position = within - (within % this.align);
      buf = alignedBuffer(Math.ceil((within + length) / this.align) * this.align - position, this.align);
      out = buf.subarray(within - position, within - position + length);
      need = within + fromFile - position;
      buf = buf.subarray(0, Math.ceil(need / this.align) * this.align);
    } else {
      position = within;
      out = buf = Buffer.allocUnsafe(length);
      need = fromFile;
      buf = buf.subarray(0, fromFile);
    }
    if (fromFile === 0) return Promise.resolve(out.fill(fill));
    this.pin(fd);
    return new Promise<Buffer>((resolve, reject) => {
      const finish = (err: ZnsSlabError | undefined): void => {
        this.unpin(fd);
        if (err === undefined && this.closed) err = new ZnsSlabError(ErrorCode.CLOSED, `emulated device at ${this.path} was closed while a read was in flight`);
        if (err !== undefined) return reject(err);
        if (fromFile < length) out.fill(fill, fromFile);
        resolve(out);
      };
      const step = (done: number): void => {
        fs.read(fd, buf, done, buf.length - done, position + done, (err, n) => {
          if (err) return finish(fsError(err, `read in zone ${zone}`));
          if (n > 0 && done + n < need) return step(done + n);
          if (done + n < need) return finish(new ZnsSlabError(ErrorCode.DEVICE_IO, `short read in zone ${zone}: ${done + n} of ${need} bytes`));
          finish(undefined);
        });
      };
      step(0);
    });
  }

  /**
   * Checks a read against its zone (offline, write pointer); `fromFile`: how many of its bytes
   * the zone file holds; `fill`: the byte the rest reads as (null_blk's null_transfer fills a
   * read past the write pointer, which a zone filled by writes has at its capacity, with 0xFF;
   * a finished zone's write pointer is its end: memory never written reads zeroes).
   */
  private checkRead(offset: number, length: number): { zone: number; within: number; fromFile: number; fill: number } {
    const { zone, within } = locateInZone(this.geometry, offset, length, 'read');
    const state = this.zones[zone]!;
    if (state.condition === ZoneCondition.OFFLINE) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `read from offline zone ${zone}`);
    }
    const wpWithin = state.condition === ZoneCondition.FULL ? this.geometry.zoneSize : state.written;
    if (within + length > wpWithin) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER,
        `read [${offset}, ${offset + length}) in zone ${zone} passes its write pointer ${this.zoneStart(zone) + wpWithin}`,
      );
    }
    const fill = this.profile.name === 'null_blk' && state.condition === ZoneCondition.FULL && !state.finished ? 0xff : 0;
    return { zone, within, fromFile: Math.max(0, Math.min(length, state.written - within)), fill };
  }

  private pin(fd: number): void {
    this.pins.set(fd, (this.pins.get(fd) ?? 0) + 1);
  }

  private unpin(fd: number): void {
    const n = this.pins.get(fd)! - 1;
    if (n > 0) {
      this.pins.set(fd, n);
      return;
    }
    this.pins.delete(fd);
    if (this.unpinnedClose.delete(fd)) fs.closeSync(fd);
  }

  /** Closes an fd, or leaves that to the last read in flight on it. */
  private closeFd(fd: number): void {
    if (this.pins.has(fd)) this.unpinnedClose.add(fd);
    else fs.closeSync(fd);
  }

  /** Async reads in flight (for tests: fds stay open until they end). */
  get readsInFlight(): number {
    let n = 0;
    for (const count of this.pins.values()) n += count;
    return n;
  }

  /**
   * Writes `data` at `offset`. With the `null_blk` and `nvme` profiles, as Linux does: the write
   * is split into requests of at most `profile.maxSectorsBytes` and at zone ends, and every
   * request is sent, in order, each checked on its own; one that fails does not stop the rest (a
   * later request that lands at the write pointer is written: the kernel's bio has no "stop
   * here"). The error is the first request's own (ERR_ZONE_OPEN_LIMIT, ...) when the first
   * request failed, as LibzbdDevice reports it (it sends that request alone); otherwise
   * ERR_DEVICE_IO, the kernel's EIO, with the first failed request's error as `cause`. A
   * write split at a zone end goes on into the next zone from its start. The `atomic` profile:
   * one request, all or nothing, within one zone.
   */
  write(offset: number, data: Uint8Array): void {
    this.checkOpen();
    const requests = this.splitRequests(offset, data);
    if (requests === undefined) return this.writeRequest(offset, data);
    let done = 0;
    let written = 0;
    let failed: { index: number; err: unknown } | undefined;
    requests.forEach((length, index) => {
      try {
        this.writeRequest(offset + done, data.subarray(done, done + length));
        written += length;
      } catch (err) {
        // Only a device's answer to the request goes on to the next; anything else is ours.
        if (!(err instanceof ZnsSlabError) || NOT_A_REQUEST_ERROR.has(err.code)) throw err;
        failed ??= { index, err };
      }
      done += length;
    });
    if (failed === undefined) return;
    if (failed.index === 0) throw failed.err;
    throw this.splitWriteFailed(offset, data.length, written, requests.length, failed.err);
  }

  /**
   * The request lengths the kernel splits a write into (at `maxSectorsBytes`, rounded down to
   * blocks, and at zone ends: the block layer's max_sectors and chunk_sectors), or undefined
   * when it is one request or the profile is `atomic`. Checks what the kernel refuses before
   * splitting (buffer, alignment, the device's end).
   */
  private splitRequests(offset: number, data: Uint8Array): number[] | undefined {
    if (this.profile.name === 'atomic') return undefined;
    if (!(data instanceof Uint8Array)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'write data must be a Uint8Array or Buffer');
    const g = this.geometry;
    const lbs = g.logicalBlockSize;
    if (data.length === 0 || data.length % lbs !== 0 || offset % lbs !== 0) return undefined; // refused as one request
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > g.zoneCount * g.zoneSize) return undefined; // refused likewise
    const most = Math.max(lbs, this.profile.maxSectorsBytes - (this.profile.maxSectorsBytes % lbs));
    const out: number[] = [];
    for (let at = offset; at < offset + data.length; ) {
      const toZoneEnd = g.zoneSize - (at % g.zoneSize);
      const length = Math.min(most, toZoneEnd, offset + data.length - at);
      out.push(length);
      at += length;
    }
    return out.length > 1 ? out : undefined;
  }

  /** A split write's failure after its first request, as the kernel reports it: EIO (the failed request's error as cause). */
  private splitWriteFailed(offset: number, length: number, written: number, requests: number, err: unknown): ZnsSlabError {
    const message = err instanceof Error ? err.message : String(err);
    return new ZnsSlabError(
      ErrorCode.DEVICE_IO,
      `write of ${length} bytes at ${offset} (${requests} requests of at most ${this.profile.maxSectorsBytes} bytes) failed; ${written} bytes of it were written: ${message}`,
      { cause: err },
    );
  }

  /** One request: all or nothing, in one zone. */
  private writeRequest(offset: number, data: Uint8Array): void {
    const { zone, within, state } = this.beginWrite(offset, data);
    // O_DIRECT takes aligned memory only: an unaligned caller's bytes are copied first.
    if (this.direct && !isAligned(data, this.align)) {
      const copy = this.bounce.get(data.length);
      copy.set(data);
      data = copy;
    }
    const fd = this.fd(zone);
    this.crashPointTornWrite(fd, data, within);
    try {
      // A short count is not an error yet (a full disk writes what fits, then says ENOSPC).
      for (let n = 0; n < data.length; ) {
        const wrote = fs.writeSync(fd, data, n, data.length - n, within + n);
        if (wrote <= 0) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `write in zone ${zone} made no progress at byte ${n} of ${data.length}`);
        n += wrote;
      }
    } catch (err) {
      // All or nothing, as one request to a device: drop whatever part reached the file.
      this.truncateBack(zone, state.written);
      throw fsError(err, `write of ${data.length} bytes in zone ${zone}`);
    }
    this.wrote(zone, data.length);
  }

  writeStart(offset: number, data: Uint8Array): void {
    this.checkOpen();
    const requests = this.splitRequests(offset, data);
    let zone: number;
    let within: number;
    if (requests !== undefined) {
      const g = this.geometry;
      const first = Math.floor(offset / g.zoneSize);
      // A split write off the write pointer (a later request may land on it), or across a zone
      // end or the capacity, is done here and now, as `write` (it has no WriteEnded); the engine
      // never writes one. At the write pointer, a first request that fails fails them all (the
      // rest are then off the pointer): it is the whole write's error. The rest go to the worker.
      const state = this.zones[first];
      if (state === undefined || offset !== first * g.zoneSize + state.written || offset + data.length > first * g.zoneSize + g.zoneCapacity) {
        return this.write(offset, data);
      }
    }
    ({ zone, within } = this.beginWrite(offset, data));
    // O_DIRECT: an unaligned image is copied into aligned shared memory of its own (it must
    // outlive this call, unlike the synchronous write's bounce buffer).
    if (this.direct && !isAligned(data, this.align)) {
      const copy = alignedShared(data.length, this.align);
      copy.set(data);
      data = copy;
    }
    const fd = this.fd(zone);
    this.crashPointTornWrite(fd, data, within);
    this.background.start(zone, fd, data, within, offset);
  }

  /** The crash loop's `device.write` point: half of the write reaches the file, then the process dies. */
  private crashPointTornWrite(fd: number, data: Uint8Array, within: number): void {
    if (!crashPointReached('device.write')) return;
    fs.writeSync(fd, data, 0, Math.floor(data.length / 2), within);
    crashNow();
  }

  // The background writes' bookkeeping is ZoneWrites' (zns/writeQueue.ts), shared by both devices.
  writesEnded = (): WriteEnded[] => this.background.ended();
  writesWait = (zone?: number): WriteEnded[] => this.background.wait(zone);
  writesWaitAsync = (): Promise<void> => this.background.waitAsync();

  /** How a background write ended, applied to the zone: its write pointer moves, or the file goes back. */
  private backgroundWriteEnded(zone: number, length: number, end: WriteEnd): ZnsSlabError | undefined {
    if (end.errno === 0 && end.written === length) {
      this.wrote(zone, length);
      return undefined;
    }
    // Split into requests (null_blk, nvme): the requests wholly written before the failure stay.
    const most = Math.max(this.geometry.logicalBlockSize, this.profile.maxSectorsBytes - (this.profile.maxSectorsBytes % this.geometry.logicalBlockSize));
    const kept = this.profile.name === 'atomic' ? 0 : Math.min(length - 1, end.written - (end.written % most));
    if (kept > 0) this.wrote(zone, kept);
    this.truncateBack(zone, this.zones[zone]!.written);
    const cause = Object.assign(new Error(`${end.code || 'EIO'}: write failed after ${end.written} of ${length} bytes`), { code: end.code, errno: end.errno });
    return fsError(cause, `write of ${length} bytes in zone ${zone}`);
  }

  /**
   * Checks a write against the zone rules and moves the zone's condition as the device does
   * when it takes the command (EMPTY or CLOSED -> IMPLICIT_OPEN). Throws what the kernel refuses.
   */
  private beginWrite(offset: number, data: Uint8Array): { zone: number; within: number; state: ZoneState } {
    if (!(data instanceof Uint8Array)) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'write data must be a Uint8Array or Buffer');
    }
    const lbs = this.geometry.logicalBlockSize;
    if (data.length === 0 || data.length % lbs !== 0 || offset % lbs !== 0) {
      throw new ZnsSlabError(
        ErrorCode.UNALIGNED_IO,
        `write at ${offset} of ${data.length} bytes is not a non-empty multiple of the ${lbs}-byte block`,
      );
    }
    const { zone, within } = locateInZone(this.geometry, offset, data.length, 'write');
    const state = this.zones[zone]!;
    if (state.condition === ZoneCondition.FULL || state.condition === ZoneCondition.OFFLINE || state.condition === ZoneCondition.READ_ONLY) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `write to zone ${zone}, which is ${ZoneCondition[state.condition]}`);
    }
    if (this.background.has(zone)) {
      throw new ZnsSlabError(ErrorCode.ZONE_WRITE_POINTER, `write at ${offset} in zone ${zone}, which has a write in flight (one at a time per zone)`);
    }
    if (within !== state.written) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_WRITE_POINTER,
        `write at ${offset} in zone ${zone}, but its write pointer is ${this.zoneStart(zone) + state.written}`,
      );
    }
    if (within + data.length > this.geometry.zoneCapacity) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_WRITE_POINTER,
        `write of ${data.length} bytes at ${offset} passes zone ${zone}'s capacity (${this.geometry.zoneCapacity} bytes)`,
      );
    }
    if (state.condition === ZoneCondition.EMPTY || state.condition === ZoneCondition.CLOSED) {
      this.takeOpenResources(zone, state);
      state.condition = ZoneCondition.IMPLICIT_OPEN;
      state.implicitSince = ++this.implicitClock;
    }
    return { zone, within, state };
  }

  /** `length` more bytes of the zone are written: its write pointer moves; at capacity it is FULL. */
  private wrote(zone: number, length: number): void {
    const state = this.zones[zone]!;
    state.written += length;
    this.dirty.add(zone);
    if (state.written === this.geometry.zoneCapacity) {
      this.openCount--;
      this.activeCount--;
      state.condition = ZoneCondition.FULL;
      this.letGo(zone);
    }
    this.assertCounts();
  }

  openZone(zone: number): void {
    this.checkOpen();
    this.background.settle(zone);
    const state = this.zoneState(zone);
    switch (state.condition) {
      case ZoneCondition.EXPLICIT_OPEN:
        break;
      case ZoneCondition.IMPLICIT_OPEN:
        state.condition = ZoneCondition.EXPLICIT_OPEN;
        break;
      case ZoneCondition.EMPTY:
      case ZoneCondition.CLOSED:
        this.takeOpenResources(zone, state);
        state.condition = ZoneCondition.EXPLICIT_OPEN;
        break;
      default:
        throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `cannot open zone ${zone}, which is ${ZoneCondition[state.condition]}`);
    }
    this.assertCounts();
    if (this.keepOpenZones && !this.keptOpen.has(zone)) {
      this.keptOpen.add(zone);
      this.saveMeta();
    }
  }

  closeZone(zone: number): void {
    this.checkOpen();
    this.background.settle(zone);
    const state = this.zoneState(zone);
    if (state.condition === ZoneCondition.CLOSED) return;
    if (!zoneIsOpen(state.condition)) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `cannot close zone ${zone}, which is ${ZoneCondition[state.condition]}`);
    }
    this.openCount--;
    // QEMU's nvme_zrm_close leaves an opened zone CLOSED (and active) even with no data.
    if (state.written === 0 && this.profile.name !== 'nvme') {
      this.activeCount--;
      state.condition = ZoneCondition.EMPTY;
    } else {
      state.condition = ZoneCondition.CLOSED;
    }
    this.letGo(zone);
    this.assertCounts();
  }

  finishZone(zone: number): void {
    this.checkOpen();
    this.background.settle(zone);
    const state = this.zoneState(zone);
    switch (state.condition) {
      case ZoneCondition.FULL:
        return;
      case ZoneCondition.EMPTY:
        // null_blk checks the resources of opening even though the zone goes straight to FULL;
        // QEMU's nvme_zrm_finish takes an EMPTY zone to FULL with no check.
        if (this.profile.name === 'nvme') break;
        this.checkActive(zone);
        this.checkOpenResource(zone);
        break;
      case ZoneCondition.IMPLICIT_OPEN:
      case ZoneCondition.EXPLICIT_OPEN:
        this.openCount--;
        this.activeCount--;
        break;
      case ZoneCondition.CLOSED:
        // Finishing a closed zone needs an open resource on null_blk (null_finish_zone); QEMU's
        // nvme_zrm_finish only lets go of its active resource.
        if (this.profile.name !== 'nvme') this.checkOpenResource(zone);
        this.activeCount--;
        break;
      default:
        throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `cannot finish zone ${zone}, which is ${ZoneCondition[state.condition]}`);
    }
    crashPoint('zone.finish');
    state.condition = ZoneCondition.FULL;
    state.finished = true;
    this.keptOpen.delete(zone);
    this.saveMeta();
    this.assertCounts();
  }

  resetZone(zone: number): void {
    this.checkOpen();
    this.background.settle(zone);
    const state = this.zoneState(zone);
    if (state.condition === ZoneCondition.OFFLINE || state.condition === ZoneCondition.READ_ONLY) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `cannot reset zone ${zone}, which is ${ZoneCondition[state.condition]}`);
    }
    crashPoint('zone.reset');
    if (zoneIsOpen(state.condition)) this.openCount--;
    if (zoneIsActive(state.condition)) this.activeCount--;
    try {
      this.dropFd(zone);
      fs.rmSync(path.join(this.path, zoneFileName(zone)), { force: true });
    } catch (err) {
      throw fsError(err, `reset of zone ${zone}`);
    }
    this.dirty.delete(zone);
    const wasFinished = state.finished;
    const wasKept = this.keptOpen.delete(zone);
    state.written = 0;
    state.finished = false;
    state.condition = ZoneCondition.EMPTY;
    if (wasFinished || wasKept) this.saveMeta();
    this.assertCounts();
  }

  flush(): void {
    this.checkOpen();
    this.background.settle();
    crashPoint('device.flush');
    for (const zone of this.dirty) {
      try {
        fs.fsyncSync(this.fd(zone));
      } catch (err) {
        throw fsError(err, `flush of zone ${zone}`);
      }
    }
    this.dirty.clear();
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      // The workers write through our fds: every write ends before an fd closes.
      this.background.close();
      for (const fd of this.fds.values()) this.closeFd(fd);
      this.fds.clear();
      this.closed = true;
      this.lock?.release();
    }
  }

  /** A zone left EXPLICIT_OPEN: it no longer stays open across opens (`device.json` is updated if it did). */
  private letGo(zone: number): void {
    if (this.keptOpen.delete(zone)) this.saveMeta();
  }

  private truncateBack(zone: number, length: number): void {
    try {
      fs.ftruncateSync(this.fd(zone), length);
    } catch {
      // The bytes past the write pointer are never read; a reopen takes the file's length as is.
    }
  }

  /** Fault injection for tests and drills: a zone that wore out, as a real drive reports. */
  setZoneOffline(zone: number): void {
    this.checkOpen();
    const state = this.zoneState(zone);
    if (zoneIsOpen(state.condition)) this.openCount--;
    if (zoneIsActive(state.condition)) this.activeCount--;
    state.condition = ZoneCondition.OFFLINE;
    this.offline.add(zone);
    this.keptOpen.delete(zone);
    this.saveMeta();
  }

  private zoneInfo(z: number): Zone {
    const g = this.geometry;
    const state = this.zones[z]!;
    const start = this.zoneStart(z);
    return {
      index: z,
      start,
      size: g.zoneSize,
      capacity: g.zoneCapacity,
      writePointer: state.condition === ZoneCondition.FULL ? start + g.zoneSize : start + state.written,
      type: ZoneType.SEQUENTIAL_WRITE_REQUIRED,
      condition: state.condition,
    };
  }

  private zoneStart(zone: number): number {
    return zone * this.geometry.zoneSize;
  }

  private zoneState(zone: number): ZoneState {
    checkZoneIndex(this.geometry, zone);
    return this.zones[zone]!;
  }


  private checkActive(zone: number): void {
    if (this.activeCount >= this.maxActive) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_ACTIVE_LIMIT,
        `zone ${zone} cannot become active: ${this.activeCount} zones are active, the limit is ${this.maxActive}`,
      );
    }
  }

  /**
   * Takes the open resource (and for an EMPTY zone the active one) for opening `zone`, closing
   * an implicitly open zone to make room as the profile's device does, or throws
   * ERR_ZONE_ACTIVE_LIMIT / ERR_ZONE_OPEN_LIMIT.
   */
  private takeOpenResources(zone: number, state: ZoneState): void {
    const activates = state.condition === ZoneCondition.EMPTY;
    if (this.profile.name === 'nvme') {
      // nvme_zrm_open_flags: nvme_zrm_auto_transition_zone closes the oldest implicitly opened
      // zone at the open limit, then nvme_aor_check checks the active limit, then the open one
      // (so a refused activation has already closed a zone).
      if (this.openCount >= this.maxOpen) {
        let oldest: number | undefined;
        for (let z = 0; z < this.zones.length; z++) {
          const s = this.zones[z]!;
          if (s.condition === ZoneCondition.IMPLICIT_OPEN && (oldest === undefined || s.implicitSince < this.zones[oldest]!.implicitSince)) oldest = z;
        }
        if (oldest !== undefined) {
          this.zones[oldest]!.condition = ZoneCondition.CLOSED;
          this.openCount--;
        }
      }
      if (activates) this.checkActive(zone);
      if (this.openCount >= this.maxOpen) throw this.openLimitError(zone);
    } else {
      // null_check_zone_resources: the active limit (null_check_active), then null_check_open.
      if (activates) this.checkActive(zone);
      this.checkOpenResource(zone);
    }
    if (activates) this.activeCount++;
    this.openCount++;
  }

  /**
   * As null_blk's null_check_open: at the open limit, close an implicitly open zone to make
   * room, but only while the active count is under its limit. null_blk picks it round-robin
   * from the one after the last it closed (null_close_imp_open_zone's imp_close_zone_no);
   * the atomic profile the lowest-numbered.
   */
  private checkOpenResource(zone: number): void {
    if (this.openCount < this.maxOpen) return;
    if (this.activeCount < this.maxActive) {
      const n = this.zones.length;
      const roundRobin = this.profile.name === 'null_blk';
      let z = roundRobin && this.impCloseZoneNo < n ? this.impCloseZoneNo : 0;
      for (let i = 0; i < n; i++, z = (z + 1) % n) {
        const s = this.zones[z]!;
        if (z === zone || s.condition !== ZoneCondition.IMPLICIT_OPEN) continue;
        this.openCount--;
        // __null_close_zone: a zone with no data goes back to EMPTY (not if a write is in flight).
        if (roundRobin && s.written === 0 && !this.background.has(z)) {
          s.condition = ZoneCondition.EMPTY;
          this.activeCount--;
        } else {
          s.condition = ZoneCondition.CLOSED;
        }
        if (roundRobin) this.impCloseZoneNo = (z + 1) % n;
        return;
      }
    }
    throw this.openLimitError(zone);
  }

  private openLimitError(zone: number): ZnsSlabError {
    return new ZnsSlabError(
      ErrorCode.ZONE_OPEN_LIMIT,
      `zone ${zone} cannot open: ${this.openCount} zones are open (the limit is ${this.maxOpen}) and none can be closed for it ` +
        `(all explicitly open, or ${this.activeCount} of ${this.maxActive} active)`,
    );
  }

  private assertCounts(): void {
    assert(this.openCount >= 0 && this.openCount <= this.maxOpen, `open zones ${this.openCount} within [0, ${this.maxOpen}]`);
    assert(this.activeCount >= this.openCount && this.activeCount <= this.maxActive, `active zones ${this.activeCount} within [open, ${this.maxActive}]`);
  }

  private fd(zone: number): number {
    let fd = this.fds.get(zone);
    if (fd !== undefined) {
      this.fds.delete(zone);
      this.fds.set(zone, fd);
      return fd;
    }
    if (this.fds.size >= MAX_CACHED_FDS) {
      // The least recently used fd that no write in flight is using (the worker writes through it).
      for (const oldest of this.fds.keys()) {
        if (this.background.has(oldest)) continue;
        this.dropFd(oldest);
        break;
      }
    }
    try {
      fd = fs.openSync(path.join(this.path, zoneFileName(zone)), fs.constants.O_RDWR | fs.constants.O_CREAT | (this.direct ? fs.constants.O_DIRECT : 0), 0o644);
    } catch (err) {
      if (this.direct && (err as NodeJS.ErrnoException).code === 'EINVAL') throw directRefused(this.path, err);
      throw fsError(err, `opening zone ${zone}'s file`);
    }
    this.fds.set(zone, fd);
    return fd;
  }

  private dropFd(zone: number): void {
    const fd = this.fds.get(zone);
    if (fd === undefined) return;
    if (this.dirty.has(zone)) {
      fs.fsyncSync(fd);
      this.dirty.delete(zone);
    }
    this.closeFd(fd);
    this.fds.delete(zone);
  }

  private saveMeta(): void {
    const finished: number[] = [];
    this.zones.forEach((s, z) => {
      if (s.finished) finished.push(z);
    });
    const meta: DeviceMeta = { format: EMULATED_FORMAT, version: EMULATED_FORMAT_VERSION, geometry: this.geometry, finished, offline: [...this.offline].sort((a, b) => a - b) };
    if (this.keptOpen.size > 0) meta.open = [...this.keptOpen].sort((a, b) => a - b);
    meta.profile = this.profile;
    if (this.ownerId !== undefined) meta.owner = this.ownerId;
    if (this.floor !== undefined) meta.generationFloor = this.floor;
    try {
      writeMeta(this.path, meta);
    } catch (err) {
      throw fsError(err, `saving ${META_FILE}`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `emulated device at ${this.path} is closed`);
  }
}

function writeMeta(dir: string, meta: DeviceMeta): void {
  // Write-then-rename so a crash leaves either the old or the new metadata, never half of one.
  const tmp = path.join(dir, `${META_FILE}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(meta, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(dir, META_FILE));
}

function readMeta(dir: string): DeviceMeta | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, META_FILE), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR' || code === 'EISDIR') throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} is not an emulated device folder`, { cause: err });
    throw fsError(err, `reading ${path.join(dir, META_FILE)}`);
  }
  let meta: DeviceMeta;
  try {
    meta = JSON.parse(text) as DeviceMeta;
  } catch (err) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${path.join(dir, META_FILE)} is not valid JSON`, { cause: err });
  }
  if (meta.format !== EMULATED_FORMAT) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} does not hold an emulated zoned device`);
  }
  if (meta.version !== EMULATED_FORMAT_VERSION) {
    throw new ZnsSlabError(ErrorCode.FORMAT_VERSION, `emulated device format ${meta.version} is not ${EMULATED_FORMAT_VERSION}`);
  }
  if (typeof meta !== 'object' || meta === null) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${path.join(dir, META_FILE)} is not an emulated device's metadata`);
  validateGeometry(meta.geometry);
  if (meta.profile !== undefined) meta.profile = emulatedProfile(meta.profile);
  meta.finished ??= [];
  meta.offline ??= [];
  return meta;
}

/**
 * Opens the emulated device in `dir`, creating it with `geometry` if there is none.
 * An existing device with another geometry is refused (ERR_GEOMETRY_MISMATCH).
 */
export interface EmulatedOpenOptions {
  /** Take the folder's lock (zns/lock.ts): a second exclusive opener gets ERR_DEVICE_LOCKED. Stores do; inspection tools do not. */
  exclusive?: boolean;
  /**
   * Open the zone files with O_DIRECT, so reads and writes skip the page cache, as on a real
   * device (and as `dd oflag=direct`, `fio --direct=1`). A filesystem that refuses O_DIRECT
   * gives ERR_DIRECT_IO_UNSUPPORTED at open.
   */
  direct?: boolean;
  /**
   * Explicit opens through this handle outlive it: they are recorded in `device.json` and the
   * zones reopen EXPLICIT_OPEN, until any opener closes, finishes, resets or fills them. For
   * zone tools (`zns-slab zones open`), as `blkzone open` leaves a kernel device's zone open.
   */
  keepOpenZones?: boolean;
  /**
   * Which device the emulation behaves as (EmulatedProfile; default DEFAULT_EMULATED_PROFILE,
   * null_blk with 124 KiB requests). Chosen when the device is created and kept in
   * `device.json`; opening an existing device with a different one is refused
   * (ERR_GEOMETRY_MISMATCH). Without it an existing device keeps its own.
   */
  profile?: EmulatedProfileName | (Partial<EmulatedProfile> & { name: EmulatedProfileName });
}

export function createEmulatedDevice(dir: string, geometry: Partial<DeviceGeometry> = {}, options: EmulatedOpenOptions = {}): EmulatedZonedDevice {
  const wanted: DeviceGeometry = { ...DEFAULT_EMULATED_GEOMETRY, ...geometry };
  validateGeometry(wanted);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw fsError(err, `creating the emulated device folder ${dir}`);
  }
  const existing = readMeta(dir);
  if (existing) {
    if (!sameGeometry(existing.geometry, wanted)) {
      throw new ZnsSlabError(
        ErrorCode.GEOMETRY_MISMATCH,
        `emulated device at ${dir} has geometry ${JSON.stringify(existing.geometry)}, not ${JSON.stringify(wanted)}`,
      );
    }
    return withLock(dir, existing, options);
  }
  const profile = options.profile === undefined ? DEFAULT_EMULATED_PROFILE : emulatedProfile(options.profile);
  const meta: DeviceMeta = { format: EMULATED_FORMAT, version: EMULATED_FORMAT_VERSION, geometry: wanted, finished: [], offline: [], profile };
  try {
    writeMeta(dir, meta);
  } catch (err) {
    throw fsError(err, `creating the emulated device at ${dir}`);
  }
  return withLock(dir, meta, options);
}

/** Opens an existing emulated device; ERR_INVALID_STORE if `dir` holds none. */
export function openEmulatedDevice(dir: string, options: EmulatedOpenOptions = {}): EmulatedZonedDevice {
  const meta = readMeta(dir);
  if (!meta) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `no emulated zoned device at ${dir}`);
  return withLock(dir, meta, options);
}

function withLock(dir: string, meta: DeviceMeta, options: EmulatedOpenOptions): EmulatedZonedDevice {
  if (options.profile !== undefined) {
    const wanted = emulatedProfile(options.profile);
    const has = meta.profile ?? DEFAULT_EMULATED_PROFILE;
    if (!sameProfile(has, wanted)) {
      throw new ZnsSlabError(ErrorCode.GEOMETRY_MISMATCH, `emulated device at ${dir} has profile ${JSON.stringify(has)}, not ${JSON.stringify(wanted)}`);
    }
  }
  const lock = options.exclusive ? lockFolder(dir, 'emulated device') : undefined;
  try {
    return new EmulatedZonedDevice(dir, meta, lock, { direct: options.direct === true, keepOpenZones: options.keepOpenZones === true });
  } catch (err) {
    lock?.release();
    throw err;
  }
}

/** Opens the device's metadata file with O_DIRECT: the filesystem says now, not at the first write, whether it takes direct I/O. */
function probeDirect(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, META_FILE), fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') throw directRefused(dir, err);
    throw fsError(err, `opening ${path.join(dir, META_FILE)} for direct I/O`);
  }
  fs.closeSync(fd);
}

function directRefused(dir: string, err: unknown): ZnsSlabError {
  return new ZnsSlabError(ErrorCode.DIRECT_IO_UNSUPPORTED, `the filesystem under ${dir} refuses O_DIRECT (tmpfs on older kernels, some FUSE and network filesystems do): open it without direct`, { cause: err });
}

/** Reads until `length` bytes are in or the file ends; returns the count. */
function readFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number, what: string): number {
  let done = 0;
  try {
    while (done < length) {
      const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw fsError(err, what);
  }
  return done;
}

/** A filesystem error as the package's: ENOSPC is ERR_DISK_FULL, the rest ERR_DEVICE_IO (the original as `cause`). */
export function fsError(err: unknown, what: string): ZnsSlabError {
  if (err instanceof ZnsSlabError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new ZnsSlabError(ErrorCode.DISK_FULL, `${what}: the filesystem is full (${detail})`, { cause: err });
  return new ZnsSlabError(ErrorCode.DEVICE_IO, `${what}: ${detail}`, { cause: err });
}

export function isEmulatedDevice(dir: string): boolean {
  return fs.existsSync(path.join(dir, META_FILE));
}
