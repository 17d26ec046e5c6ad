/**
 * Size classes: the ZNS-Slab allocator's eight small classes (64..768 bytes), then two per power of two
 * (2^k and 1.5 x 2^k) up to 1 MiB, so no object wastes more than a third of its slot.
 * Which classes a store can use also depends on its zones: a slab never spans zones.
 */
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { MAX_SIZE_CLASS } from './handle.js';
import { SLAB_HEADER_BYTES, SLAB_TRAILER_BYTES } from './slabHeader.js';

export const SMALL_CLASS_SIZES = [64, 96, 128, 192, 256, 384, 512, 768] as const;
export const MAX_CLASS_SIZE = 1024 * 1024;
/** Slots per slab: the handle's 8 slot bits. */
export const MAX_SLOTS_PER_SLAB = 256;
/** A slab of a big class holds fewer slots, so its in-memory buffer and device write stay near this. */
export const TARGET_SLAB_BYTES = 256 * 1024;
/** Per-slot header on the device: u32 length, u32 crc32. */
export const SLOT_HEADER_BYTES = 8;

function buildClassSizes(): number[] {
  const sizes: number[] = [...SMALL_CLASS_SIZES];
  for (let p = 1024; p <= MAX_CLASS_SIZE; p *= 2) {
    sizes.push(p);
    if (p * 1.5 <= MAX_CLASS_SIZE) sizes.push(p * 1.5);
  }
  return sizes;
}

/** Every class size, by class index (the handle's size_class field). */
export const CLASS_SIZES: readonly number[] = Object.freeze(buildClassSizes());
assert(CLASS_SIZES.length - 1 <= MAX_SIZE_CLASS, 'class index fits the handle');

export interface SizeClass {
  readonly index: number;
  /** Largest payload the class holds. */
  readonly size: number;
  /** Bytes a slot takes on the device: header + payload. */
  readonly stride: number;
  readonly slotsPerSlab: number;
  /** Device bytes of a full slab, rounded up to the block size. */
  readonly slabBytes: number;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * The class table for one device geometry. Lookup is O(1): a table for small lengths, and
 * for larger ones the power of two found with clz32.
 */
export class SizeClassTable {
  readonly classes: readonly SizeClass[];
  /** Largest object this store accepts. */
  readonly maxObjectSize: number;
  private readonly smallLookup: Uint8Array;

  constructor(zoneCapacity: number, blockSize: number) {
    const classes: SizeClass[] = [];
    for (let index = 0; index < CLASS_SIZES.length; index++) {
      const size = CLASS_SIZES[index]!;
      const stride = SLOT_HEADER_BYTES + size;
      const byTarget = Math.floor(TARGET_SLAB_BYTES / stride);
      let slotsPerSlab = Math.max(1, Math.min(MAX_SLOTS_PER_SLAB, byTarget));
      const bytes = (slots: number) => roundUp(SLAB_HEADER_BYTES + slots * stride + SLAB_TRAILER_BYTES, blockSize);
      while (slotsPerSlab > 0 && bytes(slotsPerSlab) > zoneCapacity) slotsPerSlab--;
      if (slotsPerSlab === 0) break; // this class and every larger one cannot fit a zone
      classes.push({ index, size, stride, slotsPerSlab, slabBytes: bytes(slotsPerSlab) });
    }
    if (classes.length === 0) {
      throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `zone capacity ${zoneCapacity} is too small for the smallest size class`);
    }
    this.classes = classes;
    this.maxObjectSize = classes[classes.length - 1]!.size;
    const lastSmall = SMALL_CLASS_SIZES[SMALL_CLASS_SIZES.length - 1]!;
    this.smallLookup = new Uint8Array(lastSmall + 1);
    let c = 0;
    for (let len = 0; len <= lastSmall; len++) {
      while (CLASS_SIZES[c]! < len) c++;
      this.smallLookup[len] = c;
    }
  }

  /** The class index for an object of `length` bytes; ERR_OBJECT_TOO_LARGE past the largest. */
  classFor(length: number): number {
    if (length < this.smallLookup.length) return this.smallLookup[length]!;
    if (length > this.maxObjectSize) {
      throw new ZnsSlabError(
        ErrorCode.OBJECT_TOO_LARGE,
        `object of ${length} bytes is larger than the largest size class this store's zones allow (${this.maxObjectSize} bytes)`,
      );
    }
    // Classes from 1024 on come in pairs per power of two: index 8 + 2*(k-10) is 2^k, +1 is 1.5*2^k.
    const k = 31 - Math.clz32(length - 1); // 2^k < length <= 2^(k+1)
    const base = 8 + 2 * (k - 10);
    return length <= 1.5 * 2 ** k ? base + 1 : base + 2;
  }
}
