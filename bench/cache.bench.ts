/**
 * `npm run bench:cache -- [--quick] [--rounds N] [--markdown] [--out FILE] [--from FILE]`:
 * the zns-slab cache (`openCache`) against embedded peers, all in one run on this machine:
 *
 * - lmdb-js, `put` as it comes (not awaited: queued, committed and fsynced by lmdb-js's write
 *   thread in the background), and a second lmdb-js store that awaits `db.put(k, v).flushed`
 *   for every set (opened with `separateFlushed: true`: the put's own "durable on disk"
 *   promise), a durable set per operation;
 * - better-sqlite3: WAL, synchronous=NORMAL, prepared statements, sets batched into explicit
 *   transactions of SQLITE_TXN_SETS sets (the COMMIT is inside the timed operation that ends a
 *   batch), gets through a prepared SELECT that also checks the row's expiry;
 * - @keyv/sqlite: a Keyv (default serialization, default namespace) over KeyvSqlite's own file,
 *   as its README sets it up (node-sqlite3, SQLite defaults: rollback journal, synchronous=FULL,
 *   every set an autocommit transaction); async, so every set and get is awaited and timed one
 *   at a time, KEYV_OPS of each;
 * - lru-cache (`LRUCache`, maxSize with a byte sizeCalculation): the in-memory ceiling;
 * - zns-slab `openCache` with Buffer values (its raw-bytes fast path) and an injected clock.
 *
 * For each value size (64 B and 1 KiB Buffers) and each peer, on a fresh store: load KEYS keys
 * `key:${i}` in order (the oldest half with a 60 s TTL where the peer has TTLs, the rest with
 * none), get KEYS random loaded keys, then KEYS mixed operations (90% get / 10% set of random
 * loaded keys), then expire the oldest half (zns-slab: move the clock past their bucket and
 * time the set that closes it; lmdb-js: delete those keys in one transaction; better-sqlite3:
 * `DELETE ... WHERE expires_at < ?`, then VACUUM separately; @keyv/sqlite: no bulk expiry through
 * Keyv, so `keyv.deleteMany` of those keys by name, KEYV_DELETE_CHUNK keys per call). Every peer
 * sees the same keys, values and operation sequence.
 *
 * Timing: process.hrtime.bigint() around batches of BATCH_OPS operations (the timer costs about
 * as much as one fast get, so one timer call per operation would be measured more than the
 * operation); the latency of an operation is its batch's time / BATCH_OPS, so p99 and p999 are
 * of 16-operation means and hide single-operation spikes inside a batch. The awaited lmdb-js
 * variant and @keyv/sqlite are timed one operation at a time, over a bounded number of operations
 * (the rest of the keys are loaded untimed). The event loop turns every YIELD_EVERY operations
 * (outside the timed batches), as a server's would, so lmdb-js's write thread can commit.
 *
 * Noise: the machine is shared, so the peers' runs are interleaved (each round runs every peer
 * once per size, in a rotated order) and every number is the median of ROUNDS rounds with its
 * min and max; ratios are medians of per-round ratios (both peers measured in the same round).
 *
 * Index memory per entry runs in child processes started with --expose-gc (one structure per
 * process): zns-slab's `stats().index.bytesPerEntry`, and heapUsed + external + arrayBuffers
 * deltas after gc() for lru-cache and a `Map<string, bigint>` holding the same MEMORY_ENTRIES
 * keys (key strings made during the insertion, so those a structure keeps are counted).
 *
 * JSON with every number on stdout; progress and a table on stderr. --markdown also prints the
 * tables as markdown (stderr, after the plain table) for docs/BENCHMARKS.md; --from FILE prints
 * the tables of a saved JSON without running anything; --out FILE also writes the JSON there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import KeyvSqlite from '@keyv/sqlite';
import Database from 'better-sqlite3';
import { Keyv } from 'keyv';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { LRUCache } from 'lru-cache';
import { openCache, type Cache } from '../index.js';
import { diskUsage } from '../tools/diskUsage.js';
import { packageVersion } from './lib/system.js';
import { rng } from './rng.js';

// ----- configuration -----------------------------------------------------------------------

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const MARKDOWN = args.includes('--markdown');
const argValue = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
const OUT = argValue('--out');
const FROM = argValue('--from');

const KEYS = QUICK ? 20_000 : 200_000;
/** The oldest keys, set with SHORT_TTL_MS where the peer has TTLs: what the expiry step removes. */
const EXPIRE_KEYS = KEYS / 2;
const ROUNDS_ARG = Number(argValue('--rounds'));
const ROUNDS = Number.isInteger(ROUNDS_ARG) && ROUNDS_ARG >= 1 ? ROUNDS_ARG : QUICK ? 2 : 3;
const VALUE_SIZES = [64, 1024] as const;
const BATCH_OPS = 16;
const YIELD_EVERY = 1024;
const MIXED_SET_FRACTION = 0.1;
const SQLITE_TXN_SETS = 256;
/** Sets (and mixed operations) of the awaited lmdb-js variant: a durable put takes ~0.4 ms here. */
const LMDB_AWAITED_OPS = QUICK ? 300 : 5_000;
/**
 * Timed sets, gets and mixed operations of the @keyv/sqlite peer (each awaited and timed on its
 * own): a set is an autocommit transaction with synchronous=FULL (~0.9 ms here), a get ~0.1 ms.
 */
const KEYV_OPS = QUICK ? 200 : 2_000;
/** Keys per keyv.deleteMany call in @keyv/sqlite's expiry step (one call with every key is quadratic in the adapter's getMany). */
const KEYV_DELETE_CHUNK = 1_000;
/** Keyv sets in flight while the rest of the keys load, untimed, inside one explicit transaction. */
const KEYV_LOAD_CONCURRENCY = 64;
const MEMORY_ENTRIES = QUICK ? 100_000 : 1_000_000;
const MEMORY_ROUNDS = QUICK ? 1 : 2;
const VERIFY_SAMPLE = 1_000;
const SHORT_TTL_MS = 60_000;
/** Far enough past the short TTL to pass the end of its bucket (zns-slab: 8192 ms wide at 60 s). */
const EXPIRY_CLOCK_ADVANCE_MS = 2 * SHORT_TTL_MS;
/** The injected clock's start (ms): fixed, so every round files its TTLs into the same buckets. */
const T0 = 1_800_000_000_000;

function say(line: string): void {
  process.stderr.write(line + '\n');
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function round3(x: number): number {
  return Number(x.toFixed(3));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(xs: number[]): Spread {
  return { median: round3(median(xs)), min: round3(Math.min(...xs)), max: round3(Math.max(...xs)) };
}

/** Apparent size of every file under dir (what `ls -l` says), beside diskUsage's allocated bytes. */
function apparentSize(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? apparentSize(p) : fs.statSync(p).size;
  }
  return total;
}

// ----- the workload: keys, values, operation sequences ------------------------------------

const keys: string[] = Array.from({ length: KEYS }, (_, i) => `key:${i}`);

/** Key i's value of `size` bytes: i in the first 4 bytes, then a byte pattern of i (views of one slab). */
function makeValues(size: number): Buffer[] {
  const slab = Buffer.allocUnsafeSlow(size * KEYS);
  const values: Buffer[] = new Array<Buffer>(KEYS);
  for (let i = 0; i < KEYS; i++) {
    const v = slab.subarray(i * size, (i + 1) * size);
    v.fill((i * 31) & 0xff);
    v.writeUInt32LE(i, 0);
    values[i] = v;
  }
  return values;
}

const pick = rng(0x5eed);
/** Get phase: a random loaded key per operation. */
const getOrder = Uint32Array.from({ length: KEYS }, () => Math.floor(pick() * KEYS));
/** Mixed phase: a random loaded key per operation, and whether it is a set. */
const mixedKeys = Uint32Array.from({ length: KEYS }, () => Math.floor(pick() * KEYS));
const mixedIsSet = Uint8Array.from({ length: KEYS }, () => (pick() < MIXED_SET_FRACTION ? 1 : 0));
const verifyKeys = Uint32Array.from({ length: VERIFY_SAMPLE }, () => Math.floor(pick() * KEYS));

/** The injected clock (zns-slab) and the "now" of better-sqlite3's expiry column. */
let now = T0;

// ----- timing ------------------------------------------------------------------------------

interface PhaseRun {
  ops: number;
  /** Operations per timed sample (the latency is the sample's time / this). */
  batchOps: number;
  opsPerSec: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** Time inside the timed batches. */
  timedMs: number;
  /** Time of the whole phase, event-loop turns included. */
  wallMs: number;
  /** Gets that found a value, and how many should have. */
  hits?: number;
  expectedHits?: number;
}

function summarize(samplesNs: Float64Array, ops: number, batchOps: number, totalNs: number, wallMs: number): PhaseRun {
  const s = samplesNs.slice().sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]! / 1000;
  return {
    ops,
    batchOps,
    opsPerSec: Math.round(ops / (totalNs / 1e9)),
    p50Us: round3(at(0.5)),
    p99Us: round3(at(0.99)),
    p999Us: round3(at(0.999)),
    maxUs: round3(s[s.length - 1]! / 1000),
    timedMs: round3(totalNs / 1e6),
    wallMs: round3(wallMs),
  };
}

/** Runs op(0..ops-1) in timed batches of BATCH_OPS; the event loop turns every YIELD_EVERY ops. */
async function timeSync(ops: number, op: (j: number) => void): Promise<PhaseRun> {
  const samples = new Float64Array(Math.ceil(ops / BATCH_OPS));
  let totalNs = 0;
  let n = 0;
  const w0 = performance.now();
  for (let start = 0; start < ops; start += BATCH_OPS) {
    const end = Math.min(start + BATCH_OPS, ops);
    const t0 = process.hrtime.bigint();
    for (let j = start; j < end; j++) op(j);
    const dt = Number(process.hrtime.bigint() - t0);
    totalNs += dt;
    samples[n++] = dt / (end - start);
    if (end % YIELD_EVERY === 0) await tick();
  }
  return summarize(samples, ops, BATCH_OPS, totalNs, performance.now() - w0);
}

/** Times each operation on its own, awaiting it when it returns a promise. */
async function timeEach(ops: number, op: (j: number) => Promise<unknown> | undefined): Promise<PhaseRun> {
  const samples = new Float64Array(ops);
  let totalNs = 0;
  const w0 = performance.now();
  for (let j = 0; j < ops; j++) {
    const t0 = process.hrtime.bigint();
    const pending = op(j);
    if (pending !== undefined) await pending;
    const dt = Number(process.hrtime.bigint() - t0);
    totalNs += dt;
    samples[j] = dt;
    if ((j + 1) % YIELD_EVERY === 0) await tick();
  }
  return summarize(samples, ops, 1, totalNs, performance.now() - w0);
}

function timerOverheadNs(): number {
  const xs: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const t0 = process.hrtime.bigint();
    xs.push(Number(process.hrtime.bigint() - t0));
  }
  return median(xs);
}

// ----- the peers ---------------------------------------------------------------------------

type Numbers = Record<string, number | string | boolean | null>;

interface Instance {
  /** Stores key j's value (with the short TTL if j < EXPIRE_KEYS and the peer has TTLs); absent on an async-only peer. */
  set?(j: number): void;
  /** The awaited variant's set: resolves when the set is durable. */
  setAwaited?(j: number): Promise<unknown>;
  /** Absent on an async-only peer (getAsync instead). */
  get?(j: number): Buffer | undefined;
  /** An async peer's get (Peer.asyncGets). */
  getAsync?(j: number): Promise<Buffer | undefined>;
  /** An awaited peer's untimed load of keys from..KEYS-1 (default: set(j) for each, the event loop turning every YIELD_EVERY). */
  loadRest?(from: number): Promise<void>;
  /** Everything set so far committed and durable (timed after the load, reported apart). */
  drain(): Promise<void> | void;
  /** Expires (or deletes) keys 0..EXPIRE_KEYS-1; times and sizes. */
  expire?(): Promise<Numbers>;
  /** The peer's own counters after the run, for the JSON. */
  info?(): Record<string, unknown> | Promise<Record<string, unknown>>;
  close(): Promise<void> | void;
}

interface Peer {
  name: string;
  /** Sets are awaited one by one, timedOps of them (and of mixed operations); the rest of the keys load untimed. */
  awaited: boolean;
  /** Gets are async too: awaited and timed one by one, timedOps of them (in the get phase as well). */
  asyncGets?: boolean;
  /** Timed operations per phase of an awaited peer. */
  timedOps?: number;
  open(dir: string, size: number, values: Buffer[]): Promise<Instance> | Instance;
}

function zoneStatsBrief(cache: Cache): Numbers {
  const s = cache.stats();
  return { entries: s.entries, heldBytes: s.heldBytes, epochs: s.epochs, ttlBuckets: s.ttlBuckets, expiredEntries: s.expirations.entries, expiredEpochs: s.expirations.epochs };
}

/** Device bytes for a zns-slab cache holding every key (plus the mixed phase's overwrites) without eviction. */
function znsMaxBytes(size: number, entries = KEYS): number {
  const record = 20 + 12 + size; // header, `key:${i}`, value
  const bytes = Math.ceil(entries * (1 + MIXED_SET_FRACTION) * record * 1.5);
  return Math.max(4 << 20, Math.ceil(bytes / (1 << 20)) * (1 << 20));
}

const zns: Peer = {
  name: 'zns-slab',
  awaited: false,
  open(dir, size, values) {
    const cache = openCache(dir, { maxBytes: znsMaxBytes(size), clock: () => now });
    const ttl = { ttl: SHORT_TTL_MS };
    return {
      set: (j) => void (j < EXPIRE_KEYS ? cache.set(keys[j]!, values[j]!, ttl) : cache.set(keys[j]!, values[j]!)),
      get: (j) => cache.get(keys[j]!) as Buffer | undefined,
      drain: () => cache.flush(),
      expire: async () => {
        cache.flush();
        const before = cache.stats();
        const disk0 = diskUsage(dir);
        const apparent0 = apparentSize(dir);
        now += EXPIRY_CLOCK_ADVANCE_MS;
        // The cache closes due TTL buckets at the start of a set (also in flush, and in a get
        // that finds an expired entry): time the first set after the clock moved.
        const t0 = process.hrtime.bigint();
        cache.set('key:expiry-trigger', values[0]!);
        const triggerNs = Number(process.hrtime.bigint() - t0);
        const after = cache.stats();
        const disk1 = diskUsage(dir);
        const t1 = process.hrtime.bigint();
        cache.flush();
        const flushNs = Number(process.hrtime.bigint() - t1);
        const disk2 = diskUsage(dir);
        const gone = !cache.has(keys[0]!) && !cache.has(keys[EXPIRE_KEYS - 1]!) && cache.has(keys[KEYS - 1]!);
        return {
          timedOp: 'cache.set of a new key after the clock moved (closes the due TTL buckets first)',
          triggerMs: round3(triggerNs / 1e6),
          flushAfterMs: round3(flushNs / 1e6),
          expiredEntries: after.expirations.entries - before.expirations.entries,
          expiredEpochs: after.expirations.epochs - before.expirations.epochs,
          heldBytesBefore: before.heldBytes,
          heldBytesAfter: after.heldBytes,
          diskBytesBefore: disk0,
          diskBytesAfter: disk1,
          diskBytesAfterFlush: disk2,
          apparentBytesBefore: apparent0,
          apparentBytesAfter: apparentSize(dir),
          returnedDiskBytes: disk0 - disk1,
          expiredKeysGoneLiveKeysKept: gone,
        };
      },
      info: () => {
        const s = cache.stats();
        return { ...s, brief: zoneStatsBrief(cache) };
      },
      close: () => cache.close(),
    };
  },
};

interface LmdbStats {
  pageSize: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  entryCount: number;
  lastPageNumber: number;
}

function lmdbPages(db: RootDatabase<Buffer, string>): { inUse: number; pageSize: number; lastPage: number; entries: number } {
  const s = db.getStats() as LmdbStats;
  return { inUse: s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages, pageSize: s.pageSize, lastPage: s.lastPageNumber, entries: s.entryCount };
}

function lmdbPeer(awaited: boolean): Peer {
  return {
    name: awaited ? 'lmdb-js awaited' : 'lmdb-js',
    awaited,
    timedOps: LMDB_AWAITED_OPS,
    open(dir, _size, values) {
      const db = openLmdb<Buffer, string>({ path: path.join(dir, 'data.mdb'), encoding: 'binary', separateFlushed: awaited });
      return {
        set: (j) => void db.put(keys[j]!, values[j]!),
        setAwaited: (j) => {
          const committed = db.put(keys[j]!, values[j]!) as Promise<boolean> & { flushed?: Promise<boolean> };
          if (committed.flushed === undefined) throw new Error('lmdb-js put has no .flushed promise (separateFlushed not honoured)');
          return committed.flushed;
        },
        get: (j) => db.get(keys[j]!),
        drain: () => db.flushed.then(() => undefined),
        expire: awaited
          ? undefined
          : async () => {
              await db.flushed;
              const p0 = lmdbPages(db);
              const file0 = apparentSize(dir);
              const disk0 = diskUsage(dir);
              const t0 = process.hrtime.bigint();
              db.transactionSync(() => {
                for (let i = 0; i < EXPIRE_KEYS; i++) db.removeSync(keys[i]!);
              });
              const txnNs = Number(process.hrtime.bigint() - t0);
              const t1 = process.hrtime.bigint();
              await db.flushed;
              const flushedNs = Number(process.hrtime.bigint() - t1);
              const p1 = lmdbPages(db);
              return {
                timedOp: 'db.transactionSync(removeSync x EXPIRE_KEYS), then await db.flushed',
                deleteTxnMs: round3(txnNs / 1e6),
                flushedAfterMs: round3(flushedNs / 1e6),
                deletedEntries: p0.entries - p1.entries,
                fileBytesBefore: file0,
                fileBytesAfter: apparentSize(dir),
                diskBytesBefore: disk0,
                diskBytesAfter: diskUsage(dir),
                returnedDiskBytes: disk0 - diskUsage(dir),
                pagesInUseBefore: p0.inUse,
                pagesInUseAfter: p1.inUse,
                bytesFreedInsideFile: (p0.inUse - p1.inUse) * p0.pageSize,
                lastPageBefore: p0.lastPage,
                lastPageAfter: p1.lastPage,
                expiredKeysGoneLiveKeysKept: db.get(keys[0]!) === undefined && db.get(keys[KEYS - 1]!) !== undefined,
              };
            },
        info: () => ({ ...lmdbPages(db), fileBytes: apparentSize(dir) }),
        close: () => db.close(),
      };
    },
  };
}

function sqliteSizes(file: string): { db: number; wal: number; dbDisk: number; walDisk: number } {
  const st = (f: string) => (fs.existsSync(f) ? fs.statSync(f) : undefined);
  const d = st(file);
  const w = st(`${file}-wal`);
  return { db: d?.size ?? 0, wal: w?.size ?? 0, dbDisk: (d?.blocks ?? 0) * 512, walDisk: (w?.blocks ?? 0) * 512 };
}

const sqlite: Peer = {
  name: 'better-sqlite3',
  awaited: false,
  open(dir, _size, values) {
    const file = path.join(dir, 'cache.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER); CREATE INDEX kv_expires ON kv (expires_at);');
    const put = db.prepare('INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at');
    const get = db.prepare<[string, number], Buffer>('SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)').pluck();
    const del = db.prepare('DELETE FROM kv WHERE expires_at < ?');
    const begin = db.prepare('BEGIN');
    const commit = db.prepare('COMMIT');
    let pending = 0;
    begin.run();
    const settle = (mode: 'PASSIVE' | 'TRUNCATE') => {
      if (db.inTransaction) commit.run();
      pending = 0;
      db.pragma(`wal_checkpoint(${mode})`);
    };
    return {
      set: (j) => {
        put.run(keys[j]!, values[j]!, j < EXPIRE_KEYS ? now + SHORT_TTL_MS : null);
        if (++pending === SQLITE_TXN_SETS) {
          commit.run();
          begin.run();
          pending = 0;
        }
      },
      get: (j) => get.get(keys[j]!, now),
      drain: () => {
        settle('PASSIVE');
        begin.run();
      },
      expire: async () => {
        settle('TRUNCATE');
        const s0 = sqliteSizes(file);
        const pages0 = db.pragma('page_count', { simple: true }) as number;
        now += EXPIRY_CLOCK_ADVANCE_MS;
        const t0 = process.hrtime.bigint();
        const deleted = del.run(now).changes;
        const deleteNs = Number(process.hrtime.bigint() - t0);
        const s1 = sqliteSizes(file);
        const freelist = db.pragma('freelist_count', { simple: true }) as number;
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        const t1 = process.hrtime.bigint();
        db.exec('VACUUM');
        const vacuumNs = Number(process.hrtime.bigint() - t1);
        const s2 = sqliteSizes(file);
        const t2 = process.hrtime.bigint();
        db.pragma('wal_checkpoint(TRUNCATE)');
        const checkpointNs = Number(process.hrtime.bigint() - t2);
        const s3 = sqliteSizes(file);
        return {
          timedOp: 'DELETE FROM kv WHERE expires_at < ? (autocommit); then VACUUM; then wal_checkpoint(TRUNCATE)',
          deleteMs: round3(deleteNs / 1e6),
          vacuumMs: round3(vacuumNs / 1e6),
          checkpointAfterVacuumMs: round3(checkpointNs / 1e6),
          deletedRows: deleted,
          pagesBefore: pages0,
          freelistPagesAfterDelete: freelist,
          bytesFreedInsideFile: freelist * pageSize,
          fileBytesBefore: s0.db + s0.wal,
          fileBytesAfterDelete: s1.db + s1.wal,
          fileBytesAfterVacuum: s2.db + s2.wal,
          walBytesAfterVacuum: s2.wal,
          fileBytesAfterCheckpoint: s3.db + s3.wal,
          diskBytesBefore: s0.dbDisk + s0.walDisk,
          diskBytesAfterDelete: s1.dbDisk + s1.walDisk,
          diskBytesAfterVacuumAndCheckpoint: s3.dbDisk + s3.walDisk,
          returnedDiskBytes: s0.dbDisk + s0.walDisk - (s1.dbDisk + s1.walDisk),
          returnedDiskBytesByVacuum: s1.dbDisk + s1.walDisk - (s3.dbDisk + s3.walDisk),
          expiredKeysGoneLiveKeysKept: get.get(keys[0]!, now) === undefined && get.get(keys[KEYS - 1]!, now) !== undefined,
        };
      },
      info: () => ({ ...sqliteSizes(file), pageSize: db.pragma('page_size', { simple: true }) as number }),
      close: () => {
        if (db.inTransaction) commit.run();
        db.close();
      },
    };
  },
};

/** The first column of the first row of a query through KeyvSqlite's connection (measurements only, never timed). */
async function keyvScalar(store: KeyvSqlite, sql: string): Promise<number | string> {
  const rows = (await store.query(sql)) as Array<Record<string, number | string>>;
  return Object.values(rows[0]!)[0]!;
}

/**
 * Keyv over KeyvSqlite as @keyv/sqlite's README sets it up: `new Keyv({ store: new KeyvSqlite(uri) })`
 * with Keyv's defaults (namespace 'keyv', serializer @keyv/serialize: the { value, expires }
 * record as JSON text, a Buffer as the string ':base64:...', read back as a Buffer) and SQLite's
 * (rollback journal, synchronous=FULL; every set is its own autocommit transaction).
 */
const keyvSqlite: Peer = {
  name: '@keyv/sqlite',
  awaited: true,
  asyncGets: true,
  timedOps: KEYV_OPS,
  async open(dir, _size, values) {
    const file = path.join(dir, 'cache.sqlite');
    const store = new KeyvSqlite(`sqlite://${file}`);
    const keyv = new Keyv<Buffer>({ store });
    let failure: unknown;
    keyv.on('error', (e: unknown) => {
      failure ??= e;
    });
    const check = (ok: boolean): void => {
      if (!ok || failure !== undefined) throw new Error(`@keyv/sqlite: a set failed (${String(failure)})`);
    };
    const setOne = (j: number) => keyv.set(keys[j]!, values[j]!, j < EXPIRE_KEYS ? SHORT_TTL_MS : undefined);
    const rows = async () => Number(await keyvScalar(store, `SELECT COUNT(*) FROM ${store.opts.table!}`));
    const pragma = async (name: string) => Number(await keyvScalar(store, `PRAGMA ${name}`));
    // Connected, table created (untimed).
    const sqliteVersion = String(await keyvScalar(store, 'SELECT sqlite_version()'));
    const journalMode = String(await keyvScalar(store, 'PRAGMA journal_mode'));
    const synchronous = await pragma('synchronous');
    return {
      setAwaited: (j) => setOne(j).then(check),
      getAsync: (j) => keyv.get(keys[j]!),
      loadRest: async (from) => {
        // Untimed: the same keyv.set calls, inside one explicit transaction with sets in flight,
        // so the other keys load in seconds rather than at one fsynced commit each.
        await store.query('BEGIN');
        const pending: Array<Promise<boolean>> = [];
        for (let j = from; j < KEYS; j += KEYV_LOAD_CONCURRENCY) {
          pending.length = 0;
          for (let i = j; i < Math.min(KEYS, j + KEYV_LOAD_CONCURRENCY); i++) pending.push(setOne(i));
          for (const ok of await Promise.all(pending)) check(ok);
        }
        await store.query('COMMIT');
      },
      drain: () => undefined,
      expire: async () => {
        const rows0 = await rows();
        const pages0 = await pragma('page_count');
        const pageSize = await pragma('page_size');
        const file0 = apparentSize(dir);
        const disk0 = diskUsage(dir);
        // Finding the keys is not timed (Keyv has no expiry index); deleting them through Keyv is.
        const chunks: string[][] = [];
        for (let i = 0; i < EXPIRE_KEYS; i += KEYV_DELETE_CHUNK) chunks.push(keys.slice(i, Math.min(EXPIRE_KEYS, i + KEYV_DELETE_CHUNK)));
        let allDeleted = true;
        const t0 = process.hrtime.bigint();
        for (const chunk of chunks) if (!(await keyv.deleteMany(chunk))) allDeleted = false;
        const deleteNs = Number(process.hrtime.bigint() - t0);
        const rows1 = await rows();
        const freelist = await pragma('freelist_count');
        const disk1 = diskUsage(dir);
        return {
          timedOp: `not available through Keyv (no bulk expiry: Keyv deletes an expired entry only when a get reads it); timed instead: keyv.deleteMany of those keys by name, ${KEYV_DELETE_CHUNK} keys per call, calls awaited one after another`,
          deleteMs: round3(deleteNs / 1e6),
          deleteCalls: chunks.length,
          deletedRows: rows0 - rows1,
          everyCallDeleted: allDeleted,
          pagesBefore: pages0,
          freelistPagesAfterDelete: freelist,
          bytesFreedInsideFile: freelist * pageSize,
          fileBytesBefore: file0,
          fileBytesAfter: apparentSize(dir),
          diskBytesBefore: disk0,
          diskBytesAfter: disk1,
          returnedDiskBytes: disk0 - disk1,
          expiredKeysGoneLiveKeysKept: (await keyv.get(keys[0]!)) === undefined && (await keyv.get(keys[EXPIRE_KEYS - 1]!)) === undefined && (await keyv.get(keys[KEYS - 1]!)) !== undefined,
        };
      },
      info: async () => ({
        sqliteVersion,
        journalMode,
        synchronous,
        rows: await rows(),
        pageSize: await pragma('page_size'),
        pageCount: await pragma('page_count'),
        fileBytes: apparentSize(dir),
        diskBytes: diskUsage(dir),
      }),
      close: () => keyv.disconnect(),
    };
  },
};

const lru: Peer = {
  name: 'lru-cache',
  awaited: false,
  open(_dir, size, values) {
    const cache = new LRUCache<string, Buffer>({ maxSize: 2 * KEYS * (size + 16), sizeCalculation: (v, k) => v.length + k.length });
    return {
      set: (j) => void cache.set(keys[j]!, values[j]!),
      get: (j) => cache.get(keys[j]!),
      drain: () => undefined,
      info: () => ({ size: cache.size, calculatedSize: cache.calculatedSize }),
      close: () => cache.clear(),
    };
  },
};

const PEERS: Peer[] = [zns, lmdbPeer(false), lmdbPeer(true), sqlite, keyvSqlite, lru];

// ----- one peer, one value size, one round -------------------------------------------------

interface PeerRun {
  set: PhaseRun;
  /** Time to make the load durable/committed (lmdb-js: await db.flushed; zns-slab: flush(); sqlite: COMMIT + wal_checkpoint(PASSIVE)). */
  drainMs: number;
  /** Loaded keys per second counting the drain. */
  setWithDrainOpsPerSec: number;
  get: PhaseRun;
  mixed: PhaseRun;
  expiry?: Numbers;
  info?: Record<string, unknown>;
}

async function runPeer(peer: Peer, dir: string, size: number, values: Buffer[]): Promise<PeerRun> {
  now = T0;
  fs.mkdirSync(dir, { recursive: true });
  const inst = await peer.open(dir, size, values);
  try {
    // Load.
    let set: PhaseRun;
    const timedOps = Math.min(KEYS, peer.timedOps ?? KEYS);
    if (peer.awaited) {
      set = await timeEach(timedOps, (j) => inst.setAwaited!(j));
      // The rest of the keys, untimed, so gets and mixed run on the same key space.
      if (inst.loadRest) await inst.loadRest(timedOps);
      else {
        for (let j = timedOps; j < KEYS; j++) {
          inst.set!(j);
          if (j % YIELD_EVERY === 0) await tick();
        }
      }
    } else {
      set = await timeSync(KEYS, (j) => inst.set!(j));
    }
    const d0 = process.hrtime.bigint();
    await inst.drain();
    const drainMs = Number(process.hrtime.bigint() - d0) / 1e6;

    // Every peer must hand back each key's own bytes.
    for (const j of verifyKeys) {
      const v = peer.asyncGets ? await inst.getAsync!(j) : inst.get!(j);
      if (v === undefined || !values[j]!.equals(v)) throw new Error(`${peer.name}: ${keys[j]} read back ${v === undefined ? 'nothing' : 'other bytes'} after the load`);
    }

    gc();
    let hits = 0;
    const counted = (v: Buffer | undefined) => {
      if (v !== undefined) hits++;
    };
    const get = peer.asyncGets
      ? await timeEach(timedOps, (j) => inst.getAsync!(getOrder[j]!).then(counted))
      : await timeSync(KEYS, (j) => {
          if (inst.get!(getOrder[j]!) !== undefined) hits++;
        });
    get.hits = hits;
    get.expectedHits = get.ops;

    gc();
    hits = 0;
    let gets = 0;
    let mixed: PhaseRun;
    if (peer.awaited) {
      mixed = await timeEach(timedOps, (j) => {
        if (mixedIsSet[j] === 1) return inst.setAwaited!(mixedKeys[j]!);
        gets++;
        if (peer.asyncGets) return inst.getAsync!(mixedKeys[j]!).then(counted);
        if (inst.get!(mixedKeys[j]!) !== undefined) hits++;
        return undefined;
      });
    } else {
      mixed = await timeSync(KEYS, (j) => {
        if (mixedIsSet[j] === 1) inst.set!(mixedKeys[j]!);
        else {
          gets++;
          if (inst.get!(mixedKeys[j]!) !== undefined) hits++;
        }
      });
    }
    mixed.hits = hits;
    mixed.expectedHits = gets;
    await inst.drain();

    const out: PeerRun = {
      set,
      drainMs: round3(drainMs),
      // The awaited variant's timed sets are durable each; its drain is of the untimed rest.
      setWithDrainOpsPerSec: peer.awaited ? set.opsPerSec : Math.round(set.ops / ((set.timedMs + drainMs) / 1000)),
      get,
      mixed,
    };
    gc();
    if (inst.expire) out.expiry = await inst.expire();
    if (inst.info) out.info = await inst.info();
    return out;
  } finally {
    await inst.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ----- index memory, in child processes ----------------------------------------------------

interface MemorySample {
  kind: string;
  entries: number;
  bytesPerEntry: { heap: number; external: number; arrayBuffers: number; total: number; rss: number };
  /** zns-slab only: the cache's own count (index arrays + slab->epoch map) per entry. */
  statsIndexBytesPerEntry?: number | null;
}

function used(): { heap: number; external: number; arrayBuffers: number; rss: number } {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external - m.arrayBuffers, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

function childMemory(kind: string, n: number): MemorySample {
  if (!(globalThis as { gc?: unknown }).gc) throw new Error('the memory child needs --expose-gc');
  let keep: { size: number } | undefined;
  let dir: string | undefined;
  let cache: Cache | undefined;
  const value = Buffer.alloc(64, 0x5a);
  const before = used();
  if (kind === 'Map<string, bigint>') {
    const map = new Map<string, bigint>();
    for (let i = 0; i < n; i++) map.set(`key:${i}`, BigInt(i));
    keep = map;
  } else if (kind === 'lru-cache') {
    const c = new LRUCache<string, bigint>({ maxSize: 2 * n, sizeCalculation: () => 1 });
    for (let i = 0; i < n; i++) c.set(`key:${i}`, BigInt(i));
    keep = c;
  } else if (kind === 'zns-slab') {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-cache-mem-'));
    cache = openCache(path.join(dir, 'cache'), { maxBytes: znsMaxBytes(64, n) });
    for (let i = 0; i < n; i++) cache.set(`key:${i}`, value);
    keep = cache;
  } else throw new Error(`unknown kind ${kind}`);
  const after = used();
  if (keep.size !== n) throw new Error(`${kind}: ${keep.size} entries, expected ${n}`);
  const per = (b: number, a: number) => Number(((a - b) / n).toFixed(2));
  const bytes = {
    heap: per(before.heap, after.heap),
    external: per(before.external, after.external),
    arrayBuffers: per(before.arrayBuffers, after.arrayBuffers),
    total: 0,
    rss: per(before.rss, after.rss),
  };
  bytes.total = Number((bytes.heap + bytes.external + bytes.arrayBuffers).toFixed(2));
  const sample: MemorySample = { kind, entries: n, bytesPerEntry: bytes };
  if (cache) {
    const s = cache.stats();
    if (s.evictions.entries !== 0) throw new Error(`zns-slab memory child evicted ${s.evictions.entries} entries`);
    sample.statsIndexBytesPerEntry = s.index.bytesPerEntry === null ? null : round3(s.index.bytesPerEntry);
    cache.close();
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  return sample;
}

function measureMemory(): MemorySample[] {
  const self = fileURLToPath(import.meta.url);
  const samples: MemorySample[] = [];
  const kinds = ['zns-slab', 'lru-cache', 'Map<string, bigint>'];
  for (let r = 0; r < MEMORY_ROUNDS; r++) {
    for (const kind of kinds) {
      const res = spawnSync(process.execPath, ['--expose-gc', self, '--child-memory', kind, String(MEMORY_ENTRIES)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (res.status !== 0) throw new Error(`memory child ${kind} failed: ${res.stderr}`);
      const s = JSON.parse(res.stdout) as MemorySample;
      samples.push(s);
      say(`  memory ${kind}: ${s.bytesPerEntry.total} B/entry (heap ${s.bytesPerEntry.heap}, external ${s.bytesPerEntry.external}, array buffers ${s.bytesPerEntry.arrayBuffers})${s.statsIndexBytesPerEntry !== undefined ? `; stats().index.bytesPerEntry ${s.statsIndexBytesPerEntry}` : ''}`);
    }
  }
  return samples;
}

// ----- aggregation -------------------------------------------------------------------------

type OpName = 'set' | 'get' | 'mixed';
const OPS: OpName[] = ['set', 'get', 'mixed'];

interface OpSummary {
  ops: number;
  batchOps: number;
  opsPerSec: Spread;
  p50Us: Spread;
  p99Us: Spread;
  p999Us: Spread;
  maxUs: Spread;
  hits?: number[];
  expectedHits?: number[];
}

interface PeerSummary {
  set: OpSummary;
  get: OpSummary;
  mixed: OpSummary;
  drainMs: Spread;
  setWithDrainOpsPerSec: Spread;
  expiry?: Record<string, Spread | string | boolean[]>;
}

function summarizeOp(runs: PhaseRun[]): OpSummary {
  const o: OpSummary = {
    ops: runs[0]!.ops,
    batchOps: runs[0]!.batchOps,
    opsPerSec: spread(runs.map((r) => r.opsPerSec)),
    p50Us: spread(runs.map((r) => r.p50Us)),
    p99Us: spread(runs.map((r) => r.p99Us)),
    p999Us: spread(runs.map((r) => r.p999Us)),
    maxUs: spread(runs.map((r) => r.maxUs)),
  };
  if (runs[0]!.hits !== undefined) {
    o.hits = runs.map((r) => r.hits!);
    o.expectedHits = runs.map((r) => r.expectedHits!);
  }
  return o;
}

function summarizeExpiry(runs: Numbers[]): Record<string, Spread | string | boolean[]> {
  const out: Record<string, Spread | string | boolean[]> = {};
  for (const k of Object.keys(runs[0]!)) {
    const v = runs[0]![k];
    if (typeof v === 'number') out[k] = spread(runs.map((r) => r[k] as number));
    else if (typeof v === 'boolean') out[k] = runs.map((r) => r[k] as boolean);
    else out[k] = String(v);
  }
  return out;
}

interface Result {
  bench: 'cache';
  date: string;
  quick: boolean;
  machine: Record<string, unknown>;
  versions: Record<string, string | undefined>;
  config: Record<string, unknown>;
  timerOverheadNsPerCall: number;
  notes: string[];
  warnings: string[];
  /** [valueBytes][peer] */
  results: Record<string, Record<string, PeerSummary>>;
  rounds: Record<string, Record<string, PeerRun[]>>;
  /** zns-slab / lmdb-js per value size: median over rounds of the in-round ratio, with min/max. */
  ratiosZnsOverLmdb: Record<string, Record<string, Spread>>;
  /** zns-slab / @keyv/sqlite, the same way (zns-slab timed over every key in batches, @keyv/sqlite over KEYV_OPS per op); absent in older JSON. */
  ratiosZnsOverKeyvSqlite?: Record<string, Record<string, Spread>>;
  memory: { entries: number; samples: MemorySample[]; bytesPerEntry: Record<string, Spread>; znsStatsIndexBytesPerEntry: Spread | null };
  wallSeconds: number;
}

// ----- output ------------------------------------------------------------------------------

const fmtK = (x: number) => (x / 1000).toFixed(x >= 100_000 ? 0 : 1);
const fmtUs = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtBytes = (x: number) => (Math.abs(x) >= 1 << 20 ? `${(x / (1 << 20)).toFixed(1)} MiB` : Math.abs(x) >= 1024 ? `${(x / 1024).toFixed(1)} KiB` : `${x} B`);
const sizeLabel = (size: string) => (Number(size) >= 1024 ? `${Number(size) / 1024} KiB` : `${size} B`);
const range = (s: Spread, f: (x: number) => string) => `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;
/** "−1.1 MiB" when the store gave bytes back, "+1.3 MiB" when it grew. */
const change = (returned: number) => (returned === 0 ? '±0 B' : returned > 0 ? `−${fmtBytes(returned)}` : `+${fmtBytes(-returned)}`);
/** A ratio that may be far from 1 either way (zns-slab / @keyv/sqlite). */
const fmtRatio = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));

/** Peers left out of the drain lines: nothing to drain (lru-cache) or every timed set already durable (the awaited ones). */
const NO_DRAIN = new Set(['lru-cache', 'lmdb-js awaited', '@keyv/sqlite']);

interface ExpiryRow {
  size: string;
  peer: string;
  timed: string;
  time: string;
  disk: string;
  inside: string;
}

function expiryRows(r: Result): ExpiryRow[] {
  const rows: ExpiryRow[] = [];
  const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const sp = (e: Record<string, Spread | string | boolean[]>, k: string) => e[k] as Spread;
  for (const [size, peers] of Object.entries(r.results)) {
    for (const [peer, s] of Object.entries(peers)) {
      const e = s.expiry;
      if (!e) continue;
      if (peer === 'zns-slab') {
        rows.push({
          size,
          peer,
          timed: `set after clock move: closes ${sp(e, 'expiredEpochs').median} epoch(s), ${sp(e, 'expiredEntries').median} entries`,
          time: `${range(sp(e, 'triggerMs'), ms)} ms`,
          disk: `${fmtBytes(sp(e, 'diskBytesBefore').median)} → ${fmtBytes(sp(e, 'diskBytesAfter').median)} (${change(sp(e, 'returnedDiskBytes').median)})`,
          inside: `held ${fmtBytes(sp(e, 'heldBytesBefore').median)} → ${fmtBytes(sp(e, 'heldBytesAfter').median)}`,
        });
      } else if (peer === 'lmdb-js') {
        rows.push({
          size,
          peer,
          timed: `delete ${sp(e, 'deletedEntries').median} keys in one transactionSync`,
          time: `${range(sp(e, 'deleteTxnMs'), ms)} ms`,
          disk: `${fmtBytes(sp(e, 'diskBytesBefore').median)} → ${fmtBytes(sp(e, 'diskBytesAfter').median)} (${change(sp(e, 'returnedDiskBytes').median)})`,
          inside: `${fmtBytes(sp(e, 'bytesFreedInsideFile').median)} of pages freed inside the file`,
        });
      } else if (peer === 'better-sqlite3') {
        rows.push({
          size,
          peer,
          timed: `DELETE WHERE expires_at < ? (${sp(e, 'deletedRows').median} rows)`,
          time: `${range(sp(e, 'deleteMs'), ms)} ms`,
          disk: `${fmtBytes(sp(e, 'diskBytesBefore').median)} → ${fmtBytes(sp(e, 'diskBytesAfterDelete').median)} (${change(sp(e, 'returnedDiskBytes').median)})`,
          inside: `${fmtBytes(sp(e, 'bytesFreedInsideFile').median)} on the freelist`,
        });
        rows.push({
          size,
          peer,
          timed: 'then VACUUM (+ wal_checkpoint(TRUNCATE))',
          time: `${range(sp(e, 'vacuumMs'), ms)} ms (+ ${ms(sp(e, 'checkpointAfterVacuumMs').median)} ms)`,
          disk: `→ ${fmtBytes(sp(e, 'diskBytesAfterVacuumAndCheckpoint').median)} (${change(sp(e, 'returnedDiskBytesByVacuum').median)} more)`,
          inside: `WAL peaks at ${fmtBytes(sp(e, 'walBytesAfterVacuum').median)}`,
        });
      } else if (peer === '@keyv/sqlite') {
        rows.push({
          size,
          peer,
          timed: `bulk expiry not available through Keyv; deleteMany of ${sp(e, 'deletedRows').median} keys by name, ${sp(e, 'deleteCalls').median} calls`,
          time: `${range(sp(e, 'deleteMs'), ms)} ms`,
          disk: `${fmtBytes(sp(e, 'diskBytesBefore').median)} → ${fmtBytes(sp(e, 'diskBytesAfter').median)} (${change(sp(e, 'returnedDiskBytes').median)})`,
          inside: `${fmtBytes(sp(e, 'bytesFreedInsideFile').median)} on the freelist`,
        });
      }
    }
  }
  return rows;
}

function memoryLine(r: Result): string[] {
  const lines: string[] = [];
  for (const [kind, s] of Object.entries(r.memory.bytesPerEntry)) lines.push(`${kind}: ${s.median} B/entry [${s.min}–${s.max}] (process heap + external + arrayBuffers delta)`);
  if (r.memory.znsStatsIndexBytesPerEntry) lines.push(`zns-slab stats().index.bytesPerEntry: ${r.memory.znsStatsIndexBytesPerEntry.median} B/entry`);
  return lines;
}

function printTable(r: Result): void {
  say('');
  say(`zns-slab cache vs peers: ${r.config['keys']} keys, median of ${r.config['rounds']} rounds [min–max]; latency = per-op mean of ${BATCH_OPS}-op batches (awaited lmdb-js, @keyv/sqlite: per op)`);
  say(`${'value'.padEnd(6)} ${'op'.padEnd(6)} ${'peer'.padEnd(26)} ${'kops/s'.padStart(22)} ${'p50 µs'.padStart(8)} ${'p99 µs'.padStart(22)} ${'p999 µs'.padStart(9)}  hits`);
  for (const [size, peers] of Object.entries(r.results)) {
    for (const op of OPS) {
      for (const [peer, s] of Object.entries(peers)) {
        const o = s[op];
        const hits = o.hits ? (o.hits.every((h, i) => h === o.expectedHits![i]) ? 'all' : `${o.hits.join('/')} of ${o.expectedHits!.join('/')}`) : '';
        const ops = o.ops !== r.config['keys'] ? ` (${o.ops} ops)` : '';
        say(`${sizeLabel(size).padEnd(6)} ${op.padEnd(6)} ${(peer + ops).padEnd(26)} ${range(o.opsPerSec, fmtK).padStart(22)} ${fmtUs(o.p50Us.median).padStart(8)} ${range(o.p99Us, fmtUs).padStart(22)} ${fmtUs(o.p999Us.median).padStart(9)}  ${hits}`);
      }
    }
  }
  say('');
  say('load made durable/committed (drain: zns flush(), lmdb-js await db.flushed, sqlite COMMIT + wal_checkpoint(PASSIVE)):');
  for (const [size, peers] of Object.entries(r.results)) {
    for (const [peer, s] of Object.entries(peers)) {
      if (NO_DRAIN.has(peer)) continue;
      say(`  ${sizeLabel(size).padEnd(6)} ${peer.padEnd(16)} drain ${range(s.drainMs, (x) => x.toFixed(1))} ms; load incl. drain ${range(s.setWithDrainOpsPerSec, fmtK)} kops/s`);
    }
  }
  say('');
  say(`expiring the oldest ${r.config['expireKeys']} entries:`);
  for (const e of expiryRows(r)) say(`  ${sizeLabel(e.size).padEnd(6)} ${e.peer.padEnd(15)} ${e.timed.padEnd(58)} ${e.time.padEnd(30)} disk ${e.disk}; ${e.inside}`);
  say('');
  say(`index memory per entry, ${r.memory.entries} entries:`);
  for (const l of memoryLine(r)) say(`  ${l}`);
  say('');
  say('ratios zns-slab / lmdb-js (median of per-round ratios [min–max]; ops/s > 1: zns faster; p99 < 1: zns lower):');
  for (const [size, ratios] of Object.entries(r.ratiosZnsOverLmdb)) {
    say(`  ${sizeLabel(size).padEnd(6)} ${Object.entries(ratios).map(([k, v]) => `${k} ${range(v, (x) => x.toFixed(2))}`).join('; ')}`);
  }
  if (r.ratiosZnsOverKeyvSqlite) {
    say('ratios zns-slab / @keyv/sqlite (the same; @keyv/sqlite timed per op over its bounded operations, zns-slab in batches over every key):');
    for (const [size, ratios] of Object.entries(r.ratiosZnsOverKeyvSqlite)) {
      say(`  ${sizeLabel(size).padEnd(6)} ${Object.entries(ratios).map(([k, v]) => `${k} ${range(v, fmtRatio)}`).join('; ')}`);
    }
  }
  if (r.warnings.length > 0) {
    say('');
    for (const w of r.warnings) say(`WARNING: ${w}`);
  }
}

function printMarkdown(r: Result): void {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(`Machine: ${m['cpus']} vCPU ${m['cpuModel']}, Node ${m['node']}, load average ${m['loadAverageStart']} at the start. ${r.config['keys']} keys, ${r.config['rounds']} rounds; medians of rounds [min–max].`);
  lines.push('');
  lines.push('| value | op | peer | kops/s | p50 µs | p99 µs | p999 µs |');
  lines.push('|---|---|---|---:|---:|---:|---:|');
  for (const [size, peers] of Object.entries(r.results)) {
    for (const op of OPS) {
      for (const [peer, s] of Object.entries(peers)) {
        const o = s[op];
        const ops = o.ops !== r.config['keys'] ? ` (${o.ops} ops, per-op timing)` : '';
        const name = peer === 'zns-slab' ? `**${peer}**` : peer;
        lines.push(`| ${sizeLabel(size)} | ${op} | ${name}${ops} | ${range(o.opsPerSec, fmtK)} | ${fmtUs(o.p50Us.median)} | ${range(o.p99Us, fmtUs)} | ${fmtUs(o.p999Us.median)} |`);
      }
    }
  }
  lines.push('');
  lines.push('| value | zns-slab / lmdb-js | set | get | mixed |');
  lines.push('|---|---|---:|---:|---:|');
  for (const [size, ratios] of Object.entries(r.ratiosZnsOverLmdb)) {
    const cell = (k: string) => (ratios[k] ? `${ratios[k]!.median.toFixed(2)} [${ratios[k]!.min.toFixed(2)}–${ratios[k]!.max.toFixed(2)}]` : '–');
    lines.push(`| ${sizeLabel(size)} | ops/s | ${cell('set ops/s')} | ${cell('get ops/s')} | ${cell('mixed ops/s')} |`);
    lines.push(`| ${sizeLabel(size)} | p99 | ${cell('set p99')} | ${cell('get p99')} | ${cell('mixed p99')} |`);
    lines.push(`| ${sizeLabel(size)} | ops/s, load incl. drain | ${cell('set incl. drain ops/s')} | – | – |`);
  }
  if (r.ratiosZnsOverKeyvSqlite) {
    lines.push('');
    lines.push('| value | zns-slab / @keyv/sqlite | set | get | mixed |');
    lines.push('|---|---|---:|---:|---:|');
    for (const [size, ratios] of Object.entries(r.ratiosZnsOverKeyvSqlite)) {
      const cell = (k: string) => (ratios[k] ? range(ratios[k]!, fmtRatio) : '–');
      lines.push(`| ${sizeLabel(size)} | ops/s | ${cell('set ops/s')} | ${cell('get ops/s')} | ${cell('mixed ops/s')} |`);
      lines.push(`| ${sizeLabel(size)} | p99 | ${cell('set p99')} | ${cell('get p99')} | ${cell('mixed p99')} |`);
      lines.push(`| ${sizeLabel(size)} | ops/s, load incl. drain | ${cell('set incl. drain ops/s')} | – | – |`);
    }
    lines.push('');
    lines.push(`@keyv/sqlite is timed per operation over ${r.config['keyvOps'] ?? '?'} operations per phase, zns-slab in ${BATCH_OPS}-operation batches over every key: its p99 is of single operations, zns-slab's of ${BATCH_OPS}-op means. Load incl. drain: zns-slab's load + flush() against @keyv/sqlite's sets, each durable when it resolves.`);
  }
  lines.push('');
  lines.push('| value | peer | drain after the load | load kops/s incl. drain |');
  lines.push('|---|---|---:|---:|');
  for (const [size, peers] of Object.entries(r.results)) {
    for (const [peer, s] of Object.entries(peers)) {
      if (NO_DRAIN.has(peer)) continue;
      lines.push(`| ${sizeLabel(size)} | ${peer} | ${range(s.drainMs, (x) => x.toFixed(1))} ms | ${range(s.setWithDrainOpsPerSec, fmtK)} |`);
    }
  }
  lines.push('');
  lines.push('Drain: zns-slab `flush()`, lmdb-js `await db.flushed`, better-sqlite3 COMMIT + `wal_checkpoint(PASSIVE)`. Not listed: lru-cache (nothing to make durable), lmdb-js awaited and @keyv/sqlite (every timed set is durable when it resolves).');
  lines.push('');
  lines.push(`Expiring the oldest ${r.config['expireKeys']} entries:`);
  lines.push('');
  lines.push('| value | peer | what is timed | time | disk (allocated) | inside the store |');
  lines.push('|---|---|---|---:|---|---|');
  for (const e of expiryRows(r)) lines.push(`| ${sizeLabel(e.size)} | ${e.peer} | ${e.timed} | ${e.time} | ${e.disk} | ${e.inside} |`);
  lines.push('');
  lines.push(`Index memory per entry at ${r.memory.entries} entries:`);
  lines.push('');
  lines.push('| structure | bytes/entry | how |');
  lines.push('|---|---:|---|');
  if (r.memory.znsStatsIndexBytesPerEntry) lines.push(`| zns-slab index | ${r.memory.znsStatsIndexBytesPerEntry.median} | \`stats().index.bytesPerEntry\` (keys live on the device) |`);
  for (const [kind, s] of Object.entries(r.memory.bytesPerEntry)) lines.push(`| ${kind} | ${s.median} [${s.min}–${s.max}] | heapUsed + external + arrayBuffers delta after gc()${kind === 'zns-slab' ? ' (whole cache: index, open slabs, catalog objects)' : ''} |`);
  lines.push('');
  for (const n of r.notes) lines.push(`- ${n}`);
  say('');
  say('----- markdown -----');
  say(lines.join('\n'));
  say('----- end markdown -----');
}

// ----- main --------------------------------------------------------------------------------

function notesFor(warnings: string[]): string[] {
  const v = (name: string) => packageVersion(name) ?? '?';
  return [
    `Latency is timed with process.hrtime.bigint() around batches of ${BATCH_OPS} operations (one timer pair costs about ${timerOverhead} ns, as much as a fast get); an operation's latency is its batch's time / ${BATCH_OPS}, so p99/p999 are percentiles of ${BATCH_OPS}-op means and understate single-op spikes. ops/s = operations / time inside the timed batches.`,
    `The event loop turns every ${YIELD_EVERY} operations, outside the timed batches (as a server's would between requests).`,
    `lmdb-js: db.put(key, value) not awaited ("as it comes"; encoding 'binary', default overlappingSync): the put only queues the write, lmdb-js's write thread commits and fsyncs it in the background on the other core; its drain (await db.flushed after the load) is reported apart, with load ops/s including it.`,
    `lmdb-js awaited: a second store opened with separateFlushed: true; every set is \`await db.put(key, value).flushed\` (resolves once that put's transaction is fsynced), so each set is its own durable transaction. Timed per operation, over the first ${LMDB_AWAITED_OPS} keys for set and ${LMDB_AWAITED_OPS} operations for mixed (the rest of the keys are loaded without awaiting, untimed); its get is the same call as lmdb-js's.`,
    `better-sqlite3: WAL, synchronous=NORMAL, one table kv(key TEXT PRIMARY KEY, value BLOB, expires_at INTEGER) with an index on expires_at; set = prepared upsert inside explicit transactions of N = ${SQLITE_TXN_SETS} sets (the COMMIT falls inside the timed batch of the set that ends the transaction); get = prepared SELECT value ... WHERE key = ? AND (expires_at IS NULL OR expires_at > ?). Default page cache, no mmap.`,
    `@keyv/sqlite ${v('@keyv/sqlite')} (keyv ${v('keyv')}, @keyv/serialize ${v('@keyv/serialize')}, driver sqlite3 ${v('sqlite3')}): new Keyv({ store: new KeyvSqlite('sqlite://' + file) }) with Keyv's defaults, as the adapter's README sets it up: namespace 'keyv' (rows keyed 'keyv:key:\${i}'), default serialization (@keyv/serialize: each row's value is the JSON text of { value, expires }, the Buffer inside as the string ':base64:' + base64, so 64 B values are stored as ~130 B of text and 1 KiB values as ~1.4 KB; get deserializes it back to an equal Buffer, checked), table keyv(key VARCHAR(255) PRIMARY KEY, value TEXT), SQLite defaults (rollback journal, synchronous=FULL, no WAL: the adapter has no option for it), so every keyv.set is its own autocommit transaction, durable when it resolves. set = await keyv.set(key, value, ttl); get = await keyv.get(key). Async, so every set and get (and mixed operation) is awaited and timed on its own, over ${KEYV_OPS} operations per phase: sets of the first ${KEYV_OPS} keys, gets and mixed operations from the start of the same random sequences as the other peers; the rest of the keys are loaded untimed through the same keyv.set calls inside one explicit transaction (BEGIN/COMMIT through the adapter's query(), ${KEYV_LOAD_CONCURRENCY} sets in flight). Its set ops/s is also its load rate including durability (nothing to drain).`,
    `lru-cache: LRUCache<string, Buffer> with maxSize ${'2 x keys x (value + 16)'} and sizeCalculation = value.length + key.length (nothing is evicted); it keeps the caller's Buffer (no copy, no durability): the in-memory ceiling.`,
    `zns-slab: openCache(dir, { maxBytes, clock }) on its emulated zoned device in ${os.tmpdir()}, Buffer values (stored as raw bytes), get returns the stored bytes; sets are durable at flush() (its drain). maxBytes is sized so nothing is evicted.`,
    `TTLs: the oldest ${EXPIRE_KEYS} keys are set with a ${SHORT_TTL_MS / 1000} s TTL on zns-slab, better-sqlite3 (expires_at) and @keyv/sqlite (keyv.set's ttl: Keyv writes expires = Date.now() + ttl into the serialized value; the wall clock, not injectable), the rest with none; lmdb-js and lru-cache have no TTL. Mixed-phase sets keep each key's TTL class. Expiry: the clock moves ${EXPIRY_CLOCK_ADVANCE_MS / 1000} s; zns-slab closes the due TTL bucket's epoch (zones reset, files deleted on the emulated device) in the first set after; lmdb-js deletes the same keys by name in one transactionSync (finding them is not timed; it has no expiry index); better-sqlite3 runs DELETE ... WHERE expires_at < ? then VACUUM; @keyv/sqlite: bulk expiry is not available through Keyv (the expiry time lives inside the JSON text, there is no expires column, and Keyv deletes an expired entry only when a get reads it, so expired entries never read stay in the file), so what is timed is deleting the same keys by name through keyv.deleteMany, ${KEYV_DELETE_CHUNK} keys per call, calls awaited one after another (finding the keys is not timed; one call with all ${EXPIRE_KEYS} keys is quadratic in @keyv/sqlite ${v('@keyv/sqlite')}: its getMany matches each key to the rows with rows.find). No VACUUM: none is available through Keyv.`,
    `Disk bytes are allocated blocks (stat.blocks x 512) of every file of the store; lmdb-js and SQLite (better-sqlite3 and @keyv/sqlite) keep freed pages inside their files (reported as "inside the store").`,
    `Index memory: child processes with --expose-gc, one structure each, ${MEMORY_ENTRIES} keys key:\${i} made during insertion (strings a structure keeps are counted); lru-cache and Map hold BigInt handles (LRUCache<string, bigint> with maxSize and sizeCalculation () => 1); zns-slab holds 64-byte values on its device and its index keeps hashes and handles, no keys.`,
    `Peers run interleaved: each round runs every peer once per value size on a fresh store, in an order rotated every time; numbers are medians of rounds [min–max]; ratios are medians of in-round ratios. This machine is shared and noisy: read ratios, not absolutes.`,
    ...warnings.map((w) => `WARNING: ${w}`),
  ];
}

let timerOverhead = 0;

async function main(): Promise<void> {
  const started = performance.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-cache-bench-'));
  const loadStart = os.loadavg()[0]!.toFixed(2);
  try {
    timerOverhead = timerOverheadNs();
    if (!(globalThis as { gc?: unknown }).gc) say('(no --expose-gc: gc() between peers skipped)');
    say(`zns-slab cache bench${QUICK ? ' (quick)' : ''}: ${KEYS} keys, values ${VALUE_SIZES.join(' / ')} B, ${ROUNDS} rounds, ${os.cpus().length} cpus, node ${process.version}, load ${loadStart}, timer ${timerOverhead} ns, in ${dir}`);
    const values = new Map<number, Buffer[]>(VALUE_SIZES.map((s) => [s, makeValues(s)]));
    const rounds: Record<string, Record<string, PeerRun[]>> = {};
    for (const size of VALUE_SIZES) rounds[size] = Object.fromEntries(PEERS.map((p) => [p.name, [] as PeerRun[]]));
    let turn = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of VALUE_SIZES) {
        const order = PEERS.map((_, i) => PEERS[(i + turn) % PEERS.length]!);
        turn++;
        for (const peer of order) {
          gc();
          const run = await runPeer(peer, path.join(dir, `${peer.name.replace(/\W+/g, '-')}-${size}-${round}`), size, values.get(size)!);
          rounds[size]![peer.name]!.push(run);
          const e = run.expiry;
          const exp = e ? ` | expiry ${String(e['triggerMs'] ?? e['deleteTxnMs'] ?? e['deleteMs'])} ms` : '';
          say(`[round ${round + 1}/${ROUNDS}, ${sizeLabel(String(size))}] ${peer.name.padEnd(16)} set ${fmtK(run.set.opsPerSec)} kops/s p99 ${fmtUs(run.set.p99Us)} µs | get ${fmtK(run.get.opsPerSec)} kops/s p99 ${fmtUs(run.get.p99Us)} µs | mixed ${fmtK(run.mixed.opsPerSec)} kops/s p99 ${fmtUs(run.mixed.p99Us)} µs${exp}`);
        }
      }
    }
    say('index memory (child processes)');
    const memSamples = measureMemory();

    // Aggregate.
    const warnings: string[] = [];
    const results: Result['results'] = {};
    const ratios: Result['ratiosZnsOverLmdb'] = {};
    const ratiosKeyv: Result['ratiosZnsOverLmdb'] = {};
    for (const size of VALUE_SIZES) {
      results[size] = {};
      for (const peer of PEERS) {
        const runs = rounds[size]![peer.name]!;
        const s: PeerSummary = {
          set: summarizeOp(runs.map((r) => r.set)),
          get: summarizeOp(runs.map((r) => r.get)),
          mixed: summarizeOp(runs.map((r) => r.mixed)),
          drainMs: spread(runs.map((r) => r.drainMs)),
          setWithDrainOpsPerSec: spread(runs.map((r) => r.setWithDrainOpsPerSec)),
        };
        if (runs[0]!.expiry) s.expiry = summarizeExpiry(runs.map((r) => r.expiry!));
        results[size]![peer.name] = s;
        for (const op of ['get', 'mixed'] as const) {
          const o = s[op];
          if (o.hits && o.hits.some((h, i) => h !== o.expectedHits![i])) warnings.push(`${peer.name} ${size} B ${op}: hits ${o.hits.join('/')} of ${o.expectedHits!.join('/')}`);
        }
        for (const r of runs) {
          if (r.expiry && r.expiry['expiredKeysGoneLiveKeysKept'] !== true) warnings.push(`${peer.name} ${size} B: after expiry, an expired key was still there or a live key was gone`);
          if (peer === keyvSqlite && r.expiry && (r.expiry['deletedRows'] !== EXPIRE_KEYS || r.expiry['everyCallDeleted'] !== true)) warnings.push(`${peer.name} ${size} B: keyv.deleteMany removed ${String(r.expiry['deletedRows'])} rows of ${EXPIRE_KEYS} (every call deleted: ${String(r.expiry['everyCallDeleted'])})`);
          const ev = (r.info?.['evictions'] as { entries: number } | undefined)?.entries;
          if (ev !== undefined && ev > 0) warnings.push(`${peer.name} ${size} B: evicted ${ev} entries (maxBytes too small for the bench)`);
        }
      }
      const z = rounds[size]!['zns-slab']!;
      const over = (other: PeerRun[]) => {
        const ratio = (f: (r: PeerRun) => number) => spread(z.map((r, i) => f(r) / f(other[i]!)));
        return {
          'set ops/s': ratio((r) => r.set.opsPerSec),
          'get ops/s': ratio((r) => r.get.opsPerSec),
          'mixed ops/s': ratio((r) => r.mixed.opsPerSec),
          'set p99': ratio((r) => r.set.p99Us),
          'get p99': ratio((r) => r.get.p99Us),
          'mixed p99': ratio((r) => r.mixed.p99Us),
          'set incl. drain ops/s': ratio((r) => r.setWithDrainOpsPerSec),
        };
      };
      ratios[size] = over(rounds[size]!['lmdb-js']!);
      ratiosKeyv[size] = over(rounds[size]![keyvSqlite.name]!);
    }
    const bytesPerEntry: Record<string, Spread> = {};
    for (const kind of new Set(memSamples.map((s) => s.kind))) bytesPerEntry[kind] = spread(memSamples.filter((s) => s.kind === kind).map((s) => s.bytesPerEntry.total));
    const znsIdx = memSamples.filter((s) => typeof s.statsIndexBytesPerEntry === 'number').map((s) => s.statsIndexBytesPerEntry as number);

    const result: Result = {
      bench: 'cache',
      date: new Date().toISOString(),
      quick: QUICK,
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        tmp: os.tmpdir(),
        loadAverageStart: Number(loadStart),
        loadAverageEnd: Number(os.loadavg()[0]!.toFixed(2)),
      },
      versions: {
        lmdb: packageVersion('lmdb'),
        'better-sqlite3': packageVersion('better-sqlite3'),
        'lru-cache': packageVersion('lru-cache'),
        msgpackr: packageVersion('msgpackr'),
        '@keyv/sqlite': packageVersion('@keyv/sqlite'),
        keyv: packageVersion('keyv'),
        '@keyv/serialize': packageVersion('@keyv/serialize'),
        sqlite3: packageVersion('sqlite3'),
      },
      config: {
        keys: KEYS,
        expireKeys: EXPIRE_KEYS,
        valueSizes: VALUE_SIZES,
        rounds: ROUNDS,
        batchOps: BATCH_OPS,
        yieldEvery: YIELD_EVERY,
        mixedSetFraction: MIXED_SET_FRACTION,
        sqliteTxnSets: SQLITE_TXN_SETS,
        lmdbAwaitedOps: LMDB_AWAITED_OPS,
        keyvOps: KEYV_OPS,
        keyvDeleteChunk: KEYV_DELETE_CHUNK,
        keyvLoadConcurrency: KEYV_LOAD_CONCURRENCY,
        shortTtlMs: SHORT_TTL_MS,
        expiryClockAdvanceMs: EXPIRY_CLOCK_ADVANCE_MS,
        znsMaxBytes: Object.fromEntries(VALUE_SIZES.map((s) => [s, znsMaxBytes(s)])),
        memoryEntries: MEMORY_ENTRIES,
        verifySample: VERIFY_SAMPLE,
      },
      timerOverheadNsPerCall: timerOverhead,
      notes: notesFor(warnings),
      warnings,
      results,
      rounds,
      ratiosZnsOverLmdb: ratios,
      ratiosZnsOverKeyvSqlite: ratiosKeyv,
      memory: { entries: MEMORY_ENTRIES, samples: memSamples, bytesPerEntry, znsStatsIndexBytesPerEntry: znsIdx.length > 0 ? spread(znsIdx) : null },
      wallSeconds: 0,
    };
    result.wallSeconds = Number(((performance.now() - started) / 1000).toFixed(1));
    printTable(result);
    if (MARKDOWN) printMarkdown(result);
    say(`(${result.wallSeconds} s)`);
    const json = JSON.stringify(result, null, 2) + '\n';
    process.stdout.write(json);
    if (OUT) fs.writeFileSync(OUT, json);
    if (warnings.length > 0) process.exitCode = 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (args[0] === '--child-memory') {
  process.stdout.write(JSON.stringify(childMemory(args[1]!, Number(args[2]))));
} else if (FROM !== undefined) {
  const r = JSON.parse(fs.readFileSync(FROM, 'utf8')) as Result;
  printTable(r);
  if (MARKDOWN) printMarkdown(r);
} else {
  await main();
}
