/**
 * Sorted-sample statistics shared by the benchmarks: latency distributions (p50/p99/p999 of
 * every sample, as the ZNS-Slab allocator's benchmarks reported them), medians and spreads of
 * repetitions.
 */

/** Rounds to 3 decimals (what the JSON keeps). */
export function r3(x: number): number {
  return Number(x.toFixed(3));
}

/** A latency distribution in microseconds. */
export interface Dist {
  count: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

/** The distribution of the first n samples (milliseconds, as performance.now() gives them). */
export function dist(samplesMs: Float64Array, n: number): Dist {
  const s = samplesMs.slice(0, n).sort();
  const at = (q: number) => r3(s[Math.min(n - 1, Math.floor(q * n))]! * 1000);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += s[i]!;
  return { count: n, p50Us: at(0.5), p99Us: at(0.99), p999Us: at(0.999), maxUs: r3(s[n - 1]! * 1000), meanUs: r3((sum / n) * 1000) };
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The median of repetitions with their min and max. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: readonly number[]): Spread {
  return { median: r3(median(xs)), min: r3(Math.min(...xs)), max: r3(Math.max(...xs)), n: xs.length };
}
