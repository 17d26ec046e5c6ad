/**
 * A cache entry as the store holds it: one object per entry, the full key beside the value, so
 * a read can tell a hash collision from a hit (the index keeps only hashes).
 *
 *   0  u8   RECORD_MAGIC
 *   1  u8   flags: bits 0-1 the value's kind (ValueKind), bit 2 the key is a string (else
 *           bytes), bit 3 the string key is UTF-16LE (it holds a lone surrogate, which UTF-8
 *           cannot carry; other string keys are UTF-8)
 *   2  u16  key length in bytes
 *   4  f64  expiresAt: ms on the cache's clock, 0 for never
 *   12 f64  sequence: the set's number; after a crash the higher one of a key's records wins
 *   20      key bytes, then value bytes
 *
 * Values: a Buffer or Uint8Array is stored as bytes, a string as UTF-8 (UTF-16LE if it holds a
 * lone surrogate, so it comes back exactly), anything else through
 * msgpackr (Date, Map, Set, bigint, typed arrays, nested objects).
 */
import { Packr } from 'msgpackr';
import { ErrorCode, ZnsSlabError } from '../errors.js';

export const RECORD_MAGIC = 0xc7;
export const RECORD_HEADER_BYTES = 20;
/** Longest key, in bytes (UTF-8 for strings): a key travels with every read, and u16 holds it. */
export const MAX_KEY_BYTES = 1024;

export const enum ValueKind {
  PACKED = 0,
  BYTES = 1,
  STRING = 2,
  /** A string that is not well-formed UTF-16 (a lone surrogate): stored as UTF-16LE. */
  STRING16 = 3,
}
const KEY_IS_STRING = 0b100;
const KEY_IS_UTF16 = 0b1000;

/** Records carry their structures inline (no shared state across processes), Maps stay Maps. */
const packr = new Packr({ useRecords: true, mapsAsObjects: false, moreTypes: true });

/** A key ready for hashing, comparing and writing. */
export interface Key {
  readonly isString: boolean;
  readonly string: string;
  readonly bytes: Uint8Array | undefined;
  /** Length in bytes (UTF-8 for a string). */
  readonly byteLength: number;
  /** A string key of code points below 0x80: compared char by char, no decoding. */
  readonly ascii: boolean;
  /** A string key with a lone surrogate: stored as UTF-16LE. */
  readonly utf16: boolean;
}

const NON_ASCII = /[^\x00-\x7f]/;

/** String.prototype.isWellFormed (Node 20; the ES2024 lib is not in our TypeScript target). */
function wellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** Checks a key's type and length; never copies a Buffer key. */
export function toKey(key: unknown, what = 'key'): Key {
  if (typeof key === 'string') {
    const ascii = !NON_ASCII.test(key);
    const utf16 = !ascii && !wellFormed(key);
    const byteLength = ascii ? key.length : utf16 ? key.length * 2 : Buffer.byteLength(key, 'utf8');
    if (byteLength > MAX_KEY_BYTES) throw keyTooLong(what, byteLength);
    return { isString: true, string: key, bytes: undefined, byteLength, ascii, utf16 };
  }
  if (key instanceof Uint8Array) {
    if (key.byteLength > MAX_KEY_BYTES) throw keyTooLong(what, key.byteLength);
    return { isString: false, string: '', bytes: key, byteLength: key.byteLength, ascii: false, utf16: false };
  }
  throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${what} must be a string or a Buffer, got ${describe(key)}`);
}

function keyTooLong(what: string, bytes: number): ZnsSlabError {
  return new ZnsSlabError(ErrorCode.KEY_TOO_LONG, `${what} is ${bytes} bytes; the longest key is ${MAX_KEY_BYTES} bytes (MAX_KEY_BYTES)`);
}

/** A value ready to write: its kind and bytes (a view; copy before the next encode). */
export interface EncodedValue {
  kind: ValueKind;
  bytes: Uint8Array | undefined;
  string: string;
  byteLength: number;
}

export function encodeValue(value: unknown): EncodedValue {
  if (typeof value === 'string') {
    if (wellFormed(value)) return { kind: ValueKind.STRING, bytes: undefined, string: value, byteLength: Buffer.byteLength(value, 'utf8') };
    return { kind: ValueKind.STRING16, bytes: undefined, string: value, byteLength: value.length * 2 };
  }
  if (value instanceof Uint8Array && (value.constructor === Buffer || value.constructor === Uint8Array)) {
    return { kind: ValueKind.BYTES, bytes: value, string: '', byteLength: value.byteLength };
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    throw new ZnsSlabError(ErrorCode.VALUE_ENCODING, `a ${typeof value} cannot be stored in the cache (values are msgpackr-encodable data)`);
  }
  let bytes: Uint8Array;
  try {
    bytes = packr.pack(value);
  } catch (err) {
    throw new ZnsSlabError(ErrorCode.VALUE_ENCODING, `msgpackr cannot encode the value: ${(err as Error).message}`, { cause: err });
  }
  return { kind: ValueKind.PACKED, bytes, string: '', byteLength: bytes.byteLength };
}

/** Writes a whole record into `out` (at least recordLength bytes); returns its length. */
export function writeRecord(out: Buffer, key: Key, value: EncodedValue, expiresAt: number, sequence: number): number {
  out[0] = RECORD_MAGIC;
  out[1] = value.kind | (key.isString ? KEY_IS_STRING : 0) | (key.utf16 ? KEY_IS_UTF16 : 0);
  out.writeUInt16LE(key.byteLength, 2);
  out.writeDoubleLE(expiresAt, 4);
  out.writeDoubleLE(sequence, 12);
  let at = RECORD_HEADER_BYTES;
  if (key.isString) at += out.write(key.string, at, key.utf16 ? 'utf16le' : 'utf8');
  else {
    out.set(key.bytes!, at);
    at += key.byteLength;
  }
  if (value.kind === ValueKind.STRING) at += out.write(value.string, at, 'utf8');
  else if (value.kind === ValueKind.STRING16) at += out.write(value.string, at, 'utf16le');
  else {
    out.set(value.bytes!, at);
    at += value.byteLength;
  }
  return at;
}

export function recordLength(key: Key, value: EncodedValue): number {
  return RECORD_HEADER_BYTES + key.byteLength + value.byteLength;
}

/** Throws unless `rec` starts like a record (the store's checksum already vouches for the bytes). */
export function checkRecord(rec: Buffer): void {
  if (rec.length < RECORD_HEADER_BYTES || rec[0] !== RECORD_MAGIC || RECORD_HEADER_BYTES + rec.readUInt16LE(2) > rec.length) {
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, 'an object in the cache is not a cache record');
  }
}

/** Is this the record of `key`? */
export function recordHasKey(rec: Buffer, key: Key): boolean {
  const isString = (rec[1]! & KEY_IS_STRING) !== 0;
  if (isString !== key.isString || rec.readUInt16LE(2) !== key.byteLength) return false;
  if (((rec[1]! & KEY_IS_UTF16) !== 0) !== key.utf16) return false;
  const start = RECORD_HEADER_BYTES;
  if (!key.isString) return rec.compare(key.bytes!, 0, key.byteLength, start, start + key.byteLength) === 0;
  if (key.ascii) {
    const s = key.string;
    for (let i = 0; i < s.length; i++) if (rec[start + i] !== s.charCodeAt(i)) return false;
    return true;
  }
  return rec.toString(key.utf16 ? 'utf16le' : 'utf8', start, start + key.byteLength) === key.string;
}

export function recordExpiresAt(rec: Buffer): number {
  return rec.readDoubleLE(4);
}

export function recordSequence(rec: Buffer): number {
  return rec.readDoubleLE(12);
}

/** The record's key, as it was given (a string, or a Buffer copy). */
export function recordKey(rec: Buffer): string | Buffer {
  const end = RECORD_HEADER_BYTES + rec.readUInt16LE(2);
  if ((rec[1]! & KEY_IS_STRING) !== 0) return rec.toString((rec[1]! & KEY_IS_UTF16) !== 0 ? 'utf16le' : 'utf8', RECORD_HEADER_BYTES, end);
  return Buffer.from(rec.subarray(RECORD_HEADER_BYTES, end));
}

/** The record's value. `rec` must be a buffer of its own (a store read): byte values are views of it. */
export function recordValue(rec: Buffer): unknown {
  const start = RECORD_HEADER_BYTES + rec.readUInt16LE(2);
  switch ((rec[1]! & 0b11) as ValueKind) {
    case ValueKind.BYTES:
      return rec.subarray(start);
    case ValueKind.STRING:
      return rec.toString('utf8', start);
    case ValueKind.STRING16:
      return rec.toString('utf16le', start);
    case ValueKind.PACKED:
      try {
        return packr.unpack(rec.subarray(start));
      } catch (err) {
        throw new ZnsSlabError(ErrorCode.VALUE_ENCODING, `msgpackr cannot decode a stored value: ${(err as Error).message}`, { cause: err });
      }
  }
}

/** Bytes the user gave: key plus value. */
export function recordUserBytes(rec: Buffer): number {
  return rec.length - RECORD_HEADER_BYTES;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}
