/**
 * The header at the start of every sealed slab image: enough to rebuild the slab's catalog row
 * from the device alone (`zns-slab recover`), and to tell whose slab it is and how new.
 *
 *   0  u32 magic 'ZSLB'        4  u16 format version     6  u16 header bytes (128)
 *   8  16 B store id          24  u32 slab id           28  u32 generation
 *  32  f64 epoch              40  f64 seal sequence     48  f64 catalog commit sequence at seal
 *  56  u16 size class         58  u16 slot count        60  u32 image bytes
 *  64  32 B live bitmap at seal                         96  u8 flags (bit 0: ephemeral epoch, bit 1: packed)
 *  97  reserved (zero)
 * 124  u32 crc32 of bytes [0, 124)
 *
 * Slots follow the header: slot i at i x stride, or, in a packed image (a slab zone GC moved,
 * engine/gc.ts), only the slots set in the bitmap, in slot order, so slot i sits at the count of
 * set bits below i. Either way the bitmap says which slots the image holds. The image is padded
 * to the device block, and its last 16 bytes are a trailer that repeats the header's crc, slab id and generation. A write that landed only in
 * part (the kernel splits large writes) has a header but no trailer: readers take such an image
 * as incomplete and look for the next header inside it.
 */
import zlib from 'node:zlib';

export const SLAB_HEADER_BYTES = 128;
export const SLAB_TRAILER_BYTES = 16;
const TRAILER_MAGIC = 0x444e455a; // 'ZEND' read little-endian
export const SLAB_MAGIC = 0x424c535a; // 'ZSLB' read little-endian
export const SLAB_HEADER_VERSION = 1;
export const STORE_ID_BYTES = 16;
const CRC_AT = 124;
const FLAG_EPHEMERAL = 1;
const FLAG_PACKED = 2;

export interface SlabHeader {
  storeId: Buffer;
  slabId: number;
  generation: number;
  epoch: number;
  /** Seals of this store, in order (a tie-break between two images of one slab generation). */
  sealSequence: number;
  /** The catalog's last commit when the slab was written: a catalog older than this is stale. */
  commitSequence: number;
  sizeClass: number;
  slotCount: number;
  imageBytes: number;
  live: Uint8Array;
  /** Its epoch is an auto-closing domain's: never to be recovered. */
  ephemeral: boolean;
  /** Only the slots in `live` are in the image, packed in slot order (a slab zone GC moved). */
  packed: boolean;
}

export function writeSlabHeader(buf: Buffer, h: SlabHeader): void {
  buf.fill(0, 0, SLAB_HEADER_BYTES);
  buf.writeUInt32LE(SLAB_MAGIC, 0);
  buf.writeUInt16LE(SLAB_HEADER_VERSION, 4);
  buf.writeUInt16LE(SLAB_HEADER_BYTES, 6);
  h.storeId.copy(buf, 8, 0, STORE_ID_BYTES);
  buf.writeUInt32LE(h.slabId, 24);
  buf.writeUInt32LE(h.generation, 28);
  buf.writeDoubleLE(h.epoch, 32);
  buf.writeDoubleLE(h.sealSequence, 40);
  buf.writeDoubleLE(h.commitSequence, 48);
  buf.writeUInt16LE(h.sizeClass, 56);
  buf.writeUInt16LE(h.slotCount, 58);
  buf.writeUInt32LE(h.imageBytes, 60);
  buf.set(h.live.subarray(0, 32), 64);
  buf.writeUInt8((h.ephemeral ? FLAG_EPHEMERAL : 0) | (h.packed ? FLAG_PACKED : 0), 96);
  buf.writeUInt32LE(zlib.crc32(buf.subarray(0, CRC_AT)), CRC_AT);
}

/** The header in `buf` (at least SLAB_HEADER_BYTES), or undefined when there is none (wrong magic, torn, or corrupt). */
export function readSlabHeader(buf: Uint8Array): SlabHeader | undefined {
  if (buf.byteLength < SLAB_HEADER_BYTES) return undefined;
  const b = Buffer.from(buf.buffer, buf.byteOffset, SLAB_HEADER_BYTES);
  if (b.readUInt32LE(0) !== SLAB_MAGIC || b.readUInt16LE(6) !== SLAB_HEADER_BYTES) return undefined;
  if (zlib.crc32(b.subarray(0, CRC_AT)) !== b.readUInt32LE(CRC_AT)) return undefined;
  if (b.readUInt16LE(4) !== SLAB_HEADER_VERSION) return undefined;
  return {
    storeId: Buffer.from(b.subarray(8, 8 + STORE_ID_BYTES)),
    slabId: b.readUInt32LE(24),
    generation: b.readUInt32LE(28),
    epoch: b.readDoubleLE(32),
    sealSequence: b.readDoubleLE(40),
    commitSequence: b.readDoubleLE(48),
    sizeClass: b.readUInt16LE(56),
    slotCount: b.readUInt16LE(58),
    imageBytes: b.readUInt32LE(60),
    live: new Uint8Array(b.subarray(64, 96)),
    ephemeral: (b.readUInt8(96) & FLAG_EPHEMERAL) !== 0,
    packed: (b.readUInt8(96) & FLAG_PACKED) !== 0,
  };
}

/** Writes the trailer into the last SLAB_TRAILER_BYTES of `image`, after its header. */
export function writeSlabTrailer(image: Buffer): void {
  const at = image.length - SLAB_TRAILER_BYTES;
  image.writeUInt32LE(TRAILER_MAGIC, at);
  image.writeUInt32LE(image.readUInt32LE(CRC_AT), at + 4);
  image.writeUInt32LE(image.readUInt32LE(24), at + 8); // slab id
  image.writeUInt32LE(image.readUInt32LE(28), at + 12); // generation
}

/** Whether `trailer` (the last SLAB_TRAILER_BYTES of an image) closes the image `header` opened. */
export function trailerMatches(trailer: Uint8Array, header: Uint8Array): boolean {
  if (trailer.byteLength < SLAB_TRAILER_BYTES || header.byteLength < SLAB_HEADER_BYTES) return false;
  const t = Buffer.from(trailer.buffer, trailer.byteOffset, SLAB_TRAILER_BYTES);
  const h = Buffer.from(header.buffer, header.byteOffset, SLAB_HEADER_BYTES);
  return t.readUInt32LE(0) === TRAILER_MAGIC && t.readUInt32LE(4) === h.readUInt32LE(CRC_AT) && t.readUInt32LE(8) === h.readUInt32LE(24) && t.readUInt32LE(12) === h.readUInt32LE(28);
}
