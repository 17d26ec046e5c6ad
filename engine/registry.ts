/**
 * The slab registry: slab id -> live slab and generation (the ZNS-Slab allocator's Phase 1.5).
 *
 * Stale handles are caught by generation, and that must hold across crashes too: a handle
 * handed out just before a crash must never match an object written after the restart. So
 * generations are leased: before a generation is used, the catalog durably records a limit
 * above it (`genLimit`), in batches so the cost is one catalog commit per LEASE_BATCH slabs.
 *
 * The one rule, owned here: `nextGeneration[id]` is the lowest generation of the id that may
 * still be handed out, it only moves up, and every generation handed out is below the durable
 * `genLimit`. After a restart every id, free or sealed, resumes at its recorded limit: anything
 * between a sealed slab's generation and its limit may have been handed out before the crash.
 * Within a session an id moves up through its lease one generation per reuse (an emptied
 * in-memory slab reused in place, or a recycled id); when the lease runs out, the id waits for
 * a new one.
 */
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import type { SlabRow } from '../catalog/catalog.js';
import { MAX_GENERATION, MAX_SLAB_ID } from './handle.js';
import { type Slab, SlabState } from './slab.js';

/** Generations one lease covers: how often an in-memory slab can be reused before a new lease. */
export const GENERATION_LEASE = 16;
/** Slab ids leased per catalog commit. */
export const LEASE_BATCH = 64;
/** Slab id 0 is never used, so the all-zero handle is never valid. */
export const FIRST_SLAB_ID = 1;

export type LeaseCommit = (rows: SlabRow[], nextSlabId: number) => void;

export function freeRow(slabId: number, generation: number, genLimit: number, retired = false): SlabRow {
  return {
    slabId,
    generation,
    genLimit,
    state: retired ? 'retired' : 'free',
    epoch: null,
    sizeClass: null,
    zone: null,
    offset: null,
    length: null,
    slotCount: null,
    liveCount: null,
    liveBitmap: null,
  };
}

export class SlabRegistry {
  /** Live slabs (OPEN or SEALED) by id. */
  private readonly slabs: (Slab | undefined)[] = [];
  /** The lowest generation the id may still hand out; only ever moves up. */
  private readonly nextGeneration: number[] = [];
  /** Exclusive limit of the id's durable lease. */
  private readonly genLimit: number[] = [];
  private readonly retired = new Set<number>();
  /** Free ids whose lease has room: ready to use without touching the catalog. */
  private readonly leased: number[] = [];
  /** Free ids that need a lease first. */
  private readonly unleased: number[] = [];
  /**
   * Ids of sealed slabs let go since the last commit. They wait for the commit that records
   * them free: until then the catalog says their image on the device is live, and no newer
   * image of the same id may be written (so a rebuild from the device, which takes the newest
   * image of each id, never prefers an uncommitted one over a committed live one).
   */
  private quarantine: number[] = [];
  nextSlabId: number;
  liveSlabs = 0;

  constructor(nextSlabId: number) {
    this.nextSlabId = Math.max(FIRST_SLAB_ID, nextSlabId);
  }

  /** A sealed slab from the catalog. Its lease counts as spent: the crash may have used it. */
  restoreSealed(slab: Slab, genLimit: number): void {
    assert(slab.generation < genLimit, `slab ${slab.id} generation below its lease`);
    this.slabs[slab.id] = slab;
    this.genLimit[slab.id] = genLimit;
    this.nextGeneration[slab.id] = genLimit;
    this.liveSlabs++;
  }

  /** A free id from the catalog: anything below its limit may have been handed out. */
  restoreFree(slabId: number, genLimit: number): void {
    this.genLimit[slabId] = genLimit;
    this.nextGeneration[slabId] = genLimit;
    this.unleased.push(slabId);
  }

  restoreRetired(slabId: number): void {
    this.retired.add(slabId);
  }

  /**
   * The live slab a handle names, or a coded error. `slabId`/`generation` come from the handle.
   */
  lookup(slabId: number, generation: number): Slab {
    if (slabId < FIRST_SLAB_ID || slabId >= this.nextSlabId) {
      throw new ZnsSlabError(ErrorCode.INVALID_HANDLE, `handle names slab ${slabId}, which this store never allocated`);
    }
    const slab = this.slabs[slabId];
    if (slab === undefined) {
      throw new ZnsSlabError(ErrorCode.STALE_HANDLE, `handle names slab ${slabId}, which is free: its objects were freed or its epoch closed`);
    }
    if (slab.generation !== generation) {
      throw new ZnsSlabError(
        ErrorCode.STALE_HANDLE,
        `handle generation ${generation} does not match slab ${slabId}'s generation ${slab.generation}: the slab was reused`,
      );
    }
    return slab;
  }

  get(slabId: number): Slab | undefined {
    return this.slabs[slabId];
  }

  /** True when `acquire` can run without a lease commit first. */
  hasLeasedId(): boolean {
    return this.leased.length > 0;
  }

  /** A free id and its generation, from the leased pool (call `lease` first when empty). */
  acquire(): { slabId: number; generation: number } {
    const slabId = this.leased.pop();
    assert(slabId !== undefined, 'acquire needs a leased id');
    const generation = this.takeGeneration(slabId);
    assert(generation !== undefined, 'a leased id has a generation left in its lease');
    return { slabId, generation };
  }

  /** Starts tracking `slab` (built by the caller from `acquire`'s id and generation). */
  attach(slab: Slab): void {
    assert(this.slabs[slab.id] === undefined, `slab id ${slab.id} is free before attach`);
    assert(slab.generation < this.nextGeneration[slab.id]!, `slab ${slab.id} generation was taken from the registry`);
    this.slabs[slab.id] = slab;
    this.liveSlabs++;
  }

  /**
   * Restarts an empty OPEN slab in place under its next generation. False when its lease is
   * spent (then the caller drops it).
   */
  renew(slab: Slab): boolean {
    assert(this.slabs[slab.id] === slab, `renew of slab ${slab.id}, which is live`);
    const generation = this.takeGeneration(slab.id);
    if (generation === undefined) return false;
    slab.resetInPlace(generation);
    return true;
  }

  /**
   * Frees `slab`'s id. It is used again under the next generation of its lease if the lease
   * has room (no catalog commit needed: generations are only ever handed out upward, and a
   * restart resumes past the durable limit), else it waits for a new lease. A sealed slab of
   * a persistent epoch waits for the next commit first (see `quarantine`).
   */
  recycle(slab: Slab, persistent: boolean): void {
    assert(this.slabs[slab.id] === slab, `recycle of slab ${slab.id}, which is live`);
    this.slabs[slab.id] = undefined;
    this.liveSlabs--;
    if (slab.state === SlabState.SEALED && persistent) this.quarantine.push(slab.id);
    else this.release(slab.id);
  }

  /** After a commit: the ids let go before it are recorded free, and can be used again. */
  committed(): void {
    const ids = this.quarantine;
    this.quarantine = [];
    for (const id of ids) this.release(id);
  }

  private release(id: number): void {
    const limit = this.genLimit[id]!;
    if (this.nextGeneration[id]! < limit) {
      this.leased.push(id);
      return;
    }
    if (limit + GENERATION_LEASE > MAX_GENERATION + 1) {
      // Generations would wrap: retire the id for good rather than risk ABA.
      this.retired.add(id);
      return;
    }
    this.unleased.push(id);
  }

  /**
   * The catalog row for an id as memory knows it now. Only a sealed slab of an epoch that is
   * persisted (`persistent`) is 'sealed'; any other id is recorded as free under its lease.
   */
  rowFor(slabId: number, persistent: boolean): SlabRow {
    const slab = this.slabs[slabId];
    const limit = this.genLimit[slabId]!;
    if (slab !== undefined && slab.state === SlabState.SEALED && persistent) {
      return {
        slabId,
        generation: slab.generation,
        genLimit: limit,
        state: 'sealed',
        epoch: slab.epoch,
        sizeClass: slab.cls.index,
        zone: slab.zone,
        offset: slab.offset,
        length: slab.length,
        slotCount: slab.slotCount,
        liveCount: slab.liveCount,
        liveBitmap: slab.bitmapBytes(),
        packedBitmap: slab.packedBitmap ?? null,
      };
    }
    return freeRow(slabId, Math.min(this.nextGeneration[slabId]!, limit), limit, this.retired.has(slabId));
  }

  /**
   * Leases up to LEASE_BATCH ids: recycled ones first, then new ones. `commit` must make the
   * rows durable before it returns; only then are the ids used.
   */
  lease(commit: LeaseCommit): void {
    const rows: SlabRow[] = [];
    const ids: number[] = [];
    while (ids.length < LEASE_BATCH && this.unleased.length > 0) ids.push(this.unleased.pop()!);
    let next = this.nextSlabId;
    while (ids.length < LEASE_BATCH && next <= MAX_SLAB_ID) ids.push(next++);
    if (ids.length === 0) {
      throw new ZnsSlabError(ErrorCode.DEVICE_FULL, `all ${MAX_SLAB_ID} slab ids are in use`);
    }
    for (const id of ids) {
      const generation = this.nextGeneration[id] ?? 0;
      rows.push(freeRow(id, generation, generation + GENERATION_LEASE));
    }
    try {
      commit(rows, next);
    } catch (err) {
      // Nothing was leased: put recycled ids back; new ids were never handed out.
      for (const id of ids) if (id < this.nextSlabId) this.unleased.push(id);
      throw err;
    }
    this.nextSlabId = next;
    // Reversed, so pop() hands out the lowest ids first.
    for (let i = rows.length - 1; i >= 0; i--) {
      const row = rows[i]!;
      this.nextGeneration[row.slabId] = row.generation;
      this.genLimit[row.slabId] = row.genLimit;
      this.leased.push(row.slabId);
    }
  }

  /** Recounts live slabs and checks every live slab's generation is under its lease. */
  verify(): void {
    let live = 0;
    for (let id = FIRST_SLAB_ID; id < this.slabs.length; id++) {
      const slab = this.slabs[id];
      if (slab === undefined) continue;
      live++;
      assert(slab.id === id, `registry slot ${id} holds slab ${slab.id}`);
      assert(slab.generation < this.nextGeneration[id]! && this.nextGeneration[id]! <= this.genLimit[id]!, `slab ${id} generation ${slab.generation} handed out under its lease ${this.genLimit[id]}`);
    }
    assert(live === this.liveSlabs, `registry counts ${this.liveSlabs} live slabs, recounted ${live}`);
  }

  /** The id's next generation if its lease has room (and moves past it), else undefined. */
  private takeGeneration(slabId: number): number | undefined {
    const generation = this.nextGeneration[slabId]!;
    if (generation >= this.genLimit[slabId]!) return undefined;
    this.nextGeneration[slabId] = generation + 1;
    return generation;
  }
}
