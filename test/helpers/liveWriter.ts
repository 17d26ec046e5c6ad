/** A store kept busy by another process (test/fixtures/liveWriter.mjs), for the observer tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type Observation, Observer } from '../../engine/observe.js';
import { type Store, openStore } from '../../engine/store.js';
import { payload } from '../fixtures/payload.mjs';
import type { DeviceGeometry } from '../../zns/device.js';

const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'liveWriter.mjs');
/** How long the writer may take to open the store and flush once, or to close it (ms). */
const WRITER_START_MS = 20_000;

/** A geometry with room for a few epochs of the writer's objects, and small zones that fill and reset often. */
export const LIVE_GEOMETRY: DeviceGeometry = {
  zoneCount: 64,
  zoneSize: 1024 * 1024,
  zoneCapacity: 1024 * 1024,
  logicalBlockSize: 4096,
  maxOpenZones: 6,
  maxActiveZones: 6,
};

export interface LiveWriter {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Ticks (put, free, flush) done so far. */
  ticks(): number;
  /** Resolves once `n` more ticks are done. */
  moreTicks(n: number): Promise<void>;
  /** SIGTERM: the writer flushes and closes; resolves with what it left live. */
  stop(): Promise<{ live: LiveObject[]; puts: number; ticks: number }>;
  /** stderr so far (for failure messages). */
  stderr(): string;
}

/** `storeOptions`: openStore's options instead of a geometry (a kernel device: `{ device, overwriteDevice: true }`). */
export async function startLiveWriter(dir: string, options: { geometry?: DeviceGeometry; storeOptions?: object; tickMs?: number; perTick?: number } = {}): Promise<LiveWriter> {
  const how = options.storeOptions ?? options.geometry ?? LIVE_GEOMETRY;
  const child = spawn(process.execPath, [fixture, dir, JSON.stringify(how), String(options.tickMs ?? 40), String(options.perTick ?? 30)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let ticks = 0;
  let stderr = '';
  let buffered = '';
  let onReady: ((pid: number) => void) | undefined;
  let onExit: ((x: { live: [string, number, number][]; puts: number; ticks: number }) => void) | undefined;
  const waiters: { at: number; resolve: () => void }[] = [];
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const body = JSON.parse(line.slice(2));
      if (line.startsWith('R ')) onReady?.(body.pid);
      else if (line.startsWith('T ')) {
        ticks = body.tick;
        for (const w of waiters.splice(0)) {
          if (ticks >= w.at) w.resolve();
          else waiters.push(w);
        }
      } else if (line.startsWith('X ')) onExit?.(body);
    }
  });
  const pid = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the writer did not start in ${WRITER_START_MS} ms: ${stderr}`)), WRITER_START_MS);
    onReady = (p) => {
      clearTimeout(timer);
      resolve(p);
    };
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before it was ready: ${stderr}`)));
  });
  return {
    pid,
    child,
    ticks: () => ticks,
    moreTicks: (n) => new Promise<void>((resolve) => waiters.push({ at: ticks + n, resolve })),
    stop: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the writer did not close in ${WRITER_START_MS} ms: ${stderr}`)), WRITER_START_MS);
        onExit = (x) => {
          clearTimeout(timer);
          resolve(x);
        };
        child.once('exit', (code) => {
          if (code !== 0) reject(new Error(`the writer exited with ${code}: ${stderr}`));
        });
        child.kill('SIGTERM');
      }),
    stderr: () => stderr,
  };
}

/**
 * `count` observations of the store in `dir` by one read-only Observer, `pauseMs` apart, beside
 * `writer`; the last waits for two more of its ticks (each puts and flushes), so the snapshots
 * span its writes however slow a loaded machine makes it.
 */
export async function observeSnapshots(dir: string, writer: LiveWriter, count: number, pauseMs: number): Promise<Observation[]> {
  const observer = new Observer(dir);
  const snapshots: Observation[] = [];
  try {
    for (let k = 0; k < count; k++) {
      if (k === count - 1) await writer.moreTicks(2);
      snapshots.push(observer.observe());
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  } finally {
    observer.close();
  }
  return snapshots;
}

/** An object the writer left live: its handle, and the payload's seed and index. */
export type LiveObject = [handle: string, seed: number, index: number];

/** Stops the writer after two more ticks, so that it is shown to have gone on through whatever the test did; what it left live. */
export async function stopStillWriting(writer: LiveWriter): Promise<LiveObject[]> {
  const ticks = writer.ticks();
  await writer.moreTicks(2);
  const { live } = await writer.stop();
  expect(writer.ticks()).toBeGreaterThan(ticks);
  return live;
}

/** The store in `dir` opens and serves every object in `live`, byte for byte; `then` runs on it before it closes. */
export function expectServesLive(dir: string, live: LiveObject[], then?: (store: Store) => void): void {
  expect(live.length).toBeGreaterThan(0);
  const store = openStore(dir);
  try {
    for (const [h, seed, i] of live) expect(store.get(BigInt(h)).equals(payload(seed, i))).toBe(true);
    then?.(store);
  } finally {
    store.close();
  }
}
