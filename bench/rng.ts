/**
 * The benchmarks' deterministic random sequence (xorshift32 in [0, 1)): every engine, peer and
 * run sees the same operations for the same seed.
 */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}
