/**
 * The key-value face every engine shows the peers workloads: integer keys 0..n-1, byte values.
 * The store has no keys, so its adapter keeps each key's handle (an overwrite is a put and a
 * free of the old handle); the peers use their own keys (lmdb-js uint32, SQLite INTEGER PRIMARY
 * KEY, LevelDB 4-byte big-endian).
 */

/**
 * How writes become durable. `lazy`: commits are not synced, `flush()` makes everything so far
 * durable. `durable`: each `putBatch` is durable when it returns (each engine's own durable
 * commit: the store flushes, lmdb-js syncs the commit, SQLite synchronous=FULL, LevelDB sync).
 */
export type WriteMode = 'lazy' | 'durable';

export interface KvOptions {
  mode: WriteMode;
  /** Keys the run will use (adapters size their tables by it). */
  keys: number;
  /** The store only: a new epoch every this many keys put (the expiry workload's time buckets). */
  epochEvery?: number;
  /** The store only: open its emulated device with O_DIRECT. */
  direct?: boolean;
}

/** What expiring the oldest keys did. */
export interface ExpiryOutcome {
  /** The timed part: the keys gone and that durable. */
  expireMs: number;
  /** What was timed, in words. */
  how: string;
}

export interface Kv {
  /** Setup and durability in words, for the report. */
  readonly description: string;
  /** Keys [from, to) with their values, as one commit (a transaction or batch where the engine has one). */
  putBatch(from: number, to: number, value: (key: number) => Uint8Array): void | Promise<void>;
  /** One put of `key`, replacing its value; not durable by itself. */
  put(key: number, value: Uint8Array): void | Promise<void>;
  /** The value, as a Buffer of its own (every engine here returns a fresh copy). */
  get(key: number): Uint8Array | undefined;
  /** Everything written so far durable. */
  flush(): void | Promise<void>;
  /** Removes keys [0, n) and makes that durable. */
  expireOldest(n: number): Promise<ExpiryOutcome>;
  /** The engine's own way to give freed space back to the filesystem, when it has one (SQLite VACUUM, LevelDB compactRange over [0, n)). */
  compact?: { how: string; run(n: number): void | Promise<void> };
  /** Whether `key` is still there (for the checks after expiry, untimed). */
  has(key: number): boolean;
  /** Allocated bytes of every file of the engine (what `du` counts). */
  diskBytes(): number;
  close(): void | Promise<void>;
}

/** A feature of the store that this build does not have yet (the run reports it as missing). */
export class MissingFeature extends Error {}

/** Times an async or sync step in ms. */
export async function timeMs(step: () => unknown): Promise<number> {
  const t0 = performance.now();
  const r = step();
  if (r instanceof Promise) await r;
  return performance.now() - t0;
}
