/**
 * Read-only views of a zoned device that another process may be writing: for observers
 * (`zns-slab zones --watch`, `zns-slab serve`). They take no lock and never write: no zone
 * operation, no truncation of a torn write, no metadata change. Every `reportZones()` reads the
 * device afresh (the write pointers move under it), and `read` returns bytes the device holds
 * now. Zone operations and writes throw ERR_READ_ONLY.
 *
 * - Emulated device: `device.json` (geometry, zones finished, offline or kept open) and the zone
 *   files' lengths, read as a reopen would (whole blocks only; a partly written zone that no
 *   tool keeps open reports CLOSED: open zones are not recorded, so a head zone being written by
 *   the store reports CLOSED too). Its lock file says which process has it open.
 * - Kernel zoned device: libzbd's zone report on a descriptor opened O_RDONLY (and O_DIRECT, so
 *   reads see what the writer's direct writes put there, not a stale page cache).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { alignedBuffer, DIRECT_IO_MIN_ALIGN } from './aligned.js';
import { type DeviceGeometry, type DeviceKind, type Zone, type ZonedDevice, MIN_ZONE_COUNT, ZoneCondition, ZoneType, locateInZone } from './device.js';
import { EMULATED_FORMAT, EMULATED_FORMAT_VERSION, emulatedZoneFile, validateGeometry } from './emulated.js';
import { LOCK_FILE, processAlive } from './lock.js';
import { isBlockDevice } from './open.js';
import { ZBD_RO_ALL, ZBD_ZONE_SIZE, decodeZbdZone, errnoName, libzbd, zbdOpen } from '../native/libzbd.js';

/** Linux's O_CLOEXEC (node's fs.constants lacks it). */
const LINUX_O_CLOEXEC = 0o2000000;
const EMULATED_META_FILE = 'device.json';

export interface DeviceObserver extends ZonedDevice {
  /** The process that has the device open (its lock's pid, if alive), null when none or unknown. */
  inUseBy(): number | null;
}

function readOnly(what: string, device: string): never {
  throw new ZnsSlabError(ErrorCode.READ_ONLY, `${what}: ${device} is observed read-only`);
}

abstract class ObserverBase {
  abstract readonly path: string;
  write(): void {
    readOnly('write', this.path);
  }
  resetZone(): void {
    readOnly('zone reset', this.path);
  }
  openZone(): void {
    readOnly('zone open', this.path);
  }
  closeZone(): void {
    readOnly('zone close', this.path);
  }
  finishZone(): void {
    readOnly('zone finish', this.path);
  }
  flush(): void {
    // Nothing written, nothing to make durable.
  }
}

/** What `device.json` holds, as the emulated device writes it (zns/emulated.ts). */
interface EmulatedMetaFile {
  format: string;
  version: number;
  geometry: DeviceGeometry;
  owner?: string;
  finished?: number[];
  offline?: number[];
  open?: number[];
}

function readEmulatedMeta(dir: string): EmulatedMetaFile {
  const file = path.join(dir, EMULATED_META_FILE);
  let meta: EmulatedMetaFile;
  try {
    meta = JSON.parse(fs.readFileSync(file, 'utf8')) as EmulatedMetaFile;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ZnsSlabError(ErrorCode.INVALID_STORE, `no emulated zoned device at ${dir}`, { cause: err });
    // A rename-into-place is atomic: a parse error is a damaged file, not a write in progress.
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof meta !== 'object' || meta === null || meta.format !== EMULATED_FORMAT) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${dir} does not hold an emulated zoned device`);
  if (meta.version !== EMULATED_FORMAT_VERSION) throw new ZnsSlabError(ErrorCode.FORMAT_VERSION, `emulated device format ${meta.version} is not ${EMULATED_FORMAT_VERSION}`);
  validateGeometry(meta.geometry);
  return meta;
}

export class EmulatedDeviceObserver extends ObserverBase implements DeviceObserver {
  readonly kind: DeviceKind = 'emulated';
  readonly path: string;
  readonly geometry: DeviceGeometry;
  readonly direct = false;
  private closed = false;

  constructor(dir: string) {
    super();
    this.path = dir;
    this.geometry = Object.freeze({ ...readEmulatedMeta(dir).geometry });
  }

  reportZones(first = 0, count?: number): Zone[] {
    this.checkOpen();
    const g = this.geometry;
    const meta = readEmulatedMeta(this.path);
    const finished = new Set(meta.finished ?? []);
    const offline = new Set(meta.offline ?? []);
    const kept = new Set(meta.open ?? []);
    const end = count === undefined ? g.zoneCount : Math.min(g.zoneCount, first + count);
    const zones: Zone[] = [];
    for (let z = first; z < end; z++) {
      let fileBytes = 0;
      try {
        fileBytes = fs.statSync(emulatedZoneFile(this.path, z)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ZnsSlabError(ErrorCode.DEVICE_IO, `reading the size of zone ${z}'s file: ${(err as Error).message}`, { cause: err });
      }
      // Whole blocks only: a write landing now, or a torn one, counts as a reopen would count it.
      const written = Math.min(fileBytes - (fileBytes % g.logicalBlockSize), g.zoneCapacity);
      let condition: ZoneCondition;
      if (offline.has(z)) condition = ZoneCondition.OFFLINE;
      else if (finished.has(z) || written === g.zoneCapacity) condition = ZoneCondition.FULL;
      else if (kept.has(z)) condition = ZoneCondition.EXPLICIT_OPEN;
      else if (written === 0) condition = ZoneCondition.EMPTY;
      else condition = ZoneCondition.CLOSED;
      const start = z * g.zoneSize;
      zones.push({
        index: z,
        start,
        size: g.zoneSize,
        capacity: g.zoneCapacity,
        writePointer: condition === ZoneCondition.FULL ? start + g.zoneSize : start + written,
        type: ZoneType.SEQUENTIAL_WRITE_REQUIRED,
        condition,
      });
    }
    return zones;
  }

  read(offset: number, length: number): Buffer {
    this.checkOpen();
    const { zone, within } = locateInZone(this.geometry, offset, length, 'read');
    let fd: number;
    try {
      fd = fs.openSync(emulatedZoneFile(this.path, zone), fs.constants.O_RDONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ZnsSlabError(ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER, `read in zone ${zone}, which is empty now`);
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `opening zone ${zone}'s file: ${(err as Error).message}`, { cause: err });
    }
    try {
      const out = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, within + done);
        if (n === 0) break;
        done += n;
      }
      if (done < length) throw new ZnsSlabError(ErrorCode.ZONE_READ_BEYOND_WRITE_POINTER, `read [${offset}, ${offset + length}) in zone ${zone} passes what it holds now`);
      return out;
    } finally {
      fs.closeSync(fd);
    }
  }

  inUseBy(): number | null {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.path, LOCK_FILE), 'utf8');
    } catch {
      return null;
    }
    const pid = Number.parseInt(text, 10);
    return Number.isSafeInteger(pid) && pid > 0 && processAlive(pid) ? pid : null;
  }

  close(): void {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `observer of ${this.path} is closed`);
  }
}

export class KernelDeviceObserver extends ObserverBase implements DeviceObserver {
  readonly kind: DeviceKind = 'libzbd';
  readonly path: string;
  readonly geometry: DeviceGeometry;
  readonly direct = true;
  private readonly fd: number;
  private readonly zoneSize: number;
  private readonly align: number;
  private closed = false;

  constructor(devicePath: string) {
    super();
    this.path = devicePath;
    const { fd, info } = zbdOpen(devicePath, fs.constants.O_RDONLY | fs.constants.O_DIRECT | LINUX_O_CLOEXEC);
    this.fd = fd;
    try {
      this.zoneSize = info.zoneSize;
      this.align = Math.max(info.logicalBlockSize, DIRECT_IO_MIN_ALIGN);
      const zoneCount = Math.min(info.nrZones, Math.floor((info.nrSectors * 512) / info.zoneSize));
      if (zoneCount < MIN_ZONE_COUNT) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${devicePath} has ${zoneCount} zones; at least ${MIN_ZONE_COUNT} are needed`);
      const first = this.raw(0, zoneCount).find((z) => z.type !== ZoneType.CONVENTIONAL);
      if (first === undefined) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `${devicePath} has no sequential zones`);
      this.geometry = Object.freeze({
        zoneCount,
        zoneSize: info.zoneSize,
        zoneCapacity: first.capacity,
        logicalBlockSize: info.logicalBlockSize,
        maxOpenZones: Math.min(info.maxOpenZones, zoneCount),
        maxActiveZones: Math.min(info.maxActiveZones, zoneCount),
      });
    } catch (err) {
      libzbd().zbd_close(fd);
      throw err;
    }
  }

  private raw(first: number, count: number): ReturnType<typeof decodeZbdZone>[] {
    const buf = Buffer.alloc(count * ZBD_ZONE_SIZE);
    const nr = Buffer.alloc(4);
    nr.writeUInt32LE(count, 0);
    const lib = libzbd();
    const rc = lib.zbd_report_zones(this.fd, first * this.zoneSize, count * this.zoneSize, ZBD_RO_ALL, buf, nr);
    if (rc !== 0) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `zone report of ${this.path} failed: ${errnoName(rc < 0 ? -rc : lib.errno())}`);
    const out = [];
    for (let i = 0; i < nr.readUInt32LE(0); i++) out.push(decodeZbdZone(buf, i));
    return out;
  }

  reportZones(first = 0, count?: number): Zone[] {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `observer of ${this.path} is closed`);
    const g = this.geometry;
    const n = count === undefined ? g.zoneCount - first : Math.min(g.zoneCount - first, count);
    return this.raw(first, n).map((z, i) => {
      const condition = z.cond as ZoneCondition;
      const start = (first + i) * g.zoneSize;
      return {
        index: first + i,
        start,
        size: g.zoneSize,
        capacity: z.type === ZoneType.CONVENTIONAL ? g.zoneSize : z.capacity,
        writePointer: condition === ZoneCondition.FULL ? start + g.zoneSize : condition === ZoneCondition.NOT_WRITE_POINTER ? start + z.len : z.wp,
        type: z.type as ZoneType,
        condition,
      };
    });
  }

  read(offset: number, length: number): Buffer {
    if (this.closed) throw new ZnsSlabError(ErrorCode.CLOSED, `observer of ${this.path} is closed`);
    locateInZone(this.geometry, offset, length, 'read');
    const from = offset - (offset % this.align);
    const to = Math.ceil((offset + length) / this.align) * this.align;
    const buf = alignedBuffer(to - from, this.align);
    let n: number;
    try {
      n = fs.readSync(this.fd, buf, 0, to - from, from);
    } catch (err) {
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `read of ${this.path} at ${offset}: ${(err as Error).message}`, { cause: err });
    }
    if (n < offset + length - from) throw new ZnsSlabError(ErrorCode.DEVICE_IO, `short read of ${this.path} at ${offset}`);
    return Buffer.from(buf.subarray(offset - from, offset - from + length));
  }

  /** A kernel device records no owner process (a store holds it with O_EXCL). */
  inUseBy(): number | null {
    return null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libzbd().zbd_close(this.fd);
  }
}

/** A read-only view of the device at `target`: a zoned block device node, or an emulated device folder. */
export function observeZonedDevice(target: string): DeviceObserver {
  if (isBlockDevice(target)) return new KernelDeviceObserver(target);
  return new EmulatedDeviceObserver(target);
}
