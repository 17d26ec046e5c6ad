import { describe, it, expect } from 'vitest';
import { packHandle, unpackHandle, encodeHandle, MAX_GENERATION, MAX_SLAB_ID } from '../../engine/handle.js';
import { ErrorCode } from '../../errors.js';

describe('handle format v1', () => {
  it('puts every field at its exact bit position', () => {
    expect(packHandle({ slabId: 1, generation: 0, slot: 0, sizeClass: 0 })).toBe((1n << 42n) | 1n);
    expect(packHandle({ slabId: 0, generation: 1, slot: 0, sizeClass: 0 })).toBe((1n << 18n) | 1n);
    expect(packHandle({ slabId: 0, generation: 0, slot: 1, sizeClass: 0 })).toBe((1n << 10n) | 1n);
    expect(packHandle({ slabId: 0, generation: 0, slot: 0, sizeClass: 1 })).toBe((1n << 2n) | 1n);
    expect(packHandle({ slabId: 0, generation: 0, slot: 0, sizeClass: 0 })).toBe(0b01n);
    const all = packHandle({ slabId: MAX_SLAB_ID, generation: MAX_GENERATION, slot: 255, sizeClass: 255 });
    expect(all).toBe((1n << 64n) - 1n - 0b10n); // every bit set but version's high bit
  });

  it('round-trips across the whole range of every field', () => {
    const samples = [0, 1, 2, 3, 127, 128, 255];
    const wide = [0, 1, 16383, 16384, 16385, 2 ** 20 + 7, MAX_GENERATION - 1, MAX_GENERATION];
    for (const slabId of [0, 1, 1023, 1024, MAX_SLAB_ID - 1, MAX_SLAB_ID]) {
      for (const generation of wide) {
        for (const slot of samples) {
          const sizeClass = (slot * 7) & 0xff;
          const h = packHandle({ slabId, generation, slot, sizeClass });
          expect(unpackHandle(h)).toEqual({ slabId, generation, slot, sizeClass, version: 1 });
          // The engine's fast encoder agrees with the checked one, and with plain bigint shifts.
          expect(encodeHandle(slabId, generation, slot, sizeClass)).toBe(h);
          expect(h).toBe((BigInt(slabId) << 42n) | (BigInt(generation) << 18n) | (BigInt(slot) << 10n) | (BigInt(sizeClass) << 2n) | 1n);
        }
      }
    }
  });

  it('reports the version bits as they are', () => {
    expect(unpackHandle(0n).version).toBe(0);
    expect(unpackHandle(0b11n).version).toBe(3);
  });

  it('refuses out-of-range fields and non-bigint handles with codes', () => {
    const bad = (f: object) => () => packHandle(f as never);
    expect(bad({ slabId: MAX_SLAB_ID + 1, generation: 0, slot: 0, sizeClass: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(bad({ slabId: 0, generation: MAX_GENERATION + 1, slot: 0, sizeClass: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(bad({ slabId: 0, generation: 0, slot: 256, sizeClass: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(bad({ slabId: 0, generation: 0, slot: 0, sizeClass: -1 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(bad({ slabId: 1.5, generation: 0, slot: 0, sizeClass: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(bad({ slabId: '1', generation: 0, slot: 0, sizeClass: 0 })).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }));
    expect(() => unpackHandle(5 as never)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_HANDLE }));
    expect(() => unpackHandle(-1n)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_HANDLE }));
    expect(() => unpackHandle(1n << 64n)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_HANDLE }));
  });
});
