/**
 * engine/observe.ts: snapshots of a store another process is writing, with no lock and no write.
 * The writer is a real child process (test/fixtures/liveWriter.mjs) on the emulated device.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Observation, Observer, observe } from '../../engine/observe.js';
import { openStore } from '../../engine/store.js';
import { createEmulatedDevice, emulatedZoneFile } from '../../zns/emulated.js';
import { payload } from '../fixtures/payload.mjs';
import { LIVE_GEOMETRY, type LiveWriter, observeSnapshots, startLiveWriter } from '../helpers/liveWriter.js';
import { SMALL_GEOMETRY, codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

/** Snapshots taken while the writer runs, and the pause between two (ms). */
const SNAPSHOTS = 12;
const PAUSE_MS = 80;
/** How long the fast writer is observed (ms). */
const FAST_WRITER_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Every file under `dir` with its size and modification time. */
function listing(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const p = path.join(entry.parentPath, entry.name);
    const s = fs.statSync(p);
    out.set(path.relative(dir, p), `${s.size}@${s.mtimeMs}`);
  }
  return out;
}

function checkZones(obs: Observation): void {
  for (const z of obs.zones) {
    const written = z.condition === 'full' ? z.capacity : z.writePointer - z.start;
    const parts = z.liveBytes + z.deadBytes + z.unflushedBytes;
    expect(z.unflushedBytes).toBeGreaterThanOrEqual(0);
    if (z.epoch === null) {
      // Free, let go and waiting for its reset, or taken since the commit (then all unflushed).
      expect([z.liveBytes, z.deadBytes], `zone ${z.index}`).toEqual([0, 0]);
      expect(z.unflushedBytes).toBeLessThanOrEqual(written);
    } else if (z.condition !== 'full') {
      // Every written byte is live, dead (as of the commit) or written since (unflushed).
      expect(parts, `zone ${z.index}`).toBe(written);
    } else expect(parts, `zone ${z.index}`).toBeLessThanOrEqual(z.capacity);
  }
}

describe('Observer', () => {
  it('snapshots a store another process is writing (no lock, no write), and the writer never notices', async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const dir = path.join(tmp.dir, 'store');
    const writer: LiveWriter = await startLiveWriter(dir);
    cleanups.push(() => writer.child.kill('SIGKILL'));
    // The store is locked: the read-only open the other tools use is refused.
    expect(codeOf(() => openStore(dir, { readOnly: true }))).toBe('ERR_STORE_LOCKED');

    const snapshots = await observeSnapshots(dir, writer, SNAPSHOTS, PAUSE_MS);
    for (const s of snapshots) {
      expect(s.kind).toBe('store');
      expect(s.device.inUseBy).toBe(writer.pid);
      expect(s.zones).toHaveLength(LIVE_GEOMETRY.zoneCount);
      expect(s.stats!.epochs.length).toBeGreaterThan(0);
      checkZones(s);
    }
    const commits = snapshots.map((s) => s.catalog!.commitSequence);
    for (let k = 1; k < commits.length; k++) expect(commits[k]).toBeGreaterThanOrEqual(commits[k - 1]!);
    expect(commits.at(-1)!).toBeGreaterThan(commits[0]!);
    expect(snapshots.at(-1)!.stats!.counters.puts).toBeGreaterThan(snapshots[0]!.stats!.counters.puts);
    // Write pointers moved between snapshots, and the rates saw it.
    expect(snapshots.slice(1).some((s) => s.zones.some((z) => z.moved))).toBe(true);
    expect(snapshots.slice(1).some((s) => s.rates!.deviceBytesPerSecond > 0 && (s.rates!.putsPerSecond ?? 0) > 0)).toBe(true);
    expect(snapshots[0]!.rates).toBeNull();
    // Nothing of the observer's in the store: SQLite never opened the live catalog (no -shm).
    expect(fs.existsSync(path.join(dir, 'catalog.db-shm'))).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'device')).filter((f) => !/^zone-\d+\.bin$|^device\.json$|^device\.lock$/.test(f))).toEqual([]);

    const ticksBefore = writer.ticks();
    await writer.moreTicks(3); // still writing after all that looking
    const { live } = await writer.stop();
    expect(writer.ticks()).toBeGreaterThan(ticksBefore);
    expect(live.length).toBeGreaterThan(100);

    // Idle now: a snapshot changes nothing, and says what the store itself says.
    const before = listing(dir);
    const idle = observe(dir);
    expect(listing(dir)).toEqual(before);
    expect(idle.device.inUseBy).toBeNull();
    expect(idle.totals.unflushedBytes).toBe(0);
    const store = openStore(dir, { readOnly: true });
    try {
      const strip = (g: object) => ({ ...g, takenAt: 0, store: 0, gc: 0 });
      expect(strip(idle.stats!)).toEqual(strip(store.statsGlobal()));
      expect(idle.zones.map(({ unflushedBytes, moved, ...z }) => z)).toEqual(store.statsZones());
    } finally {
      store.close();
    }
    // The writer's store opens fine (writable) and serves every object it left live.
    const again = openStore(dir);
    try {
      for (const [h, seed, i] of live) expect(again.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
      again.put(Buffer.from('after the observer'));
      again.flush();
    } finally {
      again.close();
    }
  });

  it('keeps up with a writer that commits hundreds of times and closes an epoch many times a second', async () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const dir = path.join(tmp.dir, 'store');
    // A tick every 5 ms, an epoch every 15 ticks: zones reset under the catalog copy, the log restarts.
    const writer = await startLiveWriter(dir, { tickMs: 5, perTick: 20 });
    cleanups.push(() => writer.child.kill('SIGKILL'));
    const observer = new Observer(dir);
    const seen = { snapshots: 0, resetSince: 0, moved: 0 };
    try {
      for (const until = Date.now() + FAST_WRITER_MS; Date.now() < until; ) {
        const s = observer.observe();
        checkZones(s);
        seen.snapshots++;
        if (s.notes.some((n) => n.includes('reset since the catalog copy'))) seen.resetSince++;
        if (s.zones.some((z) => z.moved)) seen.moved++;
        await sleep(10);
      }
    } finally {
      observer.close();
    }
    expect(seen.snapshots).toBeGreaterThan(10);
    expect(seen.moved).toBeGreaterThan(5);
    const { live } = await writer.stop();
    const again = openStore(dir);
    try {
      for (const [h, seed, i] of live) expect(again.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
    } finally {
      again.close();
    }
  });

  it('is refused in the process that has the store open (reading its catalog there would drop SQLite\'s locks)', () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const dir = path.join(tmp.dir, 'store');
    const store = openStore(dir, { geometry: SMALL_GEOMETRY });
    try {
      const h = store.put(Buffer.from('x'));
      store.flush();
      expect(codeOf(() => new Observer(dir))).toBe('ERR_STORE_LOCKED');
      // The store is as it was.
      store.put(Buffer.alloc(5000, 1));
      store.flush();
      expect(store.get(h).toString()).toBe('x');
    } finally {
      store.close();
    }
    expect(fs.readdirSync(tmp.dir)).toEqual(['store']);
  });

  it('reports a bare emulated device as its files say, leaving a torn write as it is', () => {
    const tmp = tempDir();
    cleanups.push(tmp.cleanup);
    const dir = path.join(tmp.dir, 'device');
    const device = createEmulatedDevice(dir, SMALL_GEOMETRY, { exclusive: true });
    device.write(0, Buffer.alloc(8192, 1));
    device.write(2 * 1024 * 1024, Buffer.alloc(1024 * 1024, 2));
    device.finishZone(3);
    // Half a block past the write pointer, as a write in flight (or torn) leaves it.
    fs.appendFileSync(emulatedZoneFile(dir, 0), Buffer.alloc(100, 3));
    const obs = observe(dir);
    expect(obs.kind).toBe('device');
    expect(obs.stats).toBeNull();
    expect(obs.device.inUseBy).toBe(process.pid);
    expect(obs.zones.slice(0, 4).map((z) => [z.condition, z.writePointer - z.start])).toEqual([
      ['closed', 8192],
      ['empty', 0],
      ['full', 1024 * 1024],
      ['full', 1024 * 1024],
    ]);
    expect(obs.totals.byCondition).toMatchObject({ empty: 29, closed: 1, full: 2 });
    // Opening the device would truncate the torn block; observing leaves it to its owner.
    expect(fs.statSync(emulatedZoneFile(dir, 0)).size).toBe(8192 + 100);
    device.close();
  });
});
