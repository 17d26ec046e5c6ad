/**
 * koffi bindings to libzbd (libzbd.so.2, Debian's `libzbd2`) and the few libc calls the
 * libzbd device needs. Loaded lazily, on first use: importing this module never touches
 * native code, so hosts without libzbd or koffi still load the rest of zns-slab, and get
 * ERR_NATIVE_UNAVAILABLE only when they ask for a real zoned device.
 *
 * Struct layouts are from include/libzbd/zbd.h (both structs are packed):
 *   struct zbd_zone (64 B): u64 start, len, capacity, wp (bytes); u32 flags, type, cond; 20 reserved.
 *   struct zbd_info (128 B): char vendor_id[32]; u64 nr_sectors, nr_lblocks, nr_pblocks,
 *     zone_size; u32 zone_sectors, lblock_size, pblock_size, nr_zones, max_nr_open_zones,
 *     max_nr_active_zones, model; 36 reserved.
 * We decode them from Buffers by offset rather than through koffi struct types: one memcpy-free
 * pass over a report of thousands of zones, and the layout is written down in one place.
 */
import fs from 'node:fs';
import { nodeRequire } from './require.cjs';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';

export const LIBZBD_SONAME = 'libzbd.so.2';
export const LIBC_SONAME = 'libc.so.6';

export const ZBD_ZONE_SIZE = 64;
export const ZBD_INFO_SIZE = 128;
export const ZBD_VENDOR_ID_LENGTH = 32;
/** libzbd keeps per-fd state in a fixed table of this many slots and does not bound-check zbd_open. */
export const ZBD_FD_MAX = 1024;

/** enum zbd_zone_op */
export const ZbdZoneOp = { RESET: 1, OPEN: 2, CLOSE: 3, FINISH: 4 } as const;
export type ZbdZoneOp = (typeof ZbdZoneOp)[keyof typeof ZbdZoneOp];

/** enum zbd_report_option: only "all" is used; filtering is cheaper in JS than another ioctl. */
export const ZBD_RO_ALL = 0;
/** enum zbd_dev_model */
export const ZbdModel = { HOST_MANAGED: 1, HOST_AWARE: 2, NOT_ZONED: 3 } as const;

export interface ZbdInfo {
  vendorId: string;
  nrSectors: number;
  nrLogicalBlocks: number;
  nrPhysicalBlocks: number;
  /** Bytes. */
  zoneSize: number;
  zoneSectors: number;
  logicalBlockSize: number;
  physicalBlockSize: number;
  nrZones: number;
  /** 0: no limit. */
  maxOpenZones: number;
  /** 0: no limit. */
  maxActiveZones: number;
  model: number;
}

/** One zone as libzbd reports it (bytes, not sectors). */
export interface ZbdZone {
  start: number;
  len: number;
  capacity: number;
  wp: number;
  flags: number;
  type: number;
  cond: number;
}

/** The functions we call, typed. Pointers to our memory are passed as Buffers (koffi passes them in place). */
export interface LibzbdApi {
  zbd_set_log_level(level: number): void;
  /** 1: zoned block device; 0: not one (or not a block device); < 0: path error (errno set). */
  zbd_device_is_zoned(path: string): number;
  zbd_open(path: string, flags: number, info: Buffer): number;
  zbd_close(fd: number): void;
  zbd_report_zones(fd: number, ofst: number, len: number, ro: number, zones: Buffer | null, nrZones: Buffer): number;
  zbd_zones_operation(fd: number, op: number, ofst: number, len: number): number;
  /** libc */
  pread(fd: number, buf: Uint8Array, count: number, offset: number): number;
  pwrite(fd: number, buf: Uint8Array, count: number, offset: number): number;
  /** errno of the last native call on this thread (koffi saves it right after the call). */
  errno(): number;
  /** The address of a Buffer's first byte, for alignment. */
  address(buf: Uint8Array): bigint;
}

interface KoffiFunction {
  (...args: unknown[]): unknown;
}
interface KoffiLibrary {
  func(signature: string): KoffiFunction;
}
interface Koffi {
  load(path: string): KoffiLibrary;
  errno(): number;
  address(value: unknown): bigint;
  os: { errno: Record<string, number> };
}

let api: LibzbdApi | undefined;
let loadError: ZnsSlabError | undefined;

/**
 * The bound API, loaded on first call. Throws ERR_NATIVE_UNAVAILABLE (the same error on every
 * later call) if koffi or libzbd.so.2 cannot be loaded.
 */
export function libzbd(): LibzbdApi {
  if (api) return api;
  if (loadError) throw loadError;
  let koffi: Koffi;
  try {
    // require, not import: the device API is synchronous, so loading must be too.
    koffi = nodeRequire('koffi') as Koffi;
  } catch (err) {
    loadError = new ZnsSlabError(ErrorCode.NATIVE_UNAVAILABLE, `koffi is not installed or has no build for this platform: ${String(err)}`, { cause: err });
    throw loadError;
  }
  let zbd: KoffiLibrary;
  let libc: KoffiLibrary;
  try {
    zbd = koffi.load(LIBZBD_SONAME);
    libc = koffi.load(LIBC_SONAME);
  } catch (err) {
    loadError = new ZnsSlabError(
      ErrorCode.NATIVE_UNAVAILABLE,
      `cannot load ${LIBZBD_SONAME} (on Debian/Ubuntu: apt-get install libzbd2): ${String(err)}`,
      { cause: err },
    );
    throw loadError;
  }
  const f = {
    setLogLevel: zbd.func('void zbd_set_log_level(int level)'),
    isZoned: zbd.func('int zbd_device_is_zoned(const char *filename)'),
    open: zbd.func('int zbd_open(const char *filename, int flags, void *info)'),
    close: zbd.func('void zbd_close(int fd)'),
    // off_t is 64-bit on every platform libzbd supports (it opens with O_LARGEFILE).
    report: zbd.func('int zbd_report_zones(int fd, int64_t ofst, int64_t len, int ro, void *zones, void *nr_zones)'),
    op: zbd.func('int zbd_zones_operation(int fd, int op, int64_t ofst, int64_t len)'),
    pread: libc.func('intptr_t pread(int fd, void *buf, size_t count, int64_t offset)'),
    pwrite: libc.func('intptr_t pwrite(int fd, const void *buf, size_t count, int64_t offset)'),
  };
  api = {
    zbd_set_log_level: (level) => void f.setLogLevel(level),
    zbd_device_is_zoned: (path) => f.isZoned(path) as number,
    zbd_open: (path, flags, info) => {
      assert(info.length >= ZBD_INFO_SIZE, 'zbd_info buffer holds the struct');
      return f.open(path, flags, info) as number;
    },
    zbd_close: (fd) => void f.close(fd),
    zbd_report_zones: (fd, ofst, len, ro, zones, nrZones) => {
      assert(nrZones.length >= 4, 'nr_zones is a u32');
      assert(zones === null || zones.length >= nrZones.readUInt32LE(0) * ZBD_ZONE_SIZE, 'zones buffer holds nr_zones zones');
      return f.report(fd, ofst, len, ro, zones, nrZones) as number;
    },
    zbd_zones_operation: (fd, op, ofst, len) => f.op(fd, op, ofst, len) as number,
    pread: (fd, buf, count, offset) => Number(f.pread(fd, buf, count, offset)),
    pwrite: (fd, buf, count, offset) => Number(f.pwrite(fd, buf, count, offset)),
    errno: () => koffi.errno(),
    address: (buf) => koffi.address(buf),
  };
  for (const [name, value] of Object.entries(Errno)) {
    assert(koffi.os.errno[name] === value, `${name} is ${value} on this platform, as Errno says`);
  }
  // libzbd prints its own errors to stderr by default in some builds; we report them as codes.
  api.zbd_set_log_level(0);
  return api;
}

/** True if libzbd can be loaded here (for tests and tools that are optional on a host). */
export function libzbdAvailable(): boolean {
  try {
    libzbd();
    return true;
  } catch {
    return false;
  }
}

/** Byte offsets past 2^53 would lose precision; no zoned device is near that. */
function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  assert(v <= BigInt(Number.MAX_SAFE_INTEGER), `u64 at ${at} fits a JS number`);
  return Number(v);
}

export function decodeZbdInfo(buf: Buffer): ZbdInfo {
  assert(buf.length >= ZBD_INFO_SIZE, 'zbd_info is 128 bytes');
  const vendor = buf.subarray(0, ZBD_VENDOR_ID_LENGTH);
  const nul = vendor.indexOf(0);
  return {
    vendorId: vendor.subarray(0, nul < 0 ? ZBD_VENDOR_ID_LENGTH : nul).toString('latin1').trim(),
    nrSectors: u64(buf, 32),
    nrLogicalBlocks: u64(buf, 40),
    nrPhysicalBlocks: u64(buf, 48),
    zoneSize: u64(buf, 56),
    zoneSectors: buf.readUInt32LE(64),
    logicalBlockSize: buf.readUInt32LE(68),
    physicalBlockSize: buf.readUInt32LE(72),
    nrZones: buf.readUInt32LE(76),
    maxOpenZones: buf.readUInt32LE(80),
    maxActiveZones: buf.readUInt32LE(84),
    model: buf.readUInt32LE(88),
  };
}

export function decodeZbdZone(buf: Buffer, index: number): ZbdZone {
  const at = index * ZBD_ZONE_SIZE;
  assert(at + ZBD_ZONE_SIZE <= buf.length, `zone ${index} lies in the report buffer`);
  return {
    start: u64(buf, at),
    len: u64(buf, at + 8),
    capacity: u64(buf, at + 16),
    wp: u64(buf, at + 24),
    flags: buf.readUInt32LE(at + 32),
    type: buf.readUInt32LE(at + 36),
    cond: buf.readUInt32LE(at + 40),
  };
}

/** errno names for messages (a subset: the ones zoned I/O produces). */
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 13: 'EACCES', 16: 'EBUSY', 19: 'ENODEV',
  22: 'EINVAL', 24: 'EMFILE', 28: 'ENOSPC', 30: 'EROFS', 75: 'EOVERFLOW', 95: 'EOPNOTSUPP',
  109: 'ETOOMANYREFS',
};

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EACCES: 13,
  EINVAL: 22,
  /** BLK_STS_ZONE_ACTIVE_RESOURCE: the active-zone limit. */
  EOVERFLOW: 75,
  /** BLK_STS_ZONE_OPEN_RESOURCE: the open-zone limit. */
  ETOOMANYREFS: 109,
} as const;

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/**
 * Opens a zoned block device with libzbd. Refuses (instead of letting libzbd write past its
 * fd table) when the process already holds ZBD_FD_MAX - 1 descriptors.
 */
/** Linux's EBUSY: an O_EXCL open of a block device someone else holds exclusively. */
const EBUSY = 16;

export function zbdOpen(path: string, flags: number): { fd: number; info: ZbdInfo } {
  const lib = libzbd();
  // open() returns the lowest free descriptor; a probe tells us which one zbd_open will get.
  const probe = fs.openSync('/dev/null', 'r');
  fs.closeSync(probe);
  if (probe >= ZBD_FD_MAX) {
    throw new ZnsSlabError(
      ErrorCode.DEVICE_IO,
      `cannot open ${path}: the next file descriptor (${probe}) is past libzbd's table of ${ZBD_FD_MAX}`,
    );
  }
  // Asked first so that "not zoned" is told apart from open() failing (zbd_open says -1 for both).
  const zoned = lib.zbd_device_is_zoned(path);
  if (zoned < 0) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${path}: ${errnoName(lib.errno())} (no such device?)`);
  }
  if (zoned === 0) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${path} is not a zoned block device`);
  const infoBuf = Buffer.alloc(ZBD_INFO_SIZE);
  const fd = lib.zbd_open(path, flags, infoBuf);
  if (fd < 0) {
    const errno = lib.errno();
    if (errno === EBUSY && (flags & fs.constants.O_EXCL) !== 0) {
      throw new ZnsSlabError(ErrorCode.DEVICE_LOCKED, `${path} is open exclusively elsewhere (another store, in this process or another, or a mount)`);
    }
    const hint = errno === Errno.EACCES || errno === Errno.EPERM ? ' (needs read-write access to the node: root or the disk group)' : '';
    throw new ZnsSlabError(ErrorCode.DEVICE_IO, `zbd_open(${path}) failed: ${errnoName(errno)}${hint}`);
  }
  assert(fd < ZBD_FD_MAX, `libzbd fd ${fd} within its table`);
  return { fd, info: decodeZbdInfo(infoBuf) };
}
