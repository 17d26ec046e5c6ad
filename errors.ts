/**
 * The one error type zns-slab throws on purpose. `code` is a stable string: match on it,
 * never on `message`, which may change wording between releases.
 */
export const ErrorCode = {
  /** An argument has the wrong type or is out of its documented range. */
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  /** A handle that was never valid: wrong type, wrong version bits, unknown slab, bad slot or class. */
  INVALID_HANDLE: 'ERR_INVALID_HANDLE',
  /** A handle that was valid once: its object was freed, or its epoch closed and the slab was reused. */
  STALE_HANDLE: 'ERR_STALE_HANDLE',
  /** The epoch does not exist (never created by this store). */
  UNKNOWN_EPOCH: 'ERR_UNKNOWN_EPOCH',
  /** Allocation into, or closing of, an epoch that is CLOSING or CLOSED. */
  EPOCH_CLOSED: 'ERR_EPOCH_CLOSED',
  /** The object is larger than the largest size class the device geometry allows. */
  OBJECT_TOO_LARGE: 'ERR_OBJECT_TOO_LARGE',
  /** Bytes read back do not match their checksum; they are never returned. */
  CHECKSUM: 'ERR_CHECKSUM',
  /** A write not at the zone's write pointer, or past its capacity, or across zones. */
  ZONE_WRITE_POINTER: 'ERR_ZONE_WRITE_POINTER',
  /** A read at or beyond the zone's write pointer (there are no bytes there). */
  ZONE_READ_BEYOND_WRITE_POINTER: 'ERR_ZONE_READ_BEYOND_WRITE_POINTER',
  /** A zone operation not allowed in the zone's condition (e.g. write to a FULL or OFFLINE zone). */
  ZONE_CONDITION: 'ERR_ZONE_CONDITION',
  /** Opening or writing one more zone would exceed the device's open-zone limit. */
  ZONE_OPEN_LIMIT: 'ERR_ZONE_OPEN_LIMIT',
  /** Activating one more zone would exceed the device's active-zone limit. */
  ZONE_ACTIVE_LIMIT: 'ERR_ZONE_ACTIVE_LIMIT',
  /** Offset or length not a multiple of the device's logical block size. */
  UNALIGNED_IO: 'ERR_UNALIGNED_IO',
  /** No empty zone is left for new data. */
  DEVICE_FULL: 'ERR_DEVICE_FULL',
  /** A device-level I/O failure (EIO and friends) that is not one of the above. */
  DEVICE_IO: 'ERR_DEVICE_IO',
  /** The store's catalog was made for a device of another geometry. */
  GEOMETRY_MISMATCH: 'ERR_GEOMETRY_MISMATCH',
  /** The catalog points at data the device does not hold (device lost writes, or was swapped). */
  DEVICE_MISMATCH: 'ERR_DEVICE_MISMATCH',
  /** The catalog's format version is not one this release reads. */
  FORMAT_VERSION: 'ERR_FORMAT_VERSION',
  /** Another process (or another Store in this one) has the store open. */
  STORE_LOCKED: 'ERR_STORE_LOCKED',
  /** An epoch domain exited more often than it was entered, or one scope exited twice. */
  DOMAIN_UNBALANCED: 'ERR_DOMAIN_UNBALANCED',
  /** An epoch domain disposed a second time. */
  DOMAIN_DISPOSED: 'ERR_DOMAIN_DISPOSED',
  /** A write (put, free, flush, epoch change) on a store opened read-only. */
  READ_ONLY: 'ERR_READ_ONLY',
  /** The store or device was closed. */
  CLOSED: 'ERR_CLOSED',
  /** A path that is not a store, or a store that is damaged beyond what open can repair. */
  INVALID_STORE: 'ERR_INVALID_STORE',
  /** The catalog (SQLite) could not read or commit: an I/O error, a corrupt page. Nothing was committed. */
  CATALOG_IO: 'ERR_CATALOG_IO',
  /** The filesystem under the catalog or an emulated device is full (ENOSPC, SQLITE_FULL). */
  DISK_FULL: 'ERR_DISK_FULL',
  /** The catalog belongs to another store than the device's data (a catalog copied or swapped in). Nothing was changed. */
  CATALOG_MISMATCH: 'ERR_CATALOG_MISMATCH',
  /** The catalog is older than the device's data (an old copy restored, or its WAL lost). Nothing was changed. */
  CATALOG_STALE: 'ERR_CATALOG_STALE',
  /** The device holds a store's data but there is no catalog: run `zns-slab recover`, or open with `overwriteDevice`. */
  CATALOG_MISSING: 'ERR_CATALOG_MISSING',
  /** Another store has this device open (in this process or another). */
  DEVICE_LOCKED: 'ERR_DEVICE_LOCKED',
  /** The object's zone is damaged or gone (a salvage open serves the rest). */
  ZONE_LOST: 'ERR_ZONE_LOST',
  /** openCache on a folder that holds a plain store (not made by openCache). Nothing was changed. */
  NOT_A_CACHE: 'ERR_NOT_A_CACHE',
  /** openStore (writable) on a folder that holds a cache: open it with openCache. Nothing was changed. */
  IS_A_CACHE: 'ERR_IS_A_CACHE',
  /** A cache key longer than the cache's maximum (MAX_KEY_BYTES bytes; UTF-8, or UTF-16 for a string with a lone surrogate). */
  KEY_TOO_LONG: 'ERR_KEY_TOO_LONG',
  /** A value msgpackr cannot encode (a symbol, a function), or stored bytes it cannot decode. */
  VALUE_ENCODING: 'ERR_VALUE_ENCODING',
  /** An internal invariant failed: a bug in zns-slab. Please report it with the message. */
  INTERNAL: 'ERR_INTERNAL',
  /** Direct I/O (O_DIRECT) was asked for and the filesystem under an emulated device refuses it: open without `direct`. */
  DIRECT_IO_UNSUPPORTED: 'ERR_DIRECT_IO_UNSUPPORTED',
  /** libzbd (or another native piece) is not installed or cannot be loaded. */
  NATIVE_UNAVAILABLE: 'ERR_NATIVE_UNAVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class ZnsSlabError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ZnsSlabError';
    this.code = code;
  }
}

/** Invariant check: a failure here is a bug in zns-slab, not bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ZnsSlabError(ErrorCode.INTERNAL, `zns-slab invariant violated: ${message}`);
}
