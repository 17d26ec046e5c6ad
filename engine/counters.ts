/**
 * Attribution counters (seed Phase 2.0): plain numbers bumped on slow paths only, so the fast
 * path pays nothing. The storage twins of the seed's madvise counters are the zone resets.
 */
export interface Counters {
  /** A put needed a new slab (no current partial slab, or it was full). */
  slowPathCacheMiss: number;
  /** A put was refused because its epoch is CLOSING or CLOSED. */
  slowPathEpochClosed: number;
  /** A put found no current partial slab for its (epoch, class). */
  currentPartialNull: number;
  /** A put found its current partial slab full. */
  currentPartialFull: number;
  /** Slabs taken from the registry's free ids (recycled) vs new ids (overflowed past recycling). */
  slabsRecycled: number;
  slabsOverflowed: number;
  /** Empty in-memory slabs reused in place under a new generation (kept hot). */
  slabsReusedHot: number;
  /** Slab ids returned to the registry. */
  slabsFreed: number;
  slabsSealed: number;
  /** Catalog commits that leased generations for a batch of slab ids. */
  leaseCommits: number;
  zoneResets: number;
  zoneResetBytes: number;
  zoneResetFailures: number;
  /** Zones found holding data nobody owns at open (a crash mid-close), and reset. */
  recoveryZoneResets: number;
  /** Zones finished before they were full, to stay under the active limit or fit a slab. */
  zonesFinishedEarly: number;
  finishWasteBytes: number;
  deviceBytesWritten: number;
  userBytesPut: number;
  puts: number;
  gets: number;
  frees: number;
  flushes: number;
}

export function newCounters(): Counters {
  return {
    slowPathCacheMiss: 0,
    slowPathEpochClosed: 0,
    currentPartialNull: 0,
    currentPartialFull: 0,
    slabsRecycled: 0,
    slabsOverflowed: 0,
    slabsReusedHot: 0,
    slabsFreed: 0,
    slabsSealed: 0,
    leaseCommits: 0,
    zoneResets: 0,
    zoneResetBytes: 0,
    zoneResetFailures: 0,
    recoveryZoneResets: 0,
    zonesFinishedEarly: 0,
    finishWasteBytes: 0,
    deviceBytesWritten: 0,
    userBytesPut: 0,
    puts: 0,
    gets: 0,
    frees: 0,
    flushes: 0,
  };
}
