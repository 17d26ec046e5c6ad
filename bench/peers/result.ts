/** What one run (one engine or floor, one workload, one repetition) hands back to the parent. */
import type { Dist } from '../lib/stats.js';
import type { UnitName, WorkloadName } from './config.js';

export type RunStatus = 'ok' | 'missing' | 'error';

export interface RunResult {
  workload: WorkloadName;
  unit: UnitName;
  /** Which repetition (0-based; the parent sets it). */
  rep?: number;
  status: RunStatus;
  /** Why it is missing or failed, or what to know about how it ran. */
  note?: string;
  /** A run that measured, but not everything: what this build lacks, and what is left out for it. */
  missing?: string;
  /** Every number the run measured, flat (aggregated across repetitions by name). */
  metrics: Record<string, number>;
  /** Anything else worth keeping in the JSON (settings, durability, raw tool output fields). */
  detail?: Record<string, unknown>;
  /** Objects read back and compared after the workload (untimed). */
  verify?: { checked: number; wrong: number };
  pid?: number;
  /** Wall time of the whole run, opening and loading included. */
  wallMs: number;
}

/** What a workload measured (the child adds the unit, status and timing around it). */
export interface Measured {
  metrics: Record<string, number>;
  /** What this build lacks, and what is left out for it (the run still measured the rest). */
  missing?: string;
  detail?: Record<string, unknown>;
  verify?: { checked: number; wrong: number };
}

/** A distribution's percentiles as flat metrics: `${prefix}P50Us`, `${prefix}P99Us`, ... */
export function distMetrics(prefix: string, d: Dist): Record<string, number> {
  return { [`${prefix}P50Us`]: d.p50Us, [`${prefix}P99Us`]: d.p99Us, [`${prefix}P999Us`]: d.p999Us, [`${prefix}MaxUs`]: d.maxUs, [`${prefix}MeanUs`]: d.meanUs };
}
