/**
 * The index checkpoint (`index.ckpt`): the index's typed arrays as they were after a flush, so
 * a reopen loads them instead of reading every entry. It is only a head start: open checks
 * every entry against the store's live objects and reads the ones it lacks (cache/cache.ts),
 * so a stale or missing checkpoint costs time, never correctness.
 *
 *   0  8 bytes  CHECKPOINT_MAGIC
 *   8  u32      format version
 *   12 u32      capacity (slots)
 *   16 16 bytes store id
 *   32 f64      next sequence number
 *   40 u32      crc32 of the body
 *   44 u32      reserved
 *   48          body: the table (tag, handle hi, handle lo: u32 x 3 x capacity), access bits (capacity/8 bytes)
 *
 * Written to a temporary file, fsynced, renamed over the old one, and the folder fsynced.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fsError } from '../zns/emulated.js';
import { KeyIndex } from './keyIndex.js';

export const CHECKPOINT_FILE = 'index.ckpt';
const CHECKPOINT_MAGIC = Buffer.from('ZSCACHE1', 'latin1');
const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 48;

export interface Checkpoint {
  index: KeyIndex;
  nextSequence: number;
}

function bytesOf(a: Uint32Array | Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function writeCheckpoint(dir: string, index: KeyIndex, storeId: string, nextSequence: number): number {
  const { table, accessed } = index.arrays();
  const body = [bytesOf(table), bytesOf(accessed)];
  let crc = 0;
  for (const b of body) crc = zlib.crc32(b, crc);
  const header = Buffer.alloc(HEADER_BYTES);
  CHECKPOINT_MAGIC.copy(header, 0);
  header.writeUInt32LE(CHECKPOINT_VERSION, 8);
  header.writeUInt32LE(table.length / 3, 12);
  Buffer.from(storeId, 'hex').copy(header, 16);
  header.writeDoubleLE(nextSequence, 32);
  header.writeUInt32LE(crc, 40);
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${file}.tmp`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    fs.writevSync(fd, [header, ...body]);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    syncDir(dir);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    throw fsError(err, `writing the index checkpoint ${file}`);
  }
  return HEADER_BYTES + body.reduce((n, b) => n + b.length, 0);
}

/** The checkpoint of the store `storeId`, or undefined when there is none or it does not check out. */
export function readCheckpoint(dir: string, storeId: string): Checkpoint | undefined {
  const file = path.join(dir, CHECKPOINT_FILE);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(err, `reading the index checkpoint ${file}`);
  }
  if (buf.length < HEADER_BYTES || !buf.subarray(0, 8).equals(CHECKPOINT_MAGIC) || buf.readUInt32LE(8) !== CHECKPOINT_VERSION) return undefined;
  if (buf.subarray(16, 32).toString('hex') !== storeId) return undefined;
  const capacity = buf.readUInt32LE(12);
  const bitBytes = Math.ceil(capacity / 8);
  if (buf.length !== HEADER_BYTES + capacity * 12 + bitBytes) return undefined;
  if (zlib.crc32(buf.subarray(HEADER_BYTES)) !== buf.readUInt32LE(40)) return undefined;
  // Copies into fresh aligned arrays (the file buffer's offset need not be 4-aligned).
  const tableEnd = HEADER_BYTES + capacity * 12;
  const table = new Uint32Array(new Uint8Array(buf.subarray(HEADER_BYTES, tableEnd)).buffer);
  const accessed = new Uint8Array(buf.subarray(tableEnd, tableEnd + bitBytes));
  try {
    return { index: KeyIndex.fromArrays(table, accessed), nextSequence: buf.readDoubleLE(32) };
  } catch {
    return undefined;
  }
}

export function removeCheckpoint(dir: string): void {
  fs.rmSync(path.join(dir, CHECKPOINT_FILE), { force: true });
}

export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
