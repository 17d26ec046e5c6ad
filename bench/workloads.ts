/**
 * Deterministic, seeded key streams for cache hit-ratio measurements (bench/hitRatio.ts) and
 * their tests (test/cache/workloads.test.ts). The same workload object replays the same
 * stream on every call and every machine, so two caches compared in one run see identical
 * requests.
 *
 * - `zipfWorkload`: N keys, rank r (0-based) requested with probability (r+1)^-alpha / H(N, alpha),
 *   drawn by an exact inverse-CDF sampler (cumulative weights precomputed, binary search). The
 *   rank -> key mapping is a seeded random permutation, so popularity has nothing to do with key
 *   order (nor with value size).
 * - `scanWorkload`: a small hot set (Zipf inside it) gets `hotFraction` of the requests; the rest
 *   walk long sequential scans over fresh keys, each key requested exactly once (the pattern that
 *   flushes an LRU).
 *
 * Value sizes are a property of the key (the same key always has the same size, as in a
 * look-aside cache refilled from a database): fixed, uniform, or log-normal, each seeded.
 *
 * No public cache trace ships inside an npm package (searched for this file's issue), so there
 * is no trace loader here.
 */
import { Rng } from '../sim/rng.js';

/** One request of a stream: the key, a stable numeric id for it, and its value's size. */
export interface Request {
  /** The key as the cache sees it (ASCII, so its byte length is its `length`). */
  key: string;
  /** A number naming the key within its workload (a hot key and a scan key never share a key). */
  id: number;
  /** Bytes of the value stored under the key (the same every time the key appears). */
  valueSize: number;
  /** Which part of the workload the request came from. */
  kind: 'zipf' | 'hot' | 'scan';
}

export interface Workload {
  readonly name: string;
  /** Human-readable parameters. */
  readonly description: string;
  /** Requests one replay yields. */
  readonly requests: number;
  /** The whole stream, from the start: the same sequence on every call. */
  stream(): Generator<Request, void, undefined>;
}

// ----- random numbers --------------------------------------------------------------------

/** A uniform double in [0, 1) with 53 random bits (two draws of the 32-bit generator). */
export function uniform(rng: Rng): number {
  const hi = rng.u32() >>> 5; // 27 bits
  const lo = rng.u32() >>> 6; // 26 bits
  return (hi * 67108864 + lo) / 9007199254740992;
}

/** A well-mixed 32-bit hash of (seed, n), for per-key properties that must not depend on draw order. */
export function mix32(seed: number, n: number): number {
  let h = (seed ^ Math.imul(n >>> 0, 0x9e3779b1) ^ Math.imul(Math.floor(n / 2 ** 32), 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seeded random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform(rng) * (i + 1));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

// ----- Zipf ------------------------------------------------------------------------------

/**
 * Zipf over ranks 0..n-1: P(r) = (r+1)^-alpha / sum_{k=1..n} k^-alpha. Exact inverse-CDF
 * sampling: `cdf[r]` = P(0) + ... + P(r) (the last forced to 1), and a draw u in [0, 1) maps to
 * the first r with cdf[r] > u by binary search. Any alpha >= 0 works (0 is uniform).
 */
export class ZipfSampler {
  readonly n: number;
  readonly alpha: number;
  private readonly cdf: Float64Array;
  private readonly norm: number;

  constructor(n: number, alpha: number) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`ZipfSampler: n must be a positive integer, got ${n}`);
    if (!(alpha >= 0) || !Number.isFinite(alpha)) throw new RangeError(`ZipfSampler: alpha must be a finite number >= 0, got ${alpha}`);
    this.n = n;
    this.alpha = alpha;
    this.cdf = new Float64Array(n);
    // Sum from the smallest weight up: less rounding than summing the large ones first.
    let norm = 0;
    for (let r = n - 1; r >= 0; r--) norm += (r + 1) ** -alpha;
    this.norm = norm;
    let acc = 0;
    for (let r = 0; r < n; r++) {
      acc += (r + 1) ** -alpha / norm;
      this.cdf[r] = acc;
    }
    this.cdf[n - 1] = 1;
  }

  /** The probability of rank r (0-based). */
  probability(rank: number): number {
    return rank >= 0 && rank < this.n ? (rank + 1) ** -this.alpha / this.norm : 0;
  }

  /** A rank drawn with its probability. */
  sample(rng: Rng): number {
    return this.rankAt(uniform(rng));
  }

  /** The rank the inverse CDF gives for u in [0, 1): the first r with cdf[r] > u. */
  rankAt(u: number): number {
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

// ----- value sizes -----------------------------------------------------------------------

export type ValueSizes =
  | { kind: 'fixed'; bytes: number }
  | { kind: 'uniform'; min: number; max: number; seed?: number }
  /** exp(N(ln median, sigma^2)), rounded, clamped to [min, max]. */
  | { kind: 'lognormal'; median: number; sigma: number; min: number; max: number; seed?: number };

/** Maps a key id to its value size, deterministically. */
export type ValueSizeFn = (id: number) => number;

export function valueSizeFn(spec: ValueSizes): ValueSizeFn {
  switch (spec.kind) {
    case 'fixed': {
      const b = spec.bytes;
      if (!Number.isInteger(b) || b < 0) throw new RangeError(`fixed value size must be an integer >= 0, got ${b}`);
      return () => b;
    }
    case 'uniform': {
      const { min, max } = spec;
      const seed = spec.seed ?? 0x5eed;
      if (!(Number.isInteger(min) && Number.isInteger(max) && 0 <= min && min <= max)) throw new RangeError(`uniform value sizes need integers 0 <= min <= max, got ${min}..${max}`);
      const span = max - min + 1;
      return (id) => min + Math.floor((mix32(seed, id) / 2 ** 32) * span);
    }
    case 'lognormal': {
      const { median, sigma, min, max } = spec;
      const seed = spec.seed ?? 0x10a9;
      if (!(median > 0 && sigma >= 0 && Number.isInteger(min) && Number.isInteger(max) && 0 <= min && min <= max)) {
        throw new RangeError(`lognormal value sizes need median > 0, sigma >= 0, integers 0 <= min <= max`);
      }
      const mu = Math.log(median);
      return (id) => {
        // Box-Muller from two independent hashes of the id; u1 in (0, 1] so the log is finite.
        const u1 = (mix32(seed, id) + 1) / 2 ** 32;
        const u2 = mix32(seed ^ 0x2545f491, id) / 2 ** 32;
        const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
        return Math.min(max, Math.max(min, Math.round(Math.exp(mu + sigma * z))));
      };
    }
  }
}

export function describeSizes(spec: ValueSizes): string {
  switch (spec.kind) {
    case 'fixed':
      return `${spec.bytes} B`;
    case 'uniform':
      return `uniform ${spec.min}..${spec.max} B`;
    case 'lognormal':
      return `lognormal median ${spec.median} B sigma ${spec.sigma} in ${spec.min}..${spec.max} B`;
  }
}

// ----- workloads -------------------------------------------------------------------------

export interface ZipfOptions {
  /** Distinct keys. */
  keys: number;
  alpha: number;
  requests: number;
  seed: number;
  valueSizes: ValueSizes;
}

/** Zipf(alpha) over `keys` keys named `k<id>`, ranks shuffled onto ids. */
export function zipfWorkload(o: ZipfOptions): Workload & { readonly sampler: ZipfSampler; readonly rankToId: Uint32Array } {
  const sampler = new ZipfSampler(o.keys, o.alpha);
  const rankToId = permutation(o.keys, mix32(o.seed, 0x7065726d));
  const sizeOf = valueSizeFn(o.valueSizes);
  return {
    name: `zipf-${o.alpha}`,
    description: `Zipf alpha ${o.alpha} over ${o.keys} keys, ${o.requests} requests, values ${describeSizes(o.valueSizes)}, seed ${o.seed}`,
    requests: o.requests,
    sampler,
    rankToId,
    *stream() {
      const rng = new Rng(o.seed);
      for (let i = 0; i < o.requests; i++) {
        const id = rankToId[sampler.sample(rng)]!;
        yield { key: `k${id}`, id, valueSize: sizeOf(id), kind: 'zipf' };
      }
    },
  };
}

export interface ScanOptions {
  /** Keys in the hot set (named `h<id>`, ids 0..hotKeys-1). */
  hotKeys: number;
  /** Zipf alpha inside the hot set. */
  hotAlpha: number;
  /** Share of requests that go to the hot set; the rest are scan steps. */
  hotFraction: number;
  /** Keys per scan; scans follow one another over fresh keys. */
  scanLength: number;
  requests: number;
  seed: number;
  valueSizes: ValueSizes;
}

/** Id of the first scan key: scan ids never meet hot ids (so sizes differ too). */
export const SCAN_ID_BASE = 2 ** 31;

/**
 * Each request goes to the hot set with probability `hotFraction` (Zipf(hotAlpha), ranks
 * shuffled), else it is the next step of the current scan. Scan keys are `s<n>` with n = 0, 1,
 * 2, ... in order across the whole stream: every scan key appears exactly once, scan j covers
 * n in [j*scanLength, (j+1)*scanLength).
 */
export function scanWorkload(o: ScanOptions): Workload & { readonly sampler: ZipfSampler } {
  if (!(o.hotFraction >= 0 && o.hotFraction <= 1)) throw new RangeError(`hotFraction must be in [0, 1], got ${o.hotFraction}`);
  if (!Number.isInteger(o.scanLength) || o.scanLength < 1) throw new RangeError(`scanLength must be a positive integer, got ${o.scanLength}`);
  const sampler = new ZipfSampler(o.hotKeys, o.hotAlpha);
  const rankToId = permutation(o.hotKeys, mix32(o.seed, 0x686f74));
  const sizeOf = valueSizeFn(o.valueSizes);
  return {
    name: 'scan+hot',
    description:
      `${Math.round(o.hotFraction * 100)}% to ${o.hotKeys} hot keys (Zipf ${o.hotAlpha}), the rest sequential one-time scans of ${o.scanLength} keys, ` +
      `${o.requests} requests, values ${describeSizes(o.valueSizes)}, seed ${o.seed}`,
    requests: o.requests,
    sampler,
    *stream() {
      const rng = new Rng(o.seed);
      let next = 0;
      for (let i = 0; i < o.requests; i++) {
        if (uniform(rng) < o.hotFraction) {
          const id = rankToId[sampler.sample(rng)]!;
          yield { key: `h${id}`, id, valueSize: sizeOf(id), kind: 'hot' };
        } else {
          const n = next++;
          const id = SCAN_ID_BASE + n;
          yield { key: `s${n}`, id, valueSize: sizeOf(id), kind: 'scan' };
        }
      }
    },
  };
}

/** Distinct keys a stream touches and the bytes they take (key bytes + value bytes, once each). */
export function workingSet(w: Workload): { keys: number; bytes: number } {
  const seen = new Set<string>();
  let bytes = 0;
  for (const r of w.stream()) {
    if (seen.has(r.key)) continue;
    seen.add(r.key);
    bytes += r.key.length + r.valueSize;
  }
  return { keys: seen.size, bytes };
}
