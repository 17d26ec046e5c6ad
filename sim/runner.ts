/**
 * One simulated run: a list of operations against the real engine (on a fault-injecting
 * emulated device and a real SQLite catalog) and a plain in-memory model of what the store
 * must hold. After every operation the model decides; the first disagreement ends the run
 * with a description. Deterministic: the same seed and operations give the same run.
 *
 * What the model allows a crash to revert is the durability contract (docs/RELIABILITY.md):
 * - a put is durable once a flush (or a clean close) returns after it;
 * - a free, an epochAdvance, a CLOSING state: durable at the next flush;
 * - epochClose: durable when it returns;
 * - anything not yet durable may come back or be gone after a crash, but never as other bytes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GcOptions } from '../engine/gc.js';
import { CATALOG_FILE, openStoreWith, type Store } from '../engine/store.js';
import { rebuildCatalog } from '../engine/rebuild.js';
import { EpochState } from '../engine/epoch.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type DeviceGeometry, zoneIsActive, zoneIsOpen } from '../zns/device.js';
import { createEmulatedDevice, openEmulatedDevice } from '../zns/emulated.js';
import { CrashSignal, FaultController, FaultyDevice } from './faults.js';
import { type GenHints, type Op, type Workload, generateOp, objectSize } from './ops.js';
import { Rng, payloadFor } from './rng.js';

/** Geometries the simulator cycles through by seed: small, so zones fill, limits bind and epochs reset often. */
export const SIM_GEOMETRIES: readonly DeviceGeometry[] = [
  { zoneCount: 16, zoneSize: 512 * 1024, zoneCapacity: 512 * 1024, logicalBlockSize: 4096, maxOpenZones: 3, maxActiveZones: 4 },
  { zoneCount: 24, zoneSize: 512 * 1024, zoneCapacity: 384 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 },
  { zoneCount: 10, zoneSize: 1024 * 1024, zoneCapacity: 1024 * 1024, logicalBlockSize: 4096, maxOpenZones: 2, maxActiveZones: 3 },
];

/**
 * Zone GC as a seed runs it. The idle timer is always off (it is wall-clock; the simulator is
 * deterministic): GC runs in steps after seals and in flushes, and as the `gc` op. A low
 * `spaceAmplification` and small `stepBytes` make those steps frequent on the small geometries.
 * `gc: false` keeps the old path covered (the `gc` op still collects: store.gc() works with GC off).
 */
export interface SimConfig {
  name: string;
  gc: GcOptions | false;
  workload: Workload;
}

export const SIM_CONFIGS: readonly SimConfig[] = [
  { name: 'no-gc', gc: false, workload: 'classic' },
  { name: 'gc-long-lived', gc: { idleMs: 0, spaceAmplification: 1.1, stepBytes: 64 * 1024 }, workload: 'longLived' },
  { name: 'gc-classic', gc: { idleMs: 0, spaceAmplification: 1.5, stepBytes: 256 * 1024 }, workload: 'classic' },
  { name: 'gc-long-lived-small-steps', gc: { idleMs: 0, spaceAmplification: 1.1, stepBytes: 8 * 1024 }, workload: 'longLived' },
  { name: 'gc-eager', gc: { idleMs: 0, spaceAmplification: 1.1, stepBytes: 64 * 1024 }, workload: 'classic' },
];

/** The seed's configuration (independent of its geometry, which is seed % 3). */
export function simConfigFor(seed: number): SimConfig {
  return SIM_CONFIGS[Math.floor(seed / SIM_GEOMETRIES.length) % SIM_CONFIGS.length]!;
}

/**
 * Whether the seed's device writes seals in the background (FaultyDevice's writeStart, ending
 * at seeded later points): three seeds in four. Replays saved before it existed run without.
 */
export function backgroundWritesFor(seed: number): boolean {
  return seed % 4 !== 0;
}

/**
 * The seed's emulated device profile (issue 14), (seed + floor(seed / 3)) % 3, one seed in three each:
 * - `null_blk`: writes split into 124 KiB requests, each checked alone; an injected write failure
 *   leaves a seeded number of its first requests written, reported as EIO;
 * - `nvme`: QEMU's NVMe ZNS rules (the oldest implicitly open zone closed for room, an opened
 *   zone closed with no data stays active, finish takes no resources) with 128 KiB requests (a
 *   common SSD MDTS; QEMU's 512 KiB would split few of the simulator's seals), split faults
 *   as on null_blk;
 * - `atomic`: every write one request, all or nothing (the emulation before profiles).
 * Replays saved before profiles say `splitWrites` (true: null_blk) or nothing (atomic).
 */
export function deviceProfileFor(seed: number): SimDeviceProfile {
  // Not seed % 3 alone: that is the geometry, and every geometry should meet every profile.
  return (['atomic', 'null_blk', 'nvme'] as const)[(seed + Math.floor(seed / 3)) % 3]!;
}

export type SimDeviceProfile = 'atomic' | 'null_blk' | 'nvme';

/** The simulator's NVMe request size (bytes): small enough that seals are split. */
const SIM_NVME_MAX_REQUEST_BYTES = 128 * 1024;

/** A replay's profile: its own, or the flag saved before profiles. */
export function replayProfile(saved: { profile?: SimDeviceProfile; splitWrites?: boolean }): SimDeviceProfile {
  return saved.profile ?? (saved.splitWrites === true ? 'null_blk' : 'atomic');
}

/** A gc op without a budget still stops here: moving more than this many device capacities in one call is a livelock. */
const UNBOUNDED_GC_DEVICE_PASSES = 3;

/** Freed or lost handles re-checked after every reopen (the newest and a random sample). */
const GRAVEYARD_CHECK_AFTER_REOPEN = 400;

type EpochModelState = 'ACTIVE' | 'CLOSING' | 'CLOSED';
const ORDER: Record<EpochModelState, number> = { ACTIVE: 0, CLOSING: 1, CLOSED: 2 };

interface ModelEpoch {
  id: number;
  state: EpochModelState;
  /** The most-closed state known to be durable; undefined: none (the epoch may vanish). */
  durable: EpochModelState | undefined;
  ephemeral: boolean;
}

interface ModelObject {
  n: number;
  handle: bigint;
  size: number;
  epoch: number;
  durable: boolean;
  freed: 'no' | 'volatile';
}

export class SimFailure extends Error {
  constructor(message: string, readonly step: number) {
    super(message);
    this.name = 'SimFailure';
  }
}

export interface RunResult {
  ops: number;
  crashes: number;
  faults: number;
  reopens: number;
  puts: number;
  gets: number;
  verifiedAfterReopen: number;
  deviceFullRefusals: number;
  /** Catalogs lost and rebuilt by recover. */
  recoveries: number;
  /** `gc` ops run, and `churn` ops. */
  gcOps: number;
  churns: number;
  /** Zone GC's work over the run (explicit and background steps), summed per session from the store's counters. */
  gcZonesCollected: number;
  gcSlabsMoved: number;
  gcBytesMoved: number;
  /** Background GC steps that failed (an injected fault, or a device out of zones): counted, not thrown. */
  gcStepFailures: number;
  /** Background seal writes that failed (an injected fault when they ended): their slabs went back to memory. */
  sealWriteFailures: number;
  /** Zone GC moves whose background write failed: their slabs went back to their old places. */
  gcMoveWriteFailures: number;
  /** Background GC steps that failed with no fault injected, for want of a zone for the GC head. */
  gcStepsOutOfZones: number;
  /** Handles read by getAsync ops (each through getAsync or getMany, with something else in flight). */
  asyncGets: number;
  /** Full checks of every live and freed object after a gc op. */
  gcContentChecks: number;
  /** Crashes that struck inside a gc op, by where (a relocation's write, the device flush or catalog commit that records it, a victim's reset). */
  crashesInGcOps: Record<string, number>;
  /** Injected faults that fired inside a gc op. */
  faultsInGcOps: number;
  failure?: { step: number; message: string };
}

/** A run with nothing counted yet (also the start of the CLI's totals). */
export function emptyResult(): RunResult {
  return {
    ops: 0, crashes: 0, faults: 0, reopens: 0, puts: 0, gets: 0, asyncGets: 0, verifiedAfterReopen: 0, deviceFullRefusals: 0, recoveries: 0,
    gcOps: 0, churns: 0, gcZonesCollected: 0, gcSlabsMoved: 0, gcBytesMoved: 0, gcStepFailures: 0, sealWriteFailures: 0, gcMoveWriteFailures: 0, gcStepsOutOfZones: 0, gcContentChecks: 0, crashesInGcOps: {}, faultsInGcOps: 0,
  };
}

/** Store counters the simulator sums over sessions (GC's work). */
const GC_COUNTERS = ['gcZonesCollected', 'gcSlabsMoved', 'gcBytesMoved', 'gcStepFailures', 'sealWriteFailures', 'gcMoveWriteFailures'] as const;

export interface RunOptions {
  seed: number;
  /** Folder for the run's store (removed after); default: a fresh one under /dev/shm or the OS temp dir. */
  dir?: string;
  faults?: boolean;
  /** Zone GC options for the store (a replay's); default: the seed's (simConfigFor). */
  gc?: GcOptions | false;
  /** Background device writes (a replay's); default: the seed's (backgroundWritesFor). */
  backgroundWrites?: boolean;
  /** The emulated device's profile (a replay's); default: the seed's (deviceProfileFor). */
  profile?: SimDeviceProfile;
  /** Called every `every` operations with the step number. */
  progress?: (step: number) => void;
}

function baseTmp(): string {
  return fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

class Sim {
  readonly ctl = new FaultController();
  readonly result: RunResult = emptyResult();
  private store!: Store;
  private device!: FaultyDevice;
  private readonly storeDir: string;
  private readonly deviceDir: string;
  private readonly geometry: DeviceGeometry;
  private readonly objects = new Map<bigint, ModelObject>();
  private liveList: bigint[] = [];
  /** Handles that must never resolve again: freed durably, closed, or lost in a crash. */
  private graveyard: bigint[] = [];
  /** What each dead handle's object was: a recovered catalog may bring it back, with exactly these bytes. */
  private readonly buried = new Map<bigint, { n: number; size: number; epoch: number }>();
  /** The next crash also loses the catalog: `zns-slab recover` rebuilds it. */
  private catalogLost = false;
  private readonly everHanded = new Set<bigint>();
  /** Handles of epochs closed in memory but not yet durably: stale now, may return after a crash. */
  private limbo: bigint[] = [];
  private readonly epochs = new Map<number, ModelEpoch>();
  private current = 0;
  private nextObject = 1;
  private step = 0;
  recentFull = 0;
  readonly config: SimConfig;
  private readonly gcOptions: GcOptions | false;
  /** The store's counters when last looked at this session (undefined: not yet since the open). */
  private lastCounters: Record<string, number> | undefined;
  /** The op running: a gc op reports its own counter deltas. */
  private lastOpKind: Op['k'] | undefined;
  /** Faults injected before the op running. */
  private faultsBeforeOp = 0;

  /** The seeded order in which background writes end (undefined: the device writes synchronously). */
  private readonly background: Rng | undefined;

  /** The seeded number of requests a failed split write gets done (undefined: writes are not split). */
  private readonly split: Rng | undefined;

  constructor(dir: string, seed: number, gc: GcOptions | false | undefined, backgroundWrites: boolean, profile: SimDeviceProfile) {
    this.background = backgroundWrites ? new Rng(seed ^ 0x5eedb6) : undefined;
    this.split = profile !== 'atomic' ? new Rng(seed ^ 0x5b117) : undefined;
    this.storeDir = path.join(dir, 'store');
    this.deviceDir = path.join(dir, 'device');
    this.geometry = SIM_GEOMETRIES[seed % SIM_GEOMETRIES.length]!;
    this.config = simConfigFor(seed);
    this.gcOptions = gc === undefined ? this.config.gc : gc;
    createEmulatedDevice(this.deviceDir, this.geometry, { profile: profile === 'nvme' ? { name: 'nvme', maxSectorsBytes: SIM_NVME_MAX_REQUEST_BYTES } : profile }).close();
    this.open();
    this.current = this.store.epochCurrent();
    this.epochs.set(this.current, { id: this.current, state: 'ACTIVE', durable: 'ACTIVE', ephemeral: false });
  }

  get maxObjectSize(): number {
    return this.store.maxObjectSize;
  }

  hints(faults: boolean): GenHints {
    let liveEpochs = 0;
    for (const e of this.epochs.values()) if (e.state !== 'CLOSED' && !e.ephemeral) liveEpochs++;
    return { liveObjects: this.liveList.length, liveEpochs, recentFull: this.recentFull, faults, workload: this.config.workload, last: this.lastOpKind };
  }

  fail(message: string): never {
    throw new SimFailure(message, this.step);
  }


  private open(): void {
    this.ctl.enabled = false;
    try {
      this.device = new FaultyDevice(openEmulatedDevice(this.deviceDir), this.ctl, this.background, this.split);
      this.store = openStoreWith(this.storeDir, { device: this.device, gc: this.gcOptions }, { catalogHooks: this.ctl.catalogHooks() });
    } catch (err) {
      this.fail(`the store refused to open: ${describeError(err)}`);
    } finally {
      this.ctl.enabled = true;
    }
    // Counters come back from the last commit: a new session starts from what the store says.
    this.lastCounters = undefined;
    this.observeStats('after open');
  }

  /**
   * Stats invariants, cheap enough for every operation: the zone totals GC divides (written >=
   * live), dead bytes never negative, GC on exactly when configured, and every counter
   * monotone within a session. Sums GC's counters into the run's result.
   */
  private observeStats(when: string): Record<string, number> {
    let stats;
    try {
      stats = this.store.statsGlobal();
    } catch (err) {
      this.fail(`statsGlobal ${when}: ${describeError(err)}`);
    }
    const gc = stats.gc;
    if (gc.bytesWritten < gc.bytesLive) this.fail(`stats ${when}: gc.bytesWritten ${gc.bytesWritten} < gc.bytesLive ${gc.bytesLive}`);
    if (stats.derived.deadBytes < 0) this.fail(`stats ${when}: deadBytes ${stats.derived.deadBytes} < 0`);
    if (gc.enabled !== (this.gcOptions !== false)) this.fail(`stats ${when}: gc.enabled is ${gc.enabled}, the store was opened with gc ${JSON.stringify(this.gcOptions)}`);
    if (gc.reserveZones !== (this.gcOptions === false ? 0 : 1)) this.fail(`stats ${when}: ${gc.reserveZones} reserve zones with gc ${JSON.stringify(this.gcOptions)}`);
    // The engine's open and active zones are the device's (verify() recounts the engine's own
    // flags only): a zone the engine thinks idle but the device holds active passes the limit.
    let active = 0;
    let open = 0;
    for (const z of this.device.reportZones()) {
      if (zoneIsActive(z.condition)) active++;
      if (zoneIsOpen(z.condition)) open++;
    }
    if (stats.zones.active !== active || stats.zones.open !== open) {
      this.fail(`stats ${when}: the engine counts ${stats.zones.active} active and ${stats.zones.open} open zones, the device reports ${active} and ${open}`);
    }
    const counters = stats.counters as unknown as Record<string, number>;
    const before = this.lastCounters;
    if (before !== undefined) {
      for (const [name, value] of Object.entries(counters)) {
        if (typeof value === 'number' && value < (before[name] ?? 0)) this.fail(`stats ${when}: counter ${name} went back from ${before[name]} to ${value} within a session`);
      }
      for (const name of GC_COUNTERS) this.result[name] += counters[name]! - before[name]!;
      if (counters.gcStepFailures! > before.gcStepFailures! && this.ctl.counts.faults === this.faultsBeforeOp) {
        // No fault was injected: a background step may fail only for want of a zone (its GC
        // head filled before the victim emptied). Anything else (a checksum error reading a
        // slab to move it, say) is a bug the step swallowed. Stats give the error's message only.
        const error = gc.lastError ?? '(no lastError)';
        if (!/no empty zone left/.test(error)) this.fail(`stats ${when}: a background GC step failed with no fault injected: ${error}`);
        this.result.gcStepsOutOfZones++;
      }
    }
    this.lastCounters = { ...counters };
    return counters;
  }

  async run(op: Op, step: number): Promise<void> {
    this.step = step;
    this.lastOpKind = op.k;
    this.faultsBeforeOp = this.ctl.counts.faults;
    this.ctl.takeFired();
    try {
      await this.exec(op);
    } catch (err) {
      if (err instanceof SimFailure) throw err;
      if (this.ctl.crashed && op.k === 'gc') {
        const where = this.ctl.crashedAt.replace(/ (of|at|in) .*$/, '').replace(/ \d+ bytes/, '');
        this.result.crashesInGcOps[where] = (this.result.crashesInGcOps[where] ?? 0) + 1;
      }
      if (this.ctl.crashed) {
        await this.recoverFromCrash(op.k === 'crash' || op.k === 'crashAt' || op.k === 'loseCatalog' ? op.pick : step);
        return;
      }
      this.fail(`${op.k} threw ${describeError(err)}`);
    }
    if (this.ctl.crashed) {
      await this.recoverFromCrash(step);
      return;
    }
    try {
      this.store.verify();
    } catch (err) {
      this.fail(`verify after ${op.k}: ${describeError(err)}`);
    }
    this.observeStats(`after ${op.k}`);
    this.checkSomeGraveyard();
  }

  /**
   * Runs `fn`; a coded error in `allowed` (or any coded error when a fault fired during it)
   * is returned as its code. A crash passes through; anything else is a failure.
   */
  private attempt<T>(what: string, fn: () => T, allowed: readonly string[]): { ok: true; value: T } | { ok: false; code: string } {
    try {
      return { ok: true, value: fn() };
    } catch (err) {
      if (err instanceof CrashSignal || this.ctl.crashed) throw err;
      if (!(err instanceof ZnsSlabError)) this.fail(`${what} threw an uncoded error: ${describeError(err)}`);
      const faulted = this.ctl.takeFired() > 0;
      if (err.code === ErrorCode.INTERNAL) this.fail(`${what}: ${err.message}`);
      if (!faulted && !allowed.includes(err.code)) this.fail(`${what} failed with ${err.code} (${err.message})`);
      if (faulted) this.result.faults++;
      return { ok: false, code: err.code };
    }
  }

  private async exec(op: Op): Promise<void> {
    switch (op.k) {
      case 'put':
        return this.put(op.size, op.to === 'epoch' ? this.pickEpoch(op.pick, false) : undefined);
      case 'get':
        return this.get(op.pick);
      case 'getAsync':
        return this.getAsync(op);
      case 'free':
        return this.free(op.pick);
      case 'freeMany':
        return this.freeMany(op.pick, op.count);
      case 'flush':
        return this.flush();
      case 'advance': {
        const r = this.attempt('epochAdvance', () => this.store.epochAdvance(), []);
        if (r.ok) this.advanced(r.value);
        return;
      }
      case 'closeEpoch':
        return this.closeEpoch(op.pick);
      case 'domain':
        return this.domain(op);
      case 'reopen':
        return this.reopen();
      case 'crash':
        this.ctl.crashNow();
        return;
      case 'loseCatalog':
        this.catalogLost = true;
        this.ctl.crashNow();
        return;
      case 'crashAt':
        this.ctl.armCrash(op.after, op.target);
        return;
      case 'fault':
        this.ctl.armFault(op.target, op.kind, op.after);
        return;
      case 'gc':
        return this.gc(op.maxBytes);
      case 'churn':
        return this.churn(op.pick, op.count);
    }
  }

  /**
   * store.gc(): moves slabs and collects zones, and must change nothing a user can see:
   * afterwards every live object reads its exact bytes through its unchanged handle, every
   * freed or closed one is still dead, and the counters moved by exactly what it reports.
   */
  private gc(maxBytes: number | null): void {
    this.result.gcOps++;
    const before = this.observeStats('before gc');
    const g = this.geometry;
    const cap = UNBOUNDED_GC_DEVICE_PASSES * g.zoneCount * g.zoneCapacity;
    const budget = maxBytes ?? cap;
    const r = this.attempt(`gc(${maxBytes ?? 'unbounded'})`, () => this.store.gc({ maxBytes: budget }), [ErrorCode.DEVICE_FULL]);
    if (!r.ok && this.ctl.counts.faults > this.faultsBeforeOp) this.result.faultsInGcOps++;
    if (r.ok) {
      const res = r.value;
      const after = this.observeStats('after gc');
      const moved = { gcZonesCollected: res.zonesCollected, gcSlabsMoved: res.slabsMoved, gcBytesMoved: res.bytesMoved };
      for (const [name, n] of Object.entries(moved)) {
        if (after[name]! - before[name]! !== n) this.fail(`gc reported ${n} for ${name}, the counter moved by ${after[name]! - before[name]!}`);
      }
      if (res.bytesFreed < 0 || res.bytesMoved < 0 || res.zonesCollected < 0) this.fail(`gc reported negative work: ${JSON.stringify(res)}`);
      if (maxBytes === null && res.more && res.bytesMoved >= cap) {
        this.fail(`gc() without a budget would not stop: it moved ${res.bytesMoved} bytes (${UNBOUNDED_GC_DEVICE_PASSES} times the device's capacity) and reports more`);
      }
      // GC gives back more than it writes: a whole collection (no budget, nothing left over)
      // that collected zones freed more bytes than it moved. (Which zones are worth it is GC's
      // policy; a move that gains nothing is the bug whatever the policy: a zone of one big live
      // slab, moved again and again; gc-moves-without-gain.json.)
      // A move whose write failed (an injected fault) put its slab back in the victim, which moved
      // it again: its bytes count twice, and the gain is the fault's, not the policy's
      // (gc-move-failed-counted-twice.json).
      const moveFailed = after['gcMoveWriteFailures']! > before['gcMoveWriteFailures']!;
      if (maxBytes === null && !res.more && res.zonesCollected > 0 && !moveFailed && res.bytesFreed <= res.bytesMoved) {
        this.fail(`gc() collected ${res.zonesCollected} zones holding ${res.bytesFreed} bytes by moving ${res.bytesMoved} bytes: it gave back nothing`);
      }
    }
    this.checkContent('after gc');
  }

  /**
   * Every object the model holds, read back: live ones with exactly their bytes, freed (not
   * yet durably) and closed ones refused. Injected faults are off meanwhile (a check, not workload).
   */
  private checkContent(when: string): void {
    this.result.gcContentChecks++;
    const enabled = this.ctl.enabled;
    this.ctl.enabled = false;
    try {
      for (const obj of this.objects.values()) {
        const live = this.isLive(obj);
        this.checkRead(obj.handle, live, !live, when);
      }
      for (const h of this.limbo) this.checkRead(h, false, true, `${when} (an epoch closed in memory)`);
    } finally {
      this.ctl.enabled = enabled;
    }
  }

  /** Frees `count` random live objects of the current epoch and puts as many new ones into it. */
  private churn(pick: number, count: number): void {
    this.result.churns++;
    const rng = new Rng(pick);
    const mine = this.liveList.filter((h) => this.objects.get(h)!.epoch === this.current);
    let freed = false;
    try {
      for (let i = 0; i < count; i++) {
        if (mine.length > 0) {
          const j = rng.below(mine.length);
          const handle = mine[j]!;
          mine[j] = mine[mine.length - 1]!;
          mine.pop();
          const r = this.attempt('free (churn)', () => this.store.free(handle), []);
          if (r.ok) {
            this.objects.get(handle)!.freed = 'volatile';
            freed = true;
          }
        }
        this.put(objectSize(rng, this.store.maxObjectSize), undefined);
      }
    } finally {
      if (freed) this.liveList = this.liveList.filter((h) => this.objects.get(h)?.freed !== 'volatile');
    }
  }

  private put(size: number, epochId: number | undefined, epochOverride?: ModelEpoch): void {
    const n = this.nextObject++;
    const bytes = payloadFor(n, Math.min(size, this.store.maxObjectSize));
    const target = epochOverride ?? this.epochs.get(epochId ?? this.current)!;
    const allowed = target.state === 'ACTIVE' ? [ErrorCode.DEVICE_FULL] : [ErrorCode.EPOCH_CLOSED];
    const r = this.attempt(`put of ${bytes.length} bytes into epoch ${target.id}`, () => (epochId === undefined ? this.store.put(bytes) : this.store.put(bytes, { epoch: epochId })), allowed);
    if (!r.ok) {
      if (r.code === ErrorCode.DEVICE_FULL) {
        this.result.deviceFullRefusals++;
        this.recentFull = 8;
      }
      return;
    }
    if (target.state !== 'ACTIVE') this.fail(`put into ${target.state} epoch ${target.id} succeeded`);
    this.recentFull = Math.max(0, this.recentFull - 1);
    const handle = r.value;
    if (this.everHanded.has(handle)) this.fail(`put returned handle ${handle}, which was handed out before`);
    this.everHanded.add(handle);
    this.objects.set(handle, { n, handle, size: bytes.length, epoch: target.id, durable: false, freed: 'no' });
    this.liveList.push(handle);
    this.result.puts++;
  }

  /** Reads `handle` and holds the result against the model. */
  private checkRead(handle: bigint, mustLive: boolean, mustDead: boolean, when: string): 'live' | 'dead' {
    const obj = this.objects.get(handle);
    this.result.gets++;
    let out: Buffer;
    try {
      out = this.store.get(handle);
    } catch (err) {
      if (err instanceof CrashSignal || this.ctl.crashed) throw err;
      if (!(err instanceof ZnsSlabError)) this.fail(`get ${when} threw an uncoded error: ${describeError(err)}`);
      if (this.ctl.takeFired() > 0) return mustLive ? 'live' : 'dead'; // an injected read error: no verdict
      if (mustLive) this.fail(`get of a live object (${describeObj(obj)}) ${when} failed: ${err.code} ${err.message}`);
      if (err.code !== ErrorCode.STALE_HANDLE && err.code !== ErrorCode.INVALID_HANDLE) {
        this.fail(`get of a dead handle ${when} gave ${err.code}, not a stale or invalid handle: ${err.message}`);
      }
      return 'dead';
    }
    if (mustDead || obj === undefined) this.fail(`get of a dead handle ${handle} ${when} returned ${out.length} bytes`);
    if (!out.equals(payloadFor(obj.n, obj.size))) this.fail(`get ${when} returned other bytes for ${describeObj(obj)}`);
    return 'live';
  }

  private isLive(obj: ModelObject): boolean {
    return obj.freed === 'no' && this.epochs.get(obj.epoch)?.state !== 'CLOSED';
  }

  private get(pick: number): void {
    if (this.liveList.length === 0 && this.graveyard.length === 0) return;
    const fromGrave = this.graveyard.length > 0 && (this.liveList.length === 0 || pick % 5 === 0);
    const fromLimbo = this.limbo.length > 0 && pick % 7 === 0;
    const handle = fromLimbo
      ? this.limbo[pick % this.limbo.length]!
      : fromGrave
        ? this.graveyard[pick % this.graveyard.length]!
        : this.liveList[pick % this.liveList.length]!;
    const obj = this.objects.get(handle);
    const live = obj !== undefined && this.isLive(obj);
    this.checkRead(handle, live, !live, 'in session');
  }

  /**
   * Async reads started (getAsync for some, one getMany of them all), then `during` runs while
   * they are in flight, then every result is held against the model as it was when they
   * started: a live object's own bytes, or a coded error the interleaving explains (freed,
   * closed or the store gone meanwhile: ERR_STALE_HANDLE or ERR_CLOSED; a fault fired: any
   * code); a dead handle never gives bytes; no read ever gives another object's bytes.
   */
  private async getAsync(op: Extract<Op, { k: 'getAsync' }>): Promise<void> {
    if (this.liveList.length === 0 && this.graveyard.length === 0) return;
    const rng = new Rng(op.pick);
    const picked: bigint[] = [];
    for (let i = 0; i < op.count; i++) {
      const r = rng.below(10);
      if (this.liveList.length > 0 && (r < 8 || (this.graveyard.length === 0 && this.limbo.length === 0))) picked.push(this.liveList[rng.below(this.liveList.length)]!);
      else if (this.limbo.length > 0 && (r === 9 || this.graveyard.length === 0)) picked.push(this.limbo[rng.below(this.limbo.length)]!);
      else picked.push(this.graveyard[rng.below(this.graveyard.length)]!);
    }
    // What each handle is at the start: live (its bytes), or dead.
    const start = picked.map((h) => {
      const obj = this.objects.get(h);
      const was = obj ?? this.buried.get(h);
      return { live: obj !== undefined && this.isLive(obj), bytes: was === undefined ? undefined : payloadFor(was.n, was.size) };
    });
    this.result.asyncGets += picked.length;
    // Settled as they end: a rejection must not wait for a handler.
    // Which of the single reads went to the device (the others were served from memory at once).
    const viaDevice: boolean[] = [];
    const singles = Promise.allSettled(
      picked.map((h, i) => {
        if (i % 2 !== 0) return Promise.resolve(undefined);
        const before = this.device.asyncReads;
        const p = this.store.getAsync(h);
        viaDevice[i] = this.device.asyncReads > before;
        return p;
      }),
    );
    const many = this.store.getMany(picked, { queueDepth: op.depth }).then(
      (value) => ({ ok: true as const, value }),
      (reason: unknown) => ({ ok: false as const, reason }),
    );
    // What happens while they are in flight.
    const touched = new Set<bigint>();
    let storeGone = false;
    switch (op.during) {
      case 'none':
        break;
      case 'free': {
        const victim = picked.find((h, i) => start[i]!.live && this.liveList.includes(h));
        if (victim !== undefined) {
          this.free(this.liveList.indexOf(victim));
          touched.add(victim);
        }
        break;
      }
      case 'closeEpoch':
        this.closeEpoch(rng.u32());
        break;
      case 'gc':
        this.gc(rng.chance(0.5) ? null : 4096 * (1 + rng.below(64)));
        break;
      case 'flush':
        this.flush();
        break;
      case 'reopen':
        storeGone = true;
        await this.reopen();
        break;
      case 'crash':
        storeGone = true;
        this.ctl.crashNow();
        try {
          this.store.abandon();
        } catch (err) {
          if (!(err instanceof CrashSignal)) this.fail(`abandon with reads in flight threw ${describeError(err)}`);
        }
        break;
    }
    // A crash inside `during` (a crashAt armed earlier) takes the store down too.
    if (this.ctl.crashed) storeGone = true;
    // Handles that are no longer live (freed, their epoch closed) may also fail as stale.
    picked.forEach((h, i) => {
      const obj = this.objects.get(h);
      if (start[i]!.live && (obj === undefined || !this.isLive(obj))) touched.add(h);
    });
    const faulted = () => this.ctl.counts.faults > this.faultsBeforeOp;
    /** A failed read of picked[i] the model explains, else the run fails. */
    const explain = (i: number, err: unknown, what: string): void => {
      if (err instanceof CrashSignal || (this.ctl.crashed && !(err instanceof ZnsSlabError))) return;
      if (!(err instanceof ZnsSlabError)) this.fail(`${what} rejected with an uncoded error: ${describeError(err)}`);
      if (err.code === ErrorCode.INTERNAL) this.fail(`${what}: ${err.message}`);
      if (faulted()) return;
      const h = picked[i]!;
      if (storeGone && err.code === ErrorCode.CLOSED) return;
      if (!start[i]!.live || touched.has(h)) {
        if (err.code === ErrorCode.STALE_HANDLE || err.code === ErrorCode.INVALID_HANDLE) return;
        this.fail(`${what} of a dead or freed handle gave ${err.code}, not a stale or invalid handle: ${err.message}`);
      }
      this.fail(`${what} of a live object ${describeObj(this.objects.get(h))} failed with ${err.code}: ${err.message}`);
    };
    /** Bytes for picked[i]: its own, and only if it was live when the read started. */
    const check = (i: number, bytes: Buffer, what: string): void => {
      if (!start[i]!.live) this.fail(`${what} of a dead handle ${picked[i]} returned ${bytes.length} bytes`);
      if (!bytes.equals(start[i]!.bytes!)) this.fail(`${what} returned other bytes for ${describeObj(this.objects.get(picked[i]!))}`);
    };
    const results = await singles;
    results.forEach((r, i) => {
      if (i % 2 !== 0) return;
      if (r.status === 'fulfilled' && viaDevice[i] && (touched.has(picked[i]!) || storeGone)) {
        // Its bytes came from the device after the object was freed, its epoch closed or the
        // store closed: the handle must be checked again when the bytes arrive.
        this.fail(`getAsync #${i} read from the device returned bytes though ${storeGone ? 'the store was closed' : 'the object was freed or its epoch closed'} while the read was in flight`);
      }
      if (r.status === 'fulfilled') check(i, r.value!, `getAsync #${i} (${op.during} while in flight)`);
      else explain(i, r.reason, `getAsync #${i} (${op.during} while in flight)`);
    });
    const m = await many;
    const what = `getMany of ${picked.length} at depth ${op.depth} (${op.during} while in flight)`;
    if (m.ok) {
      if (m.value.length !== picked.length) this.fail(`${what} returned ${m.value.length} buffers`);
      m.value.forEach((b, i) => check(i, b, `${what} [${i}]`));
    } else {
      const index = /^getMany: handles\[(\d+)\]: /.exec(m.reason instanceof Error ? m.reason.message : '');
      if (m.reason instanceof ZnsSlabError && index === null && !(storeGone && m.reason.code === ErrorCode.CLOSED)) {
        this.fail(`${what} rejected without naming a handle: ${describeError(m.reason)}`);
      }
      explain(index === null ? 0 : Number(index[1]), m.reason, what);
    }
  }

  private free(pick: number): void {
    if (this.liveList.length === 0) return;
    const i = pick % this.liveList.length;
    const handle = this.liveList[i]!;
    const obj = this.objects.get(handle)!;
    const r = this.attempt('free', () => this.store.free(handle), []);
    if (!r.ok) return;
    this.liveList[i] = this.liveList[this.liveList.length - 1]!;
    this.liveList.pop();
    obj.freed = 'volatile';
    // A second free of the same handle is refused.
    const again = this.attempt('second free', () => this.store.free(handle), [ErrorCode.STALE_HANDLE]);
    if (again.ok) this.fail(`a second free of ${handle} succeeded`);
  }

  private freeMany(pick: number, count: number): void {
    if (this.liveList.length === 0) return;
    const epoch = this.objects.get(this.liveList[pick % this.liveList.length]!)!.epoch;
    const mine = this.liveList.filter((h) => this.objects.get(h)!.epoch === epoch).sort((a, b) => this.objects.get(a)!.n - this.objects.get(b)!.n);
    for (const handle of mine.slice(0, count)) {
      const r = this.attempt('free', () => this.store.free(handle), []);
      if (!r.ok) continue;
      this.objects.get(handle)!.freed = 'volatile';
    }
    this.liveList = this.liveList.filter((h) => this.objects.get(h)!.freed === 'no');
  }

  private flush(): void {
    const r = this.attempt('flush', () => this.store.flush(), [ErrorCode.DEVICE_FULL]);
    if (!r.ok) return;
    this.madeDurable();
  }

  /** After a successful flush or clean close: everything so far is durable. */
  private madeDurable(): void {
    for (const [handle, obj] of this.objects) {
      const epoch = this.epochs.get(obj.epoch);
      if (epoch === undefined || epoch.ephemeral) continue;
      obj.durable = true;
      if (obj.freed === 'volatile') this.bury(handle, obj);
    }
    for (const e of this.epochs.values()) if (!e.ephemeral) e.durable = e.state;
    for (const e of this.epochs.values()) if (e.state === 'CLOSED' && !e.ephemeral) this.closed(e);
    this.limbo = this.limbo.filter((h) => this.objects.has(h));
  }

  private advanced(newId: number): void {
    const old = this.epochs.get(this.current)!;
    old.state = 'CLOSING';
    this.current = newId;
    this.epochs.set(newId, { id: newId, state: 'ACTIVE', durable: undefined, ephemeral: false });
  }

  /** A live epoch picked by `pick`: oldest first, or any when `any`. */
  private pickEpoch(pick: number, oldestFirst: boolean): number {
    const live = [...this.epochs.values()].filter((e) => e.state !== 'CLOSED' && !e.ephemeral).map((e) => e.id).sort((a, b) => a - b);
    if (live.length === 0) return this.current;
    return oldestFirst ? live[pick % Math.min(3, live.length)]! : live[pick % live.length]!;
  }

  private closeEpoch(pick: number): void {
    const id = this.pickEpoch(pick, true);
    const epoch = this.epochs.get(id)!;
    const wasCurrent = id === this.current;
    // Closed at most: a crash inside epochClose may leave it closed or not (reconcile reads which).
    epoch.state = 'CLOSED';
    const r = this.attempt(`epochClose(${id})`, () => this.store.epochClose(id), []);
    if (wasCurrent) this.advanced(this.store.epochCurrent());
    // Closed in memory even when its commit failed (the next flush makes it durable).
    const state = this.store.epochState(id);
    if (state !== EpochState.CLOSED) this.fail(`epoch ${id} is ${state} after epochClose`);
    if (r.ok) epoch.durable = 'CLOSED';
    this.closed(epoch);
  }

  /**
   * The epoch is closed in memory: its handles are stale from now on. Durably closed (or
   * ephemeral, never persisted), its objects are gone for good; otherwise a crash may bring
   * them back, so they stay in the model, dead in this session.
   */
  private closed(epoch: ModelEpoch): void {
    epoch.state = 'CLOSED';
    const forGood = epoch.ephemeral || epoch.durable === 'CLOSED';
    const keep: bigint[] = [];
    for (const handle of this.liveList) {
      if (this.objects.get(handle)!.epoch !== epoch.id) keep.push(handle);
      else if (!forGood) this.limbo.push(handle);
    }
    this.liveList = keep;
    if (!forGood) return;
    for (const [handle, obj] of this.objects) if (obj.epoch === epoch.id) this.bury(handle, obj);
  }

  /** After a reopen, the model takes what the store holds: there now means live and durable. */
  private settle(handle: bigint, obj: ModelObject, verdict: 'live' | 'dead', liveList: bigint[]): void {
    this.result.verifiedAfterReopen++;
    if (verdict === 'live') {
      obj.durable = true;
      obj.freed = 'no';
      liveList.push(handle);
    } else this.bury(handle, obj);
  }

  private bury(handle: bigint, obj: ModelObject): void {
    this.objects.delete(handle);
    this.graveyard.push(handle);
    this.buried.set(handle, { n: obj.n, size: obj.size, epoch: obj.epoch });
  }

  private async domain(op: Extract<Op, { k: 'domain' }>): Promise<void> {
    const r = this.attempt('epochDomainCreate', () => this.store.epochDomainCreate(), []);
    if (!r.ok) return;
    const domain = r.value;
    const model: ModelEpoch = { id: domain.epoch, state: 'ACTIVE', durable: undefined, ephemeral: true };
    this.epochs.set(model.id, model);
    const mine: bigint[] = [];
    const putHere = (target: ModelEpoch, i: number) => {
      const before = this.liveList.length;
      this.put(op.size + i, undefined, target);
      if (this.liveList.length > before) mine.push(this.liveList[this.liveList.length - 1]!);
    };
    let inner: ModelEpoch | undefined;
    try {
      await domain.run(async () => {
        for (let i = 0; i < op.puts; i++) {
          putHere(model, i);
          if (op.async && i % 3 === 1) await null;
        }
        if (op.nested) {
          const d2 = this.store.epochDomainCreate();
          inner = { id: d2.epoch, state: 'ACTIVE', durable: undefined, ephemeral: true };
          this.epochs.set(inner.id, inner);
          d2.run(() => putHere(inner!, 0));
          d2[Symbol.dispose]();
          if (this.store.epochState(inner.id) !== EpochState.CLOSED) this.fail(`nested domain epoch ${inner.id} outlived its domain`);
          this.closed(inner);
        }
        for (const h of mine) {
          const obj = this.objects.get(h);
          if (obj?.epoch === model.id) this.checkRead(h, true, false, 'inside its domain');
        }
      });
    } finally {
      if (!this.ctl.crashed) domain[Symbol.dispose]();
    }
    if (this.ctl.crashed) return;
    if (this.store.epochState(model.id) !== EpochState.CLOSED) this.fail(`domain epoch ${model.id} outlived its domain`);
    this.closed(model);
  }

  private async reopen(): Promise<void> {
    const r = this.attempt('close', () => this.store.close(), [ErrorCode.DEVICE_FULL]);
    if (this.ctl.crashed) return;
    if (r.ok) this.madeDurable();
    this.result.reopens++;
    this.open();
    this.reconcile(r.ok ? 'clean' : 'crash');
  }

  private async recoverFromCrash(pick: number): Promise<void> {
    this.result.crashes++;
    try {
      this.store.abandon();
    } catch (err) {
      if (!(err instanceof CrashSignal)) this.fail(`abandon threw ${describeError(err)}`);
    }
    this.device.loseUnflushed(new Rng(pick ^ 0x5eed));
    this.ctl.crashed = false;
    this.ctl.disarm();
    this.ctl.takeFired();
    if (this.catalogLost) {
      this.catalogLost = false;
      this.rebuildLostCatalog();
      this.open();
      this.reconcile('recovered');
      return;
    }
    this.open();
    this.reconcile('crash');
  }

  /** The catalog is gone: the store must refuse to open (and reset nothing), then recover rebuilds it. */
  private rebuildLostCatalog(): void {
    const catalogFile = path.join(this.storeDir, CATALOG_FILE);
    for (const suffix of ['', '-wal', '-shm', '.reserve']) fs.rmSync(catalogFile + suffix, { force: true });
    const files = fs.readdirSync(this.deviceDir).filter((f) => f.startsWith('zone-')).length;
    let code: string | undefined;
    try {
      openStoreWith(this.storeDir, { device: new FaultyDevice(openEmulatedDevice(this.deviceDir), this.ctl, this.background, this.split) }, {}).close();
    } catch (err) {
      code = (err as ZnsSlabError).code;
    }
    if (code !== ErrorCode.CATALOG_MISSING) this.fail(`open without a catalog gave ${code ?? 'a new store'}, not ERR_CATALOG_MISSING`);
    if (fs.readdirSync(this.deviceDir).filter((f) => f.startsWith('zone-')).length !== files) this.fail('open without a catalog changed the device');
    const device = openEmulatedDevice(this.deviceDir, { exclusive: true });
    try {
      rebuildCatalog(device, catalogFile, 'device');
    } catch (err) {
      this.fail(`recover failed: ${describeError(err)}`);
    } finally {
      device.close();
    }
    this.result.recoveries++;
  }

  /**
   * After a reopen: epochs and objects against what the model says must or may have survived.
   * `clean`: the store was closed cleanly, so everything is durable and nothing may differ.
   */
  private reconcile(mode: 'clean' | 'crash' | 'recovered'): void {
    // The model's own reads here are checks, not workload: no injected faults.
    this.ctl.enabled = false;
    try {
      if (mode === 'recovered') this.reconcileRecovered();
      else this.reconcileChecked(mode === 'clean');
    } finally {
      this.ctl.enabled = true;
    }
  }

  /**
   * After `zns-slab recover`: every flushed object not freed, of an epoch not closed, is back
   * with its bytes. Anything else may be back too (frees after a slab's last seal, a closed
   * epoch whose zones were not yet reset), but only ever with its own bytes; an auto-closing
   * domain's objects never.
   */
  private reconcileRecovered(): void {
    const closedBefore = new Set<number>();
    for (const e of this.epochs.values()) if (e.state === 'CLOSED') closedBefore.add(e.id);
    const liveList: bigint[] = [];
    for (const [handle, obj] of [...this.objects]) {
      const epoch = this.epochs.get(obj.epoch);
      const mustLive = obj.durable && obj.freed === 'no' && !closedBefore.has(obj.epoch) && epoch !== undefined && !epoch.ephemeral;
      this.settle(handle, obj, this.checkRead(handle, mustLive, epoch?.ephemeral === true, 'after a lost catalog and recover'), liveList);
    }
    const stillDead: bigint[] = [];
    for (const handle of this.graveyard) {
      if (this.objects.has(handle)) continue;
      const was = this.buried.get(handle)!;
      this.objects.set(handle, { n: was.n, handle, size: was.size, epoch: was.epoch, durable: true, freed: 'no' });
      if (this.checkRead(handle, false, false, 'after recover (a dead handle)') === 'live') {
        liveList.push(handle);
        this.buried.delete(handle);
      } else {
        this.objects.delete(handle);
        stillDead.push(handle);
      }
    }
    this.graveyard = stillDead;
    this.liveList = liveList;
    this.limbo = [];
    // Epochs as the recovered catalog has them: recovered ones CLOSING, a new one current.
    this.epochs.clear();
    for (const obj of this.objects.values()) {
      if (this.epochs.has(obj.epoch)) continue;
      const state = this.store.epochState(obj.epoch) as EpochModelState;
      if (state !== 'CLOSING') this.fail(`a recovered object's epoch ${obj.epoch} is ${state}, not CLOSING`);
      this.epochs.set(obj.epoch, { id: obj.epoch, state, durable: state, ephemeral: false });
    }
    this.current = this.store.epochCurrent();
    this.epochs.set(this.current, { id: this.current, state: 'ACTIVE', durable: 'ACTIVE', ephemeral: false });
    try {
      this.store.verify();
    } catch (err) {
      this.fail(`verify after recover: ${describeError(err)}`);
    }
  }

  private reconcileChecked(clean: boolean): void {
    /** Epochs the reopened store has never heard of (their creation was not durable). */
    const gone = new Set<number>();
    for (const e of this.epochs.values()) {
      let actual: EpochModelState;
      try {
        actual = this.store.epochState(e.id) as EpochModelState;
      } catch (err) {
        if ((err as ZnsSlabError).code !== ErrorCode.UNKNOWN_EPOCH) this.fail(`epochState(${e.id}) after reopen: ${describeError(err)}`);
        // An epoch never committed is unknown after a crash: fine unless it was durably live.
        if (e.durable !== undefined && e.durable !== 'CLOSED') this.fail(`epoch ${e.id} was durably ${e.durable}, and is unknown after reopen`);
        gone.add(e.id);
        actual = 'CLOSED';
      }
      if (e.ephemeral && actual !== 'CLOSED') this.fail(`ephemeral epoch ${e.id} is ${actual} after reopen`);
      if (clean && !e.ephemeral && actual !== e.state) this.fail(`after a clean close epoch ${e.id} is ${actual}, was ${e.state}`);
      if (e.durable !== undefined && ORDER[actual] < ORDER[e.durable]) this.fail(`epoch ${e.id} is ${actual} after reopen, but ${e.durable} was durable`);
      if (!gone.has(e.id) && !e.ephemeral && ORDER[actual] > ORDER[e.state]) this.fail(`epoch ${e.id} is ${actual} after reopen, but was only ${e.state}`);
      e.state = actual;
      e.durable = actual;
    }
    const liveList: bigint[] = [];
    for (const [handle, obj] of [...this.objects]) {
      const epochClosed = this.epochs.get(obj.epoch)?.state !== 'ACTIVE' && this.epochs.get(obj.epoch)?.state !== 'CLOSING';
      if (gone.has(obj.epoch) && obj.durable && obj.freed === 'no') this.fail(`${describeObj(obj)} was durable, but its epoch is unknown after reopen`);
      const mustLive = !epochClosed && obj.freed === 'no' && (clean || obj.durable);
      const mustDead = epochClosed || (clean && obj.freed !== 'no');
      this.settle(handle, obj, this.checkRead(handle, mustLive, mustDead, clean ? 'after a clean close and reopen' : 'after a crash'), liveList);
    }
    this.liveList = liveList;
    this.limbo = [];
    // Durably closed (or never created) epochs: nothing of them is left to check.
    for (const [id, e] of this.epochs) if (e.state === 'CLOSED') this.epochs.delete(id);
    this.current = this.store.epochCurrent();
    if (!this.epochs.has(this.current)) this.epochs.set(this.current, { id: this.current, state: 'ACTIVE', durable: 'ACTIVE', ephemeral: false });
    const g = this.graveyard;
    const from = Math.max(0, g.length - GRAVEYARD_CHECK_AFTER_REOPEN);
    for (let i = from; i < g.length; i++) this.checkRead(g[i]!, false, true, 'after reopen (a dead handle)');
    try {
      this.store.verify();
    } catch (err) {
      this.fail(`verify after reopen: ${describeError(err)}`);
    }
  }

  private checkSomeGraveyard(): void {
    const g = this.graveyard;
    if (g.length === 0) return;
    const h = g[(this.step * 2654435761) % g.length]!;
    this.checkRead(h, false, true, 'in session (a dead handle)');
  }

  close(): void {
    try {
      this.store.close();
    } catch {
      this.store.abandon();
    }
  }
}

function describeError(err: unknown): string {
  if (err instanceof ZnsSlabError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

function describeObj(obj: ModelObject | undefined): string {
  if (obj === undefined) return 'unknown object';
  return `object #${obj.n} (${obj.size} bytes, epoch ${obj.epoch}, ${obj.durable ? 'durable' : 'not flushed'}${obj.freed === 'no' ? '' : ', freed'})`;
}

/** Generates and runs `count` operations from `seed`; returns the run and the operations it ran. */
export async function runSeed(seed: number, count: number, options: Omit<RunOptions, 'seed'> = {}): Promise<{ result: RunResult; ops: Op[] }> {
  const rng = new Rng(seed);
  const ops: Op[] = [];
  const result = await runWith(seed, options, (sim) => {
    if (ops.length >= count) return undefined;
    const op = generateOp(rng, sim.hints(options.faults ?? true), sim.maxObjectSize);
    ops.push(op);
    return op;
  });
  return { result, ops };
}

/** Runs a fixed list of operations (a replay, or a shrinking trial). */
export async function runOps(seed: number, ops: readonly Op[], options: Omit<RunOptions, 'seed'> = {}): Promise<RunResult> {
  let i = 0;
  return runWith(seed, options, () => ops[i++]);
}

async function runWith(seed: number, options: Omit<RunOptions, 'seed'>, next: (sim: Sim) => Op | undefined): Promise<RunResult> {
  const owned = options.dir === undefined;
  const dir = options.dir ?? fs.mkdtempSync(path.join(baseTmp(), 'zns-slab-sim-'));
  let sim: Sim | undefined;
  let step = 0;
  try {
    sim = new Sim(dir, seed, options.gc, options.backgroundWrites ?? backgroundWritesFor(seed), options.profile ?? deviceProfileFor(seed));
    for (let op = next(sim); op !== undefined; op = next(sim)) {
      await sim.run(op, step);
      step++;
      if (options.progress && step % 1000 === 0) options.progress(step);
    }
    sim.result.ops = step;
    sim.close();
    return { ...sim.result, crashes: sim.ctl.counts.crashes, faults: sim.ctl.counts.faults };
  } catch (err) {
    const result = sim?.result ?? emptyResult();
    result.ops = step + 1;
    try {
      sim?.close();
    } catch {
      // the store may be wedged by the very bug found; the folder is removed below
    }
    const message = err instanceof SimFailure ? err.message : `simulator error: ${describeError(err)}`;
    return { ...result, failure: { step: err instanceof SimFailure ? err.step : step, message } };
  } finally {
    if (owned) fs.rmSync(dir, { recursive: true, force: true });
  }
}
