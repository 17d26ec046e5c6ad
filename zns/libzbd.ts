/**
 * A real zoned block device (NVMe ZNS SSD, SMR drive, null_blk zoned) through libzbd.
 *
 * The kernel and the drive enforce the zone rules; this class adds what they do not give
 * back in a usable form:
 * - coded errors: the kernel answers a misplaced write with a bare EIO, so on EIO we re-report
 *   the zone and name the broken rule (ERR_ZONE_WRITE_POINTER, ERR_ZONE_CONDITION, ...), the
 *   same codes as the emulated device;
 * - reads past the write pointer are refused (null_blk and many drives return zeroes there);
 * - arbitrary byte-range reads on an O_DIRECT descriptor (the covering blocks are read into an
 *   aligned buffer);
 * - bytes between a FULL zone's capacity and its size read as zeroes, as the emulation does,
 *   without asking a drive that may reject LBAs past the capacity.
 *
 * - one error code per cause: the kernel splits a write longer than the device's largest
 *   request (queue/max_sectors_kb), and a zone limit refused on the first request of a split
 *   write comes back EIO, not ETOOMANYREFS / EOVERFLOW (the later requests fail off the write
 *   pointer). A long write to a zone that is not open sends its first request alone, so the
 *   kernel's answer to the one request that opens the zone is the one we map (issue 14).
 *
 * Write pointers are tracked here after one report at open (this object is the device's only
 * writer); whenever the tracked state and a request disagree, the zone is re-reported before
 * anything is refused.
 */
import fs from 'node:fs';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { BounceBuffer, DIRECT_IO_MIN_ALIGN, alignedBuffer, alignedShared, isAligned } from './aligned.js';
import { type WriteEnd, ZoneWrites } from './writeQueue.js';
import {
  Errno,
  ZBD_RO_ALL,
  ZBD_ZONE_SIZE,
  ZbdModel,
  ZbdZoneOp,
  type LibzbdApi,
  type ZbdInfo,
  decodeZbdZone,
  errnoName,
  libzbd,
  zbdOpen,
} from '../native/libzbd.js';
import {
  type WriteEnded,
  type DeviceGeometry,
  type Zone,
  type ZonedDevice,
  MIN_ZONE_COUNT,
  ZONE_CONDITION_NAMES,
  ZoneCondition,
  ZoneType,
  checkZoneIndex,
  locateInZone,
  zoneIsOpen,
} from './device.js';

export { DIRECT_IO_MIN_ALIGN } from './aligned.js';
/** Linux's O_CLOEXEC (asm-generic; node's fs.constants lacks it): child processes must not inherit the device. */
const LINUX_O_CLOEXEC = 0o2000000;

export type LibzbdIoPath = 'koffi' | 'fs';

export interface LibzbdOptions {
  /**
   * How data moves: libc pread/pwrite through koffi (default), or node's fs on the same fd.
   * Both are synchronous on the calling thread; see docs/DEVICES.md for the measured cost.
   */
  io?: LibzbdIoPath;
  /**
   * Open with O_EXCL, so no other exclusive opener (another store, a mount) can have the device
   * at the same time: a second one gets ERR_DEVICE_LOCKED. Inspection tools leave it off.
   */
  exclusive?: boolean;
  /**
   * `close()` leaves open zones open (by default it closes them): for zone tools, so that
   * `zns-slab zones open` leaves the zone open, as `blkzone open` does.
   */
  keepOpenZones?: boolean;
}

interface ZoneState {
  /** Bytes written from the zone start (the write pointer minus the start). */
  written: number;
  condition: ZoneCondition;
  type: ZoneType;
}

type ZoneOpName = 'reset' | 'open' | 'close' | 'finish';

/** Conditions from which each zone operation is legal; an EIO from any other is the rule, not the disk. */
const OP_SOURCE_CONDITIONS: Readonly<Record<ZoneOpName, readonly ZoneCondition[]>> = {
  reset: [ZoneCondition.EMPTY, ZoneCondition.IMPLICIT_OPEN, ZoneCondition.EXPLICIT_OPEN, ZoneCondition.CLOSED, ZoneCondition.FULL],
  open: [ZoneCondition.EMPTY, ZoneCondition.IMPLICIT_OPEN, ZoneCondition.EXPLICIT_OPEN, ZoneCondition.CLOSED],
  close: [ZoneCondition.IMPLICIT_OPEN, ZoneCondition.EXPLICIT_OPEN, ZoneCondition.CLOSED],
  finish: [ZoneCondition.EMPTY, ZoneCondition.IMPLICIT_OPEN, ZoneCondition.EXPLICIT_OPEN, ZoneCondition.CLOSED, ZoneCondition.FULL],
};
const OP_CODES: Readonly<Record<ZoneOpName, number>> = {
  reset: ZbdZoneOp.RESET,
  open: ZbdZoneOp.OPEN,
  close: ZbdZoneOp.CLOSE,
  finish: ZbdZoneOp.FINISH,
};

const UNWRITABLE = new Set([ZoneCondition.FULL, ZoneCondition.OFFLINE, ZoneCondition.READ_ONLY]);

class NativeIoError extends Error {
  constructor(readonly errno: number, readonly done: number) {
    super(errnoName(errno));
  }
}

export class LibzbdDevice implements ZonedDevice {
  readonly kind = 'libzbd' as const;
  readonly path: string;
  readonly geometry: DeviceGeometry;
  readonly info: ZbdInfo;
  readonly io: LibzbdIoPath;
  /**
   * The most bytes the kernel sends to the device in one write request (sysfs
   * queue/max_sectors_kb); one block when sysfs does not say (then every long write to a zone
   * that is not open sends one block alone first).
   */
  readonly maxRequestBytes: number;
  /** Always: libzbd opens the device with O_DIRECT. */
  readonly direct = true;
  private readonly lib: LibzbdApi;
  private readonly fd: number;
  private readonly zones: ZoneState[];
  private readonly align: number;
  private readonly bounce: BounceBuffer;
  /** Writes in the background (writeStart), one per zone. */
  private readonly background = new ZoneWrites((zone, length, end) => this.backgroundWriteEnded(zone, this.zoneStart(zone) + this.zones[zone]!.written, length, end));
  private closed = false;
  private readonly keepOpenZones: boolean;
  /** readAsync calls whose fs.read has not called back: the fd stays open until they have. */
  private readsInFlight = 0;
  /** close() came while reads were in flight: the last one closes the fd. */
  private fdClosePending = false;

  /** Use `openLibzbdDevice`. */
  constructor(path: string, fd: number, info: ZbdInfo, options: LibzbdOptions = {}) {
    this.lib = libzbd();
    this.path = path;
    this.fd = fd;
    this.info = info;
    this.io = options.io ?? 'koffi';
    this.keepOpenZones = options.keepOpenZones === true;
    const lbs = info.logicalBlockSize;
    assert(lbs > 0 && (lbs & (lbs - 1)) === 0, `logical block size ${lbs} is a power of two`);
    this.align = Math.max(lbs, DIRECT_IO_MIN_ALIGN);
    this.bounce = new BounceBuffer(this.align);
    this.maxRequestBytes = maxRequestBytes(path, this.align);
    // A runt last zone (device size not a multiple of the zone size) is left out.
    const zoneCount = Math.min(info.nrZones, Math.floor((info.nrSectors * 512) / info.zoneSize));
    if (zoneCount < MIN_ZONE_COUNT) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${path} has ${zoneCount} zones; at least ${MIN_ZONE_COUNT} are needed`);
    }
    const report = this.rawReport(0, zoneCount);
    assert(report.length === zoneCount, `report of ${zoneCount} zones returned ${report.length}`);
    let capacity = 0;
    this.zones = report.map((z, i) => {
      assert(z.start === i * info.zoneSize && z.len === info.zoneSize, `zone ${i} starts at ${i} zone sizes`);
      if (z.type !== ZoneType.CONVENTIONAL) {
        if (capacity === 0) capacity = z.capacity;
        else if (z.capacity !== capacity) {
          throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${path}: zone ${i} has capacity ${z.capacity}, others ${capacity}; mixed capacities are not supported`);
        }
      }
      return this.stateFrom(z);
    });
    if (capacity === 0) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${path} has no sequential zones`);
    this.geometry = Object.freeze({
      zoneCount,
      zoneSize: info.zoneSize,
      zoneCapacity: capacity,
      logicalBlockSize: lbs,
      maxOpenZones: Math.min(info.maxOpenZones, zoneCount),
      maxActiveZones: Math.min(info.maxActiveZones, zoneCount),
    });
  }

  reportZones(first = 0, count?: number): Zone[] {
    this.checkOpen();
    const g = this.geometry;
    if (!Number.isSafeInteger(first) || first < 0 || first >= g.zoneCount) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `first zone ${String(first)} out of range [0, ${g.zoneCount})`);
    }
    if (count !== undefined && (!Number.isSafeInteger(count) || count < 0)) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `zone count ${String(count)} must be a non-negative integer`);
    }
    const n = count === undefined ? g.zoneCount - first : Math.min(g.zoneCount - first, count);
    if (n === 0) return [];
    return this.rawReport(first, n).map((z, i) => {
      const index = first + i;
      const state = this.stateFrom(z);
      this.zones[index] = state;
      return this.zoneInfo(index, state);
    });
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    this.readInto(offset, out);
    return out;
  }

  /**
   * Reads `target.byteLength` bytes at `offset` into `target`. Straight into it when the
   * target, offset and length are block-aligned; otherwise through the bounce buffer (no
   * allocation up to its kept size).
   */
  readInto(offset: number, target: Uint8Array): void {
    this.checkOpen();
    if (!(target instanceof Uint8Array)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'readInto: target must be a Uint8Array or Buffer');
    const length = target.byteLength;
    const { zone, within, deviceEnd } = this.checkRead(offset, length);
    if (deviceEnd > within) {
      const lbs = this.geometry.logicalBlockSize;
      const from = within - (within % lbs);
      const to = Math.ceil(deviceEnd / lbs) * lbs;
      const direct = from === within && to === within + length && isAligned(target, this.align);
      const buf = direct ? Buffer.from(target.buffer, target.byteOffset, length) : this.bounce.get(to - from);
      try {
        this.transfer('read', buf, this.zoneStart(zone) + from);
      } catch (err) {
        throw this.ioError(err, `read of [${offset}, ${offset + length}) in zone ${zone}`);
      }
      if (!direct) target.set(buf.subarray(within - from, deviceEnd - from));
    }
    // Past a FULL zone's capacity there are no blocks to read: zeroes, as the emulation returns.
    if (deviceEnd < within + length) target.fill(0, Math.max(0, deviceEnd - within));
  }

  /**
   * Reads [offset, offset + length) on libuv's thread pool (fs.read on the device's fd, into an
   * aligned buffer of its own, so any number may be in flight). Rejects with the errors `read`
   * throws; a read that ends after `close` rejects with ERR_CLOSED (the fd is closed only once
   * every read in flight has called back).
   */
  readAsync(offset: number, length: number): Promise<Buffer> {
    let zone: number;
    let within: number;
    let deviceEnd: number;
    try {
      this.checkOpen();
      ({ zone, within, deviceEnd } = this.checkRead(offset, length));
    } catch (err) {
      return Promise.reject(err);
    }
    const lbs = this.geometry.logicalBlockSize;
    const from = within - (within % lbs);
    const to = deviceEnd > within ? Math.ceil(deviceEnd / lbs) * lbs : from;
    const buf = alignedBuffer(Math.max(to, Math.ceil((within + length) / lbs) * lbs) - from, this.align);
    const out = buf.subarray(within - from, within - from + length);
    if (deviceEnd < within + length) out.fill(0, Math.max(0, deviceEnd - within));
    if (to === from) return Promise.resolve(out);
    const position = this.zoneStart(zone) + from;
    const total = to - from;
    this.readsInFlight++;
    return new Promise<Buffer>((resolve, reject) => {
      const finish = (err: ZnsSlabError | undefined): void => {
        this.readsInFlight--;
        if (this.readsInFlight === 0 && this.fdClosePending) {
          this.fdClosePending = false;
          this.lib.zbd_close(this.fd);
        }
        if (err === undefined && this.closed) err = new ZnsSlabError(ErrorCode.CLOSED, `libzbd device ${this.path} was closed while a read was in flight`);
        if (err !== undefined) reject(err);
        else resolve(out);
      };
      const step = (done: number): void => {
        fs.read(this.fd, buf, done, total - done, position + done, (err, n) => {
          if (err) return finish(this.ioError(err, `read of [${offset}, ${offset + length}) in zone ${zone}`));
          if (n === 0) return finish(new ZnsSlabError(ErrorCode.DEVICE_IO, `read at ${position + done} on ${this.path} moved no bytes (end of device?)`));
          if (done + n < total) return step(done + n);
          finish(undefined);
        });
      };
      step(0);
    });
  }

  /**
   * Checks a read of [offset, offset + length) against the zone (offline, write pointer);
   * returns where it lies and where the device's blocks end for it (past a FULL zone's
   * capacity there are only zeroes).
   */
  private checkRead(offset: number, length: number): { zone: number; within: number; deviceEnd: number } {
    const { zone, within } = locateInZone(this.geometry, offset, length, 'read');
    let state = this.zones[zone]!;
    if (state.condition === ZoneCondition.OFFLINE) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `read from offline zone ${zone}`);
    }
    if (within + length > this.readableEnd(state)) {
      state = this.refresh(zone); // in doubt, ask the device
      if (within + length > this.readableEnd(state)) {
        throw new ZnsSlabError(
          ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER,
          `read [${offset}, ${offset + length}) in zone ${zone} passes its write pointer ${this.zoneStart(zone) + this.readableEnd(state)}`,
        );
      }
    }
    const deviceEnd = Math.min(within + length, state.type === ZoneType.CONVENTIONAL ? this.geometry.zoneSize : this.geometry.zoneCapacity);
    return { zone, within, deviceEnd };
  }

  write(offset: number, data: Uint8Array): void {
    this.checkOpen();
    const { zone } = this.checkAppend(offset, data, true);
    const g = this.geometry;
    const state = this.zones[zone]!;
    const buf = this.bounce.get(data.length);
    buf.set(data);
    try {
      this.transfer('write', buf, offset, this.firstRequest(state, data.length));
    } catch (err) {
      throw this.writeError(zone, offset, data.length, err);
    }
    if (state.type === ZoneType.CONVENTIONAL) return;
    state.written += data.length;
    if (state.written === g.zoneCapacity) state.condition = ZoneCondition.FULL;
    else if (state.condition !== ZoneCondition.EXPLICIT_OPEN) state.condition = ZoneCondition.IMPLICIT_OPEN;
  }

  /**
   * The write as `write` checks it, done by a worker thread (zns/writeQueue.ts) on the same
   * O_DIRECT fd; the tracked write pointer moves when it ends. An image that is not shared,
   * page-aligned memory is copied into some first.
   */
  writeStart(offset: number, data: Uint8Array): void {
    this.checkOpen();
    const { zone, within } = this.checkAppend(offset, data, false);
    if (this.background.has(zone)) {
      throw new ZnsSlabError(ErrorCode.ZONE_WRITE_POINTER, `write at ${offset} in zone ${zone}, which has a write in flight (one at a time per zone)`);
    }
    void within;
    const state = this.zones[zone]!;
    // A write the kernel would split, to a zone that is not open: its first request is sent
    // here, alone and synchronously (once per zone opening), so that a zone limit comes back
    // with its own errno; the worker writes the rest, and the write ends as one.
    const first = this.firstRequest(state, data.length);
    if (first > 0) {
      const head = this.bounce.get(first);
      head.set(data.subarray(0, first));
      try {
        this.transfer('write', head, offset);
      } catch (err) {
        throw this.writeError(zone, offset, data.length, err);
      }
    }
    const rest = data.subarray(first);
    let shared = rest;
    if (!(rest.buffer instanceof SharedArrayBuffer) || !isAligned(rest, this.align)) {
      shared = alignedShared(rest.length, this.align);
      shared.set(rest);
    }
    this.background.start(zone, this.fd, shared, offset + first, offset, first);
    // The drive opens the zone when it takes the write.
    if (state.type !== ZoneType.CONVENTIONAL && state.condition !== ZoneCondition.EXPLICIT_OPEN) state.condition = ZoneCondition.IMPLICIT_OPEN;
  }

  // The background writes' bookkeeping is ZoneWrites' (zns/writeQueue.ts), shared by both devices.
  writesEnded = (): WriteEnded[] => this.background.ended();
  writesWait = (zone?: number): WriteEnded[] => this.background.wait(zone);
  writesWaitAsync = (): Promise<void> => this.background.waitAsync();

  /** How a background write ended: the write pointer moves, or the zone is re-reported and the rule named. */
  private backgroundWriteEnded(zone: number, offset: number, length: number, end: WriteEnd): ZnsSlabError | undefined {
    const state = this.zones[zone]!;
    if (end.errno === 0 && end.written === length) {
      if (state.type === ZoneType.CONVENTIONAL) return undefined;
      state.written += length;
      if (state.written === this.geometry.zoneCapacity) state.condition = ZoneCondition.FULL;
      return undefined;
    }
    return this.writeError(zone, offset, length, new NativeIoError(end.errno < 0 ? -end.errno : Errno.EIO, end.written));
  }

  resetZone(zone: number): void {
    this.zoneOp('reset', zone);
    const s = this.zones[zone]!;
    s.written = 0;
    s.condition = ZoneCondition.EMPTY;
  }

  openZone(zone: number): void {
    this.zoneOp('open', zone);
    this.zones[zone]!.condition = ZoneCondition.EXPLICIT_OPEN;
  }

  /**
   * Closes an open zone. An unwritten zone ends EMPTY, as in ZBC and null_blk; NVMe ZNS leaves
   * it CLOSED, still holding an active resource, so we reset it (it holds no data) to give
   * every device kind the same rule.
   */
  closeZone(zone: number): void {
    this.zoneOp('close', zone);
    const s = this.refresh(zone);
    if (s.condition === ZoneCondition.CLOSED && s.written === 0) {
      this.zoneOp('reset', zone);
      s.condition = ZoneCondition.EMPTY;
    }
  }

  finishZone(zone: number): void {
    this.zoneOp('finish', zone);
    const s = this.zones[zone]!;
    s.condition = ZoneCondition.FULL;
  }

  flush(): void {
    this.checkOpen();
    this.background.settle();
    try {
      // O_DIRECT skips the page cache, not the drive's volatile write cache: this sends a FLUSH.
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `flush of ${this.path} failed: ${String(err)}`, { cause: err });
    }
  }

  /**
   * Flushes, closes the zones left open (so the next user finds the device's open resources
   * free, and finds them CLOSED as after a power cycle, like the emulation; not with
   * `keepOpenZones`), and closes the fd.
   */
  close(): void {
    if (this.closed) return;
    try {
      this.flush();
      if (!this.keepOpenZones) {
        for (const z of this.reportZones()) {
          if (zoneIsOpen(z.condition)) this.closeZone(z.index);
        }
      }
    } finally {
      // Writes in flight use the fd: they end first.
      this.background.close();
      // A read in flight on the pool still uses the fd: the last one to call back closes it.
      if (this.readsInFlight > 0) this.fdClosePending = true;
      else this.lib.zbd_close(this.fd);
      this.closed = true;
    }
  }

  /**
   * Resets every zone with one request (libzbd's len = 0 means the whole device; the kernel
   * turns it into a single RESET ALL), then re-reads the zone states.
   */
  resetAllZones(): void {
    this.checkOpen();
    if (this.lib.zbd_zones_operation(this.fd, ZbdZoneOp.RESET, 0, 0) !== 0) {
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `reset of all zones of ${this.path} failed: ${errnoName(this.lib.errno())}`);
    }
    this.reportZones();
  }

  /** The descriptor libzbd opened (O_DIRECT), for tests that need to bypass this class. */
  get fileDescriptor(): number {
    this.checkOpen();
    return this.fd;
  }

  private zoneOp(op: ZoneOpName, zone: number): void {
    this.checkOpen();
    this.checkZone(zone);
    this.background.settle(zone);
    const rc = this.lib.zbd_zones_operation(this.fd, OP_CODES[op], this.zoneStart(zone), this.geometry.zoneSize);
    if (rc === 0) return;
    const errno = this.lib.errno();
    const state = this.refresh(zone);
    const cond = ZONE_CONDITION_NAMES[state.condition] ?? String(state.condition);
    if (errno === Errno.ETOOMANYREFS) {
      throw new ZnsSlabError(ErrorCode.ZONE_OPEN_LIMIT, `cannot ${op} zone ${zone}: the device's open-zone limit (${this.geometry.maxOpenZones}) is reached`);
    }
    if (errno === Errno.EOVERFLOW) {
      throw new ZnsSlabError(ErrorCode.ZONE_ACTIVE_LIMIT, `cannot ${op} zone ${zone}: the device's active-zone limit (${this.geometry.maxActiveZones}) is reached`);
    }
    if (!OP_SOURCE_CONDITIONS[op].includes(state.condition) || state.type === ZoneType.CONVENTIONAL) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `cannot ${op} zone ${zone}, which is ${cond} (${errnoName(errno)})`);
    }
    throw new ZnsSlabError(ErrorCode.DEVICE_IO, `zone ${op} of zone ${zone} (${cond}) failed: ${errnoName(errno)}`);
  }

  /** What the kernel would refuse of an append at `offset`, refused here with a named rule. */
  private checkAppend(offset: number, data: Uint8Array, settleFirst: boolean): { zone: number; within: number } {
    if (!(data instanceof Uint8Array)) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'write data must be a Uint8Array or Buffer');
    }
    const lbs = this.geometry.logicalBlockSize;
    if (data.length === 0 || data.length % lbs !== 0 || offset % lbs !== 0) {
      throw new ZnsSlabError(ErrorCode.UNALIGNED_IO, `write at ${offset} of ${data.length} bytes is not a non-empty multiple of the ${lbs}-byte block`);
    }
    const { zone, within } = locateInZone(this.geometry, offset, data.length, 'write');
    if (settleFirst) this.background.settle(zone);
    let state = this.zones[zone]!;
    if (state.type !== ZoneType.CONVENTIONAL && !this.background.has(zone)) {
      if (UNWRITABLE.has(state.condition) || within !== state.written) state = this.refresh(zone);
      this.checkWritable(zone, state, offset, within, data.length);
    }
    return { zone, within };
  }

  private checkWritable(zone: number, state: ZoneState, offset: number, within: number, length: number): void {
    if (UNWRITABLE.has(state.condition)) {
      throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, `write to zone ${zone}, which is ${ZONE_CONDITION_NAMES[state.condition]}`);
    }
    if (within !== state.written) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_WRITE_POINTER,
        `write at ${offset} in zone ${zone}, but its write pointer is ${this.zoneStart(zone) + state.written}`,
      );
    }
    if (within + length > this.geometry.zoneCapacity) {
      throw new ZnsSlabError(
        ErrorCode.ZONE_WRITE_POINTER,
        `write of ${length} bytes at ${offset} passes zone ${zone}'s capacity (${this.geometry.zoneCapacity} bytes)`,
      );
    }
  }

  /** Names the rule behind a failed write; the kernel's answer to all of them is EIO. */
  private writeError(zone: number, offset: number, length: number, err: unknown): ZnsSlabError {
    if (!(err instanceof NativeIoError)) return this.ioError(err, `write at ${offset}`);
    const where = `write of ${length} bytes at ${offset} in zone ${zone}`;
    if (err.errno === Errno.ETOOMANYREFS) {
      this.refresh(zone);
      return new ZnsSlabError(ErrorCode.ZONE_OPEN_LIMIT, `${where}: the device's open-zone limit (${this.geometry.maxOpenZones}) is reached`, { cause: err });
    }
    if (err.errno === Errno.EOVERFLOW) {
      this.refresh(zone);
      return new ZnsSlabError(ErrorCode.ZONE_ACTIVE_LIMIT, `${where}: the device's active-zone limit (${this.geometry.maxActiveZones}) is reached`, { cause: err });
    }
    const state = this.refresh(zone);
    if (err.errno === Errno.EIO) {
      if (UNWRITABLE.has(state.condition)) {
        return new ZnsSlabError(ErrorCode.ZONE_CONDITION, `${where}: the zone is ${ZONE_CONDITION_NAMES[state.condition]} (EIO)`, { cause: err });
      }
      // The failed request started at offset + done. If the pointer is not there, the request
      // was misplaced (or, for a multi-block request, part of it landed before the error: the
      // caller re-syncs from the reported pointer either way).
      const wp = this.zoneStart(zone) + state.written;
      if (wp !== offset + err.done) {
        return new ZnsSlabError(ErrorCode.ZONE_WRITE_POINTER, `${where}: the device's write pointer is ${wp} (EIO)`, { cause: err });
      }
    }
    return new ZnsSlabError(ErrorCode.DEVICE_IO, `${where} failed after ${err.done} bytes: ${err.message}`, { cause: err });
  }

  private ioError(err: unknown, what: string): ZnsSlabError {
    if (err instanceof ZnsSlabError) return err;
    return new ZnsSlabError(ErrorCode.DEVICE_IO, `${what} on ${this.path} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  /**
   * Bytes of a write to send as a request of their own before the rest: the kernel would split
   * a write longer than one request, and a zone that is not open is opened (or refused at a
   * limit) by the first request. 0: send it whole.
   */
  private firstRequest(state: ZoneState, length: number): number {
    if (state.type === ZoneType.CONVENTIONAL || zoneIsOpen(state.condition)) return 0;
    return length > this.maxRequestBytes ? this.maxRequestBytes : 0;
  }

  /**
   * Moves all of `buf` to or from `position`, resuming after short transfers; the first
   * `first` bytes (if not 0) in a request of their own.
   */
  private transfer(dir: 'read' | 'write', buf: Buffer, position: number, first = 0): void {
    let done = 0;
    while (done < buf.length) {
      const part = done === 0 && first > 0 ? buf.subarray(0, first) : buf.subarray(done);
      let n: number;
      if (this.io === 'koffi') {
        n = dir === 'read' ? this.lib.pread(this.fd, part, part.length, position + done) : this.lib.pwrite(this.fd, part, part.length, position + done);
        if (n < 0) throw new NativeIoError(this.lib.errno(), done);
      } else {
        try {
          n = dir === 'read' ? fs.readSync(this.fd, part, 0, part.length, position + done) : fs.writeSync(this.fd, part, 0, part.length, position + done);
        } catch (err) {
          const errno = (err as NodeJS.ErrnoException).errno;
          if (typeof errno === 'number') throw new NativeIoError(-errno, done);
          throw err;
        }
      }
      if (n === 0) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `${dir} at ${position + done} on ${this.path} moved no bytes (end of device?)`);
      if (!(n > 0 && n <= part.length && n % this.geometry.logicalBlockSize === 0)) assert(false, `${dir} moved ${n} of ${part.length} bytes in whole blocks`);
      done += n;
    }
  }

  private rawReport(first: number, count: number): ReturnType<typeof decodeZbdZone>[] {
    const buf = Buffer.alloc(count * ZBD_ZONE_SIZE);
    // nr_zones is in/out: in, the most to report (0 would mean "all"); out, how many were.
    const nr = Buffer.alloc(4);
    nr.writeUInt32LE(count, 0);
    const zs = this.info.zoneSize;
    const rc = this.lib.zbd_report_zones(this.fd, first * zs, count * zs, ZBD_RO_ALL, buf, nr);
    if (rc !== 0) {
      // libzbd returns -errno for a failed ioctl.
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `zone report of ${this.path} failed: ${errnoName(rc < 0 ? -rc : this.lib.errno())}`);
    }
    const got = nr.readUInt32LE(0);
    assert(got <= count, `report returned ${got} zones, asked for ${count}`);
    const out = [];
    for (let i = 0; i < got; i++) out.push(decodeZbdZone(buf, i));
    return out;
  }

  private refresh(zone: number): ZoneState {
    const [z] = this.rawReport(zone, 1);
    assert(z !== undefined && z.start === this.zoneStart(zone), `report of zone ${zone}`);
    const state = this.stateFrom(z);
    this.zones[zone] = state;
    return state;
  }

  private stateFrom(z: ReturnType<typeof decodeZbdZone>): ZoneState {
    const condition = z.cond as ZoneCondition;
    assert(condition in ZONE_CONDITION_NAMES, `zone condition ${z.cond} is known`);
    // FULL zones report wp = start + len; what was written is at most the capacity.
    const written = condition === ZoneCondition.FULL ? z.capacity : condition === ZoneCondition.NOT_WRITE_POINTER ? z.len : z.wp - z.start;
    return { written, condition, type: z.type as ZoneType };
  }

  private zoneInfo(index: number, s: ZoneState): Zone {
    const g = this.geometry;
    const start = this.zoneStart(index);
    return {
      index,
      start,
      size: g.zoneSize,
      capacity: s.type === ZoneType.CONVENTIONAL ? g.zoneSize : g.zoneCapacity,
      writePointer: s.condition === ZoneCondition.FULL ? start + g.zoneSize : start + s.written,
      type: s.type,
      condition: s.condition,
    };
  }

  private readableEnd(s: ZoneState): number {
    if (s.type === ZoneType.CONVENTIONAL || s.condition === ZoneCondition.FULL) return this.geometry.zoneSize;
    return s.written;
  }

  private zoneStart(zone: number): number {
    return zone * this.geometry.zoneSize;
  }

  private checkZone(zone: number): void {
    checkZoneIndex(this.geometry, zone);
  }


  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `libzbd device ${this.path} is closed`);
  }
}

/**
 * The device's largest write request in bytes, from /sys/block/NAME/queue/max_sectors_kb,
 * rounded down to `align`; `align` when it cannot be read.
 */
function maxRequestBytes(devicePath: string, align: number): number {
  try {
    const name = fs.realpathSync(devicePath).split('/').pop()!;
    const kb = Number(fs.readFileSync(`/sys/block/${name}/queue/max_sectors_kb`, 'utf8').trim());
    if (Number.isSafeInteger(kb) && kb > 0) return Math.max(align, Math.floor((kb * 1024) / align) * align);
  } catch {
    // Not a whole disk, or no sysfs: the safe answer.
  }
  return align;
}

/**
 * Opens a zoned block device (e.g. /dev/nvme0n1, /dev/nullb0) for direct I/O. Needs read and
 * write permission on the node (root, or the `disk` group) and libzbd.so.2.
 * ERR_NATIVE_UNAVAILABLE without libzbd; ERR_INVALID_ARGUMENT for a device that is not zoned.
 */
export function openLibzbdDevice(devicePath: string, options: LibzbdOptions = {}): LibzbdDevice {
  const exclusive = options.exclusive === true ? fs.constants.O_EXCL : 0;
  const { fd, info } = zbdOpen(devicePath, fs.constants.O_RDWR | fs.constants.O_DIRECT | LINUX_O_CLOEXEC | exclusive);
  try {
    if (info.model !== ZbdModel.HOST_MANAGED && info.model !== ZbdModel.HOST_AWARE) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${devicePath} is not a zoned block device (model ${info.model})`);
    }
    return new LibzbdDevice(devicePath, fd, info, options);
  } catch (err) {
    libzbd().zbd_close(fd);
    throw err;
  }
}
