/**
 * The slot checksum's crc32 (engine/crc32.ts) is part of the on-disk format: whichever
 * implementation computes it must give zlib's numbers, whole and continued, for every length.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CRC32_IMPLEMENTATION, crc32, zlibCrc32 } from '../../engine/crc32.js';
import { storeFixture } from '../helpers/store.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('crc32', () => {
  it(`gives zlib's results (here by ${CRC32_IMPLEMENTATION}), whole and continued, for every length up to 5000 and at 1 MiB`, () => {
    const data = randomBytes(1 << 20);
    for (let len = 0; len <= 5000; len += len < 300 ? 1 : 37) {
      const at = len % 13; // unaligned starts too
      const part = data.subarray(at, at + len);
      const seed = zlib.crc32(data.subarray(len, len + 12));
      const whole = len === 0 ? 0 : zlib.crc32(part);
      expect(crc32(part, 0), `length ${len}`).toBe(whole);
      expect(crc32(part, seed), `length ${len} continued`).toBe(len === 0 ? seed : zlib.crc32(part, seed));
    }
    expect(crc32(data, 7)).toBe(zlib.crc32(data, 7));
    // The standard check value.
    expect(crc32(Buffer.from('123456789'), 0)).toBe(0xcbf43926);
  });

  it('an empty array adds nothing, whatever its backing store (zlib.crc32 of one without a data pointer returns 0)', () => {
    for (const empty of [new Uint8Array(0), new Uint8Array(new ArrayBuffer(0)), Buffer.alloc(0), randomBytes(0), Buffer.alloc(8).subarray(3, 3)]) {
      expect(crc32(empty, 0xdeadbeef)).toBe(0xdeadbeef);
      expect(zlibCrc32(empty, 0xdeadbeef)).toBe(0xdeadbeef);
    }
  });

  it('a store written with one implementation reads back with the other (the format does not depend on which loaded)', () => {
    const fx = storeFixture();
    try {
      const write = `
        import { openStore } from './dist/engine/store.js';
        const s = openStore(${JSON.stringify(fx.dir)});
        const hs = [0, 1, 100, 5000, 70000].map((n) => s.put(Buffer.alloc(n, n & 0xff)).toString());
        s.close();
        process.stdout.write(JSON.stringify(hs));`;
      const read = (hs: string) => `
        import { openStore } from './dist/engine/store.js';
        import { CRC32_IMPLEMENTATION } from './dist/engine/crc32.js';
        const s = openStore(${JSON.stringify(fx.dir)});
        const ok = ${hs}.every((h, i) => s.get(BigInt(h)).equals(Buffer.alloc([0, 1, 100, 5000, 70000][i], [0, 1, 100, 5000, 70000][i] & 0xff)));
        s.close();
        process.stdout.write(CRC32_IMPLEMENTATION + ' ' + ok);`;
      const run = (script: string, env: Record<string, string>) => {
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
        expect(r.stderr).toBe('');
        return r.stdout;
      };
      const handles = run(write, { ZNS_SLAB_CRC32: 'zlib' });
      expect(run(read(handles), {})).toBe(`${CRC32_IMPLEMENTATION} true`);
      expect(run(read(handles), { ZNS_SLAB_CRC32: 'zlib' })).toBe('zlib true');
    } finally {
      fx.cleanup();
    }
  });
});
