import fs from 'node:fs';
import path from 'node:path';

/** Bytes the filesystem really allocated under `dir` (what `du` counts), not apparent sizes. */
export function diskUsage(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? diskUsage(p) : fs.statSync(p).blocks * 512;
  }
  return total;
}
