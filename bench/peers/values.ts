/**
 * The values every engine and floor writes: views of one seeded random pool (lib/payload.ts) at
 * seeded offsets (bench/workloads.ts's mix32), so value (key, generation) is the same bytes in
 * every process and run, and nothing is allocated per put.
 */
import { randomBytes } from '../lib/payload.js';
import { mix32 } from '../workloads.js';
import { PAYLOAD_POOL_BYTES, SEED } from './config.js';

const pool = randomBytes(SEED, PAYLOAD_POOL_BYTES);

/** The value of `key` at `generation` (0 for a first put; an overwrite bumps it), `size` bytes. */
export function valueOf(key: number, size: number, generation = 0): Buffer {
  const offset = mix32(SEED ^ generation, key) % (PAYLOAD_POOL_BYTES - size + 1);
  return pool.subarray(offset, offset + size);
}

/** Compares what an engine returned with what was put. */
export function sameBytes(got: Uint8Array | undefined, want: Uint8Array): boolean {
  return got !== undefined && Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want);
}
