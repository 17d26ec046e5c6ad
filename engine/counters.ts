/**
 * Attribution counters (the ZNS-Slab allocator's Phase 2.0). Plain numbers: the fast path bumps two per put and one
 * per free; everything else moves on slow paths only. Counters a size class can be blamed for
 * are kept per class (sum them for the store); the rest are store-wide. The zone resets are the
 * storage twins of the allocator's madvise counters. Counters are cumulative over the store's life:
 * the catalog saves them at every commit.
 */
export interface ClassCounters {
  /** A put needed a new slab: no current partial slab, or it was full (allocator: slow_path_cache_miss). */
  slowPathCacheMiss: number;
  /** A put refused because its epoch is CLOSING or CLOSED (allocator: slow_path_epoch_closed). */
  slowPathEpochClosed: number;
  /** A put found no current partial slab for its (epoch, class). */
  currentPartialNull: number;
  /** A put found its current partial slab full. */
  currentPartialFull: number;
  /** New slabs that took a recycled slab id (the allocator's cache hit). */
  slabsRecycled: number;
  /** New slabs that took a never-used slab id (the allocator's overflow: a fresh mmap). */
  slabsOverflowed: number;
  /** Empty in-memory slabs reused in place under a new generation (kept hot, no new slab). */
  slabsReusedHot: number;
  /** Slab ids given back to the registry (empty in a CLOSING epoch, or the epoch closed). */
  slabsFreed: number;
  slabsSealed: number;
  puts: number;
  frees: number;
  userBytesPut: number;
}

export interface StoreCounters {
  gets: number;
  flushes: number;
  /** Catalog commits that leased generations for a batch of slab ids. */
  leaseCommits: number;
  zoneResets: number;
  zoneResetBytes: number;
  zoneResetFailures: number;
  /** Zones found at open holding data nobody owns (a crash mid-close), and reset. */
  recoveryZoneResets: number;
  /** Zones finished before they were full: to stay under the active limit, or to fit a slab. */
  zonesFinishedEarly: number;
  /** Capacity those early finishes left unwritten until the zones reset. */
  finishWasteBytes: number;
  deviceBytesWritten: number;
  /** Zone GC (engine/gc.ts): zones it emptied and let go, slabs it moved, device bytes it wrote. */
  gcZonesCollected: number;
  gcSlabsMoved: number;
  gcBytesMoved: number;
  /** Bytes the collected zones held (written), given back at their reset. */
  gcBytesFreed: number;
  /** Milliseconds spent in GC steps. */
  gcMs: number;
  /** GC steps started by a put, a flush or the idle timer that failed (the error is in gcLastError). */
  gcStepFailures: number;
  /** Seals whose background write failed: the slab went back to memory, to be written again. */
  sealWriteFailures: number;
  /** Zone GC moves whose background write failed: the slab went back to its old place. */
  gcMoveWriteFailures: number;
}

export const CLASS_COUNTER_NAMES = [
  'slowPathCacheMiss',
  'slowPathEpochClosed',
  'currentPartialNull',
  'currentPartialFull',
  'slabsRecycled',
  'slabsOverflowed',
  'slabsReusedHot',
  'slabsFreed',
  'slabsSealed',
  'puts',
  'frees',
  'userBytesPut',
] as const satisfies readonly (keyof ClassCounters)[];

export const STORE_COUNTER_NAMES = [
  'gets',
  'flushes',
  'leaseCommits',
  'zoneResets',
  'zoneResetBytes',
  'zoneResetFailures',
  'recoveryZoneResets',
  'zonesFinishedEarly',
  'finishWasteBytes',
  'deviceBytesWritten',
  'gcZonesCollected',
  'gcSlabsMoved',
  'gcBytesMoved',
  'gcBytesFreed',
  'gcMs',
  'gcStepFailures',
  'sealWriteFailures',
  'gcMoveWriteFailures',
] as const satisfies readonly (keyof StoreCounters)[];

export function newClassCounters(): ClassCounters {
  return Object.fromEntries(CLASS_COUNTER_NAMES.map((n) => [n, 0])) as unknown as ClassCounters;
}

export function newStoreCounters(): StoreCounters {
  return Object.fromEntries(STORE_COUNTER_NAMES.map((n) => [n, 0])) as unknown as StoreCounters;
}

export function sumClassCounters(all: readonly ClassCounters[]): ClassCounters {
  const total = newClassCounters();
  for (const c of all) for (const n of CLASS_COUNTER_NAMES) total[n] += c[n];
  return total;
}

/** What the catalog keeps: plain JSON. */
export interface SavedCounters {
  store: Partial<StoreCounters>;
  classes: Partial<ClassCounters>[];
}

export function restoreCounters(saved: SavedCounters | undefined, store: StoreCounters, classes: ClassCounters[]): void {
  if (!saved) return;
  for (const n of STORE_COUNTER_NAMES) store[n] = Number(saved.store?.[n] ?? 0);
  saved.classes?.forEach((c, i) => {
    const into = classes[i];
    if (into) for (const n of CLASS_COUNTER_NAMES) into[n] = Number(c?.[n] ?? 0);
  });
}
