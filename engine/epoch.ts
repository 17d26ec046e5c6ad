/**
 * Epochs (the ZNS-Slab allocator's Phase 1.0 and 2.1). Every allocation belongs to one. An
 * ACTIVE epoch takes puts; a CLOSING one takes none but its objects stay readable, and its
 * empty slabs are recycled at once; closing an epoch resets its zones: every handle still
 * pointing into it goes stale, and its space returns in O(zones), with no copying.
 *
 * The epoch owns its totals (live objects, slabs, sealed bytes per size class): only the
 * methods below change them, so `verify()` can recount them from its slabs.
 */
import { assert } from '../errors.js';
import { type Slab, SlabState } from './slab.js';

export enum EpochState {
  ACTIVE = 'ACTIVE',
  CLOSING = 'CLOSING',
  /** Zones reset; its handles are stale. Kept only as history. */
  CLOSED = 'CLOSED',
}

export class Epoch {
  readonly id: number;
  state: EpochState;
  readonly createdAt: number;
  closingAt: number | null = null;
  closedAt: number | null = null;
  /** The current partial slab per size class (the allocator's current_partial). */
  readonly openSlabs: (Slab | undefined)[] = [];
  /** Every live slab of the epoch, open or sealed. */
  readonly slabs = new Set<Slab>();
  /**
   * Scoped to an auto-closing domain: never persisted (flush skips it), so its objects never
   * outlive the domain, not even across a crash.
   */
  readonly ephemeral: boolean;
  /** Per size class, kept up to date as objects come and go, so stats never walk objects. */
  readonly liveObjects: Int32Array;
  readonly slabCount: Int32Array;
  /** Device bytes of the epoch's sealed slabs. */
  readonly sealedBytes: Float64Array;

  constructor(id: number, state: EpochState, createdAt: number, classCount: number, ephemeral = false) {
    this.id = id;
    this.ephemeral = ephemeral;
    this.state = state;
    this.createdAt = createdAt;
    this.liveObjects = new Int32Array(classCount);
    this.slabCount = new Int32Array(classCount);
    this.sealedBytes = new Float64Array(classCount);
  }

  /** A slab joins the epoch (new, or restored from the catalog with its live objects). */
  addSlab(slab: Slab): void {
    assert(slab.epoch === this.id && !this.slabs.has(slab), `slab ${slab.id} joins epoch ${this.id} once`);
    this.slabs.add(slab);
    const c = slab.cls.index;
    this.slabCount[c]!++;
    this.liveObjects[c]! += slab.liveCount;
    if (slab.state === SlabState.SEALED) this.sealedBytes[c]! += slab.length;
  }

  /** A slab leaves (emptied, or its epoch closes); whatever it still counted goes with it. */
  removeSlab(slab: Slab): void {
    assert(this.slabs.delete(slab), `slab ${slab.id} is in epoch ${this.id}`);
    const c = slab.cls.index;
    this.slabCount[c]!--;
    this.liveObjects[c]! -= slab.liveCount;
    if (slab.state === SlabState.SEALED) this.sealedBytes[c]! -= slab.length;
    if (this.openSlabs[c] === slab) this.openSlabs[c] = undefined;
  }

  objectPut(sizeClass: number): void {
    this.liveObjects[sizeClass]!++;
  }

  objectFreed(sizeClass: number): void {
    this.liveObjects[sizeClass]!--;
  }

  /** After `slab.markSealed`: its bytes are on the device now. */
  slabSealed(slab: Slab): void {
    assert(slab.state === SlabState.SEALED && this.slabs.has(slab), 'a sealed slab of this epoch');
    this.sealedBytes[slab.cls.index]! += slab.length;
    if (this.openSlabs[slab.cls.index] === slab) this.openSlabs[slab.cls.index] = undefined;
  }

  /** Before `slab.markUnsealed`: its background write failed, so its bytes are not on the device. */
  slabUnsealed(slab: Slab): void {
    assert(slab.state === SlabState.SEALED && this.slabs.has(slab), 'a sealed slab of this epoch');
    this.sealedBytes[slab.cls.index]! -= slab.length;
  }

  /** After zone GC moved a sealed slab (packed, so its image may be shorter now). */
  slabMoved(slab: Slab, oldLength: number): void {
    assert(slab.state === SlabState.SEALED && this.slabs.has(slab), 'a sealed slab of this epoch moved');
    this.sealedBytes[slab.cls.index]! += slab.length - oldLength;
  }

  /** Recounts every total from the slabs; throws on the first difference (a bug). */
  verify(): void {
    const live = new Int32Array(this.liveObjects.length);
    const count = new Int32Array(this.slabCount.length);
    const sealed = new Float64Array(this.sealedBytes.length);
    for (const slab of this.slabs) {
      assert(slab.epoch === this.id, `slab ${slab.id} of epoch ${slab.epoch} listed in epoch ${this.id}`);
      count[slab.cls.index]!++;
      live[slab.cls.index]! += slab.liveCount;
      if (slab.state === SlabState.SEALED) sealed[slab.cls.index]! += slab.length;
    }
    for (let c = 0; c < live.length; c++) {
      assert(live[c] === this.liveObjects[c], `epoch ${this.id} class ${c}: ${this.liveObjects[c]} live objects counted, ${live[c]} recounted`);
      assert(count[c] === this.slabCount[c], `epoch ${this.id} class ${c}: ${this.slabCount[c]} slabs counted, ${count[c]} recounted`);
      assert(sealed[c] === this.sealedBytes[c], `epoch ${this.id} class ${c}: ${this.sealedBytes[c]} sealed bytes counted, ${sealed[c]} recounted`);
      const open = this.openSlabs[c];
      if (open !== undefined) assert(open.state === SlabState.OPEN && this.slabs.has(open), `epoch ${this.id} class ${c}: its partial slab is open and its own`);
    }
  }
}
