/**
 * Aligned buffers for O_DIRECT I/O: the kernel wants the buffer's address, the file offset and
 * the length to be multiples of the logical block size (we align to at least a page). A
 * JavaScript Buffer has no alignment promise, so we over-allocate and take the aligned view,
 * finding the address with koffi.address (koffi is loaded on first use, so hosts without it
 * load the rest of zns-slab and get ERR_NATIVE_UNAVAILABLE only when they ask for direct I/O).
 *
 * The one place that does this: the libzbd device (always O_DIRECT) and the emulated device's
 * direct mode both use it.
 */
import { nodeRequire } from '../native/require.cjs';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';

/** O_DIRECT buffers are aligned to at least a page (the kernel needs the logical block size). */
export const DIRECT_IO_MIN_ALIGN = 4096;
/** A bounce buffer is kept for reuse up to this size; larger I/O allocates its own. */
export const BOUNCE_KEEP_MAX = 8 * 1024 * 1024;

type AddressOf = (value: Uint8Array) => bigint;
let addressFn: AddressOf | undefined;

/** The address of a typed array's first byte (koffi.address). */
export function addressOf(buf: Uint8Array): bigint {
  if (addressFn === undefined) {
    let koffi: { address(value: unknown): bigint };
    try {
      koffi = nodeRequire('koffi') as typeof koffi;
    } catch (err) {
      throw new ZnsSlabError(ErrorCode.NATIVE_UNAVAILABLE, `direct I/O needs koffi (to align buffers), which cannot be loaded: ${String(err)}`, { cause: err });
    }
    addressFn = (value) => koffi.address(value);
  }
  return addressFn(buf);
}

/** Whether `buf` starts at a multiple of `align` (a power of two). */
export function isAligned(buf: Uint8Array, align: number): boolean {
  return (addressOf(buf) & BigInt(align - 1)) === 0n;
}

/** A new Buffer of `length` bytes whose first byte sits at a multiple of `align` (a power of two). Uninitialised. */
export function alignedBuffer(length: number, align: number = DIRECT_IO_MIN_ALIGN): Buffer {
  assert(align > 0 && (align & (align - 1)) === 0, `alignment ${align} is a power of two`);
  // allocUnsafeSlow: never a slice of the shared pool, so the view owns its memory.
  const raw = Buffer.allocUnsafeSlow(length + align);
  const misalign = Number(addressOf(raw) & BigInt(align - 1));
  const pad = misalign === 0 ? 0 : align - misalign;
  const view = raw.subarray(pad, pad + length);
  assert((addressOf(view) & BigInt(align - 1)) === 0n, 'aligned buffer is aligned');
  return view;
}

/**
 * A view of `length` bytes of a new SharedArrayBuffer, starting at a multiple of `align`: for
 * O_DIRECT writes that a worker thread does from shared memory. Zero-filled.
 */
export function alignedShared(length: number, align: number = DIRECT_IO_MIN_ALIGN): Uint8Array {
  assert(align > 0 && (align & (align - 1)) === 0, `alignment ${align} is a power of two`);
  const whole = new Uint8Array(new SharedArrayBuffer(length + align));
  const misalign = Number(addressOf(whole) & BigInt(align - 1));
  const view = whole.subarray(misalign === 0 ? 0 : align - misalign).subarray(0, length);
  assert((addressOf(view) & BigInt(align - 1)) === 0n, 'aligned shared buffer is aligned');
  return view;
}

/**
 * One reusable aligned buffer for synchronous I/O (a call uses it and is done with it before
 * the next): `get(length)` returns an aligned view of `length` bytes, valid until the next call.
 * Kept up to BOUNCE_KEEP_MAX bytes; a larger request gets a buffer of its own.
 */
export class BounceBuffer {
  private buf: Buffer | undefined;

  constructor(private readonly align: number) {}

  get(length: number): Buffer {
    if (this.buf !== undefined && this.buf.length >= length) return this.buf.subarray(0, length);
    // Grow geometrically so a run of slowly growing reads does not reallocate every time.
    const size = Math.max(length, Math.min(BOUNCE_KEEP_MAX, (this.buf?.length ?? 0) * 2));
    const view = alignedBuffer(size, this.align);
    if (size <= BOUNCE_KEEP_MAX) this.buf = view;
    return view.subarray(0, length);
  }
}
