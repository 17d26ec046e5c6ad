/**
 * The zoned block device model, in the Linux kernel's terms (include/uapi/linux/blkzoned.h).
 * Every device kind (the file-backed emulation, libzbd on a real device) implements `ZonedDevice`;
 * nothing above this folder knows which one it has.
 *
 * All offsets and lengths are in bytes. A JavaScript number holds byte offsets exactly up to
 * 2^53 (8 PiB), far past any zoned device.
 */

import { ErrorCode, ZnsSlabError } from '../errors.js';

/** Zone types, numbered as in `enum blk_zone_type`. */
export enum ZoneType {
  CONVENTIONAL = 1,
  SEQUENTIAL_WRITE_REQUIRED = 2,
  SEQUENTIAL_WRITE_PREFERRED = 3,
}

/** Zone conditions, numbered as in `enum blk_zone_cond`. */
export enum ZoneCondition {
  NOT_WRITE_POINTER = 0x0,
  EMPTY = 0x1,
  IMPLICIT_OPEN = 0x2,
  EXPLICIT_OPEN = 0x3,
  CLOSED = 0x4,
  READ_ONLY = 0xd,
  FULL = 0xe,
  OFFLINE = 0xf,
}

export const ZONE_CONDITION_NAMES: Readonly<Record<ZoneCondition, string>> = {
  [ZoneCondition.NOT_WRITE_POINTER]: 'not-wp',
  [ZoneCondition.EMPTY]: 'empty',
  [ZoneCondition.IMPLICIT_OPEN]: 'implicit-open',
  [ZoneCondition.EXPLICIT_OPEN]: 'explicit-open',
  [ZoneCondition.CLOSED]: 'closed',
  [ZoneCondition.READ_ONLY]: 'read-only',
  [ZoneCondition.FULL]: 'full',
  [ZoneCondition.OFFLINE]: 'offline',
};

export const ZONE_TYPE_NAMES: Readonly<Record<ZoneType, string>> = {
  [ZoneType.CONVENTIONAL]: 'conventional',
  [ZoneType.SEQUENTIAL_WRITE_REQUIRED]: 'seq-write-required',
  [ZoneType.SEQUENTIAL_WRITE_PREFERRED]: 'seq-write-preferred',
};

export interface DeviceGeometry {
  readonly zoneCount: number;
  /** Distance between zone starts. */
  readonly zoneSize: number;
  /** Writable bytes per zone; <= zoneSize (NVMe ZNS lets it be smaller). */
  readonly zoneCapacity: number;
  /** Every write's offset and length is a multiple of this. */
  readonly logicalBlockSize: number;
  /** Most zones that may be implicitly or explicitly open at once; 0 means no limit. */
  readonly maxOpenZones: number;
  /** Most zones that may be open or closed (partly written) at once; 0 means no limit. */
  readonly maxActiveZones: number;
}

export interface Zone {
  readonly index: number;
  readonly start: number;
  readonly size: number;
  readonly capacity: number;
  /** Next writable byte. Reported as start + size for FULL zones (the kernel's NVMe convention). */
  readonly writePointer: number;
  readonly type: ZoneType;
  readonly condition: ZoneCondition;
}

export type DeviceKind = 'emulated' | 'libzbd';

/** How a write started with `writeStart` ended: `error` is undefined when every byte was written. */
export interface WriteEnded {
  readonly zone: number;
  readonly offset: number;
  readonly length: number;
  readonly error: ZnsSlabError | undefined;
}

export interface ZonedDevice {
  readonly kind: DeviceKind;
  /** A path a person would recognise: the emulation's folder or the block device node. */
  readonly path: string;
  readonly geometry: DeviceGeometry;

  /** Zones [first, first + count), in order. Defaults: all zones. */
  reportZones(first?: number, count?: number): Zone[];
  /** Bytes [offset, offset + length); the range must lie in one zone, below its write pointer. */
  read(offset: number, length: number): Buffer;
  /**
   * As `read`, into `target` (its whole length), without allocating when it can: for reads
   * into a caller's buffer. Optional: without it, callers `read` and copy.
   */
  readInto?(offset: number, target: Uint8Array): void;
  /**
   * As `read`, off the calling thread (libuv's pool), each read with a buffer of its own, so
   * many can be in flight (a queue depth). Rejects with what `read` throws. Optional: without
   * it, callers `read`.
   */
  readAsync?(offset: number, length: number): Promise<Buffer>;
  /**
   * Whether I/O skips the page cache (O_DIRECT): always for a real device, on request for the
   * emulated one. Undefined counts as false.
   */
  readonly direct?: boolean;
  /** Appends `data` at `offset`, which must be the zone's write pointer. Block-aligned. */
  write(offset: number, data: Uint8Array): void;
  resetZone(zone: number): void;
  openZone(zone: number): void;
  closeZone(zone: number): void;
  finishZone(zone: number): void;
  /**
   * Starts an append of `data` at `offset` (the zone's write pointer) and returns at once: the
   * write goes on in a worker thread (zns/writeQueue.ts). `data` must be a view of a
   * SharedArrayBuffer and stay unchanged until the write has ended. One write per zone may be in
   * flight; the zone's write pointer moves when it ends. What `write` refuses up front (write
   * pointer, condition, limits, alignment) throws here the same way; what fails later is
   * reported by `writesEnded`. Zone operations, `flush` and `close` wait for the zone's (or
   * every) write in flight first. Optional: without it the engine writes with `write`.
   */
  writeStart?(offset: number, data: Uint8Array): void;
  /** Writes that ended since the last call (their zone state applied), oldest first. Never blocks. */
  writesEnded?(): WriteEnded[];
  /** Blocks until `zone`'s write in flight (without a zone: every one) has ended; then as `writesEnded`. */
  writesWait?(zone?: number): WriteEnded[];
  /** Resolves once every write in flight at the call has ended (collect them with `writesEnded`). */
  writesWaitAsync?(): Promise<void>;
  /** Everything written before the call (started writes too) is durable when it returns. */
  flush(): void;
  close(): void;
  /**
   * The id of the store that owns the device, where the device has room to record one (the
   * emulated device's metadata); undefined elsewhere. Slab images carry the id on every device.
   */
  readonly owner?: string | undefined;
  setOwner?(storeId: string): void;
  /**
   * A number the owner keeps with the device where it can (`zns-slab recover` records the
   * generation floor it rebuilt from, so a second rebuild starts above it). Opaque here.
   */
  readonly generationFloor?: number | undefined;
  setGenerationFloor?(floor: number): void;
}

/** Fewer than this many zones or blocks per zone makes no useful store. */
export const MIN_ZONE_COUNT = 2;

/** Treats the kernel's "0 = no limit" as the zone count, so callers compare with one rule. */
export function effectiveLimit(limit: number, zoneCount: number): number {
  return limit === 0 ? zoneCount : Math.min(limit, zoneCount);
}

export function zoneIsActive(condition: ZoneCondition): boolean {
  return (
    condition === ZoneCondition.IMPLICIT_OPEN ||
    condition === ZoneCondition.EXPLICIT_OPEN ||
    condition === ZoneCondition.CLOSED
  );
}

export function zoneIsOpen(condition: ZoneCondition): boolean {
  return condition === ZoneCondition.IMPLICIT_OPEN || condition === ZoneCondition.EXPLICIT_OPEN;
}

/** Refuses a zone index outside the device (ERR_INVALID_ARGUMENT). */
export function checkZoneIndex(geometry: DeviceGeometry, zone: number): void {
  if (!Number.isSafeInteger(zone) || zone < 0 || zone >= geometry.zoneCount) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `zone ${String(zone)} out of range [0, ${geometry.zoneCount})`);
  }
}

/**
 * The zone a byte range [offset, offset + length) lies in, and the offset within it. A range
 * may not cross a zone end: for a write that is the write-pointer rule (ERR_ZONE_WRITE_POINTER),
 * for a read a bad argument.
 */
export function locateInZone(geometry: DeviceGeometry, offset: number, length: number, what: 'read' | 'write'): { zone: number; within: number } {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${what} offset and length must be non-negative integers`);
  }
  const zone = Math.floor(offset / geometry.zoneSize);
  if (zone >= geometry.zoneCount) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${what} at ${offset} is past the device end`);
  }
  const within = offset - zone * geometry.zoneSize;
  if (within + length > geometry.zoneSize) {
    throw new ZnsSlabError(
      what === 'write' ? ErrorCode.ZONE_WRITE_POINTER : ErrorCode.INVALID_ARGUMENT,
      `${what} [${offset}, ${offset + length}) crosses the end of zone ${zone}`,
    );
  }
  return { zone, within };
}
