/** The zone files of a store's emulated device: what the qd-read floors read, the same files the store read. */
import fs from 'node:fs';
import path from 'node:path';

export interface ZoneFile {
  file: string;
  bytes: number;
}

/** Zone files under `<storeDir>/device` that hold at least `minBytes`. */
export function zoneFiles(storeDir: string, minBytes: number): ZoneFile[] {
  const dev = path.join(storeDir, 'device');
  return fs
    .readdirSync(dev)
    .filter((n) => /^zone-\d+\.bin$/.test(n))
    .sort()
    .map((n) => ({ file: path.join(dev, n), bytes: fs.statSync(path.join(dev, n)).size }))
    .filter((z) => z.bytes >= minBytes);
}
