/**
 * A full filesystem under the store (Trust II, case 5), on a real small tmpfs: the first
 * failure is ERR_DISK_FULL, reads go on, and closing an epoch gives space back in the same
 * process (the catalog's reserve lets that commit through), after which writes resume and
 * nothing acknowledged is lost. Needs root to mount; elsewhere it is skipped and says why.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import { payloadFor } from '../../sim/rng.js';
import { tempDir } from '../helpers/tmp.js';

const FS_BYTES = 24 * 1024 * 1024;
let tmp: ReturnType<typeof tempDir>;
let mnt = '';
let why = '';

function tryMount(): void {
  tmp = tempDir();
  mnt = path.join(tmp.dir, 'small');
  fs.mkdirSync(mnt);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'tmpfs', mnt], { encoding: 'utf8' });
  if (r.status !== 0) why = `cannot mount a ${FS_BYTES}-byte tmpfs here (${(r.stderr || r.error?.message || '').trim()}): needs root`;
}
tryMount();
if (why) process.stderr.write(`diskfull.test.ts skipped: ${why}\n`);

afterAll(() => {
  if (!why) execFileSync('umount', ['-l', mnt]);
  tmp.cleanup();
});

describe.skipIf(why !== '')('a full filesystem', () => {
  beforeAll(() => {
    expect(fs.statfsSync(mnt).blocks * fs.statfsSync(mnt).bsize).toBeLessThanOrEqual(FS_BYTES);
  });

  it('ERR_DISK_FULL, reads go on, epochClose gives space back, writes resume, nothing acknowledged is lost', () => {
    const dir = path.join(mnt, 'store');
    // A device larger than the filesystem: the filesystem fills first.
    const geometry = { zoneCount: 64, zoneSize: 1 << 20, zoneCapacity: 1 << 20, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
    let store = openStore(dir, { geometry });
    const acknowledged = new Map<bigint, Buffer>();
    const pending: [bigint, Buffer][] = [];
    const epochs = [store.epochCurrent()];
    let failure: ZnsSlabError | undefined;
    for (let i = 0; failure === undefined && i < 100_000; i++) {
      try {
        const bytes = payloadFor(i, 2000 + (i % 1500));
        pending.push([store.put(bytes), bytes]);
        if (i % 500 === 499) {
          store.flush();
          for (const [h, b] of pending.splice(0)) acknowledged.set(h, b);
          epochs.push(store.epochAdvance());
        }
      } catch (err) {
        failure = err as ZnsSlabError;
      }
    }
    expect(failure).toBeInstanceOf(ZnsSlabError);
    expect(failure!.code).toBe(ErrorCode.DISK_FULL);
    expect(acknowledged.size).toBeGreaterThan(1000);
    // Reads go on.
    for (const [h, b] of acknowledged) expect(store.get(h).equals(b)).toBe(true);
    // Another program takes every byte left: the catalog has only its reserve.
    const filler = fs.openSync(path.join(mnt, 'filler'), 'w');
    try {
      const chunk = Buffer.alloc(64 * 1024);
      for (;;) fs.writeSync(filler, chunk);
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(filler);
    }
    expect(fs.statfsSync(mnt).bfree).toBe(0);
    // Closing the oldest epoch gives space back in this process.
    const before = fs.statfsSync(mnt).bfree;
    const oldest = epochs.shift()!;
    const doomed = [...acknowledged.keys()].slice(0, 500);
    store.epochClose(oldest);
    for (const h of doomed) acknowledged.delete(h);
    expect(fs.statfsSync(mnt).bfree).toBeGreaterThan(before);
    // Writes resume; what was pending when the disk filled is written too.
    for (const [h, b] of pending.splice(0)) acknowledged.set(h, b);
    for (let i = 0; i < 300; i++) {
      const bytes = payloadFor(500_000 + i, 1000);
      acknowledged.set(store.put(bytes), bytes);
    }
    store.flush();
    store.close();
    store = openStore(dir);
    let lost = 0;
    for (const [h, b] of acknowledged) {
      try {
        if (!store.get(h).equals(b)) lost++;
      } catch {
        lost++;
      }
    }
    expect(lost).toBe(0);
    store.verify();
    store.close();
  });
});
