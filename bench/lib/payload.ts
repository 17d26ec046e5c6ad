/**
 * Payload bytes for the benchmarks, from the shared seeded rng (bench/rng.ts): every engine of a
 * run writes the same bytes. Random bytes, so no engine gains from compressing them (LevelDB
 * compresses blocks with Snappy by default).
 */
import { rng } from '../rng.js';

/** n seeded random bytes. */
export function randomBytes(seed: number, n: number): Buffer {
  const out = Buffer.allocUnsafeSlow(n);
  const next = rng(seed);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/**
 * The churn's payloads: one buffer of maxSize random bytes and a view of every length 0..maxSize
 * (made once, so a put allocates nothing); bytes 0-3 are the object's id, written through
 * `idWord` before each put (a put copies), so a read can be checked against its own object.
 */
export function churnPayload(seed: number, maxSize: number): { views: Buffer[]; idWord: Uint32Array } {
  const big = randomBytes(seed, maxSize);
  const idWord = new Uint32Array(big.buffer, big.byteOffset, 1);
  const views: Buffer[] = [];
  for (let s = 0; s <= maxSize; s++) views.push(big.subarray(0, s));
  return { views, idWord };
}
