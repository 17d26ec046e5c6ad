/**
 * Fault injection for the simulator: a `ZonedDevice` wrapper and catalog hooks that fail or
 * crash on command, and a crash that keeps only what the device made durable.
 *
 * A crash is a `CrashSignal` thrown at the chosen device or catalog call; from then on every
 * call throws it too (the process is dead: nothing after the crash point happens). When the
 * store is let go, each zone keeps its bytes up to the last device flush, and of what came
 * after, all, none, or a prefix torn inside a block, as the crash's own random choice.
 * SQLite's own durability is real here: a commit either happened or, thrown from inside its
 * transaction, did not.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CatalogBatch, CatalogHooks } from '../catalog/catalog.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type DeviceGeometry, type WriteEnded, type Zone, type ZonedDevice, ZoneCondition } from '../zns/device.js';
import { EmulatedZonedDevice, NULL_BLK_MAX_SECTORS_BYTES, emulatedZoneFile } from '../zns/emulated.js';
import { Rng } from './rng.js';

export class CrashSignal extends Error {
  constructor(at: string) {
    super(`simulated crash at ${at}`);
    this.name = 'CrashSignal';
  }
}

export type FaultTarget = 'read' | 'write' | 'flush' | 'reset' | 'finish' | 'commit';
export type FaultKind = 'eio' | 'enospc' | 'short';

export const FAULT_TARGETS: readonly FaultTarget[] = ['read', 'write', 'flush', 'reset', 'finish', 'commit'];

interface ArmedFault {
  target: FaultTarget;
  kind: FaultKind;
  /** Calls of `target` to let through first. */
  after: number;
}

/** Calls that change durable state: where a crash can strike. */
const CRASH_POINTS: ReadonlySet<FaultTarget> = new Set(['write', 'flush', 'reset', 'finish', 'commit']);

/** Shared by the device wrapper and the catalog hooks of one simulated process. */
export class FaultController {
  private faults: ArmedFault[] = [];
  /** Mutating calls to let through before the crash; undefined: no crash armed. */
  private crashAfter: number | undefined;
  /** Only calls of this kind count towards the crash (undefined: every mutating call). */
  private crashTarget: FaultTarget | undefined;
  crashed = false;
  crashedAt = '';
  /** Faults that fired since the last `takeFired()`. */
  private fired = 0;
  /** Totals for the run's report. */
  readonly counts = { faults: 0, crashes: 0 };
  /** Off while a store opens: open must always succeed. */
  enabled = true;

  armFault(target: FaultTarget, kind: FaultKind, after: number): void {
    this.faults.push({ target, kind, after });
  }

  /** Crash at the (after + 1)-th mutating call from now, or of `target` calls only (a catalog commit, a zone reset, ...). */
  armCrash(after: number, target?: FaultTarget): void {
    this.crashAfter = after;
    this.crashTarget = target;
  }

  disarm(): void {
    this.faults = [];
    this.crashAfter = undefined;
    this.crashTarget = undefined;
  }

  /** How many faults fired since the last call. */
  takeFired(): number {
    const n = this.fired;
    this.fired = 0;
    return n;
  }

  /** Called at every device and catalog call: crashes, or returns a fault to inject. */
  check(target: FaultTarget, what: string): FaultKind | undefined {
    if (this.crashed) throw new CrashSignal(`${what} (after the crash)`);
    if (!this.enabled) return undefined;
    if (this.crashAfter !== undefined && CRASH_POINTS.has(target) && (this.crashTarget === undefined || this.crashTarget === target)) {
      if (this.crashAfter === 0) {
        this.crashed = true;
        this.crashedAt = what;
        this.crashAfter = undefined;
        this.counts.crashes++;
        throw new CrashSignal(what);
      }
      this.crashAfter--;
    }
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i]!;
      if (f.target !== target) continue;
      if (f.after > 0) {
        f.after--;
        continue;
      }
      this.faults.splice(i, 1);
      this.fired++;
      this.counts.faults++;
      return f.kind;
    }
    return undefined;
  }

  /** Crash now, between operations. */
  crashNow(): void {
    this.crashed = true;
    this.crashedAt = 'between operations';
    this.counts.crashes++;
  }

  catalogHooks(): CatalogHooks {
    return {
      beforeCommit: (batch: CatalogBatch) => {
        const kind = this.check('commit', 'catalog commit');
        if (kind === undefined) return;
        void batch;
        const err = new Error(kind === 'enospc' ? 'database or disk is full' : 'disk I/O error') as Error & { code: string };
        err.code = kind === 'enospc' ? 'SQLITE_FULL' : 'SQLITE_IOERR';
        throw err;
      },
    };
  }
}

function injected(kind: FaultKind, what: string): ZnsSlabError {
  if (kind === 'enospc') return new ZnsSlabError(ErrorCode.DISK_FULL, `${what}: no space left on the filesystem (injected ENOSPC)`);
  return new ZnsSlabError(ErrorCode.DEVICE_IO, `${what}: I/O error (injected EIO)`);
}

/**
 * Wraps an emulated device. Tracks, per zone, how far it was written and how far of that the
 * last flush made durable, so a crash can lose exactly what a real device may lose.
 */
export class FaultyDevice implements ZonedDevice {
  readonly kind;
  readonly path: string;
  readonly geometry: DeviceGeometry;
  private readonly inner: ZonedDevice;
  private readonly control: FaultController;
  /** Per zone: bytes written (as the wrapper saw) and bytes made durable by a flush. */
  private readonly written: number[];
  private readonly durable: number[];
  private closed = false;
  /**
   * Background writes, when the simulator turns them on: started writes wait here (zone ->
   * write), and end (are done on the inner device, with the faults and crashes of `write`) at
   * a seeded random later poll, a wait, or a zone operation or flush that needs them. A crash
   * loses those still waiting, as a crash loses writes in flight.
   */
  private readonly waiting = new Map<number, { offset: number; data: Uint8Array }>();
  private endedWrites: WriteEnded[] = [];
  private readonly background: Rng | undefined;
  writeStart?: (offset: number, data: Uint8Array) => void;
  writesEnded?: () => WriteEnded[];
  writesWait?: (zone?: number) => WriteEnded[];
  writesWaitAsync?: () => Promise<void>;

  /**
   * Writes split into requests as Linux does (issue 14; the simulator turns it on by seed): an
   * injected EIO or short write leaves its first k requests written (k seeded, below the
   * request count), reported as ERR_DEVICE_IO. Undefined: the old rules (a short write keeps
   * half its blocks).
   */
  private readonly split: Rng | undefined;

  constructor(inner: ZonedDevice, control: FaultController, background?: Rng, split?: Rng) {
    this.background = background;
    this.split = split;
    if (background !== undefined) {
      this.writeStart = (offset, data) => this.startWrite(offset, data);
      this.writesEnded = () => {
        // Each waiting write ends now or later, by the seed.
        for (const zone of [...this.waiting.keys()]) if (this.background!.below(3) !== 0) this.endWrite(zone);
        return this.takeEnded();
      };
      this.writesWait = (zone) => {
        this.endWaiting(zone);
        return this.takeEnded();
      };
      this.writesWaitAsync = () => {
        this.endWaiting();
        return Promise.resolve();
      };
    }
    this.inner = inner;
    this.kind = inner.kind;
    this.path = inner.path;
    this.geometry = inner.geometry;
    this.control = control;
    const report = inner.reportZones();
    this.written = report.map((z) => Math.min(z.writePointer - z.start, this.geometry.zoneCapacity));
    this.durable = [...this.written];
  }

  get owner(): string | undefined {
    return this.inner.owner;
  }

  setOwner(storeId: string): void {
    if (this.control.crashed) throw new CrashSignal('set owner');
    this.inner.setOwner?.(storeId);
  }

  get generationFloor(): number | undefined {
    return this.inner.generationFloor;
  }

  setGenerationFloor(floor: number): void {
    this.inner.setGenerationFloor?.(floor);
  }

  reportZones(first?: number, count?: number): Zone[] {
    if (this.control.crashed) throw new CrashSignal('report zones');
    const zones = this.inner.reportZones(first, count);
    if (this.waiting.size === 0) return zones;
    // A device opens a zone when it takes the write, not when the write ends: so does this one's report.
    return zones.map((z) =>
      this.waiting.has(z.index) && (z.condition === ZoneCondition.EMPTY || z.condition === ZoneCondition.CLOSED) ? { ...z, condition: ZoneCondition.IMPLICIT_OPEN } : z,
    );
  }

  read(offset: number, length: number): Buffer {
    const kind = this.control.check('read', `read at ${offset}`);
    if (kind !== undefined) throw injected('eio', `read at ${offset}`);
    return this.inner.read(offset, length);
  }

  /** readAsync calls so far: the simulator tells a read that went to the device from one served from memory. */
  asyncReads = 0;

  /** As `read` (the same faults and crash), into the caller's buffer. */
  readInto(offset: number, target: Uint8Array): void {
    const kind = this.control.check('read', `read at ${offset}`);
    if (kind !== undefined) throw injected('eio', `read at ${offset}`);
    if (this.inner.readInto !== undefined) this.inner.readInto(offset, target);
    else target.set(this.inner.read(offset, target.byteLength));
  }

  /** As `read` (the same faults and crash, decided when the read starts), on the inner device's thread pool; rejects, never throws. */
  readAsync(offset: number, length: number): Promise<Buffer> {
    this.asyncReads++;
    try {
      const kind = this.control.check('read', `read at ${offset}`);
      if (kind !== undefined) throw injected('eio', `read at ${offset}`);
      if (this.inner.readAsync !== undefined) return this.inner.readAsync(offset, length);
      return Promise.resolve(this.inner.read(offset, length));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  get direct(): boolean {
    return this.inner.direct === true;
  }

  write(offset: number, data: Uint8Array): void {
    const zone = Math.floor(offset / this.geometry.zoneSize);
    const kind = this.control.check('write', `write of ${data.length} bytes in zone ${zone}`);
    if (this.split !== undefined && (kind === 'eio' || kind === 'short')) {
      // The kernel's requests are done in order; the failing one ends the write, EIO.
      const most = this.requestBytes();
      const requests = Math.ceil(data.length / most);
      const done = this.split.below(requests);
      if (done > 0) this.innerWrite(zone, offset, data.subarray(0, done * most));
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `write of ${data.length} bytes in zone ${zone}: I/O error after ${done} of ${requests} requests (injected EIO)`);
    }
    if (kind === 'short') {
      // Part of the write happens (the kernel split it), then the rest fails.
      const block = this.geometry.logicalBlockSize;
      const blocks = data.length / block;
      if (blocks > 1) {
        const part = Math.max(1, Math.floor(blocks / 2)) * block;
        this.inner.write(offset, data.subarray(0, part));
        this.written[zone]! += part;
      }
      throw new ZnsSlabError(ErrorCode.DEVICE_IO, `write in zone ${zone}: short write (injected)`);
    }
    if (kind !== undefined) throw injected(kind, `write in zone ${zone}`);
    this.innerWrite(zone, offset, data);
  }

  /** The inner device's write; a failed one may have moved the write pointer (a split write): the bookkeeping follows the device. */
  private innerWrite(zone: number, offset: number, data: Uint8Array): void {
    try {
      this.inner.write(offset, data);
    } catch (err) {
      if (err instanceof ZnsSlabError) {
        const z = this.inner.reportZones(zone, 1)[0]!;
        this.written[zone] = Math.min(z.writePointer - z.start, this.geometry.zoneCapacity);
      }
      throw err;
    }
    const last = Math.floor((offset + data.length - 1) / this.geometry.zoneSize);
    if (last === zone) {
      this.written[zone]! += data.length;
      return;
    }
    // Split at zone ends (the null_blk and nvme profiles): each zone's share, from the device.
    for (const z of this.inner.reportZones(zone, last - zone + 1)) this.written[z.index] = Math.min(z.writePointer - z.start, this.geometry.zoneCapacity);
  }

  /** The bytes in one request of the inner device's writes (its profile's, in whole blocks). */
  private requestBytes(): number {
    const most = this.inner instanceof EmulatedZonedDevice && this.inner.profile.name !== 'atomic' ? this.inner.profile.maxSectorsBytes : NULL_BLK_MAX_SECTORS_BYTES;
    const block = this.geometry.logicalBlockSize;
    return Math.max(block, most - (most % block));
  }

  private startWrite(offset: number, data: Uint8Array): void {
    if (this.control.crashed) throw new CrashSignal('write start (after the crash)');
    const zone = Math.floor(offset / this.geometry.zoneSize);
    if (this.waiting.has(zone)) throw new ZnsSlabError(ErrorCode.ZONE_WRITE_POINTER, `write in zone ${zone}, which has a write in flight`);
    this.waiting.set(zone, { offset, data });
  }

  /** The waiting write of `zone` (or every one) ends now. */
  private endWaiting(zone?: number): void {
    if (zone !== undefined) {
      if (this.waiting.has(zone)) this.endWrite(zone);
      return;
    }
    for (const z of [...this.waiting.keys()]) this.endWrite(z);
  }

  private endWrite(zone: number): void {
    const w = this.waiting.get(zone)!;
    this.waiting.delete(zone);
    let error: ZnsSlabError | undefined;
    try {
      this.write(w.offset, w.data);
    } catch (err) {
      if (!(err instanceof ZnsSlabError)) throw err; // a crash: the process is gone
      error = err;
    }
    this.endedWrites.push({ zone, offset: w.offset, length: w.data.length, error });
  }

  private takeEnded(): WriteEnded[] {
    const out = this.endedWrites;
    this.endedWrites = [];
    return out;
  }

  resetZone(zone: number): void {
    this.endWaiting(zone);
    const kind = this.control.check('reset', `reset of zone ${zone}`);
    if (kind !== undefined) throw injected('eio', `reset of zone ${zone}`);
    this.inner.resetZone(zone);
    this.written[zone] = 0;
    this.durable[zone] = 0; // a reset is a command the device completes: durable on return
  }

  openZone(zone: number): void {
    if (this.control.crashed) throw new CrashSignal('open zone');
    this.endWaiting(zone);
    this.inner.openZone(zone);
  }

  closeZone(zone: number): void {
    if (this.control.crashed) throw new CrashSignal('close zone');
    this.endWaiting(zone);
    this.inner.closeZone(zone);
  }

  finishZone(zone: number): void {
    this.endWaiting(zone);
    const kind = this.control.check('finish', `finish of zone ${zone}`);
    if (kind !== undefined) throw injected('eio', `finish of zone ${zone}`);
    this.inner.finishZone(zone);
  }

  flush(): void {
    this.endWaiting();
    const kind = this.control.check('flush', 'device flush');
    if (kind !== undefined) throw injected('eio', 'device flush');
    this.inner.flush();
    for (let z = 0; z < this.written.length; z++) this.durable[z] = this.written[z]!;
  }

  close(): void {
    if (this.closed) return;
    // Writes still waiting end first, unless the process died: then they never happened.
    if (!this.control.crashed) this.endWaiting();
    this.waiting.clear();
    this.closed = true;
    if (!this.control.crashed) {
      this.inner.close();
      for (let z = 0; z < this.written.length; z++) this.durable[z] = this.written[z]!;
      return;
    }
    this.inner.close();
  }

  /**
   * After a crash and `close`: each zone loses what was not flushed, all of it, none, or all
   * but a prefix torn inside a block. Returns the bytes lost.
   */
  loseUnflushed(rng: Rng): number {
    let lost = 0;
    const block = this.geometry.logicalBlockSize;
    for (let z = 0; z < this.written.length; z++) {
      const durable = this.durable[z]!;
      const written = this.written[z]!;
      if (written <= durable) continue;
      const choice = rng.below(3);
      let keep = written;
      if (choice === 0) keep = durable;
      else if (choice === 1) {
        const blocks = (written - durable) / block;
        keep = durable + rng.below(blocks) * block + rng.below(block);
      }
      if (keep >= written) continue;
      const file = emulatedZoneFile(this.inner.path, z);
      if (fs.existsSync(file)) fs.truncateSync(file, keep);
      // A zone that filled stays FULL (the device records the transition), with fewer bytes.
      if (written === this.geometry.zoneCapacity) markFinished(this.inner.path, z);
      lost += written - keep;
    }
    return lost;
  }
}

function markFinished(dir: string, zone: number): void {
  const file = path.join(dir, 'device.json');
  const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as { finished: number[] };
  if (!meta.finished.includes(zone)) meta.finished.push(zone);
  fs.writeFileSync(file, JSON.stringify(meta, null, 2) + '\n');
}
