/**
 * Zone garbage collection: gives back the space of objects freed one by one in epochs that
 * live long, without changing any handle. A handle names a slab id; the registry maps the id
 * to where the slab's bytes are; so a slab can move, whole, and every handle still resolves.
 *
 * One collection, in named steps (after ZenFS's zone GC and the LFS cleaner):
 *   1. pickVictim   the owned, non-head zone with the best cost-benefit score
 *                   (1 - u) x age / (1 + u), u = its live slabs' packed bytes (what moving
 *                   them costs) / its written bytes, age in appends since its last write,
 *                   among zones whose written bytes exceed their packed ones by
 *                   GC_MIN_GAIN_FRACTION of a zone;
 *   2. relocate     each live slab of the victim, packed (only its live slots), is appended to
 *                   the GC head zone of the same epoch (so closing the epoch still resets
 *                   everything it owns), and the registry points at the new place (Store);
 *   3. release      the emptied victim is let go;
 *   4. commit       the device is flushed, the catalog commits the new places and the release
 *                   in one transaction, and only then is the victim reset (Store.commitAll).
 * A crash before 4 leaves the catalog pointing at the old places, which are intact (the victim
 * is reset only after the commit); after it, at the new ones, flushed before the commit. Either
 * way every object is read from exactly one place.
 *
 * When it runs: when the store holds more than `spaceAmplification` times what its live slabs
 * take packed, or
 * free zones run low, each slab a put seals lets GC move `stepBytes`, one slab per put over the
 * puts that follow (no put waits for more than one slab's move, and a commit every
 * GC_COMMIT_BATCH_ZONES collected zones); on `flush` (a step of `stepBytes`); on an idle
 * timer; and as `store.gc()`. The zone manager keeps GC_RESERVE_ZONES free zones that only
 * GC may take, so it can always make room; when puts find no zone, GC collects until one is free
 * (or nothing is worth collecting: then ERR_DEVICE_FULL).
 *
 * This file is the policy; the moves themselves are the Store's (they touch the registry, the
 * epoch and the catalog writer) and the zone accounting is the zone manager's.
 */
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';
import type { StoreCounters } from './counters.js';
import type { Slab } from './slab.js';
import { NO_OWNER, type ZoneManager } from './zones.js';

/** Free zones kept for GC alone (its head needs room before it can give a zone back). */
export const GC_RESERVE_ZONES = 1;
/**
 * A zone is collected only when its written bytes exceed what its live slabs take packed by at
 * least this share of a zone's capacity (so a zone GC just wrote, itself packed, is not
 * collected again, nor a zone of live slabs with nothing dead between them).
 */
export const GC_MIN_GAIN_FRACTION = 0.15;
/** When puts are out of zones, a smaller gain will do. */
export const GC_MIN_GAIN_FRACTION_URGENT = 1 / 32;
/** With this many free zones or fewer (besides the reserve), GC runs whatever the space amplification. */
export const GC_LOW_FREE_ZONES = 2;
/** GC never runs for fewer dead bytes than this many zones' capacity: a small store stays quiet. */
export const GC_MIN_DEAD_ZONES = 2;
/**
 * A step started by a put commits (flush, catalog transaction, reset) once this many collected
 * zones wait for it, not after each: the commit is the slow part of a step, and the put pays it.
 */
export const GC_COMMIT_BATCH_ZONES = 4;
/** Unspent pace is capped at this many steps' worth. */
const GC_MAX_CREDIT_STEPS = 4;
/** Most milliseconds one idle-timer step runs (it stops after the slab that passes it). */
export const GC_IDLE_STEP_MS = 10;

export interface GcOptions {
  /**
   * Collect while the device bytes the store holds are more than this many times what its live
   * objects would take packed (their slots, with slab headers and block padding). Default 1.25;
   * at least 1.1. Lower holds less disk and writes more (docs/BENCHMARKS.md, zone GC under
   * churn, has the trade measured).
   */
  spaceAmplification?: number;
  /**
   * GC's pace: bytes it may move for each slab a put seals, one slab per put over the puts that
   * follow (so no put waits for more than one slab's move), and the most a flush's step moves.
   * Default 1 MiB (about four full slabs per slab sealed: enough for write amplification 5).
   */
  stepBytes?: number;
  /** A step runs after this many milliseconds without a put or free; 0 turns the timer off. Default 1000. */
  idleMs?: number;
}

export const GC_DEFAULTS: Readonly<Required<GcOptions>> = Object.freeze({ spaceAmplification: 1.25, stepBytes: 1024 * 1024, idleMs: 1000 });
const GC_OPTION_KEYS = Object.keys(GC_DEFAULTS);
const MIN_SPACE_AMPLIFICATION = 1.1;

/** Checks `gc` options by name; returns them with defaults, or undefined for `false`. */
export function checkGcOptions(gc: unknown): Required<GcOptions> | undefined {
  if (gc === false) return undefined;
  if (gc === undefined || gc === true) return { ...GC_DEFAULTS };
  if (typeof gc !== 'object' || gc === null || Array.isArray(gc)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.gc must be false or an object, got ${typeof gc}`);
  }
  const o = gc as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!GC_OPTION_KEYS.includes(key)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: unknown option 'gc.${key}' (gc options are ${GC_OPTION_KEYS.join(', ')})`);
  }
  const out = { ...GC_DEFAULTS };
  const num = (key: keyof GcOptions, ok: (v: number) => boolean, what: string): void => {
    const v = o[key];
    if (v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `openStore: options.gc.${key} must be ${what}, got ${String(v)}`);
    out[key] = v;
  };
  num('spaceAmplification', (v) => v >= MIN_SPACE_AMPLIFICATION, `a number >= ${MIN_SPACE_AMPLIFICATION}`);
  num('stepBytes', (v) => Number.isSafeInteger(v) && v > 0, 'a positive integer');
  num('idleMs', (v) => Number.isSafeInteger(v) && v >= 0, 'a non-negative integer (0: no idle timer)');
  return out;
}

/** What `store.gc()` and each step report. */
export interface GcResult {
  zonesCollected: number;
  slabsMoved: number;
  /** Device bytes GC wrote (the packed slabs); a move whose write failed counts, and its slab's next move again. */
  bytesMoved: number;
  /** Bytes the collected zones held, given back at their reset. */
  bytesFreed: number;
  ms: number;
  /** A zone worth collecting is left (the budget ran out first). */
  more: boolean;
}

export interface GcBudget {
  maxBytes: number;
  maxMs: number;
  /** Puts are out of zones: any zone with a dead byte is a candidate. */
  urgent: boolean;
  /** Stop once a zone has been collected. */
  untilZoneFreed?: boolean;
  /** Start on a new victim only while this holds (a background step: while GC is wanted). */
  startIf?: () => boolean;
  /** Commit after every collected zone (default: in batches of GC_COMMIT_BATCH_ZONES, and at the end of the step when `commitAtEnd`). */
  commitEach?: boolean;
  /** Commit at the end of the step whatever is collected and not yet committed. */
  commitAtEnd?: boolean;
  /** Find out, when the budget runs out between victims, whether another zone is worth collecting (`more`). */
  reportMore?: boolean;
  /** A put's step: commits only when free zones run low, never for a batch. */
  fromPut?: boolean;
}

/** What GC needs of the store. */
export interface GcHost {
  readonly zones: ZoneManager;
  readonly counters: StoreCounters;
  /** Whether GC may move this epoch's slabs (not an auto-closing domain's). */
  collectable(epoch: number): boolean;
  /**
   * Moves one sealed slab, packed, to its epoch's GC head; returns the device bytes written. The
   * write may go on in the background; if it fails, the slab goes back to where it was.
   */
  relocate(slab: Slab): number;
  /** The error of a move whose background write failed since the last call, if one did. */
  takeMoveError(): ZnsSlabError | undefined;
  /** Flushes the device, commits the catalog, resets the zones let go. */
  commit(): void;
}

export class ZoneGc {
  readonly options: Readonly<Required<GcOptions>>;
  readonly #host: GcHost;
  #victim = -1;
  #victimEpoch = NO_OWNER;
  /** Bytes GC may still move, one slab per put (`stepBytes` per slab sealed). */
  credit = 0;
  /** The last step stopped only because the GC head's write was in flight (a put's step): the work waits, the credit stays. */
  #deferred = false;
  /** Zones collected since the last commit (which resets them). */
  #uncommitted = 0;
  /** Zones a relocation failed in this session (a read error): not picked again. */
  readonly #skip = new Set<number>();
  /** The last error of a step nobody asked for (put, flush, idle timer). */
  lastError: ZnsSlabError | undefined;

  constructor(host: GcHost, options: Readonly<Required<GcOptions>>) {
    this.#host = host;
    this.options = options;
  }

  /** The zone being collected, or -1. */
  get victim(): number {
    return this.#victim;
  }

  /**
   * Whether GC should run now: 'urgent' when free zones are at the reserve, 'yes' when they are
   * low or the store holds more than `spaceAmplification` x what its live slabs take packed, else 'no'.
   */
  wanted(): 'no' | 'yes' | 'urgent' {
    const zones = this.#host.zones;
    const free = zones.freeZoneCount();
    if (free <= zones.reserveZones) return 'urgent';
    // Held: written bytes, less zones already collected and waiting for the commit that resets
    // them. Needed: what the live slabs take packed, the least GC can hold them in (headers and
    // block padding included: a target below it would keep GC running for nothing; found by
    // the crash loop's churn writer, which flushes often and so seals many small slabs).
    const held = zones.bytesWritten - zones.bytesAwaitingReset;
    const needed = zones.bytesPackedLive;
    if (held - needed < GC_MIN_DEAD_ZONES * zones.zoneCapacity) return 'no';
    if (free <= zones.reserveZones + GC_LOW_FREE_ZONES) return 'yes';
    return held > this.options.spaceAmplification * needed ? 'yes' : 'no';
  }

  /**
   * Step 1: the best zone to collect, or -1. Zones written after `writtenBy` (a tick of the zone
   * manager's clock) are left alone, so one call never collects what it wrote itself.
   */
  pickVictim(urgent: boolean, writtenBy = Infinity): number {
    const zones = this.#host.zones;
    const capacity = zones.zoneCapacity;
    const minGain = capacity * (urgent ? GC_MIN_GAIN_FRACTION_URGENT : GC_MIN_GAIN_FRACTION);
    const now = zones.clock + 1;
    let best = -1;
    let bestScore = -1;
    for (const zone of zones.zones) {
      if (zone.owner === NO_OWNER || zone.unusable || zone.written === 0) continue;
      if (zone.lastWrite > writtenBy || zones.isHead(zone.index) || this.#skip.has(zone.index) || !this.#host.collectable(zone.owner)) continue;
      // What moving costs: each live slab, packed. What it gives back: the written bytes beyond
      // that (not the unwritten tail of a zone finished early: the moved slabs may leave one too,
      // and a zone of one big live slab would be moved again and again for nothing; found by
      // the simulator, test/sim/replays/gc-moves-without-gain.json).
      if (zone.written - zone.packedBytes < minGain) continue;
      const u = zone.packedBytes / zone.written;
      const score = zone.slabs.size === 0 ? Infinity : ((1 - u) * (now - zone.lastWrite)) / (1 + u);
      if (score > bestScore) {
        best = zone.index;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * Collects within `budget`: continues the victim in hand or picks one, moves its slabs
   * (step 2), and when it is empty lets it go and commits (steps 3 and 4). Each slab moves
   * whole, so a step may pass its budget by one slab.
   */
  step(budget: GcBudget): GcResult {
    const host = this.#host;
    const zones = host.zones;
    const started = performance.now();
    const writtenBy = zones.clock;
    const result: GcResult = { zonesCollected: 0, slabsMoved: 0, bytesMoved: 0, bytesFreed: 0, ms: 0, more: false };
    let deferred = false;
    try {
      for (;;) {
        if (this.#victim >= 0 && zones.zones[this.#victim]!.owner !== this.#victimEpoch) this.#victim = -1; // its epoch closed meanwhile
        const spent = result.bytesMoved >= budget.maxBytes || performance.now() - started >= budget.maxMs;
        if (this.#victim < 0) {
          if (spent || (budget.untilZoneFreed === true && result.zonesCollected > 0) || (budget.startIf !== undefined && !budget.startIf())) {
            // (Asking costs a scan of the zones: only a caller that reads `more` pays it.)
            result.more = budget.reportMore === true && this.pickVictim(budget.urgent) >= 0;
            break;
          }
          this.#victim = this.pickVictim(budget.urgent, writtenBy);
          if (this.#victim < 0) break;
          this.#victimEpoch = zones.zones[this.#victim]!.owner;
        }
        const zone = zones.zones[this.#victim]!;
        const [slab] = zone.slabs;
        if (slab === undefined) {
          // Steps 3 and 4: nothing live is left in the victim.
          const freed = zone.written;
          const index = this.#victim;
          if (!zones.release(index)) {
            // A move's background write failed: its slab is back in the victim. The step ends
            // with that error (the victim is left alone this session), as a failed read would.
            const err = host.takeMoveError();
            assert(err !== undefined, `zone ${index} got a slab back only from a failed move`);
            this.#skip.add(index);
            this.#victim = -1;
            throw err;
          }
          this.#victim = -1;
          this.#uncommitted++;
          const low = zones.freeZoneCount() <= zones.reserveZones + GC_LOW_FREE_ZONES;
          // A put's step leaves the batch for a flush, the idle timer or a later step: a commit
          // (a device flush and an SQLite transaction) is too long for a put to wait on.
          if (budget.commitEach === true || low || (budget.fromPut !== true && this.#uncommitted >= GC_COMMIT_BATCH_ZONES)) this.commit();
          result.zonesCollected++;
          result.bytesFreed += freed;
          host.counters.gcZonesCollected++;
          host.counters.gcBytesFreed += freed;
          continue;
        }
        // A put does not wait for the GC head's previous write: the move waits for a later put
        // (the credit stays). Out of zones ('urgent'), it waits.
        if (spent || (budget.fromPut === true && !budget.urgent && zones.headWriting(slab.epoch, 'gc'))) {
          result.more = true;
          deferred = !spent;
          break;
        }
        let bytes: number;
        try {
          bytes = host.relocate(slab);
        } catch (err) {
          // A victim whose slab cannot be read is left as it is (its objects stay where they are).
          if (err instanceof ZnsSlabError && err.code !== ErrorCode.DEVICE_FULL && err.code !== ErrorCode.INTERNAL) this.#skip.add(this.#victim);
          this.#victim = -1;
          throw err;
        }
        assert(!zone.slabs.has(slab), `slab ${slab.id} left zone ${zone.index} when it moved`);
        result.slabsMoved++;
        result.bytesMoved += bytes;
        host.counters.gcSlabsMoved++;
        host.counters.gcBytesMoved += bytes;
      }
      if (budget.commitAtEnd === true && this.#uncommitted > 0) this.commit();
    } finally {
      result.ms = performance.now() - started;
      host.counters.gcMs += result.ms;
    }
    this.#deferred = deferred;
    return result;
  }

  /** Commits the collections so far: the store's commit, which resets the zones they let go. */
  commit(): void {
    this.#host.commit();
    this.#uncommitted = 0;
  }

  /** Someone else committed (a flush): the collections so far are durable and their zones reset. */
  committed(): void {
    this.#uncommitted = 0;
  }

  /**
   * Collects until the user stream can take a zone (free zones above the reserve). False when
   * nothing is left worth collecting.
   */
  reclaim(): boolean {
    const zones = this.#host.zones;
    for (let round = 0; round <= zones.zones.length && zones.freeZoneCount() <= zones.reserveZones; round++) {
      const r = this.step({ maxBytes: Infinity, maxMs: Infinity, urgent: true, untilZoneFreed: true, commitEach: true });
      if (r.zonesCollected === 0) return false;
    }
    return zones.freeZoneCount() > zones.reserveZones;
  }

  /** A put sealed a slab: GC may move `stepBytes` more, one slab per put (`onPut`). */
  sealed(): void {
    const wanted = this.wanted();
    if (wanted === 'urgent') {
      this.background(this.options.stepBytes, Infinity);
      return;
    }
    if (wanted === 'no' && this.#victim < 0) return;
    this.credit = Math.min(this.credit + this.options.stepBytes, GC_MAX_CREDIT_STEPS * this.options.stepBytes);
  }

  /** A put that GC owes work: one slab moves (or one collected zone is let go). */
  onPut(): void {
    // The GC head's last write is still in flight: this put leaves the move to a later one (the
    // credit stays), without the cost of a step.
    if (this.#victim >= 0 && this.#host.zones.headWriting(this.#victimEpoch, 'gc') && this.wanted() !== 'urgent') return;
    const moved = this.background(1, Infinity, false, true);
    // Nothing left to do stops the pace; else at least a block per put, so credit runs out.
    this.credit = moved < 0 ? 0 : Math.max(0, this.credit - Math.max(moved, this.#host.zones.blockSize));
  }

  /**
   * A step nobody waits for (after a put's seal, in a flush, on the idle timer): runs if GC is
   * wanted, and never throws: a failure is counted and kept in `lastError`. `commitAtEnd` (the
   * idle timer) also commits collections a put-started step left for a later commit.
   */
  background(maxBytes: number, maxMs: number, commitAtEnd = false, fromPut = false): number {
    const wanted = this.wanted();
    if (wanted === 'no' && this.#victim < 0 && !(commitAtEnd && this.#uncommitted > 0)) return -1;
    try {
      const r = this.step({ maxBytes, maxMs, urgent: wanted === 'urgent', startIf: () => this.wanted() !== 'no', commitAtEnd, fromPut });
      if (r.slabsMoved + r.zonesCollected === 0) return this.#deferred ? 0 : -1;
      return r.bytesMoved;
    } catch (err) {
      if (!(err instanceof ZnsSlabError) || err.code === ErrorCode.INTERNAL) throw err;
      this.#host.counters.gcStepFailures++;
      this.lastError = err;
      return -1;
    }
  }
}
