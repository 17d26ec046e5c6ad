/** A store kept busy by another process (test/fixtures/liveWriter.mjs), for the observer tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
  stop(): Promise<{ live: [string, number, number][]; puts: number; ticks: number }>;
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
