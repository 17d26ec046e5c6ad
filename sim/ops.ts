/**
 * The simulator's operations. An operation is plain data; what it acts on (which object,
 * which epoch) is chosen when it runs, from `pick` and the model's state then, so a list
 * with operations removed still runs (that is what shrinking does).
 */
import type { FaultKind, FaultTarget } from './faults.js';
import type { Rng } from './rng.js';

export type Op =
  | { k: 'put'; size: number; to: 'current' | 'epoch'; pick: number }
  | { k: 'get'; pick: number }
  /**
   * `count` async reads (getAsync, and one getMany of them all at `depth`) started, then `during`
   * runs while they are in flight, then each result is held against the model.
   */
  | { k: 'getAsync'; pick: number; count: number; depth: number; during: ReadDuring }
  | { k: 'free'; pick: number }
  /** Frees up to `count` live objects of one epoch, oldest first: empties whole slabs. */
  | { k: 'freeMany'; pick: number; count: number }
  | { k: 'flush' }
  | { k: 'advance' }
  | { k: 'closeEpoch'; pick: number }
  | { k: 'domain'; puts: number; size: number; nested: boolean; async: boolean }
  | { k: 'reopen' }
  | { k: 'crash'; pick: number }
  /** A crash that also loses the catalog file: the store must refuse to open, then recover rebuilds it. */
  | { k: 'loseCatalog'; pick: number }
  /** A crash at the (after + 1)-th mutating device or catalog call from now; with `target`, of that kind of call only. */
  | { k: 'crashAt'; after: number; pick: number; target?: FaultTarget }
  | { k: 'fault'; target: FaultTarget; kind: FaultKind; after: number }
  /** `store.gc({ maxBytes })`; null: no budget (collect every zone worth it). */
  | { k: 'gc'; maxBytes: number | null }
  /**
   * Frees `count` random live objects of the current epoch and puts as many new ones into it
   * (sizes drawn from `pick`): zones stay partly live, the work zone GC exists for.
   */
  | { k: 'churn'; pick: number; count: number };

/** What runs while async reads are in flight: nothing, a free of one of them, an epoch close, zone GC, a flush, a clean reopen, a crash. */
export type ReadDuring = 'none' | 'free' | 'closeEpoch' | 'gc' | 'flush' | 'reopen' | 'crash';

/**
 * What a seed's workload looks like. 'classic': epochs advance and close often (zone resets
 * reclaim most space). 'longLived': few advances and closes, much churn: one epoch lives long
 * and only zone GC gives its freed space back.
 */
export type Workload = 'classic' | 'longLived';

/** What the generator reads of the run so far, to keep the mix useful. */
export interface GenHints {
  liveObjects: number;
  liveEpochs: number;
  /** Puts refused with ERR_DEVICE_FULL lately: close epochs to make room. */
  recentFull: number;
  faults: boolean;
  workload: Workload;
  /** The previous operation's kind: a crash or fault armed just now is aimed into a gc op at times. */
  last: Op['k'] | undefined;
}

export function objectSize(rng: Rng, max: number): number {
  const r = rng.below(100);
  let size: number;
  if (r < 70) size = rng.below(600);
  else if (r < 90) size = 600 + rng.below(7_400);
  else if (r < 98) size = 8_000 + rng.below(56_000);
  else size = 64_000 + rng.below(Math.max(1, max - 64_000));
  return Math.min(size, max);
}

export function generateOp(rng: Rng, hints: GenHints, maxObjectSize: number): Op {
  // A crash or a fault armed by the previous op lands inside a collection: in a relocation's
  // write, the device flush or catalog commit that records it, the victim's reset.
  if ((hints.last === 'crashAt' || hints.last === 'fault') && rng.chance(0.35)) return gcOp(rng);
  const long = hints.workload === 'longLived';
  const weights = {
    put: 40,
    get: 20,
    getAsync: 5,
    free: hints.liveObjects > 0 ? 14 : 0,
    freeMany: hints.liveObjects > 0 ? 2 : 0,
    flush: 5,
    advance: long ? (hints.liveEpochs < 2 ? 0.6 : 0.15) : hints.liveEpochs < 6 ? 3 : 0.5,
    closeEpoch: hints.recentFull > 0 ? (long ? 4 : 12) : long ? (hints.liveEpochs > 2 ? 0.5 : 0.1) : hints.liveEpochs > 3 ? 4 : 1.5,
    domain: 2.5,
    reopen: 0.8,
    crash: 1.2,
    crashAt: 1.2,
    loseCatalog: 0.25,
    fault: hints.faults ? 2.5 : 0,
    gc: long ? 2.5 : 1.5,
    churn: hints.liveObjects > 0 ? (long ? 8 : 2) : 0,
  };
  const k = rng.weighted(weights);
  switch (k) {
    case 'put':
      return { k, size: objectSize(rng, maxObjectSize), to: rng.chance(0.85) ? 'current' : 'epoch', pick: rng.u32() };
    case 'get':
    case 'free':
    case 'closeEpoch':
    case 'crash':
    case 'loseCatalog':
      return { k, pick: rng.u32() };
    case 'flush':
    case 'advance':
    case 'reopen':
      return { k };
    case 'freeMany':
      return { k, pick: rng.u32(), count: 1 + rng.below(rng.chance(0.5) ? 40 : 400) };
    case 'getAsync': {
      const during = rng.weighted({ none: 3, free: 3, closeEpoch: 2, gc: 2, flush: 1, reopen: 1, crash: 1 } as const);
      return { k, pick: rng.u32(), count: 1 + rng.below(rng.chance(0.7) ? 12 : 80), depth: [1, 4, 16, 64][rng.below(4)]!, during };
    }
    case 'domain':
      return { k, puts: 1 + rng.below(12), size: objectSize(rng, maxObjectSize), nested: rng.chance(0.3), async: rng.chance(0.5) };
    case 'crashAt':
      // Now and then aimed at one kind of call, so a crash lands in a commit or a reset however
      // many writes come first (a collection writes every slab it moves before it commits).
      if (rng.chance(0.4)) {
        const target = rng.weighted({ commit: 3, flush: 2, reset: 2, finish: 1, write: 1 } as const);
        return { k, after: rng.below(3), pick: rng.u32(), target };
      }
      return { k, after: rng.below(12), pick: rng.u32() };
    case 'fault': {
      const target = rng.weighted({ read: 1, write: 3, flush: 2, reset: 1.5, finish: 0.5, commit: 2 } as const);
      const kind = target === 'write' ? rng.weighted({ eio: 2, enospc: 1, short: 2 } as const) : target === 'commit' ? rng.weighted({ eio: 1, enospc: 1 } as const) : 'eio';
      return { k, target, kind, after: rng.below(6) };
    }
    case 'gc':
      return gcOp(rng);
    case 'churn':
      return { k, pick: rng.u32(), count: 1 + rng.below(rng.chance(0.8) ? 24 : 200) };
  }
}

function gcOp(rng: Rng): Op {
  const r = rng.below(10);
  // Unbounded, a budget of a slab or two, or 0 (only finishes a victim already emptied).
  return { k: 'gc', maxBytes: r < 4 ? null : r < 9 ? 4096 * (1 + rng.below(64)) : 0 };
}
