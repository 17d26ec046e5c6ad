import fs from 'node:fs';
import path from 'node:path';

/**
 * Bytes the filesystem really allocated under `dir` (what `du` counts), not apparent sizes. A
 * file removed between the listing and its stat (another process compacting, as LevelDB does
 * in the background) counts as gone.
 */
export function diskUsage(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    try {
      total += entry.isDirectory() ? diskUsage(p) : fs.statSync(p).blocks * 512;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return total;
}
