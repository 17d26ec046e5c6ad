/**
 * The cache index against a plain Map model, by random operations (set, get, delete, touch,
 * clear) with hashes drawn from a small range, so most lookups go through collisions, runs
 * wrap around the table's end, and it grows many times. The index must never return the
 * handle of another key.
 */
import { describe, expect, it } from 'vitest';
import { BYTES_PER_SLOT, KeyIndex, MAX_LOAD, hashKey } from '../../cache/keyIndex.js';
import { Rng } from '../../sim/rng.js';

describe('KeyIndex', () => {
  for (const [seed, hashRange] of [[1, 50], [2, 5000], [3, 2 ** 32]] as const) {
    it(`agrees with a Map over 40,000 random operations (seed ${seed}, ${hashRange} distinct hashes)`, () => {
      const rng = new Rng(seed);
      const index = new KeyIndex(8);
      const model = new Map<string, bigint>();
      const keyOf = new Map<bigint, string>(); // what the cache keeps beside each value
      const touched = new Set<string>();
      const hashOf = (key: string) => hashKey(Buffer.from(key)) % hashRange;
      const matching = (key: string) => (h: bigint) => keyOf.get(h) === key;
      let nextHandle = 1n;
      for (let op = 0; op < 40_000; op++) {
        const key = `k${rng.below(3000)}`;
        const r = rng.below(100);
        if (r < 45) {
          const handle = (nextHandle++ << 20n) | BigInt(rng.below(1 << 20));
          keyOf.set(handle, key);
          expect(index.set(hashOf(key), handle, matching(key))).toBe(model.get(key));
          model.set(key, handle);
          touched.delete(key);
        } else if (r < 70) {
          expect(index.get(hashOf(key), matching(key))).toBe(model.get(key));
        } else if (r < 90) {
          expect(index.delete(hashOf(key), matching(key))).toBe(model.get(key));
          model.delete(key);
          touched.delete(key);
        } else if (r < 99) {
          expect(index.touch(hashOf(key), matching(key))).toBe(model.has(key));
          if (model.has(key)) touched.add(key);
          expect(index.accessed(hashOf(key), matching(key))).toBe(touched.has(key));
        } else if (rng.chance(0.05)) {
          index.clear();
          model.clear();
          touched.clear();
        }
        expect(index.size).toBe(model.size);
        if (op % 500 === 0) index.verify();
      }
      index.verify();
      const seen = new Map([...index.entries()].map(([, h]) => [keyOf.get(h)!, h]));
      expect(seen).toEqual(model);
      for (const key of touched) expect(index.accessed(hashOf(key), matching(key))).toBe(true);
    });
  }

  it('holds a million entries in under 24 bytes each, measured from its own arrays', () => {
    const index = new KeyIndex();
    const n = 1_000_000;
    for (let i = 0; i < n; i++) index.set(Math.imul(i, 2654435761) >>> 0, BigInt(i) << 10n, () => false);
    expect(index.size).toBe(n);
    expect(index.size).toBeLessThanOrEqual(index.capacity * MAX_LOAD);
    expect(index.bytes / n).toBeLessThan(24);
    expect(index.bytes).toBeCloseTo(index.capacity * BYTES_PER_SLOT, -2);
  });

  for (const [seed, hashRange] of [[4, 40], [5, 2 ** 32]] as const) {
    it(`sweep visits every entry once, removes exactly what it is told, and may replace handles in place (seed ${seed})`, () => {
      const rng = new Rng(seed);
      const index = new KeyIndex(8);
      const model = new Map<bigint, number>(); // handle -> hash
      for (let i = 0; i < 5000; i++) {
        const handle = BigInt(i + 1) << 12n;
        const hash = 1 + rng.below(hashRange - 1); // 0 is stored as 1 (0 marks an empty slot)
        index.set(hash, handle, () => false);
        model.set(handle, hash);
      }
      const visits = new Map<bigint, number>();
      const removed = index.sweep((slot, hi, lo) => {
        const handle = (BigInt(hi) << 32n) | BigInt(lo);
        visits.set(handle, (visits.get(handle) ?? 0) + 1);
        if (Number(handle >> 12n) % 3 === 0) return false;
        if (Number(handle >> 12n) % 3 === 1) index.replaceAt(slot, handle | 1n);
        return true;
      });
      expect([...visits.values()].every((n) => n === 1)).toBe(true);
      expect(visits.size).toBe(5000);
      index.verify();
      const expected = [...model].filter(([h]) => Number(h >> 12n) % 3 !== 0).map(([h, hash]) => [Number(h >> 12n) % 3 === 1 ? h | 1n : h, hash]);
      expect(removed).toBe(5000 - expected.length);
      expect(new Map([...index.entries()].map(([hash, h]) => [h, hash]))).toEqual(new Map(expected as [bigint, number][]));
      // A checkpoint's arrays give the same index back.
      const { table, accessed } = index.arrays();
      const copy = KeyIndex.fromArrays(table.slice(), accessed.slice());
      copy.verify();
      expect([...copy.entries()]).toEqual([...index.entries()]);
      // Slot-level access agrees with the key-level one.
      for (const [h, hash] of expected.slice(0, 200) as [bigint, number][]) {
        const slot = index.find(hash, (x) => x === h);
        expect(slot).toBeGreaterThanOrEqual(0);
        expect(index.handleAt(slot)).toBe(h);
        index.markAccessed(slot);
        expect(index.accessedAt(slot)).toBe(true);
        index.deleteAt(slot);
        expect(index.find(hash, (x) => x === h)).toBe(-1);
      }
      index.verify();
    });
  }

  it('refuses a capacity that is not a positive integer, by name', () => {
    expect(() => new KeyIndex(0)).toThrow(RangeError);
    expect(() => new KeyIndex(1.5)).toThrow(/initialCapacity/);
  });
});
