/**
 * Epochs (seed Phase 1.0 and 2.1). Every allocation belongs to one. An ACTIVE epoch takes
 * puts; a CLOSING one takes none but its objects stay readable, and its empty slabs are
 * recycled at once; closing an epoch resets its zones: every handle still pointing into it
 * goes stale, and its space returns in O(zones), with no copying.
 */
import type { Slab } from './slab.js';

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
  /** The current partial slab per size class (the seed's current_partial). */
  readonly openSlabs: (Slab | undefined)[] = [];
  /** Every live slab of the epoch, open or sealed. */
  readonly slabs = new Set<Slab>();
  /** Zones the epoch owns. */
  readonly zones = new Set<number>();
  /** Has a row in the catalog (false for an epoch that so far lives only in memory). */
  persisted: boolean;
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

  constructor(id: number, state: EpochState, createdAt: number, persisted: boolean, classCount: number, ephemeral = false) {
    this.id = id;
    this.ephemeral = ephemeral;
    this.state = state;
    this.createdAt = createdAt;
    this.persisted = persisted;
    this.liveObjects = new Int32Array(classCount);
    this.slabCount = new Int32Array(classCount);
    this.sealedBytes = new Float64Array(classCount);
  }
}
