/**
 * How the engine shares out zones. Every zone is free (EMPTY, owned by nobody) or owned by
 * exactly one epoch. An epoch appends its sealed slabs to one "head" zone; when the head
 * cannot take the next slab it is finished and the epoch takes a free zone.
 *
 * The device's limits hold however many epochs and classes are live:
 * - active (partly written) zones: at most one head per epoch, and when a new head would pass
 *   the limit, the least recently written head of another epoch is finished early (it becomes
 *   FULL; its unwritten tail is the cost, counted in `finishWasteBytes`);
 * - open zones: before writing to a zone that is not open, the least recently written open
 *   zone is explicitly closed (it stays active and can be written again).
 * The engine never relies on the device closing zones implicitly.
 *
 * Each epoch has two heads, one per write stream: `user` (slabs sealed by puts) and `gc` (slabs
 * zone GC moves, engine/gc.ts), so data that survived a collection is not mixed with new data.
 *
 * The manager owns zone accounting: ownership (and each epoch's set of zones), the slabs in a
 * zone and their live bytes, the open/active counts, the store-wide written and live totals,
 * and the reserve (free zones only GC may take, so GC can always run). Nobody else writes those
 * fields; `verify` recounts them. A zone an epoch lets go is reset only once the catalog no longer refers to
 * it (`ZoneCatalogView`), so a crash never finds catalog rows pointing into an empty zone.
 */
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import { type WriteEnded, type Zone, type ZonedDevice, ZoneCondition, effectiveLimit, zoneIsActive, zoneIsOpen } from '../zns/device.js';
import type { StoreCounters } from './counters.js';
import { type Slab, SlabState, sealedBytes } from './slab.js';

/** What the zone manager needs to know of the catalog (the catalog writer answers). */
export interface ZoneCatalogView {
  /** The committed catalog still records this zone as owned: it may not be reset yet. */
  catalogOwns(zone: number): boolean;
  /** The zone's owner changed in memory: the next commit must record it. */
  zoneChanged(zone: number): void;
}

export const NO_OWNER = -1;

/** A write stream: puts' seals, or zone GC's moves. Each has its own head zone per epoch. */
export type WriteStream = 'user' | 'gc';

/** What the catalog records of an owned zone. */
export interface ZoneOwnership {
  epoch: number;
  /** Bytes written before the zone was finished early (null: full to capacity, or not full). */
  written: number | null;
}
const EMPTY_SET: ReadonlySet<number> = new Set();

export interface EngineZone {
  readonly index: number;
  readonly start: number;
  /**
   * Bytes written from the zone start. A zone finished early keeps what it had written; for a
   * zone found FULL at open, what the catalog recorded at the finish (else its capacity).
   */
  written: number;
  full: boolean;
  /** Open or closed: counts against the device's active limit. */
  active: boolean;
  owner: number;
  /** Live (registered) slabs stored in this zone. */
  readonly slabs: Set<Slab>;
  /** Device bytes of the live objects' slots here; written - liveBytes is dead space. */
  liveBytes: number;
  /** What this zone's live slabs would take written again, packed (zone GC's cost to move them). */
  packedBytes: number;
  /** When the engine last appended here (a tick), for least-recently-written choices. */
  lastWrite: number;
  unusable: boolean;
  needsReset: boolean;
  /** The append in flight here (started with the device's writeStart), one at a time. */
  writing: ZoneWrite | undefined;
}

/** Told how an append started in the background ended: `error` undefined when it was written. */
export type AppendEnded = (error: ZnsSlabError | undefined) => void;

interface ZoneWrite {
  readonly length: number;
  readonly stream: WriteStream;
  readonly onEnd: AppendEnded;
}

/**
 * Appends in flight at once, store-wide: each holds its slab image in memory until it ends, so
 * this bounds that memory (at most this many slab images, each at most a zone's capacity and
 * in practice TARGET_SLAB_BYTES to 1 MiB). Past it, an append waits for those in flight.
 */
export const MAX_APPENDS_IN_FLIGHT = 8;

export class ZoneManager {
  readonly zones: EngineZone[];
  private readonly device: ZonedDevice;
  private readonly counters: StoreCounters;
  private readonly capacity: number;
  private readonly maxOpen: number;
  private readonly maxActive: number;
  /** Free EMPTY zones; popped from the end, so kept in descending order at start. */
  private readonly free: number[] = [];
  /** Zones the engine has open, least recently written first. */
  private readonly open = new Map<number, true>();
  /** Epoch -> its head zone, per stream. */
  private readonly heads = new Map<number, number>();
  private readonly gcHeads = new Map<number, number>();
  /** Epoch -> the zones it owns. */
  private readonly owned = new Map<number, Set<number>>();
  private readonly catalog: ZoneCatalogView;
  private activeCount = 0;
  private tick = 0;
  /** Bytes written in all zones (owned, or let go and not reset yet). */
  private writtenTotal = 0;
  /** Live bytes in all zones (the sum of `liveBytes`). */
  private liveTotal = 0;
  /** Bytes written in zones let go and not reset yet (they wait for a commit). */
  private awaitingResetTotal = 0;
  /** The sum of `packedBytes`: what a move of every live slab would write now. */
  private packedTotal = 0;
  /** What the live slots alone would take packed (frees counted at once): the least GC can reach. */
  private packedLiveTotal = 0;
  /**
   * Free zones the user stream may not take (zone GC's working room: it needs a zone to move
   * slabs into before it can reset one). 0 when GC is off. The Store sets it.
   */
  reserveZones = 0;
  /** The device starts writes in the background (writeStart); else every append is synchronous. */
  private readonly backgroundWrites: boolean;
  /** Zones with an append in flight. */
  private appendsInFlight = 0;

  constructor(device: ZonedDevice, counters: StoreCounters, catalog: ZoneCatalogView) {
    this.device = device;
    this.counters = counters;
    this.catalog = catalog;
    const g = device.geometry;
    this.capacity = g.zoneCapacity;
    this.maxOpen = effectiveLimit(g.maxOpenZones, g.zoneCount);
    this.maxActive = effectiveLimit(g.maxActiveZones, g.zoneCount);
    this.zones = [];
    this.backgroundWrites = typeof device.writeStart === 'function' && typeof device.writesWait === 'function' && typeof device.writesEnded === 'function';
  }

  /**
   * Takes the device's zone report and the catalog's ownership. Zones that nobody owns but hold
   * data are reset (an epoch close or a crash left them behind), unless `readOnly`, which
   * only marks them. Returns those zones.
   */
  load(report: Zone[], owners: Map<number, ZoneOwnership>, readOnly = false): number[] {
    const recovered: number[] = [];
    for (const z of report) {
      const owned = owners.get(z.index);
      const owner = owned?.epoch ?? NO_OWNER;
      const finishedAt = owned?.written ?? null;
      const zone: EngineZone = {
        index: z.index,
        start: z.start,
        written: z.condition === ZoneCondition.FULL ? (finishedAt !== null && finishedAt <= this.capacity ? finishedAt : this.capacity) : z.writePointer - z.start,
        full: z.condition === ZoneCondition.FULL,
        active: zoneIsActive(z.condition),
        owner,
        slabs: new Set(),
        liveBytes: 0,
        packedBytes: 0,
        lastWrite: 0,
        unusable:
          z.type !== 2 /* sequential write required */ ||
          z.condition === ZoneCondition.OFFLINE ||
          z.condition === ZoneCondition.READ_ONLY,
        needsReset: false,
        writing: undefined,
      };
      this.zones.push(zone);
      this.writtenTotal += zone.written;
      if (owner !== NO_OWNER) this.ownedBy(owner).add(z.index);
      if (zone.active) this.activeCount++;
      if (zoneIsOpen(z.condition)) this.open.set(z.index, true);
      if (owner === NO_OWNER && !zone.unusable && z.condition !== ZoneCondition.EMPTY) {
        recovered.push(z.index);
        zone.needsReset = true;
        this.awaitingResetTotal += zone.written;
      }
    }
    for (let i = this.zones.length - 1; i >= 0; i--) {
      const zone = this.zones[i]!;
      if (zone.owner === NO_OWNER && !zone.unusable && !zone.needsReset) this.free.push(i);
    }
    // After the free list is built: a reset adds its zone to it (before, a recovered zone was
    // listed twice and handed to two epochs; found by the simulator).
    if (!readOnly) for (const index of recovered) if (!this.catalog.catalogOwns(index)) this.reset(index, { recovery: true });
    return recovered;
  }

  /**
   * After load: each epoch keeps its two most written partial zones as its heads (user, then
   * gc); any others are finished (left alone when `readOnly`).
   */
  chooseHeads(readOnly = false): void {
    const partial = new Map<number, EngineZone[]>();
    for (const zone of this.zones) {
      if (zone.owner === NO_OWNER || zone.full || zone.unusable || zone.written === 0) continue;
      const list = partial.get(zone.owner) ?? [];
      list.push(zone);
      partial.set(zone.owner, list);
    }
    for (const [epoch, list] of partial) {
      list.sort((a, b) => b.written - a.written);
      this.heads.set(epoch, list[0]!.index);
      if (list.length > 1) this.gcHeads.set(epoch, list[1]!.index);
      if (!readOnly) for (const extra of list.slice(2)) this.finishEarly(extra.index);
    }
  }

  /**
   * Appends `image` (a sealed slab, block-aligned) to `epoch`'s head zone of `stream`, taking a
   * new zone when needed. Returns where it landed and whether the epoch took a new zone for it.
   *
   * With `onEnd`, on a device that writes in the background, the append only starts: the zone's
   * accounting moves now (the bytes are the zone's), `image` must stay unchanged until `onEnd`
   * is called, and a failure is undone then (the zone's write pointer is taken from the device
   * again) before `onEnd` hears of it. Without `onEnd` the write is done when this returns.
   */
  append(epoch: number, image: Uint8Array, stream: WriteStream = 'user', onEnd?: AppendEnded): { zone: number; offset: number; newZone: boolean } {
    assert(image.length > 0 && image.length <= this.capacity, 'slab image fits a zone');
    const background = onEnd !== undefined && this.backgroundWrites;
    // Bounded memory: images in flight wait for their writes past the limit.
    if (this.appendsInFlight >= MAX_APPENDS_IN_FLIGHT) this.settle();
    const heads = stream === 'user' ? this.heads : this.gcHeads;
    // One write in flight per zone keeps its write pointer order on a real device.
    const current = heads.get(epoch);
    if (current !== undefined && this.zones[current]!.writing !== undefined) this.settle(current);
    let index = heads.get(epoch);
    if (index !== undefined && this.zones[index]!.written + image.length > this.capacity) {
      this.finishEarly(index);
      index = undefined;
    }
    let newZone = false;
    if (index === undefined) {
      index = this.takeFreeZone(epoch, stream);
      newZone = true;
    }
    const zone = this.zones[index]!;
    assert(zone.owner === epoch && !zone.full && zone.writing === undefined, 'head zone is the epoch\'s, writable and idle');
    // A head that is not active (its first write failed, and the device left it EMPTY) turns
    // active with this write: make room under the limit first (found by the simulator,
    // test/sim/replays/empty-head-passes-active-limit.json).
    if (!zone.active && this.activeCount >= this.maxActive) this.evictHead(epoch, stream);
    this.ensureOpen(index);
    const offset = zone.written;
    try {
      if (background) this.device.writeStart!(zone.start + offset, image);
      else this.device.write(zone.start + offset, image);
    } catch (err) {
      this.resync(index);
      throw err;
    }
    if (background) {
      zone.writing = { length: image.length, stream, onEnd: onEnd! };
      this.appendsInFlight++;
    }
    if (!zone.active) {
      zone.active = true;
      this.activeCount++;
    }
    zone.written += image.length;
    this.writtenTotal += image.length;
    zone.lastWrite = ++this.tick;
    this.counters.deviceBytesWritten += image.length;
    if (zone.written === this.capacity) {
      zone.full = true;
      heads.delete(epoch);
      // The device keeps the zone open until the write ends: so do our counts (else we would
      // open one zone more than the device allows).
      if (zone.writing === undefined) this.leaveActive(zone);
    }
    this.assertLimits();
    if (!background) onEnd?.(undefined);
    return { zone: index, offset, newZone };
  }

  /** Appends whose writes are in flight. */
  get appendsPending(): number {
    return this.appendsInFlight;
  }

  /**
   * Waits for the append in flight in `index` (without one: every append in flight) to end, and
   * applies how it ended (and how any other that ended meanwhile did).
   */
  settle(index?: number): void {
    if (this.appendsInFlight === 0) return;
    if (index !== undefined && this.zones[index]!.writing === undefined) return;
    for (const end of this.device.writesWait!(index)) this.appendEnded(end);
  }

  /** Applies the appends that have ended, without waiting. Cheap when none is in flight. */
  poll(): void {
    if (this.appendsInFlight === 0) return;
    for (const end of this.device.writesEnded!()) this.appendEnded(end);
  }

  /** Resolves once every append in flight now has ended (apply them with `poll`). */
  async settleAsync(): Promise<void> {
    if (this.appendsInFlight === 0) return;
    await this.device.writesWaitAsync!();
  }

  private appendEnded(end: WriteEnded): void {
    const zone = this.zones[end.zone]!;
    const w = zone.writing;
    assert(w !== undefined && w.length === end.length && end.offset + end.length === zone.start + zone.written, `zone ${end.zone} had this append in flight, its last`);
    zone.writing = undefined;
    this.appendsInFlight--;
    if (end.error === undefined) {
      if (zone.full) this.leaveActive(zone);
    } else {
      // The device says how far the zone really is written (none of it, or a part).
      this.resync(end.zone, zone.written - w.length);
      const heads = w.stream === 'user' ? this.heads : this.gcHeads;
      // A zone this write was to fill is writable again: its epoch's head once more, if that
      // stream has none now; else finished, so it holds no active resource as a non-head.
      if (!zone.full && zone.owner !== NO_OWNER && !this.isHead(end.zone)) {
        if (!heads.has(zone.owner)) heads.set(zone.owner, end.zone);
        else {
          w.onEnd(end.error);
          this.finishEarly(end.zone);
          return;
        }
      }
    }
    w.onEnd(end.error);
  }

  /** A zone filled: it no longer counts as open or active. */
  private leaveActive(zone: EngineZone): void {
    if (zone.active) this.activeCount--;
    zone.active = false;
    this.open.delete(zone.index);
  }

  /**
   * `epoch` lets go of the zone (which holds no slab): it is unowned at once and reset as soon
   * as the catalog no longer refers to it (now, if it never did; else after the commit that
   * records the release). False when a failed zone GC move put a slab back meanwhile.
   */
  release(index: number): boolean {
    // Every append in flight ends first: a zone GC move out of this zone that failed puts its
    // slab back here (engine/store.ts moveEnded), and then the zone is not let go.
    this.settle();
    const zone = this.zones[index]!;
    if (zone.slabs.size > 0) return false;
    assert(zone.owner !== NO_OWNER, `release of zone ${index}, which nobody owns`);
    if (this.heads.get(zone.owner) === index) this.heads.delete(zone.owner);
    if (this.gcHeads.get(zone.owner) === index) this.gcHeads.delete(zone.owner);
    this.owned.get(zone.owner)!.delete(index);
    zone.owner = NO_OWNER;
    zone.slabs.clear();
    this.liveTotal -= zone.liveBytes;
    zone.liveBytes = 0;
    this.packedTotal -= zone.packedBytes;
    for (const slab of zone.slabs) this.packedLiveTotal -= this.packedLive(slab.liveCount, slab);
    zone.packedBytes = 0;
    zone.needsReset = true;
    this.awaitingResetTotal += zone.written;
    this.catalog.zoneChanged(index);
    if (!this.catalog.catalogOwns(index)) this.reset(index);
    return true;
  }

  /**
   * Lets go of an owned zone that holds no live slab and is not a head: its space comes back
   * without copying anything. True when it was let go.
   */
  releaseIfEmpty(index: number): boolean {
    const zone = this.zones[index]!;
    if (zone.owner === NO_OWNER || zone.slabs.size > 0 || this.isHead(index)) return false;
    return this.release(index);
  }

  /** Whether the zone is some epoch's head (of either stream): it still takes appends. */
  isHead(index: number): boolean {
    const owner = this.zones[index]!.owner;
    return owner !== NO_OWNER && (this.heads.get(owner) === index || this.gcHeads.get(owner) === index);
  }

  get zoneCapacity(): number {
    return this.capacity;
  }

  get blockSize(): number {
    return this.device.geometry.logicalBlockSize;
  }

  /** Appends so far this session: the age zone GC weighs a zone's last write against. */
  get clock(): number {
    return this.tick;
  }

  /** Bytes written in all zones, and live bytes in them (device bytes held vs needed). */
  get bytesWritten(): number {
    return this.writtenTotal;
  }

  get bytesLive(): number {
    return this.liveTotal;
  }

  /** What the live slots of every sealed slab take packed (headers, block padding): the least GC can hold them in. */
  get bytesPackedLive(): number {
    return this.packedLiveTotal;
  }

  /** Bytes of `bytesWritten` in zones let go that wait for the next commit to be reset. */
  get bytesAwaitingReset(): number {
    return this.awaitingResetTotal;
  }

  /** Resets every released zone the catalog has let go of (call after each commit). */
  resetReleased(): void {
    for (const zone of this.zones) {
      if (zone.needsReset && zone.owner === NO_OWNER && !zone.unusable && !this.catalog.catalogOwns(zone.index)) this.reset(zone.index);
    }
  }

  /** A sealed slab now lives in its zone (sealed just now, or restored from the catalog). */
  placeSlab(slab: Slab): void {
    const zone = this.zones[slab.zone]!;
    assert(slab.state === SlabState.SEALED && zone.owner === slab.epoch, `slab ${slab.id} placed in zone ${zone.index} of its epoch`);
    zone.slabs.add(slab);
    zone.liveBytes += slab.liveCount * slab.cls.stride;
    zone.packedBytes += this.packed(slab);
    this.packedTotal += this.packed(slab);
    this.packedLiveTotal += this.packedLive(slab.liveCount, slab);
    this.liveTotal += slab.liveCount * slab.cls.stride;
  }

  /** One live slot of a sealed slab was freed. */
  slotFreed(slab: Slab): void {
    const zone = this.zones[slab.zone]!;
    zone.liveBytes -= slab.cls.stride;
    // (What a move costs stays: a slot freed since the last commit is still moved; slabCommitted.)
    this.packedLiveTotal += this.packedLive(slab.liveCount, slab) - this.packedLive(slab.liveCount + 1, slab);
    this.liveTotal -= slab.cls.stride;
  }

  /** A sealed slab leaves its zone (emptied, or its epoch closes). */
  removeSlab(slab: Slab): void {
    const zone = this.zones[slab.zone]!;
    assert(zone.slabs.delete(slab), `slab ${slab.id} is in zone ${zone.index}`);
    zone.liveBytes -= slab.liveCount * slab.cls.stride;
    zone.packedBytes -= this.packed(slab);
    this.packedTotal -= this.packed(slab);
    this.packedLiveTotal -= this.packedLive(slab.liveCount, slab);
    this.liveTotal -= slab.liveCount * slab.cls.stride;
  }

  /**
   * The catalog committed `slab` as memory has it: the slots freed before are durably free, so
   * a move no longer writes them (engine/slab.ts pendingFrees), and the zone's cost drops.
   */
  slabCommitted(slab: Slab): void {
    const zone = slab.state === SlabState.SEALED ? this.zones[slab.zone] : undefined;
    if (zone === undefined || !zone.slabs.has(slab)) {
      slab.markCommitted();
      return;
    }
    const before = this.packed(slab);
    slab.markCommitted();
    const after = this.packed(slab);
    zone.packedBytes += after - before;
    this.packedTotal += after - before;
  }

  private packedLive(live: number, slab: Slab): number {
    return live === 0 ? 0 : sealedBytes(live, slab.cls.stride, this.device.geometry.logicalBlockSize);
  }

  /** Bytes a move of `slab` writes now (its live slots and those freed since the last commit). */
  private packed(slab: Slab): number {
    return slab.keepCount === 0 ? 0 : sealedBytes(slab.keepCount, slab.cls.stride, this.device.geometry.logicalBlockSize);
  }

  /** The zones `epoch` owns (live view; do not change it). */
  zonesOf(epoch: number): ReadonlySet<number> {
    return this.owned.get(epoch) ?? EMPTY_SET;
  }

  /** Recounts every zone's slabs, live bytes, ownership and limits; checks them against the device. */
  verify(): void {
    const report = this.device.reportZones();
    let active = 0;
    let writtenTotal = 0;
    let liveTotal = 0;
    let awaiting = 0;
    let packedTotal = 0;
    let packedLiveTotal = 0;
    let inFlight = 0;
    const free = new Set(this.free);
    for (const zone of this.zones) {
      writtenTotal += zone.written;
      if (zone.needsReset) awaiting += zone.written;
      liveTotal += zone.liveBytes;
      let live = 0;
      let packed = 0;
      for (const slab of zone.slabs) {
        packed += this.packed(slab);
        packedLiveTotal += this.packedLive(slab.liveCount, slab);
        assert(slab.state === SlabState.SEALED && slab.zone === zone.index, `zone ${zone.index} lists slab ${slab.id}, which is elsewhere`);
        assert(slab.epoch === zone.owner, `zone ${zone.index} of epoch ${zone.owner} holds slab ${slab.id} of epoch ${slab.epoch}`);
        assert(slab.offset + slab.length <= zone.written, `slab ${slab.id} ends inside what zone ${zone.index} has written`);
        live += slab.liveCount * slab.cls.stride;
      }
      assert(live === zone.liveBytes, `zone ${zone.index}: ${zone.liveBytes} live bytes counted, ${live} recounted`);
      assert(packed === zone.packedBytes, `zone ${zone.index}: ${zone.packedBytes} packed bytes counted, ${packed} recounted`);
      packedTotal += packed;
      if (zone.owner !== NO_OWNER) assert(this.owned.get(zone.owner)?.has(zone.index), `zone ${zone.index} is in epoch ${zone.owner}'s set`);
      if (free.has(zone.index)) assert(zone.owner === NO_OWNER && zone.written === 0 && !zone.needsReset, `free zone ${zone.index} is empty and unowned`);
      if (zone.active) active++;
      const z = report[zone.index]!;
      if (!zone.unusable && zone.writing === undefined) {
        assert(zone.full === (z.condition === ZoneCondition.FULL), `zone ${zone.index} full=${zone.full}, device says ${ZoneCondition[z.condition]}`);
        if (!zone.full) assert(z.writePointer - z.start === zone.written, `zone ${zone.index} written ${zone.written}, device write pointer at ${z.writePointer - z.start}`);
      } else if (!zone.unusable) {
        // The device moves its write pointer when the append in flight ends.
        const before = zone.written - zone.writing!.length;
        assert(z.condition !== ZoneCondition.FULL && z.writePointer - z.start === before, `zone ${zone.index} written ${before} before its append in flight, device write pointer at ${z.writePointer - z.start} (${ZoneCondition[z.condition]})`);
        inFlight++;
      }
    }
    for (const [epoch, set] of this.owned) for (const index of set) assert(this.zones[index]!.owner === epoch, `epoch ${epoch}'s set lists zone ${index}, owned by ${this.zones[index]!.owner}`);
    for (const heads of [this.heads, this.gcHeads]) {
      for (const [epoch, index] of heads) {
        const zone = this.zones[index]!;
        assert(zone.owner === epoch && !zone.full, `head zone ${index} of epoch ${epoch} is its own and writable`);
      }
    }
    for (const [epoch, index] of this.gcHeads) assert(this.heads.get(epoch) !== index, `zone ${index} is both heads of epoch ${epoch}`);
    assert(writtenTotal === this.writtenTotal, `${this.writtenTotal} bytes written counted, ${writtenTotal} recounted`);
    assert(liveTotal === this.liveTotal, `${this.liveTotal} live bytes counted, ${liveTotal} recounted`);
    assert(packedTotal === this.packedTotal, `${this.packedTotal} packed bytes counted, ${packedTotal} recounted`);
    assert(packedLiveTotal === this.packedLiveTotal, `${this.packedLiveTotal} packed live bytes counted, ${packedLiveTotal} recounted`);
    assert(awaiting === this.awaitingResetTotal, `${this.awaitingResetTotal} bytes awaiting reset counted, ${awaiting} recounted`);
    assert(active === this.activeCount, `${this.activeCount} active zones counted, ${active} recounted`);
    assert(inFlight === this.appendsInFlight, `${this.appendsInFlight} appends in flight counted, ${inFlight} recounted`);
    this.assertLimits();
  }

  freeZoneCount(): number {
    return this.free.length;
  }

  get activeZones(): number {
    return this.activeCount;
  }

  get openZones(): number {
    return this.open.size;
  }

  head(epoch: number, stream: WriteStream = 'user'): number | undefined {
    return (stream === 'user' ? this.heads : this.gcHeads).get(epoch);
  }

  /** Whether `epoch`'s head of `stream` has an append in flight (the next append there would wait for it). */
  headWriting(epoch: number, stream: WriteStream): boolean {
    this.poll();
    const index = this.head(epoch, stream);
    return index !== undefined && this.zones[index]!.writing !== undefined;
  }

  /** Resets an unowned zone on the device and makes it free. Failures are counted and retried later. */
  private reset(index: number, options: { recovery?: boolean } = {}): boolean {
    const zone = this.zones[index]!;
    assert(zone.owner === NO_OWNER && !this.catalog.catalogOwns(index), `reset of zone ${index}, which the catalog lets go`);
    const bytes = zone.written;
    try {
      this.device.resetZone(index);
    } catch (err) {
      this.counters.zoneResetFailures++;
      zone.needsReset = true;
      if (!(err instanceof ZnsSlabError)) throw err;
      return false;
    }
    if (zone.active) this.activeCount--;
    zone.active = false;
    this.open.delete(index);
    this.writtenTotal -= zone.written;
    this.awaitingResetTotal -= zone.written;
    zone.written = 0;
    zone.full = false;
    zone.needsReset = false;
    if (options.recovery) this.counters.recoveryZoneResets++;
    else {
      this.counters.zoneResets++;
      this.counters.zoneResetBytes += bytes;
    }
    this.free.push(index);
    return true;
  }

  private ownedBy(epoch: number): Set<number> {
    let set = this.owned.get(epoch);
    if (set === undefined) {
      set = new Set();
      this.owned.set(epoch, set);
    }
    return set;
  }

  /**
   * After a failed write: the device may have written part of it (the kernel splits large
   * writes), so take the zone's write pointer and condition from the device.
   */
  private resync(index: number, fallbackWritten?: number): void {
    const zone = this.zones[index]!;
    let z: Zone;
    try {
      [z] = this.device.reportZones(index, 1) as [Zone];
    } catch {
      // The next write fails the same way and tries again; an append that ended in failure is
      // at least not counted as written.
      if (fallbackWritten !== undefined) {
        this.writtenTotal += fallbackWritten - zone.written;
        zone.written = fallbackWritten;
        zone.full = false;
      }
      return;
    }
    const written = z.condition === ZoneCondition.FULL ? this.capacity : z.writePointer - z.start;
    this.writtenTotal += written - zone.written;
    zone.written = written;
    zone.full = z.condition === ZoneCondition.FULL;
    const active = zoneIsActive(z.condition);
    if (active !== zone.active) this.activeCount += active ? 1 : -1;
    zone.active = active;
    if (zoneIsOpen(z.condition)) {
      if (!this.open.has(index)) this.open.set(index, true);
    } else this.open.delete(index);
    if (zone.full && zone.owner !== NO_OWNER) {
      if (this.heads.get(zone.owner) === index) this.heads.delete(zone.owner);
      if (this.gcHeads.get(zone.owner) === index) this.gcHeads.delete(zone.owner);
    }
  }

  private takeFreeZone(epoch: number, stream: WriteStream): number {
    const reserve = stream === 'user' ? this.reserveZones : 0;
    if (this.free.length <= reserve) this.resetReleased();
    if (this.free.length <= reserve) {
      const why = this.free.length > 0 ? ` (${this.free.length} kept in reserve for zone GC)` : '';
      throw new ZnsSlabError(ErrorCode.DEVICE_FULL, `no empty zone left for epoch ${epoch}${why}: close an epoch to reset its zones, or free objects for zone GC to collect`);
    }
    const index = this.free.pop()!;
    // The zone turns active on its first write; make room under the active limit first.
    if (this.activeCount >= this.maxActive) this.evictHead(epoch, stream);
    const zone = this.zones[index]!;
    assert(zone.written === 0 && !zone.full && zone.owner === NO_OWNER, 'a free zone is empty and unowned');
    zone.owner = epoch;
    this.ownedBy(epoch).add(index);
    (stream === 'user' ? this.heads : this.gcHeads).set(epoch, index);
    this.catalog.zoneChanged(index);
    return index;
  }

  /**
   * Finishes the least recently written head of another epoch; when every active zone is
   * `forEpoch`'s, its head of the other stream.
   */
  private evictHead(forEpoch: number, stream: WriteStream): void {
    let victim: EngineZone | undefined;
    let own: EngineZone | undefined;
    for (const heads of [this.heads, this.gcHeads]) {
      for (const [epoch, index] of heads) {
        const zone = this.zones[index]!;
        if (!zone.active) continue;
        if (epoch === forEpoch) {
          if (heads !== (stream === 'user' ? this.heads : this.gcHeads)) own = zone;
          continue;
        }
        if (victim === undefined || zone.lastWrite < victim.lastWrite) victim = zone;
      }
    }
    victim ??= own;
    assert(victim !== undefined, 'an active zone to finish exists when the active limit is reached');
    this.finishEarly(victim.index);
  }

  private finishEarly(index: number): void {
    this.settle(index);
    const zone = this.zones[index]!;
    if (zone.full) return;
    // Finishing a zone that is not open needs an open resource; at the active limit the device
    // will not close one for us (null_blk's null_check_open), so close our least recent one.
    if (!this.open.has(index) && this.open.size >= this.maxOpen) this.closeLeastRecent();
    this.device.finishZone(index);
    if (zone.active) this.activeCount--;
    zone.active = false;
    this.counters.zonesFinishedEarly++;
    this.counters.finishWasteBytes += this.capacity - zone.written;
    zone.full = true;
    this.open.delete(index);
    if (zone.owner !== NO_OWNER) {
      if (this.heads.get(zone.owner) === index) this.heads.delete(zone.owner);
      if (this.gcHeads.get(zone.owner) === index) this.gcHeads.delete(zone.owner);
      // The catalog records what was written, so a reopen knows the unwritten tail is not dead data.
      this.catalog.zoneChanged(index);
      // A head whose slabs are all gone already holds nothing: let it go now.
      if (zone.slabs.size === 0) this.release(index);
    }
  }

  private ensureOpen(index: number): void {
    if (this.open.has(index)) {
      this.open.delete(index);
      this.open.set(index, true);
      return;
    }
    if (this.open.size >= this.maxOpen) this.closeLeastRecent();
    this.open.set(index, true);
  }

  private closeLeastRecent(): void {
    for (;;) {
      const [lru] = this.open.keys();
      assert(lru !== undefined, 'an open zone to close exists at the open limit');
      if (this.zones[lru]!.writing === undefined) {
        this.device.closeZone(lru);
        this.open.delete(lru);
        return;
      }
      // Its write ends first; a zone that write filled leaves the open set by itself.
      this.settle(lru);
      if (this.open.size < this.maxOpen) return;
    }
  }

  private assertLimits(): void {
    assert(this.open.size <= this.maxOpen, `open zones ${this.open.size} <= ${this.maxOpen}`);
    assert(this.activeCount <= this.maxActive, `active zones ${this.activeCount} <= ${this.maxActive}`);
  }
}
