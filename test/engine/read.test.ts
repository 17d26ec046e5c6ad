/**
 * The read side: a store on a direct (O_DIRECT) device, and the reads besides `get`:
 * getInto, getAsync and getMany (order, queue depth, stale handles while reads are in
 * flight, memory and device, direct mode).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { createEmulatedDevice } from '../../zns/emulated.js';
import { SMALL_GEOMETRY, codeOf, storeFixture } from '../helpers/store.js';

function takesDirect(dir: string): boolean {
  const file = path.join(dir, `.direct-probe-${process.pid}`);
  fs.writeFileSync(file, '');
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(file, { force: true });
  }
}
const tmpTakesDirect = takesDirect(os.tmpdir());

/** Bytes of object `i`: its number first, then a pattern, so a mix-up shows. */
function payload(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let j = 0; j < size; j++) b[j] = (i * 31 + j * 7) & 0xff;
  if (size >= 4) b.writeUInt32LE(i, 0);
  return b;
}

describe('a store on a direct device', () => {
  it.skipIf(!tmpTakesDirect)(`openStore(dir, { direct: true }) puts, flushes, reopens and gets through O_DIRECT zone files${tmpTakesDirect ? '' : ` (skipped: ${os.tmpdir()} refuses O_DIRECT)`}`, () => {
    const fx = storeFixture();
    try {
      let store = fx.open({ direct: true });
      expect(store.device.direct).toBe(true);
      expect(store.statsGlobal().device.direct).toBe(true);
      const sizes = [1, 100, 3000, 5000, 70_000, 300_000];
      const handles = sizes.map((size, i) => store.put(payload(i, size)));
      store.flush();
      handles.forEach((h, i) => expect(store.get(h).equals(payload(i, sizes[i]!))).toBe(true));
      store.close();
      store = fx.open({ direct: true });
      expect(store.statsGlobal().device.direct).toBe(true);
      handles.forEach((h, i) => expect(store.get(h).equals(payload(i, sizes[i]!))).toBe(true));
      store.close();
      // The same store opened buffered reads the same bytes, and says it is not direct.
      store = fx.open();
      expect(store.statsGlobal().device.direct).toBe(false);
      handles.forEach((h, i) => expect(store.get(h).equals(payload(i, sizes[i]!))).toBe(true));
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it('checks the option by name: a non-boolean, or a given device that is not direct, is ERR_INVALID_ARGUMENT', () => {
    const fx = storeFixture();
    try {
      expect(codeOf(() => fx.open({ direct: 'yes' as unknown as boolean }))).toBe(ErrorCode.INVALID_ARGUMENT);
      const device = createEmulatedDevice(path.join(fx.dir, 'dev'), SMALL_GEOMETRY);
      try {
        let caught: unknown;
        try {
          openStore(fx.dir, { device, direct: true });
        } catch (err) {
          caught = err;
        }
        expect(caught).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        expect((caught as Error).message).toMatch(/options\.direct/);
      } finally {
        device.close();
      }
    } finally {
      fx.cleanup();
    }
  });
});
