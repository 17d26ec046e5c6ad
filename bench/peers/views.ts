/** What each workload's table shows: its title, its columns, and which metrics get ratios. */
import type { Sizes, WorkloadName } from './config.js';

export interface Column {
  metric: string;
  label: string;
}

export interface WorkloadView {
  title: (z: Sizes) => string;
  /** The first column is the headline (shown with its spread over repetitions). */
  columns: Column[];
  /** Metrics shown as "÷ lmdb-js" and "÷ floor" (same metric divided, per repetition, then the median). */
  ratios: string[];
}

const kib = (b: number) => (b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
const n = (x: number) => x.toLocaleString('en-US');

const opsCol: Column = { metric: 'opsPerSec', label: 'ops/s' };
const lat = (prefix: string, name: string): Column[] => [
  { metric: `${prefix}P50Us`, label: `${name} p50 µs` },
  { metric: `${prefix}P99Us`, label: `${name} p99 µs` },
  { metric: `${prefix}P999Us`, label: `${name} p999 µs` },
];

const bulkView = (count: (z: Sizes) => number, bytes: (z: Sizes) => number): WorkloadView => ({
  title: (z) => `${n(count(z))} values of ${kib(bytes(z))} (${n(Math.round((count(z) * bytes(z)) / 1e6))} MB), then one durable flush; time from the first put until the flush returns`,
  columns: [{ metric: 'MBps', label: 'MB/s' }, opsCol, { metric: 'seconds', label: 's' }, { metric: 'flushMs', label: 'flush ms' }, { metric: 'diskMB', label: 'disk MB' }],
  ratios: ['MBps'],
});

export const VIEWS: Record<WorkloadName, WorkloadView> = {
  'bulk-1k': bulkView(
    (z) => z.bulkSmallCount,
    (z) => z.bulkSmallBytes,
  ),
  'bulk-64k': bulkView(
    (z) => z.bulkLargeCount,
    (z) => z.bulkLargeBytes,
  ),
  'durable-100': {
    title: (z) => `${n(z.durableCount)} puts of ${kib(z.durableBytes)}, each batch of ${z.durableEvery} one durable commit (commit latency = the batch's puts and its commit)`,
    columns: [opsCol, { metric: 'commitsPerSec', label: 'commits/s' }, ...lat('commit', 'commit')],
    ratios: ['opsPerSec'],
  },
  get: {
    title: (z) => `${n(z.readOps)} random gets of ${n(z.readKeys)} loaded ${kib(z.readBytes)} values (flushed, page-cached), each timed`,
    columns: [opsCol, ...lat('get', 'get')],
    ratios: ['opsPerSec', 'getP99Us'],
  },
  mixed: {
    title: (z) => `${n(z.readOps)} operations on ${n(z.readKeys)} loaded ${kib(z.readBytes)} values, ${Math.round((1 - z.mixedPutFraction) * 100)}% get / ${Math.round(z.mixedPutFraction * 100)}% put (an overwrite, not durable), each timed`,
    columns: [opsCol, ...lat('get', 'get'), ...lat('put', 'put')],
    ratios: ['opsPerSec'],
  },
  expiry: {
    title: (z) =>
      `${n(z.expiryCount)} values of ${kib(z.expiryBytes)} loaded, the oldest ${n(z.expiryOldest)} expired durably (the store: epochs of ${n(z.expiryEpochObjects)} closed; the peers: those keys deleted); compaction timed apart`,
    columns: [
      { metric: 'expireMs', label: 'expire ms' },
      { metric: 'diskBeforeMB', label: 'disk before MB' },
      { metric: 'diskAfterMB', label: 'disk after MB' },
      { metric: 'compactMs', label: 'compact ms' },
      { metric: 'diskAfterCompactMB', label: 'after compact MB' },
    ],
    ratios: ['expireMs'],
  },
  churn: {
    title: (z) =>
      `bench/churn.bench.ts's churn, shorter: ${n(z.churnLive)} live objects of ${z.churnMinBytes} B–${kib(z.churnMaxBytes)}, ${n(z.churnCycles)} cycles of free + put, a flush every ${n(z.churnFlushEvery)} cycles`,
    columns: [{ metric: 'cyclesPerSec', label: 'cycles/s' }, ...lat('put', 'put'), ...lat('free', 'free'), { metric: 'diskMB', label: 'disk MB' }],
    ratios: ['cyclesPerSec', 'putP99Us'],
  },
  'qd-read': {
    title: (z) =>
      `random reads on O_DIRECT by queue depth: ${n(z.qdObjects)} values of ${kib(z.qdValueBytes)} on the O_DIRECT store, ${z.qdSecondsPerDepth} s per depth; floors read ${kib(z.qdFloorReadBytes)} blocks of the same zone files`,
    columns: [
      { metric: 'qd1OpsPerSec', label: 'QD1 reads/s' },
      ...lat('qd1', 'QD1'),
      { metric: 'qd16OpsPerSec', label: 'QD16 reads/s' },
      { metric: 'qd64OpsPerSec', label: 'QD64 reads/s' },
      { metric: 'qd1ManyOpsPerSec', label: 'getMany QD1 reads/s' },
    ],
    ratios: ['qd1OpsPerSec', 'qd16OpsPerSec', 'qd64OpsPerSec'],
  },
};
