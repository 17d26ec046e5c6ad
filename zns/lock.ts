/**
 * One owner per device folder: an exclusive lock file (`device.lock`, created with O_EXCL)
 * holding the owner's pid. A lock whose process is gone (it crashed) is taken over; inside one
 * process a registry of held locks refuses a second opener at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, ZnsSlabError } from '../errors.js';

export const LOCK_FILE = 'device.lock';
const heldHere = new Set<string>();

/** The process `pid` is alive (EPERM: alive, someone else's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface FolderLock {
  release(): void;
}

/** Takes the folder's lock; ERR_DEVICE_LOCKED while another owner (here or in a live process) holds it. */
export function lockFolder(dir: string, what: string): FolderLock {
  const key = fs.realpathSync(dir);
  if (heldHere.has(key)) throw new ZnsSlabError(ErrorCode.DEVICE_LOCKED, `${what} ${dir} is already open in this process (by another store)`);
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      heldHere.add(key);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          heldHere.delete(key);
          fs.rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ZnsSlabError(ErrorCode.DEVICE_IO, `cannot lock ${what} ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    const owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
    if (Number.isSafeInteger(owner) && owner !== process.pid && processAlive(owner)) {
      throw new ZnsSlabError(ErrorCode.DEVICE_LOCKED, `${what} ${dir} is open in process ${owner} (by another store)`);
    }
    // Left by a process that died (or by this pid in an earlier life): take it over.
    fs.rmSync(file, { force: true });
  }
  throw new ZnsSlabError(ErrorCode.DEVICE_LOCKED, `${what} ${dir}: its lock changed hands while we took it`);
}
