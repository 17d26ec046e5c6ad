/**
 * The portable handle, format v1 (from the ZNS-Slab C allocator, bit for bit):
 *
 *   [63:42] slab_id    22 bits   registry index
 *   [41:18] generation 24 bits   bumps whenever the slab id is reused (ABA protection)
 *   [17:10] slot        8 bits   slot within the slab
 *   [9:2]   size_class  8 bits   index into the size-class table
 *   [1:0]   version     2 bits   0b01
 *
 * Handles are `bigint`s: a JavaScript number cannot hold 64 bits exactly.
 */
import { ErrorCode, ZnsSlabError } from '../errors.js';

export const HANDLE_VERSION = 0b01;
export const SLAB_ID_BITS = 22;
export const GENERATION_BITS = 24;
export const SLOT_BITS = 8;
export const SIZE_CLASS_BITS = 8;
export const VERSION_BITS = 2;

export const MAX_SLAB_ID = 2 ** SLAB_ID_BITS - 1;
export const MAX_GENERATION = 2 ** GENERATION_BITS - 1;
export const MAX_SLOT = 2 ** SLOT_BITS - 1;
export const MAX_SIZE_CLASS = 2 ** SIZE_CLASS_BITS - 1;

const HANDLE_MAX = (1n << 64n) - 1n;

export interface HandleFields {
  slabId: number;
  generation: number;
  slot: number;
  sizeClass: number;
}

export interface UnpackedHandle extends HandleFields {
  version: number;
}

function checkField(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${name} must be an integer in [0, ${max}], got ${String(value)}`);
  }
  return value;
}

export function packHandle(fields: HandleFields): bigint {
  if (typeof fields !== 'object' || fields === null) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, 'packHandle takes { slabId, generation, slot, sizeClass }');
  }
  const slabId = checkField('slabId', fields.slabId, MAX_SLAB_ID);
  const generation = checkField('generation', fields.generation, MAX_GENERATION);
  const slot = checkField('slot', fields.slot, MAX_SLOT);
  const sizeClass = checkField('sizeClass', fields.sizeClass, MAX_SIZE_CLASS);
  return encodeHandle(slabId, generation, slot, sizeClass);
}

/** The hot-path encoder: fields already known to be in range. */
export function encodeHandle(slabId: number, generation: number, slot: number, sizeClass: number): bigint {
  // The high 32 bits hold slab_id and generation's top 14 bits; the low 32 bits the rest.
  const hi = slabId * 1024 + Math.floor(generation / 16384); // slabId << 10 | gen >> 14
  const lo = ((generation & 0x3fff) << 18) | (slot << 10) | (sizeClass << 2) | HANDLE_VERSION;
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

export function unpackHandle(handle: bigint): UnpackedHandle {
  if (typeof handle !== 'bigint') {
    throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `a handle is a bigint, got ${typeof handle}`);
  }
  if (handle < 0n || handle > HANDLE_MAX) {
    throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, 'a handle is an unsigned 64-bit value');
  }
  const hi = Number(handle >> 32n);
  const lo = Number(handle & 0xffffffffn);
  return {
    slabId: Math.floor(hi / 1024),
    generation: (hi & 0x3ff) * 16384 + (lo >>> 18),
    slot: (lo >>> 10) & 0xff,
    sizeClass: (lo >>> 2) & 0xff,
    version: lo & 0b11,
  };
}
