/**
 * A slab: up to 256 slots of one size class, and one generation of one slab id.
 *
 * A slab is OPEN while it fills in memory, then SEALED: appended once at a zone's write
 * pointer and never written again (zones are append-only). Its slots are therefore written
 * at most once per generation; a slab id is reused only under a new generation.
 *
 * Layout (device and memory alike): a SLAB_HEADER_BYTES header (engine/slabHeader.ts, written
 * at seal), then `stride` bytes per slot (a packed image, written when zone GC moves the slab,
 * holds only the slots live at the move; `positions` maps slot -> place):
 *   u32 length | u32 crc32(identity || payload) | payload | zero padding
 * The identity (store tag, slab id, generation, slot, class) is in the checksum, so bytes read
 * from the wrong place, from an older life of this slab, or from another store fail it instead
 * of being returned.
 */
import zlib from 'node:zlib';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { DIRECT_IO_MIN_ALIGN, alignedShared } from '../zns/aligned.js';
import { crc32 } from './crc32.js';
import { SLOT_HEADER_BYTES, type SizeClass } from './sizeClass.js';
import { SLAB_HEADER_BYTES, SLAB_TRAILER_BYTES, writeSlabHeader, writeSlabTrailer } from './slabHeader.js';

export const enum SlabState {
  OPEN = 1,
  SEALED = 2,
}

/** Slots the first in-memory buffer of a slab holds; it grows 4x as slots fill, so tiny epochs stay tiny. */
const INITIAL_BUFFER_SLOTS = 4;
const MIN_BUFFER_BYTES = 512;
const BITMAP_WORDS = 8; // 256 bits

const identity = Buffer.alloc(12);

/**
 * Slab buffers kept for reuse, store-wide, in bytes at most. They live on SharedArrayBuffers
 * because a device that writes in the background (zns/writeQueue.ts) writes straight from
 * them; reuse saves allocating (and zero-filling) one per slab, and a new slab that finds a
 * full-size buffer here skips the growth copies.
 */
export const SLAB_BUFFER_POOL_BYTES = 16 * 1024 * 1024;
const bufferPool = new Map<number, Buffer[]>();
let pooledBytes = 0;

function takeBuffer(bytes: number): Buffer {
  const reused = bufferPool.get(bytes)?.pop();
  if (reused !== undefined) {
    pooledBytes -= bytes;
    return reused;
  }
  return newSlabBuffer(bytes);
}

/** Whether aligned allocation works here (it needs koffi for the address); found at first use. */
let aligning = true;

/**
 * Page-aligned when koffi can tell the address: an O_DIRECT device (libzbd, the emulated
 * device's direct mode) then writes the image as it is, instead of copying it first.
 */
function newSlabBuffer(bytes: number): Buffer {
  if (aligning) {
    try {
      const view = alignedShared(bytes, DIRECT_IO_MIN_ALIGN);
      return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    } catch (err) {
      if (!(err instanceof ZnsSlabError && err.code === ErrorCode.NATIVE_UNAVAILABLE)) throw err;
      aligning = false;
    }
  }
  return Buffer.from(new SharedArrayBuffer(bytes));
}

function hasPooled(bytes: number): boolean {
  return (bufferPool.get(bytes)?.length ?? 0) > 0;
}

/** A slab buffer nobody (no slab, no write in flight) uses any more goes back to the pool. */
export function giveBack(buffer: Buffer): void {
  if (pooledBytes + buffer.length > SLAB_BUFFER_POOL_BYTES) return;
  let list = bufferPool.get(buffer.length);
  if (list === undefined) bufferPool.set(buffer.length, (list = []));
  list.push(buffer);
  pooledBytes += buffer.length;
}

/** The crc32 of a store's four-byte tag: every slot checksum of the store starts from it. */
export function storeSeed(storeTag: number): number {
  const tag = Buffer.alloc(4);
  tag.writeUInt32LE(storeTag >>> 0, 0);
  return zlib.crc32(tag);
}

function checksum(storeSeed: number, slabId: number, generation: number, slot: number, sizeClass: number, payload: Uint8Array): number {
  identity.writeUInt32LE(slabId, 0);
  identity.writeUInt32LE(generation, 4);
  identity.writeUInt16LE(slot, 8);
  identity.writeUInt16LE(sizeClass, 10);
  // engine/crc32.ts: zlib's polynomial, by the fastest implementation that loads. An empty
  // payload adds nothing (Node's zlib.crc32(data, value) of a typed array over a zero-length
  // ArrayBuffer, which has no data pointer, returns 0, not `value`: such a put once stored a
  // crc its own slot never matched).
  return crc32(payload, crc32(identity, storeSeed));
}

/** Where a sealed slab's image is. */
export interface SlabPlace {
  readonly zone: number;
  readonly offset: number;
  readonly length: number;
  readonly packed: Uint8Array | undefined;
  readonly positions: Uint8Array | undefined;
}

/** What a seal writes into the slab's header besides the slab's own fields. */
export interface SealStamp {
  storeId: Buffer;
  sealSequence: number;
  commitSequence: number;
  ephemeral: boolean;
}

export class Slab {
  readonly id: number;
  generation: number;
  readonly cls: SizeClass;
  readonly epoch: number;
  /** The crc32 of four bytes of the store id: every slot's checksum starts from it (storeSeed). */
  readonly storeTag: number;
  state: SlabState;
  /** Slots handed out in this generation; slot indexes are never reused within it. */
  slotCount = 0;
  liveCount = 0;
  readonly live = new Uint32Array(BITMAP_WORDS);
  /** OPEN only: the slots written so far. */
  buffer: Buffer | undefined;
  /** SEALED only: where the slab lives. */
  zone = -1;
  offset = -1;
  length = 0;
  /**
   * Packed images only (the slab was moved by zone GC): the bitmap of the slots the image
   * holds, and each slot's place in it. Moving keeps id, generation and slot numbers, so every
   * handle still resolves; only where a slot's bytes sit changes.
   */
  packedBitmap: Uint8Array | undefined;
  private positions: Uint8Array | undefined;
  /**
   * SEALED only: slots freed since the catalog last recorded this slab. A move packs them too:
   * until that free is durable a crash may bring the object back, and a rebuild from the
   * device may take the moved image for the slab's newest (test/sim/replays/recover-prefers-uncommitted-move.json).
   */
  private pendingFrees: Uint32Array | undefined;
  /** Slots in `pendingFrees`. */
  private pendingCount = 0;

  constructor(id: number, generation: number, cls: SizeClass, epoch: number, storeTag: number, withBuffer = true) {
    this.id = id;
    this.generation = generation;
    this.cls = cls;
    this.epoch = epoch;
    this.storeTag = storeTag;
    this.state = SlabState.OPEN;
    // A reused buffer's old bytes are safe: append writes every byte of a slot, sealImage writes
    // the header and zeroes the tail, and reads stay below slotCount.
    if (withBuffer) {
      this.buffer = hasPooled(cls.slabBytes) ? takeBuffer(cls.slabBytes) : takeBuffer(Math.min(Math.max(MIN_BUFFER_BYTES, SLAB_HEADER_BYTES + INITIAL_BUFFER_SLOTS * cls.stride), cls.slabBytes));
    }
  }

  static sealed(
    id: number,
    generation: number,
    cls: SizeClass,
    epoch: number,
    storeTag: number,
    where: { zone: number; offset: number; length: number; slotCount: number; live: Uint8Array; packed?: Uint8Array | null },
  ): Slab {
    const slab = new Slab(id, generation, cls, epoch, storeTag, false);
    slab.state = SlabState.SEALED;
    slab.zone = where.zone;
    slab.offset = where.offset;
    slab.length = where.length;
    slab.slotCount = where.slotCount;
    slab.setBitmap(where.live);
    if (where.packed != null) slab.setPacked(where.packed);
    return slab;
  }

  get isFull(): boolean {
    return this.slotCount === this.cls.slotsPerSlab;
  }

  /**
   * Writes `payload` into the next slot; returns the slot index. OPEN slabs only. `length` is
   * the payload's real byte length (the caller read it from the intrinsic, not a getter).
   */
  append(payload: Uint8Array, length: number): number {
    assert(this.state === SlabState.OPEN && this.buffer !== undefined, 'append to an open slab');
    assert(this.slotCount < this.cls.slotsPerSlab, 'slot within the slab');
    assert(length <= this.cls.size, 'payload fits the class');
    const slot = this.slotCount;
    const stride = this.cls.stride;
    const at = SLAB_HEADER_BYTES + slot * stride;
    const end = at + stride;
    if (end > this.buffer.length) this.grow(end);
    const buf = this.buffer!;
    buf.writeUInt32LE(length, at);
    buf.writeUInt32LE(checksum(this.storeTag, this.id, this.generation, slot, this.cls.index, payload), at + 4);
    buf.set(payload, at + SLOT_HEADER_BYTES);
    // A hot slab reuses its buffer: clear what an older generation left in the padding.
    buf.fill(0, at + SLOT_HEADER_BYTES + length, end);
    this.slotCount = slot + 1;
    this.live[slot >>> 5]! |= 1 << (slot & 31);
    this.liveCount++;
    return slot;
  }

  isLive(slot: number): boolean {
    return (this.live[slot >>> 5]! & (1 << (slot & 31))) !== 0;
  }

  clearLive(slot: number): void {
    assert(slot < this.slotCount && this.isLive(slot), 'free of a live slot');
    this.live[slot >>> 5]! &= ~(1 << (slot & 31));
    this.liveCount--;
    if (this.state === SlabState.SEALED) {
      (this.pendingFrees ??= new Uint32Array(BITMAP_WORDS))[slot >>> 5]! |= 1 << (slot & 31);
      this.pendingCount++;
    }
  }

  /** Slots a move would write now: the live ones and those freed since the last commit. */
  get keepCount(): number {
    return this.liveCount + this.pendingCount;
  }

  /** The catalog now records this slab as it is: its frees so far are durable. */
  markCommitted(): void {
    this.pendingFrees = undefined;
    this.pendingCount = 0;
  }

  /** A copy of the slot's payload from `buffer` (OPEN, or SEALED with its write in flight). */
  readFromMemory(slot: number): Buffer {
    assert(this.buffer !== undefined, 'slab has its buffer');
    const at = this.memorySlotOffset(slot);
    return decodeSlot(this.buffer.subarray(at, at + this.cls.stride), this.storeTag, this.id, this.generation, slot, this.cls);
  }

  /**
   * Where a slot's bytes sit in `buffer`: an OPEN slab's, or a SEALED one whose image is still
   * in memory because its device write is in flight (a packed image too, by `positions`).
   */
  memorySlotOffset(slot: number): number {
    const place = this.positions === undefined ? slot : this.positions[slot]!;
    return SLAB_HEADER_BYTES + place * this.cls.stride;
  }

  /** Device offset of a slot relative to the zone start. SEALED only. */
  slotOffset(slot: number): number {
    const place = this.positions === undefined ? slot : this.positions[slot]!;
    return this.offset + SLAB_HEADER_BYTES + place * this.cls.stride;
  }

  /**
   * The packed image of this sealed slab, made from `current` (its image as read from the
   * device): the header, then only the live slots, copied byte for byte (each slot's checksum
   * covers its identity, not its place), rounded up to `blockSize`. Returns the image and the
   * bitmap of the slots it holds.
   */
  packedImage(current: Uint8Array, blockSize: number, stamp: SealStamp): { image: Buffer; bitmap: Uint8Array; buffer: Buffer } {
    assert(this.state === SlabState.SEALED && this.liveCount > 0, 'pack a sealed slab with live slots');
    assert(current.byteLength === this.length, 'the current image, whole');
    const stride = this.cls.stride;
    // The slots live now and those freed since the last commit (see pendingFrees).
    const keep = new Uint32Array(this.live);
    if (this.pendingFrees !== undefined) for (let w = 0; w < BITMAP_WORDS; w++) keep[w]! |= this.pendingFrees[w]!;
    let count = 0;
    for (let slot = 0; slot < this.slotCount; slot++) if ((keep[slot >>> 5]! & (1 << (slot & 31))) !== 0) count++;
    const bytes = sealedBytes(count, stride, blockSize);
    // A full slab buffer from the pool (shared memory: the device may write it in the
    // background; full size, so the pool has one to reuse: a new SharedArrayBuffer costs ~40 us),
    // of which the image is the zeroed front.
    const buffer = takeBuffer(Math.max(bytes, this.cls.slabBytes));
    const image = buffer.subarray(0, bytes).fill(0);
    let place = 0;
    for (let slot = 0; slot < this.slotCount; slot++) {
      if ((keep[slot >>> 5]! & (1 << (slot & 31))) === 0) continue;
      const from = SLAB_HEADER_BYTES + (this.positions === undefined ? slot : this.positions[slot]!) * stride;
      image.set(current.subarray(from, from + stride), SLAB_HEADER_BYTES + place * stride);
      place++;
    }
    const bitmap = new Uint8Array(keep.buffer);
    this.writeHeader(image, stamp, bytes, bitmap, true);
    writeSlabTrailer(image);
    return { image, bitmap, buffer };
  }

  /** The slab's packed image (from `packedImage`) is now at `zone`/`offset`. */
  markMoved(zone: number, offset: number, length: number, bitmap: Uint8Array): void {
    assert(this.state === SlabState.SEALED, 'move a sealed slab');
    this.zone = zone;
    this.offset = offset;
    this.length = length;
    this.setPacked(bitmap);
  }

  /** Where the slab's image is now (to put it back there if a move's write fails). */
  place(): SlabPlace {
    return { zone: this.zone, offset: this.offset, length: this.length, packed: this.packedBitmap, positions: this.positions };
  }

  /** A move's write failed: the slab is at `place` again (its image there is intact). */
  restorePlace(place: SlabPlace): void {
    assert(this.state === SlabState.SEALED, 'a sealed slab goes back');
    this.zone = place.zone;
    this.offset = place.offset;
    this.length = place.length;
    this.packedBitmap = place.packed;
    this.positions = place.positions;
  }

  /** The bytes to append to the device: the header and the written slots, rounded up to `blockSize`. */
  sealImage(blockSize: number, stamp: SealStamp): Buffer {
    assert(this.buffer !== undefined && this.slotCount > 0, 'seal a non-empty open slab');
    const used = sealedBytes(this.slotCount, this.cls.stride, blockSize);
    const end = SLAB_HEADER_BYTES + this.slotCount * this.cls.stride;
    if (used > this.buffer.length) this.grow(used);
    const buf = this.buffer!;
    buf.fill(0, end, used);
    // The live bitmap as a view: the header copies it.
    this.writeHeader(buf, stamp, used, new Uint8Array(this.live.buffer, this.live.byteOffset, this.live.byteLength), false);
    const image = buf.subarray(0, used);
    writeSlabTrailer(image);
    return image;
  }

  /**
   * The slab's image is at `zone`/`offset`. With `writing`, its write is still in flight: the
   * image stays in `buffer` (reads come from it) until `imageWritten`.
   */
  markSealed(zone: number, offset: number, length: number, writing = false): void {
    assert(this.state === SlabState.OPEN, 'seal an open slab once');
    this.state = SlabState.SEALED;
    this.zone = zone;
    this.offset = offset;
    this.length = length;
    if (!writing) this.releaseBuffer();
  }

  /** Its write ended well (or the slab is gone): the in-memory image is no longer needed. */
  imageWritten(): void {
    this.releaseBuffer();
  }

  /**
   * Its write failed after `markSealed(..., true)`: OPEN again, with the same slots (the image
   * is still in `buffer`), to be sealed once more. The caller took it out of its zone first.
   */
  markUnsealed(): void {
    assert(this.state === SlabState.SEALED && this.buffer !== undefined && this.packedBitmap === undefined, 'unseal a sealed slab whose image is in memory');
    this.state = SlabState.OPEN;
    this.zone = -1;
    this.offset = -1;
    this.length = 0;
    this.pendingFrees = undefined;
    this.pendingCount = 0;
  }

  /** The buffer goes back to the pool (an OPEN slab dropped, or a sealed one written). */
  releaseBuffer(): void {
    if (this.buffer === undefined) return;
    giveBack(this.buffer);
    this.buffer = undefined;
  }

  /** Starts a new generation in place: same id, no slots. Only for an empty OPEN slab. */
  resetInPlace(generation: number): void {
    assert(this.state === SlabState.OPEN && this.liveCount === 0, 'reset an empty open slab');
    this.generation = generation;
    this.slotCount = 0;
    this.live.fill(0);
  }

  bitmapBytes(): Uint8Array {
    return new Uint8Array(this.live.buffer.slice(0));
  }

  private setBitmap(bytes: Uint8Array): void {
    assert(bytes.length === BITMAP_WORDS * 4, 'bitmap is 32 bytes');
    const words = new Uint32Array(new Uint8Array(bytes).buffer);
    this.live.set(words);
    let n = 0;
    for (let slot = 0; slot < this.slotCount; slot++) if (this.isLive(slot)) n++;
    this.liveCount = n;
  }

  /** The image header of this slab: `live` says which slots the image holds (all of them at `packed` false). */
  private writeHeader(image: Buffer, stamp: SealStamp, imageBytes: number, live: Uint8Array, packed: boolean): void {
    writeSlabHeader(image, {
      storeId: stamp.storeId,
      slabId: this.id,
      generation: this.generation,
      epoch: this.epoch,
      sealSequence: stamp.sealSequence,
      commitSequence: stamp.commitSequence,
      sizeClass: this.cls.index,
      slotCount: this.slotCount,
      imageBytes,
      live,
      ephemeral: stamp.ephemeral,
      packed,
    });
  }

  private setPacked(bitmap: Uint8Array): void {
    assert(bitmap.length === BITMAP_WORDS * 4, 'packed bitmap is 32 bytes');
    this.packedBitmap = new Uint8Array(bitmap);
    const positions = new Uint8Array(this.slotCount);
    let place = 0;
    for (let slot = 0; slot < this.slotCount; slot++) {
      positions[slot] = place;
      if ((bitmap[slot >>> 3]! & (1 << (slot & 7))) !== 0) place++;
    }
    // Every live slot is in the image: frees only clear bits, so live stays within packed.
    for (let w = 0; w < BITMAP_WORDS; w++) {
      const packedWord = bitmap[w * 4]! | (bitmap[w * 4 + 1]! << 8) | (bitmap[w * 4 + 2]! << 16) | (bitmap[w * 4 + 3]! << 24);
      assert((this.live[w]! & ~packedWord) === 0, `slab ${this.id}: a live slot is missing from its packed image`);
    }
    this.positions = positions;
  }

  private grow(atLeast: number): void {
    // Grow 4x: a big slab reaches full size in a few copies, a tiny epoch stays small.
    const next = takeBuffer(Math.max(atLeast, Math.min(this.buffer!.length * 4, this.cls.slabBytes)));
    this.buffer!.copy(next);
    giveBack(this.buffer!);
    this.buffer = next;
  }
}

/**
 * Checks one slot's bytes against its header and identity; returns the payload, a copy unless
 * `owned` says `bytes` is a private buffer the caller may keep a view of.
 * Anything that does not check out is ERR_CHECKSUM: never returned as data.
 */
export function decodeSlot(bytes: Uint8Array, storeTag: number, slabId: number, generation: number, slot: number, cls: SizeClass, owned = false): Buffer {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.length < SLOT_HEADER_BYTES) {
    throw new ZnsSlabError(ErrorCode.CHECKSUM, `slot ${slot} of slab ${slabId}: short read`);
  }
  const length = view.readUInt32LE(0);
  if (length > cls.size || SLOT_HEADER_BYTES + length > view.length) {
    throw new ZnsSlabError(ErrorCode.CHECKSUM, `slot ${slot} of slab ${slabId}: stored length ${length} is impossible for its ${cls.size}-byte class`);
  }
  const payload = view.subarray(SLOT_HEADER_BYTES, SLOT_HEADER_BYTES + length);
  const expected = view.readUInt32LE(4);
  if (checksum(storeTag, slabId, generation, slot, cls.index, payload) !== expected) {
    throw new ZnsSlabError(ErrorCode.CHECKSUM, `slot ${slot} of slab ${slabId} (generation ${generation}) fails its checksum`);
  }
  return owned ? payload : Buffer.from(payload);
}

/** Device bytes of a sealed slab of `slotCount` slots: header and slots, rounded up to the block. */
export function sealedBytes(slotCount: number, stride: number, blockSize: number): number {
  return Math.ceil((SLAB_HEADER_BYTES + slotCount * stride + SLAB_TRAILER_BYTES) / blockSize) * blockSize;
}
