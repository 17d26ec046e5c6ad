/**
 * What the benchmarks ask of the process and the machine: progress lines, a forced GC, the
 * process's I/O counters, the filesystem under a folder, a package's installed version.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { r3 } from './stats.js';

/** A progress or report line on stderr (stdout carries the JSON). */
export function say(line: string): void {
  process.stderr.write(line + '\n');
}

/** Two full GCs when the process runs with --expose-gc; false when it does not. */
export function gc(): boolean {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) return false;
  g();
  g();
  return true;
}

/** /proc/self/io: wchar (bytes passed to write calls, tmpfs included) and write_bytes (sent to a block device). */
export function procIo(): { wchar: number; writeBytes: number } | undefined {
  try {
    const text = fs.readFileSync('/proc/self/io', 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { wchar: field('wchar'), writeBytes: field('write_bytes') };
  } catch {
    return undefined;
  }
}

/** The filesystem type and mount point under `dir` ("ext4 (/)"), from /proc/mounts. */
export function fsType(dir: string): string {
  try {
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
    let best: string[] | undefined;
    for (const m of mounts) if (m[1] && (dir === m[1] || dir.startsWith(m[1].endsWith('/') ? m[1] : m[1] + '/')) && (!best || m[1].length > best[1]!.length)) best = m;
    return best ? `${best[2]} (${best[1]})` : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** An error as one line, with its code when it has one. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ? `${(err as { code?: string }).code}: ` : ''}${err.message}`;
  return String(err);
}

/** The median cost of an empty performance.now() pair, in ns (what every timed sample carries). */
export function timerOverheadNs(): number {
  const n = 200_000;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    d[i] = performance.now() - a;
  }
  d.sort();
  return r3(d[n >> 1]! * 1e6);
}

/** The version in an installed package's own package.json (undefined when it is not installed). */
export function packageVersion(name: string): string | undefined {
  try {
    let dir = path.dirname(createRequire(import.meta.url).resolve(name));
    for (;;) {
      const file = path.join(dir, 'package.json');
      if (fs.existsSync(file)) {
        const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version;
      }
      const up = path.dirname(dir);
      if (up === dir) return undefined;
      dir = up;
    }
  } catch {
    return undefined;
  }
}
