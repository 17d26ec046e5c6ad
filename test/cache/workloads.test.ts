/**
 * The hit-ratio bench's key streams (bench/workloads.ts): the Zipf sampler draws with the
 * theoretical frequencies, every stream is a pure function of its seed, the scan workload has
 * the shape it claims, and the bench's look-aside harness counts hits right.
 */
import { describe, expect, it } from 'vitest';
import { defaultSampleEvery, isSamplePoint, runLru, runZns } from '../../bench/hitRatio.js';
import {
  SCAN_ID_BASE,
  ZipfSampler,
  permutation,
  scanWorkload,
  uniform,
  valueSizeFn,
  workingSet,
  zipfWorkload,
  type Request,
  type ValueSizes,
  type Workload,
} from '../../bench/workloads.js';
import { Rng } from '../../sim/rng.js';

const take = (w: Workload, n = Infinity): Request[] => {
  const out: Request[] = [];
  for (const r of w.stream()) {
    if (out.length >= n) break;
    out.push(r);
  }
  return out;
};

const SIZES: ValueSizes = { kind: 'lognormal', median: 300, sigma: 0.8, min: 16, max: 4096 };

describe('ZipfSampler', () => {
  it('has the exact Zipf probabilities, summing to 1', () => {
    for (const alpha of [0, 0.7, 0.9, 1.1]) {
      const z = new ZipfSampler(1000, alpha);
      let sum = 0;
      for (let r = 0; r < 1000; r++) sum += z.probability(r);
      expect(sum).toBeCloseTo(1, 12);
      // P(r) / P(s) = ((s+1) / (r+1))^alpha
      expect(z.probability(0) / z.probability(9)).toBeCloseTo(10 ** alpha, 9);
      expect(z.probability(99) / z.probability(999)).toBeCloseTo(10 ** alpha, 9);
      expect(z.probability(-1)).toBe(0);
      expect(z.probability(1000)).toBe(0);
    }
  });

  it('inverts the CDF at its edges', () => {
    const z = new ZipfSampler(50, 0.9);
    expect(z.rankAt(0)).toBe(0);
    expect(z.rankAt(z.probability(0) - 1e-12)).toBe(0);
    expect(z.rankAt(z.probability(0) + 1e-12)).toBe(1);
    expect(z.rankAt(1 - Number.EPSILON)).toBe(49);
    expect(new ZipfSampler(1, 1.1).rankAt(0.999)).toBe(0);
  });

  for (const alpha of [0.7, 0.9, 1.1]) {
    it(`draws with the theoretical frequencies (alpha ${alpha}): chi-square over 1000 ranks, rank-1 share`, () => {
      const n = 1000;
      const draws = 300_000;
      const z = new ZipfSampler(n, alpha);
      const rng = new Rng(1234 + Math.round(alpha * 10));
      const counts = new Float64Array(n);
      for (let i = 0; i < draws; i++) counts[z.sample(rng)]!++;

      // Every expected count is >= 5 here (the rarest rank at alpha 1.1 expects ~40).
      let chi2 = 0;
      for (let r = 0; r < n; r++) {
        const e = draws * z.probability(r);
        expect(e).toBeGreaterThan(5);
        chi2 += (counts[r]! - e) ** 2 / e;
      }
      // df = 999: mean 999, sd ~44.7. Six sd above the mean fails only a broken sampler.
      const df = n - 1;
      expect(chi2).toBeLessThan(df + 6 * Math.sqrt(2 * df));
      // ... and a sampler that hands back its own expectations (too good to be true) fails too.
      expect(chi2).toBeGreaterThan(df - 6 * Math.sqrt(2 * df));

      // Rank 1 (the most popular) within 5 binomial standard deviations of its probability.
      const p1 = z.probability(0);
      const sd = Math.sqrt((p1 * (1 - p1)) / draws);
      expect(Math.abs(counts[0]! / draws - p1)).toBeLessThan(5 * sd);
      // The top 10 ranks come out in popularity order.
      for (let r = 0; r < 9; r++) expect(counts[r]!).toBeGreaterThan(counts[r + 1]!);
    });
  }
});

describe('uniform and permutation', () => {
  it('uniform() stays in [0, 1) with a mean of 1/2', () => {
    const rng = new Rng(9);
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const u = uniform(rng);
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
    }
    expect(outside).toBe(0);
    expect(sum / 100_000).toBeCloseTo(0.5, 2);
  });

  it('permutation() is a bijection and depends on its seed', () => {
    const p = permutation(10_000, 5);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect([...permutation(10_000, 5)]).toEqual([...p]);
    expect([...permutation(10_000, 6)]).not.toEqual([...p]);
  });
});

describe('zipfWorkload', () => {
  const opts = { keys: 5000, alpha: 0.9, requests: 20_000, seed: 42, valueSizes: SIZES };

  it('replays the same stream for the same seed, another for another seed', () => {
    const w = zipfWorkload(opts);
    const a = take(w);
    expect(a).toHaveLength(20_000);
    expect(take(w)).toEqual(a); // the same object replays
    expect(take(zipfWorkload(opts))).toEqual(a); // a fresh one too
    const b = take(zipfWorkload({ ...opts, seed: 43 }));
    expect(b.filter((r, i) => r.key === a[i]!.key).length).toBeLessThan(a.length / 5);
  });

  it('does not tie popularity to key order: ranks are shuffled onto ids', () => {
    const w = zipfWorkload({ ...opts, keys: 10_000 });
    // Spearman correlation between rank and id over all keys: ~0 for a random permutation
    // (sd 1/sqrt(n-1) = 0.01), exactly 1 for the identity.
    const n = w.rankToId.length;
    let d2 = 0;
    for (let r = 0; r < n; r++) d2 += (r - w.rankToId[r]!) ** 2;
    const rho = 1 - (6 * d2) / (n * (n * n - 1));
    expect(Math.abs(rho)).toBeLessThan(0.05);
    // The hottest key is the one rank 0 maps to, and its share is P(rank 0).
    const counts = new Map<number, number>();
    for (const r of w.stream()) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
    const hottest = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]!;
    expect(hottest[0]).toBe(w.rankToId[0]);
    const p0 = w.sampler.probability(0);
    expect(Math.abs(hottest[1] / w.requests - p0)).toBeLessThan(5 * Math.sqrt((p0 * (1 - p0)) / w.requests));
  });

  it('gives a key the same value size every time, and keys named by their id', () => {
    const size = new Map<string, number>();
    const bad: Request[] = [];
    for (const r of zipfWorkload(opts).stream()) {
      const ok = r.key === `k${r.id}` && r.kind === 'zipf' && r.id >= 0 && r.id < opts.keys && (size.get(r.key) ?? r.valueSize) === r.valueSize;
      if (!ok) bad.push(r);
      size.set(r.key, r.valueSize);
    }
    expect(bad).toEqual([]);
  });
});

describe('value sizes', () => {
  it('fixed, uniform and lognormal stay in range and are a function of the key id', () => {
    expect(valueSizeFn({ kind: 'fixed', bytes: 100 })(7)).toBe(100);
    const uni = valueSizeFn({ kind: 'uniform', min: 10, max: 20 });
    const seenU = new Set<number>();
    for (let id = 0; id < 5000; id++) {
      const s = uni(id);
      expect(s >= 10 && s <= 20).toBe(true);
      expect(uni(id)).toBe(s);
      seenU.add(s);
    }
    expect(seenU.size).toBe(11);
    const ln = valueSizeFn(SIZES);
    const sizes = Array.from({ length: 20_001 }, (_, id) => ln(id)).sort((a, b) => a - b);
    expect(sizes[0]!).toBeGreaterThanOrEqual(16);
    expect(sizes[sizes.length - 1]!).toBeLessThanOrEqual(4096);
    const median = sizes[10_000]!;
    expect(median).toBeGreaterThan(300 * 0.95);
    expect(median).toBeLessThan(300 * 1.05);
    // Another seed, other sizes.
    const other = valueSizeFn({ ...SIZES, seed: 77 } as ValueSizes);
    expect(Array.from({ length: 100 }, (_, id) => other(id))).not.toEqual(Array.from({ length: 100 }, (_, id) => ln(id)));
  });
});

describe('scanWorkload', () => {
  const opts = { hotKeys: 500, hotAlpha: 0.9, hotFraction: 0.8, scanLength: 1000, requests: 50_000, seed: 3, valueSizes: SIZES };

  it('sends hotFraction of the requests to the hot set, the rest to one-time sequential scans', () => {
    const reqs = take(scanWorkload(opts));
    const hot = reqs.filter((r) => r.kind === 'hot');
    const scan = reqs.filter((r) => r.kind === 'scan');
    expect(hot.length + scan.length).toBe(opts.requests);
    // Binomial(50,000, 0.8): sd ~89; 5 sd is 0.009 of the stream.
    expect(Math.abs(hot.length / opts.requests - 0.8)).toBeLessThan(0.01);

    // Hot keys: ids in the hot set, repeated, the most popular with the Zipf share of the hot requests.
    const hotCounts = new Map<number, number>();
    for (const r of hot) hotCounts.set(r.id, (hotCounts.get(r.id) ?? 0) + 1);
    expect(hot.filter((r) => !(r.id >= 0 && r.id < opts.hotKeys && r.key === `h${r.id}`))).toEqual([]);
    expect(hotCounts.size).toBeGreaterThan(opts.hotKeys * 0.9);
    const top = Math.max(...hotCounts.values());
    const p0 = new ZipfSampler(opts.hotKeys, opts.hotAlpha).probability(0);
    expect(Math.abs(top / hot.length - p0)).toBeLessThan(5 * Math.sqrt((p0 * (1 - p0)) / hot.length));

    // Scan keys: s0, s1, s2, ... in order, each once, never a hot key.
    expect(scan.filter((r, n) => r.key !== `s${n}` || r.id !== SCAN_ID_BASE + n)).toEqual([]);
    expect(new Set(scan.map((r) => r.key)).size).toBe(scan.length);
    // ~10,000 scan steps: about ten full scans of 1000 keys.
    expect(Math.floor(scan.length / opts.scanLength)).toBeGreaterThanOrEqual(9);
  });

  it('scans are long runs: a scan step follows another scan step about 1 - hotFraction of the time, spread over the whole stream', () => {
    const reqs = take(scanWorkload(opts));
    // Scan steps occur evenly through the stream (interleaved, not all at the start or end).
    for (let q = 0; q < 4; q++) {
      const part = reqs.slice((q * reqs.length) / 4, ((q + 1) * reqs.length) / 4);
      const share = part.filter((r) => r.kind === 'scan').length / part.length;
      expect(share).toBeGreaterThan(0.17);
      expect(share).toBeLessThan(0.23);
    }
  });

  it('is deterministic by seed', () => {
    const a = take(scanWorkload(opts));
    expect(take(scanWorkload(opts))).toEqual(a);
    const b = take(scanWorkload({ ...opts, seed: 4 }));
    expect(b.map((r) => r.key)).not.toEqual(a.map((r) => r.key));
  });

  it('working set: the hot keys touched plus one key per scan step', () => {
    const w = scanWorkload(opts);
    const reqs = take(w);
    const hotKeys = new Set(reqs.filter((r) => r.kind === 'hot').map((r) => r.key)).size;
    const scanSteps = reqs.filter((r) => r.kind === 'scan').length;
    const ws = workingSet(w);
    expect(ws.keys).toBe(hotKeys + scanSteps);
    const seen = new Set<string>();
    let bytes = 0;
    for (const r of reqs) if (!seen.has(r.key)) (seen.add(r.key), (bytes += r.key.length + r.valueSize));
    expect(ws.bytes).toBe(bytes);
  });
});

describe('the hit-ratio harness (bench/hitRatio.ts)', () => {
  const w = zipfWorkload({ keys: 2000, alpha: 0.9, requests: 10_000, seed: 8, valueSizes: SIZES });
  const ws = workingSet(w);

  it('an LRU that holds the whole working set misses once per distinct key', () => {
    const r = runLru(w, ws.bytes);
    expect(r.misses).toBe(ws.keys);
    expect(r.hits).toBe(w.requests - ws.keys);
    expect(r.evictions).toBe(0);
    expect(r.hitRatio).toBeCloseTo(1 - ws.keys / w.requests, 12);
  });

  it('a smaller LRU evicts and hits less, more with a more skewed workload', () => {
    const small = runLru(w, Math.round(ws.bytes * 0.15));
    expect(small.evictions).toBeGreaterThan(0);
    expect(small.hitRatio).toBeLessThan(1 - ws.keys / w.requests);
    const skewed = zipfWorkload({ keys: 2000, alpha: 1.1, requests: 10_000, seed: 8, valueSizes: SIZES });
    expect(runLru(skewed, Math.round(workingSet(skewed).bytes * 0.15)).hitRatio).toBeGreaterThan(small.hitRatio);
  });

  it('drives a cache look-aside and checks every value it returns is the key\'s own', () => {
    // A stand-in with the openCache API: unbounded, so it must agree with the full-size LRU.
    const fake = (swap: boolean) => (_dir: string, _o: { maxBytes: number; reinsertion?: boolean }) => {
      const m = new Map<string, unknown>();
      let gets = 0;
      return {
        get: (k: string) => {
          gets++;
          // `swap`: a broken cache that sometimes answers with another key's value.
          if (swap && gets % 100 === 0 && m.size > 1) return [...m.values()][0];
          return m.get(k);
        },
        set: (k: string, v: unknown) => void m.set(k, v),
        keys: () => m.keys(),
        stats: () => ({ hits: 0, misses: 0, hitRatio: null, reinsertions: { entries: 0, bytes: 0 }, evictions: { entries: 0, bytes: 0, epochs: 0 }, userBytes: 0, deviceBytes: 0, writeAmplification: 1 }),
        flush: () => {},
        close: () => {},
      };
    };
    const good = runZns(w, ws.bytes, fake(false), true);
    expect(good.misses).toBe(ws.keys);
    expect(good.wrongValues).toBe(0);
    expect(good.uncheckedValues).toBe(0);
    expect(good.writeAmplification).toBe(1);
    expect(runZns(w, ws.bytes, fake(true), true).wrongValues).toBeGreaterThan(0);
  });

  it('samples the bytes the cache holds from keys(), after the warmup', () => {
    // An unbounded stand-in holds every key seen so far: after c requests, the key + value
    // bytes of the distinct keys among the first c.
    const unbounded = (_dir: string, _o: { maxBytes: number; reinsertion?: boolean }) => {
      const m = new Map<string, unknown>();
      return {
        get: (k: string) => m.get(k),
        set: (k: string, v: unknown) => void m.set(k, v),
        keys: () => m.keys(),
        stats: () => ({ hits: 0, misses: 0, hitRatio: null, reinsertions: { entries: 0, bytes: 0 }, evictions: { entries: 0, bytes: 0, epochs: 0 }, userBytes: 0, deviceBytes: 0, writeAmplification: 1 }),
        flush: () => {},
        close: () => {},
      };
    };
    const every = 700;
    const expected: number[] = [];
    const entries: number[] = [];
    const seen = new Set<string>();
    let bytes = 0;
    let done = 0;
    for (const r of w.stream()) {
      if (!seen.has(r.key)) (seen.add(r.key), (bytes += r.key.length + r.valueSize));
      done++;
      if (isSamplePoint(done, w.requests, every)) (expected.push(bytes), entries.push(seen.size));
    }
    // 8000 measured requests (after 2000 of warmup): one sample in each stretch of 700 after the
    // warmup (the last, partial stretch of 300 may or may not have its point).
    expect(expected.length).toBeGreaterThanOrEqual(Math.floor(8000 / every));
    expect(expected.length).toBeLessThanOrEqual(Math.ceil(8000 / every));
    for (let k = 0; k < Math.floor(8000 / every); k++) {
      let n = 0;
      for (let done = 2001 + k * every; done <= 2000 + (k + 1) * every; done++) if (isSamplePoint(done, w.requests, every)) n++;
      expect(n).toBe(1);
    }
    for (let done = 0; done <= 2000; done++) expect(isSamplePoint(done, w.requests, every)).toBe(false);
    const r = runZns(w, ws.bytes, unbounded, true, 0, every);
    expect(r.held.samples).toBe(expected.length);
    expect(r.held.sampleEvery).toBe(every);
    expect(r.held.unknownKeys).toBe(0);
    expect(r.held.userBytes.mean).toBe(Math.round(expected.reduce((a, b) => a + b, 0) / expected.length));
    expect(r.held.userBytes.min).toBe(expected[0]);
    expect(r.held.userBytes.max).toBe(expected[expected.length - 1]);
    expect(r.held.entries.max).toBe(entries[entries.length - 1]);
    expect(r.held.entries.min).toBe(entries[0]);
    expect(r.held.spaceEfficiency).toBeCloseTo(r.held.userBytes.mean / ws.bytes, 3);
    expect(defaultSampleEvery(400_000)).toBe(20_000);
    expect(defaultSampleEvery(10_000)).toBe(2000);
  });
});
