/**
 * crc32 with zlib's polynomial (reflected 0xEDB88320, initial and final xor 0xFFFFFFFF): every
 * slot's checksum (engine/slab.ts), so part of the on-disk format. Computed by @node-rs/crc32
 * (SIMD; an optional dependency with prebuilt binaries) when it loads and gives zlib's results
 * on a check at load, else by Node's zlib.crc32. The same numbers either way
 * (test/engine/crc32.test.ts); @node-rs/crc32 is 2.7x zlib.crc32 at 1 KiB and about 5x at
 * 64 KiB-1 MiB on this machine (docs/BENCHMARKS.md, "crc32").
 */
import zlib from 'node:zlib';
import { nodeRequire } from '../native/require.cjs';

type Crc = (data: Uint8Array, value: number) => number;

/** zlib's crc32, continued from `value`; an empty array adds nothing (zlib.crc32 of one with no data pointer returns 0). */
export function zlibCrc32(data: Uint8Array, value = 0): number {
  return data.byteLength === 0 ? value : zlib.crc32(data, value);
}

function load(): { name: 'node-rs' | 'zlib'; fn: Crc } {
  if (process.env.ZNS_SLAB_CRC32 === 'zlib') return { name: 'zlib', fn: zlibCrc32 };
  try {
    const mod = nodeRequire('@node-rs/crc32') as { crc32(data: Uint8Array, initial?: number): number };
    const fn: Crc = (data, value) => (data.byteLength === 0 ? value : mod.crc32(data, value) >>> 0);
    // A binary that does not give zlib's numbers is not used (the format would change).
    const sample = Buffer.from('zns-slab crc32 check: 123456789 and a little more than sixteen bytes');
    for (const seed of [0, 0xcbf43926, 0xffffffff, 12345]) {
      if (fn(sample, seed) !== zlibCrc32(sample, seed) || fn(sample.subarray(3, 40), seed) !== zlibCrc32(sample.subarray(3, 40), seed)) return { name: 'zlib', fn: zlibCrc32 };
    }
    return { name: 'node-rs', fn };
  } catch {
    return { name: 'zlib', fn: zlibCrc32 };
  }
}

const chosen = load();

/** Which implementation computes `crc32` here ('zlib' when @node-rs/crc32 is missing, or ZNS_SLAB_CRC32=zlib). */
export const CRC32_IMPLEMENTATION: 'node-rs' | 'zlib' = chosen.name;

/** crc32 of `data`, continued from `value` (the crc of what came before; 0 to start). */
export const crc32: Crc = chosen.fn;
