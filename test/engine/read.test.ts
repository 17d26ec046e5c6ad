/**
 * The read side: a store on a direct (O_DIRECT) device, and the reads besides `get`:
 * getInto, getAsync and getMany (order, queue depth, stale handles while reads are in
 * flight, memory and device, direct mode).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { packHandle } from '../../engine/handle.js';
import { DEFAULT_QUEUE_DEPTH, type GetManyOptions, MAX_QUEUE_DEPTH, type StoreOptions, openStore } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import type { ZonedDevice } from '../../zns/device.js';
import { createEmulatedDevice } from '../../zns/emulated.js';
import { openZonedDevice } from '../../zns/open.js';
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

/** The store's own emulated device (in `<store>/device`), opened as the store would, to wrap. */
function openZonedDeviceFor(fx: { dir: string }, direct: boolean, create = false): ZonedDevice {
  return openZonedDevice(path.join(fx.dir, 'device'), { exclusive: true, direct, ...(create ? { create: true, geometry: SMALL_GEOMETRY } : {}) });
}

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

/** A device that behaves as `inner`, with `readAsync` replaced (or removed, with null), and its async reads counted. */
function wrapDevice(inner: ZonedDevice, readAsync?: ((offset: number, length: number) => Promise<Buffer>) | null): ZonedDevice & { stats: { reads: number; inFlight: number; maxInFlight: number } } {
  const stats = { reads: 0, inFlight: 0, maxInFlight: 0 };
  const counted = async (offset: number, length: number): Promise<Buffer> => {
    stats.reads++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    try {
      return await (readAsync ?? inner.readAsync!.bind(inner))(offset, length);
    } finally {
      stats.inFlight--;
    }
  };
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'stats') return stats;
      if (key === 'readAsync') return readAsync === null ? undefined : counted;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as ZonedDevice & { stats: typeof stats };
}

/** The code of a rejection (undefined if it resolved). */
async function rejectionCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded: ${String(err)}`;
  }
  return undefined;
}

/** Keeps libuv's pool busy for a while (pbkdf2 runs there): device reads started now wait behind it. */
function busyPool(): Promise<unknown> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  return Promise.all(Array.from({ length: 2 * threads }, () => promisify(crypto.pbkdf2)('x', 'y', 100_000, 32, 'sha256')));
}

const SIZES = [0, 1, 7, 100, 500, 4096, 5000, 70_000, 300_000];

describe.each([
  ['buffered', false],
  ['direct', true],
] as const)('getInto, getAsync, getMany (%s)', (name, direct) => {
  const skip = direct && !tmpTakesDirect;
  const open = (fx: ReturnType<typeof storeFixture>, options: StoreOptions = {}) => fx.open({ direct, ...options });

  it.skipIf(skip)(`agree with get and with what was put, from memory and from the device${skip ? ` (skipped: ${os.tmpdir()} refuses O_DIRECT)` : ''}`, async () => {
    const fx = storeFixture();
    try {
      let store = open(fx);
      const objects = SIZES.flatMap((size, i) => [0, 1, 2].map((k) => ({ n: i * 3 + k, size })));
      const handles = objects.map((o) => store.put(payload(o.n, o.size)));
      const check = async (where: string) => {
        const many = await store.getMany(handles);
        expect(many).toHaveLength(handles.length);
        for (let i = 0; i < handles.length; i++) {
          const expected = payload(objects[i]!.n, objects[i]!.size);
          expect(store.get(handles[i]!).equals(expected), `get #${i} ${where}`).toBe(true);
          expect((await store.getAsync(handles[i]!)).equals(expected), `getAsync #${i} ${where}`).toBe(true);
          expect(many[i]!.equals(expected), `getMany[${i}] ${where}`).toBe(true);
          const target = Buffer.alloc(expected.length + 3, 0xee);
          expect(store.getInto(handles[i]!, target), `getInto #${i} ${where}`).toBe(expected.length);
          expect(target.subarray(0, expected.length).equals(expected)).toBe(true);
          expect(target.subarray(expected.length).equals(Buffer.alloc(3, 0xee)), 'getInto writes nothing past the object').toBe(true);
          const exact = new Uint8Array(expected.length);
          expect(store.getInto(handles[i]!, exact)).toBe(expected.length);
          expect(Buffer.from(exact).equals(expected)).toBe(true);
        }
      };
      await check('from memory');
      store.close();
      store = open(fx, { device: wrapDevice(openZonedDeviceFor(fx, direct)) });
      await check('from the device');
      const reads = (store.device as unknown as { stats: { reads: number } }).stats.reads;
      expect(reads, 'getAsync and getMany read the device asynchronously').toBe(2 * handles.length);
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it.skipIf(skip)('getMany keeps queueDepth reads in flight, no more, and returns the buffers in order' + (skip ? ` (skipped: ${os.tmpdir()} refuses O_DIRECT)` : ''), async () => {
    const fx = storeFixture();
    try {
      let store = open(fx);
      const handles = Array.from({ length: 600 }, (_, i) => store.put(payload(i, 100 + (i % 7) * 900)));
      store.close();
      store = open(fx, { device: wrapDevice(openZonedDeviceFor(fx, direct)) });
      const stats = (store.device as unknown as { stats: { inFlight: number; maxInFlight: number; reads: number } }).stats;
      for (const depth of [1, 16, 64, undefined]) {
        stats.maxInFlight = 0;
        // Reversed and shuffled: order comes from the argument, not from the device.
        const order = handles.map((_, i) => (i * 389) % handles.length);
        const got = await store.getMany(order.map((i) => handles[i]!), depth === undefined ? undefined : { queueDepth: depth });
        got.forEach((b, k) => expect(b.equals(payload(order[k]!, 100 + (order[k]! % 7) * 900)), `depth ${depth}: [${k}]`).toBe(true));
        expect(stats.maxInFlight, `depth ${depth ?? 'default'}`).toBe(depth ?? DEFAULT_QUEUE_DEPTH);
        expect(stats.inFlight).toBe(0);
      }
      expect(await store.getMany([])).toEqual([]);
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it.skipIf(skip)('a handle freed, or its epoch closed and zones reset, while its read is in flight is ERR_STALE_HANDLE, never bytes' + (skip ? ` (skipped: ${os.tmpdir()} refuses O_DIRECT)` : ''), async () => {
    const fx = storeFixture();
    try {
      let store = open(fx);
      const e1 = store.epochCurrent();
      const inE1 = Array.from({ length: 300 }, (_, i) => store.put(payload(i, 3000)));
      store.epochAdvance();
      const inE2 = Array.from({ length: 300 }, (_, i) => store.put(payload(1000 + i, 3000)));
      store.close();
      store = open(fx);
      const busy = busyPool();
      const freed = new Set([3, 50, 299].map((i) => inE2[i]!));
      // Settled as they end (a rejection waiting for its handler would be reported unhandled).
      const single = Promise.allSettled(inE2.map((h) => store.getAsync(h)));
      const many = store.getMany(inE2, { queueDepth: 64 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      const closed = Promise.allSettled(inE1.map((h) => store.getAsync(h)));
      const closedMany = rejectionCode(store.getMany(inE1, { queueDepth: 8 }));
      // While all of those wait on the pool: frees, an epoch close (its zones reset), and new
      // objects written where e1's zones were.
      for (const h of freed) store.free(h);
      store.epochClose(e1);
      const fresh = Array.from({ length: 300 }, (_, i) => store.put(payload(5000 + i, 3000)));
      store.flush();
      const results = await single;
      results.forEach((r, i) => {
        if (freed.has(inE2[i]!)) expect(r, `freed #${i}`).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.STALE_HANDLE } });
        else {
          expect(r.status, `live #${i}`).toBe('fulfilled');
          expect((r as PromiseFulfilledResult<Buffer>).value.equals(payload(1000 + i, 3000))).toBe(true);
        }
      });
      // getMany: the lowest index that failed, named, its cause the original.
      const caught = await many;
      expect(caught).toMatchObject({ code: ErrorCode.STALE_HANDLE });
      expect((caught as Error).message).toMatch(/^getMany: handles\[3\]: /);
      expect((caught as Error).cause).toMatchObject({ code: ErrorCode.STALE_HANDLE });
      for (const r of await closed) expect(r).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.STALE_HANDLE } });
      expect(await closedMany).toBe(ErrorCode.STALE_HANDLE);
      await busy;
      fresh.forEach((h, i) => expect(store.get(h).equals(payload(5000 + i, 3000))).toBe(true));
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it.skipIf(skip)('an object moved by zone GC while its read is in flight comes back right, even when the old place is gone by the time the device reads' + (skip ? ` (skipped: ${os.tmpdir()} refuses O_DIRECT)` : ''), async () => {
    const fx = storeFixture();
    try {
      let store = open(fx, { gc: false });
      const handles = Array.from({ length: 1200 }, (_, i) => store.put(payload(i, 2000)));
      // Most objects freed: the zones are sparse, worth collecting.
      const kept = handles.filter((_, i) => i % 10 === 0);
      handles.forEach((h, i) => {
        if (i % 10 !== 0) store.free(h);
      });
      store.close();
      // A device that does each async read late, after whatever the store did meanwhile (as a
      // real device may run a queued read after a reset): the zone GC below resets the old zones.
      const inner = openZonedDeviceFor(fx, direct);
      const late = wrapDevice(inner, async (offset, length) => {
        await new Promise((r) => setImmediate(r));
        return inner.read(offset, length);
      });
      store = open(fx, { device: late, gc: false });
      const reads = store.getMany(kept, { queueDepth: 64 });
      const one = store.getAsync(kept[5]!);
      const result = store.gc();
      expect(result.zonesCollected).toBeGreaterThan(0);
      const got = await reads;
      got.forEach((b, k) => expect(b.equals(payload(k * 10, 2000)), `kept[${k}]`).toBe(true));
      expect((await one).equals(payload(50, 2000))).toBe(true);
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it.skipIf(skip)('a store closed while reads are in flight rejects them with ERR_CLOSED' + (skip ? ` (skipped: ${os.tmpdir()} refuses O_DIRECT)` : ''), async () => {
    const fx = storeFixture();
    try {
      let store = open(fx);
      const handles = Array.from({ length: 200 }, (_, i) => store.put(payload(i, 3000)));
      store.close();
      store = open(fx);
      const busy = busyPool();
      const single = Promise.allSettled(handles.slice(0, 20).map((h) => store.getAsync(h)));
      const many = rejectionCode(store.getMany(handles));
      store.close();
      for (const r of await single) expect(r).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.CLOSED } });
      expect(await many).toBe(ErrorCode.CLOSED);
      expect(await rejectionCode(store.getAsync(handles[0]!))).toBe(ErrorCode.CLOSED);
      expect(await rejectionCode(store.getMany(handles))).toBe(ErrorCode.CLOSED);
      expect(codeOf(() => store.getInto(handles[0]!, Buffer.alloc(10)))).toBe(ErrorCode.CLOSED);
      await busy;
    } finally {
      fx.cleanup();
    }
  });
});

describe('empty objects', () => {
  it('an empty object reads back from memory and from the device, whatever kind of empty array it was put from', async () => {
    const fx = storeFixture();
    try {
      let store = fx.open();
      // A Uint8Array over a zero-length ArrayBuffer has no data pointer: Node's zlib.crc32 of it
      // returns 0 instead of continuing the crc it is given (found by bench/crc32.bench.ts).
      const empties = [new Uint8Array(0), Buffer.alloc(0), new Uint8Array(new ArrayBuffer(0)), Buffer.from(new ArrayBuffer(0)), Buffer.alloc(10).subarray(4, 4)];
      const handles = empties.map((e) => store.put(e));
      for (const h of handles) expect(store.get(h).length).toBe(0);
      store.close();
      store = fx.open();
      for (const h of handles) {
        expect(store.get(h).length).toBe(0);
        expect(store.getInto(h, Buffer.alloc(0))).toBe(0);
        expect((await store.getAsync(h)).length).toBe(0);
      }
      expect((await store.getMany(handles)).map((b) => b.length)).toEqual(empties.map(() => 0));
      store.close();
    } finally {
      fx.cleanup();
    }
  });
});

describe('read errors, as get gives them', () => {
  it('stale, forged and malformed handles: the same code from get, getInto, getAsync and getMany (which rejects, never throws)', async () => {
    const fx = storeFixture();
    try {
      const store = fx.open();
      const live = Array.from({ length: 5 }, (_, i) => store.put(payload(i, 50)));
      const freed = store.put(payload(9, 50));
      store.free(freed);
      const cases: [unknown, string][] = [
        [freed, ErrorCode.STALE_HANDLE],
        [packHandle({ slabId: 4000, generation: 0, slot: 0, sizeClass: 0 }), ErrorCode.INVALID_HANDLE],
        [live[0]! ^ 0b11n, ErrorCode.INVALID_HANDLE], // version bits
        [live[0]! + (1n << 18n), ErrorCode.STALE_HANDLE], // another generation
        [live[0]! + (1n << 2n), ErrorCode.INVALID_HANDLE], // another class
        [live[0]! + (200n << 10n), ErrorCode.INVALID_HANDLE], // a slot never handed out
        [-1n, ErrorCode.INVALID_HANDLE],
        [1n << 64n, ErrorCode.INVALID_HANDLE],
        [12, ErrorCode.INVALID_HANDLE],
        ['0x1', ErrorCode.INVALID_HANDLE],
        [undefined, ErrorCode.INVALID_HANDLE],
      ];
      for (const [handle, code] of cases) {
        const h = handle as bigint;
        expect(codeOf(() => store.get(h)), `get(${String(handle)})`).toBe(code);
        expect(codeOf(() => store.getInto(h, Buffer.alloc(100))), `getInto(${String(handle)})`).toBe(code);
        let thrown = false;
        let p: Promise<unknown> | undefined;
        try {
          p = store.getAsync(h);
        } catch {
          thrown = true;
        }
        expect(thrown, 'getAsync never throws').toBe(false);
        expect(await rejectionCode(p!), `getAsync(${String(handle)})`).toBe(code);
        try {
          p = store.getMany([...live.slice(0, 2), h, ...live.slice(2)]);
        } catch {
          thrown = true;
        }
        expect(thrown, 'getMany never throws').toBe(false);
        let caught: unknown;
        try {
          await p;
        } catch (err) {
          caught = err;
        }
        expect(caught, `getMany with ${String(handle)}`).toMatchObject({ code });
        expect((caught as Error).message).toMatch(/^getMany: handles\[2\]: /);
      }
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it('getInto: a target too small is ERR_INVALID_ARGUMENT naming the length, and nothing is written; a target that is not bytes, too', () => {
    const fx = storeFixture();
    try {
      let store = fx.open();
      const h = store.put(payload(1, 1000));
      const check = () => {
        const small = Buffer.alloc(999, 0xee);
        let caught: unknown;
        try {
          store.getInto(h, small);
        } catch (err) {
          caught = err;
        }
        expect(caught).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
        expect((caught as Error).message).toMatch(/target holds 999 bytes; the object has 1000/);
        expect(small.every((b) => b === 0xee)).toBe(true);
        for (const bad of [null, 'text', [1, 2, 3], new Uint16Array(1000), new ArrayBuffer(1000)]) {
          expect(codeOf(() => store.getInto(h, bad as unknown as Uint8Array)), String(bad)).toBe(ErrorCode.INVALID_ARGUMENT);
        }
      };
      check(); // from memory
      store.close();
      store = fx.open();
      check(); // from the device
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it('getMany options: queueDepth an integer in [1, MAX_QUEUE_DEPTH], handles an array; else a rejection, ERR_INVALID_ARGUMENT', async () => {
    const fx = storeFixture();
    try {
      const store = fx.open();
      const h = store.put(payload(1, 10));
      for (const queueDepth of [0, -1, 1.5, NaN, MAX_QUEUE_DEPTH + 1, '4']) {
        expect(await rejectionCode(store.getMany([h], { queueDepth: queueDepth as number })), `queueDepth ${String(queueDepth)}`).toBe(ErrorCode.INVALID_ARGUMENT);
      }
      expect(await rejectionCode(store.getMany([h], null as unknown as GetManyOptions))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await rejectionCode(store.getMany(h as unknown as bigint[]))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect((await store.getMany([h], { queueDepth: MAX_QUEUE_DEPTH }))[0]!.equals(payload(1, 10))).toBe(true);
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it('getAsync and getMany work on a device without readAsync (a ZonedDevice of the caller\'s), through read', async () => {
    const fx = storeFixture();
    try {
      let store = fx.open();
      const handles = Array.from({ length: 50 }, (_, i) => store.put(payload(i, 700)));
      store.close();
      store = fx.open({ device: wrapDevice(openZonedDeviceFor(fx, false), null) });
      expect(store.device.readAsync).toBeUndefined();
      (await store.getMany(handles)).forEach((b, i) => expect(b.equals(payload(i, 700))).toBe(true));
      expect((await store.getAsync(handles[7]!)).equals(payload(7, 700))).toBe(true);
      store.close();
    } finally {
      fx.cleanup();
    }
  });

  it('reads from memory do not touch the device; gets are counted', async () => {
    const fx = storeFixture();
    try {
      const store = fx.open({ device: wrapDevice(openZonedDeviceFor(fx, false, true)) });
      const stats = (store.device as unknown as { stats: { reads: number } }).stats;
      const handles = Array.from({ length: 20 }, (_, i) => store.put(payload(i, 300)));
      const before = store.statsGlobal().counters.gets;
      (await store.getMany(handles)).forEach((b, i) => expect(b.equals(payload(i, 300))).toBe(true));
      expect((await store.getAsync(handles[3]!)).equals(payload(3, 300))).toBe(true);
      store.getInto(handles[4]!, Buffer.alloc(300));
      store.get(handles[5]!);
      expect(stats.reads).toBe(0);
      expect(store.statsGlobal().counters.gets - before).toBe(handles.length + 3);
      store.close();
    } finally {
      fx.cleanup();
    }
  });
});
