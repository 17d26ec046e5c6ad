/**
 * The bulk-64k write floors from coreutils dd, run by the parent: the same bytes as the load
 * (bs = the value size, count = the values), from /dev/zero, ending with an fsync (conv=fsync):
 * with oflag=direct (O_DIRECT, no page cache) and without (buffered).
 */
import { spawnSync } from 'node:child_process';
import { r3 } from '../../lib/stats.js';
import type { FloorName } from '../config.js';
import type { RunResult } from '../result.js';

/** dd's version line, or undefined when there is no dd. */
export function ddVersion(): string | undefined {
  const r = spawnSync('dd', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined;
}

export function ddWrite(unit: Extract<FloorName, 'dd-direct' | 'dd-buffered'>, file: string, blockBytes: number, count: number): RunResult {
  const direct = unit === 'dd-direct';
  const args = ['if=/dev/zero', `of=${file}`, `bs=${blockBytes}`, `count=${count}`, 'conv=fsync', ...(direct ? ['oflag=direct'] : [])];
  const t0 = performance.now();
  const r = spawnSync('dd', args, { encoding: 'utf8' });
  const wallMs = performance.now() - t0;
  const base = { workload: 'bulk-64k' as const, unit, wallMs: r3(wallMs), detail: { command: `dd ${args.join(' ')}` } };
  if (r.error) return { ...base, status: 'missing', note: `dd: ${r.error.message}`, metrics: {} };
  // "327680000 bytes (328 MB, 312 MiB) copied, 0.527371 s, 621 MB/s": dd's own time includes the fsync.
  const m = /(\d+) bytes .*copied, ([\d.e+-]+) s/.exec(r.stderr);
  if (r.status !== 0 || !m) return { ...base, status: 'error', note: `dd exited ${r.status}: ${r.stderr.trim().slice(0, 300)}`, metrics: {} };
  const bytes = Number(m[1]);
  const seconds = Number(m[2]);
  return {
    ...base,
    status: 'ok',
    metrics: { MBps: r3(bytes / 1e6 / seconds), opsPerSec: Math.round(count / seconds), seconds: r3(seconds), payloadMB: r3(bytes / 1e6) },
  };
}
