/**
 * `npm run bench:peers`: what runs, and how big. Shared by the parent (bench/peers.bench.ts)
 * and the children (bench/peers/child.ts), so both read the same sizes for the same flags.
 */

export const ENGINES = ['store', 'store-direct', 'lmdb', 'sqlite', 'level'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Floors: the device and the filesystem without an engine, measured in the same run. */
export const FLOORS = ['append', 'dd-direct', 'dd-buffered', 'fio', 'node-direct'] as const;
export type FloorName = (typeof FLOORS)[number];

export type UnitName = EngineName | FloorName;

export const WORKLOADS = ['bulk-1k', 'bulk-64k', 'durable-100', 'get', 'mixed', 'expiry', 'churn', 'qd-read'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

export const LABELS: Record<UnitName, string> = {
  store: 'zns-slab',
  'store-direct': 'zns-slab, O_DIRECT',
  lmdb: 'lmdb-js',
  sqlite: 'better-sqlite3',
  level: 'classic-level',
  append: 'floor: Node append log',
  'dd-direct': 'floor: dd oflag=direct',
  'dd-buffered': 'floor: dd buffered',
  fio: 'floor: fio',
  'node-direct': 'floor: Node pread O_DIRECT',
};

/** The engine every ratio "÷ lmdb" divides by. */
export const REFERENCE_ENGINE: EngineName = 'lmdb';

/** Which engines and floors run each workload (in this order within a repetition). */
export const UNITS: Record<WorkloadName, readonly UnitName[]> = {
  'bulk-1k': ['store', 'lmdb', 'sqlite', 'level', 'append'],
  'bulk-64k': ['store', 'store-direct', 'lmdb', 'sqlite', 'level', 'append', 'dd-direct', 'dd-buffered'],
  'durable-100': ['store', 'lmdb', 'sqlite', 'level', 'append'],
  get: ['store', 'lmdb', 'sqlite', 'level', 'append'],
  mixed: ['store', 'lmdb', 'sqlite', 'level', 'append'],
  expiry: ['store', 'lmdb', 'sqlite', 'level', 'append'],
  churn: ['store', 'lmdb', 'sqlite', 'level', 'append'],
  // Only the store has an O_DIRECT read path; the peers read through the page cache.
  'qd-read': ['store-direct', 'fio', 'node-direct'],
};

/** The floor each workload's "÷ floor" ratio divides by (the first one that ran, in this order). */
export const PRIMARY_FLOOR: Record<WorkloadName, readonly FloorName[]> = {
  'bulk-1k': ['append'],
  'bulk-64k': ['dd-direct', 'append'],
  'durable-100': ['append'],
  get: ['append'],
  mixed: ['append'],
  expiry: ['append'],
  churn: ['append'],
  'qd-read': ['fio', 'node-direct'],
};

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Seed of every random sequence (bench/rng.ts) and of the payload bytes. */
export const SEED = 0x9ee2_1201;

/** Bytes of the random pool every value is a view of (values start at seeded offsets in it). */
export const PAYLOAD_POOL_BYTES = 8 * MiB;

/** The store's emulated device for every workload but the churn: 64 MiB zones, enough of them for the 64 KiB load. */
export const STORE_GEOMETRY = { zoneCount: 96, zoneSize: 64 * MiB, zoneCapacity: 64 * MiB };

/** Queue depths of the qd-read workload. */
export const QUEUE_DEPTHS = [1, 16, 64] as const;

/**
 * libuv's thread pool for the qd-read children: the store's async reads and the Node floor's
 * fs.read run on it, so its size caps the reads in flight (libuv's default is 4).
 */
export const QD_THREADPOOL_SIZE = 64;

/** Sizes of one run (full, or --quick: a smoke run whose numbers are not claims). */
export interface Sizes {
  /** bulk-1k: 1 KiB values loaded, then one durable flush. */
  bulkSmallCount: number;
  bulkSmallBytes: number;
  /** bulk-64k. */
  bulkLargeCount: number;
  bulkLargeBytes: number;
  /** Puts per transaction (or batch) of the peers during a bulk load; the store takes puts one by one. */
  bulkTxnOps: number;
  /** durable-100: puts of 1 KiB, a durable commit every durableEvery. */
  durableCount: number;
  durableEvery: number;
  durableBytes: number;
  /** get and mixed: keys loaded (1 KiB), then timed operations. */
  readKeys: number;
  readOps: number;
  readWarmupOps: number;
  readBytes: number;
  mixedPutFraction: number;
  /** expiry: objects loaded, the oldest expired, objects per epoch (the store's time bucket). */
  expiryCount: number;
  expiryOldest: number;
  expiryEpochObjects: number;
  expiryBytes: number;
  /** churn (bench/churn.bench.ts's): live objects, cycles, sizes, flush interval. */
  churnLive: number;
  churnCycles: number;
  churnMinBytes: number;
  churnMaxBytes: number;
  churnFlushEvery: number;
  /** qd-read: objects on the O_DIRECT store, their size, seconds per queue depth. */
  qdObjects: number;
  qdValueBytes: number;
  /**
   * Bytes of each floor read (fio, Node O_DIRECT pread), block-aligned: the I/O the store issues
   * for one qdValueBytes get (its slot, payload + 8-byte header, straddles two 4 KiB blocks).
   */
  qdFloorReadBytes: number;
  qdSecondsPerDepth: number;
  /** Objects read back and compared after a workload (untimed). */
  verifySample: number;
}

export const FULL: Sizes = {
  bulkSmallCount: 200_000,
  bulkSmallBytes: 1 * KiB,
  bulkLargeCount: 20_000,
  bulkLargeBytes: 64 * KiB,
  bulkTxnOps: 1_000,
  durableCount: 20_000,
  durableEvery: 100,
  durableBytes: 1 * KiB,
  readKeys: 100_000,
  readOps: 200_000,
  readWarmupOps: 20_000,
  readBytes: 1 * KiB,
  mixedPutFraction: 0.1,
  expiryCount: 200_000,
  expiryOldest: 100_000,
  expiryEpochObjects: 25_000,
  expiryBytes: 1 * KiB,
  churnLive: 50_000,
  churnCycles: 100_000,
  churnMinBytes: 64,
  churnMaxBytes: 4 * KiB,
  churnFlushEvery: 10_000,
  qdObjects: 65_536,
  qdValueBytes: 4 * KiB,
  qdFloorReadBytes: 8 * KiB,
  qdSecondsPerDepth: 2,
  verifySample: 1_000,
};

export const QUICK: Sizes = {
  ...FULL,
  bulkSmallCount: 5_000,
  bulkLargeCount: 200,
  durableCount: 500,
  readKeys: 5_000,
  readOps: 10_000,
  readWarmupOps: 1_000,
  expiryCount: 10_000,
  expiryOldest: 5_000,
  expiryEpochObjects: 1_250,
  churnLive: 5_000,
  churnCycles: 10_000,
  churnFlushEvery: 2_000,
  qdObjects: 4_096,
  qdSecondsPerDepth: 0.25,
  verifySample: 200,
};

export function sizesFor(quick: boolean): Sizes {
  return quick ? QUICK : FULL;
}

/** A flag's value (`--flag value`), if given. */
export function argValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** A comma-separated list flag checked against the names it may hold. */
export function listArg<T extends string>(args: readonly string[], flag: string, allowed: readonly T[]): T[] | undefined {
  const v = argValue(args, flag);
  if (v === undefined) return undefined;
  const names = v.split(',').filter((x) => x.length > 0);
  for (const n of names) if (!(allowed as readonly string[]).includes(n)) throw new Error(`${flag}: unknown name ${n} (one of ${allowed.join(', ')})`);
  return names as T[];
}
