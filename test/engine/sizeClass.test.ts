import { describe, it, expect } from 'vitest';
import { CLASS_SIZES, SMALL_CLASS_SIZES, SizeClassTable, SLOT_HEADER_BYTES, MAX_SLOTS_PER_SLAB } from '../../engine/sizeClass.js';
import { ErrorCode } from '../../errors.js';

function linearClass(len: number): number {
  return CLASS_SIZES.findIndex((size) => size >= len);
}

describe('size classes', () => {
  it("starts with the allocator's eight classes and reaches 1 MiB", () => {
    expect(CLASS_SIZES.slice(0, 8)).toEqual([...SMALL_CLASS_SIZES]);
    expect(CLASS_SIZES[CLASS_SIZES.length - 1]).toBe(1024 * 1024);
    for (let i = 1; i < CLASS_SIZES.length; i++) expect(CLASS_SIZES[i]!).toBeGreaterThan(CLASS_SIZES[i - 1]!);
  });

  it('maps every length to the smallest class that holds it', () => {
    const table = new SizeClassTable(64 * 1024 * 1024, 4096);
    expect(table.maxObjectSize).toBe(1024 * 1024);
    for (let len = 0; len <= 70_000; len++) expect(table.classFor(len)).toBe(linearClass(len));
    for (const size of CLASS_SIZES) {
      expect(table.classFor(size)).toBe(linearClass(size));
      expect(table.classFor(size - 1)).toBe(linearClass(size - 1));
      if (size < 1024 * 1024) expect(table.classFor(size + 1)).toBe(linearClass(size + 1));
    }
  });

  it('refuses objects past the largest class with ERR_OBJECT_TOO_LARGE', () => {
    const table = new SizeClassTable(64 * 1024 * 1024, 4096);
    expect(() => table.classFor(1024 * 1024 + 1)).toThrow(expect.objectContaining({ code: ErrorCode.OBJECT_TOO_LARGE }));
  });

  it('keeps every slab inside one zone, and drops classes that cannot fit', () => {
    const zoneCapacity = 256 * 1024;
    const table = new SizeClassTable(zoneCapacity, 4096);
    for (const c of table.classes) {
      expect(c.slabBytes).toBeLessThanOrEqual(zoneCapacity);
      expect(c.slabBytes % 4096).toBe(0);
      expect(c.slotsPerSlab).toBeGreaterThanOrEqual(1);
      expect(c.slotsPerSlab).toBeLessThanOrEqual(MAX_SLOTS_PER_SLAB);
      expect(c.stride).toBe(c.size + SLOT_HEADER_BYTES);
    }
    expect(table.maxObjectSize).toBe(192 * 1024);
    expect(() => table.classFor(192 * 1024 + 1)).toThrow(expect.objectContaining({ code: ErrorCode.OBJECT_TOO_LARGE }));
    expect(table.classes[0]!.slotsPerSlab).toBe(256);
  });
});
