/**
 * Background writes: the worker-thread write queue (zns/writeQueue.ts) and the emulated
 * device's writeStart / writesEnded / writesWait on top of it, on real files.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { ZoneCondition } from '../../zns/device.js';
import { createEmulatedDevice, type EmulatedZonedDevice } from '../../zns/emulated.js';
import { WriteQueue, sharedBuffer } from '../../zns/writeQueue.js';
import { tempDir } from '../helpers/tmp.js';

const BLOCK = 4096;

function filled(bytes: number, value: number): Buffer {
  return sharedBuffer(bytes).fill(value);
}

describe('WriteQueue', () => {
  let tmp: { dir: string; cleanup: () => void };
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('writes each buffer at its position, in order per lane, and reports every end once', () => {
    const q = new WriteQueue();
    const fd = fs.openSync(path.join(tmp.dir, 'f'), 'w+');
    try {
      const tickets: number[] = [];
      for (let i = 0; i < 40; i++) tickets.push(q.start(fd, filled(BLOCK, i), i * BLOCK, 0));
      q.wait();
      const ends = q.ended();
      expect(ends.map((e) => e.ticket)).toEqual(tickets);
      for (const e of ends) expect(e).toMatchObject({ written: BLOCK, errno: 0, code: '' });
      expect(q.ended()).toEqual([]);
      expect(q.inFlight).toBe(0);
      const back = fs.readFileSync(path.join(tmp.dir, 'f'));
      for (let i = 0; i < 40; i++) expect(back[i * BLOCK]).toBe(i);
    } finally {
      q.close();
      fs.closeSync(fd);
    }
  });

  it('reports a failed write with its errno name, not a throw', () => {
    const q = new WriteQueue();
    fs.writeFileSync(path.join(tmp.dir, 'ro'), '');
    const fd = fs.openSync(path.join(tmp.dir, 'ro'), 'r'); // read-only: the worker's pwrite gets EBADF
    try {
      q.start(fd, filled(BLOCK, 1), 0, 0);
      q.wait();
      const [end] = q.ended();
      expect(end!.errno).toBeLessThan(0);
      expect(end!.code).toBe('EBADF');
      expect(end!.written).toBe(0);
    } finally {
      q.close();
      fs.closeSync(fd);
    }
  });

  it('waitAsync resolves once the writes in flight end, without blocking the event loop', async () => {
    const q = new WriteQueue();
    const fd = fs.openSync(path.join(tmp.dir, 'f'), 'w+');
    try {
      for (let i = 0; i < 8; i++) q.start(fd, filled(256 * 1024, i), i * 256 * 1024, i);
      let ticked = false;
      setImmediate(() => (ticked = true));
      await q.waitAsync();
      expect(q.ended()).toHaveLength(8);
      await new Promise((r) => setImmediate(r));
      expect(ticked).toBe(true);
    } finally {
      q.close();
      fs.closeSync(fd);
    }
  });

  it('refuses bytes that are not shared memory (the worker could not see them)', () => {
    const q = new WriteQueue();
    try {
      expect(() => q.start(0, Buffer.alloc(BLOCK), 0, 0)).toThrow(/shared/);
    } finally {
      q.close();
    }
  });

  it("leaves the process's stdout blocking: fs.writeSync(1) to a slow pipe does not fail with EAGAIN", () => {
    const script = `
      import fs from 'node:fs';
      import { WriteQueue, sharedBuffer } from ${JSON.stringify(path.resolve('dist/zns/writeQueue.js'))};
      const q = new WriteQueue();
      const fd = fs.openSync(${JSON.stringify(path.join(tmp.dir, 'child'))}, 'w+');
      q.start(fd, sharedBuffer(4096), 0, 0); q.wait(); q.ended();
      const line = 'x'.repeat(1000) + '\\n';
      for (let i = 0; i < 4000; i++) fs.writeSync(1, line);
      q.close();
    `;
    // The reader sleeps before reading, so the pipe fills and a non-blocking stdout would say EAGAIN.
    const r = spawnSync('bash', ['-c', `node --input-type=module -e "$0" | (sleep 0.5; wc -c)`, script], { encoding: 'utf8' });
    expect(r.stderr).not.toMatch(/EAGAIN/);
    expect(r.stdout.trim()).toBe(String(4000 * 1001));
  });

  it('a store written in the background and flushed, but never closed, lets the process exit (found by the packaging test)', () => {
    const script = `
      import { openStore } from ${JSON.stringify(path.resolve('dist/index.js'))};
      const store = openStore(${JSON.stringify(path.join(tmp.dir, 'store'))});
      for (let i = 0; i < 40; i++) store.put(Buffer.alloc(64 * 1024, i));   // full slabs: sealed by the workers
      await store.flushAsync();     // awaited with writes in flight: the workers hold the loop open meanwhile
      for (let i = 0; i < 40; i++) store.put(Buffer.alloc(64 * 1024, i));
      store.flush();
      process.stdout.write('flushed');
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stdout).toBe('flushed');
    expect(r.signal, 'the process was still alive after 20 s').toBeNull();
    expect(r.status).toBe(0);
  });
});

describe('the emulated device in the background', () => {
  let tmp: { dir: string; cleanup: () => void };
  let dev: EmulatedZonedDevice;
  beforeEach(() => {
    tmp = tempDir();
    dev = createEmulatedDevice(path.join(tmp.dir, 'device'), { zoneCount: 8, zoneSize: 64 * BLOCK, zoneCapacity: 64 * BLOCK, logicalBlockSize: BLOCK, maxOpenZones: 4, maxActiveZones: 4 });
  });
  afterEach(() => {
    dev.close();
    tmp.cleanup();
  });

  it('opens the zone when it takes the write and moves the write pointer when it ends', () => {
    dev.writeStart(0, filled(2 * BLOCK, 7));
    const [z] = dev.reportZones(0, 1);
    expect(z!.condition).toBe(ZoneCondition.IMPLICIT_OPEN);
    const ends = dev.writesWait(0);
    expect(ends).toEqual([{ zone: 0, offset: 0, length: 2 * BLOCK, error: undefined }]);
    expect(dev.reportZones(0, 1)[0]!.writePointer).toBe(2 * BLOCK);
    expect(dev.read(0, 2 * BLOCK)[BLOCK]).toBe(7);
  });

  it('takes one write per zone at a time, and zones in parallel', () => {
    const zone = 64 * BLOCK;
    dev.writeStart(0, filled(BLOCK, 1));
    expect(() => dev.writeStart(BLOCK, filled(BLOCK, 2))).toThrow(expect.objectContaining({ code: ErrorCode.ZONE_WRITE_POINTER }));
    dev.writeStart(zone, filled(BLOCK, 3));
    dev.writeStart(2 * zone, filled(BLOCK, 4));
    const ends = dev.writesWait();
    expect(ends.map((e) => e.zone).sort()).toEqual([0, 1, 2]);
    expect(ends.every((e) => e.error === undefined)).toBe(true);
  });

  it('a zone operation and a flush wait for the write in flight first; its end is still reported', () => {
    dev.writeStart(0, filled(64 * BLOCK, 9)); // fills the zone
    dev.finishZone(0); // FULL already once the write ends: a no-op, not an error
    expect(dev.reportZones(0, 1)[0]!.condition).toBe(ZoneCondition.FULL);
    dev.writeStart(64 * BLOCK, filled(BLOCK, 1));
    dev.flush();
    const ends = dev.writesEnded();
    expect(ends.map((e) => e.zone)).toEqual([0, 1]);
  });

});

describe('WriteQueue races', () => {
  it('a write seen ended (hasEnded, as wait() looks) is reported by the next ended(), every time (found by the crash loop)', () => {
    const tmp = tempDir();
    const q = new WriteQueue();
    const fd = fs.openSync(path.join(tmp.dir, 'f'), 'w+');
    const buf = filled(BLOCK, 1);
    try {
      // The worker marks a write ended, then counts it: a wait() that returns in between must
      // still find it (ended() once skipped its scan when the count had not moved).
      for (let i = 0; i < 20_000; i++) {
        const ticket = q.start(fd, buf, 0, i);
        // Spin on the state, as wait() reads it, so the worker (not this thread) does the write
        // and this side looks right after the worker marks it ended.
        while (!q.hasEnded(ticket));
        const ends = q.ended('wait');
        if (ends.length !== 1 || ends[0]!.ticket !== ticket) throw new Error(`iteration ${i}: wait saw write ${ticket} end, ended() returned ${JSON.stringify(ends)}`);
      }
    } finally {
      q.close();
      fs.closeSync(fd);
      tmp.cleanup();
    }
  });
});
