/**
 * Repetitions into one row per engine or floor: the median of each metric with its min and max,
 * and ratios to lmdb-js and to the workload's floor, each taken within a repetition (both
 * measured minutes apart at most) and then the median of those.
 */
import { type Spread, spread } from '../lib/stats.js';
import { FLOORS, LABELS, PRIMARY_FLOOR, REFERENCE_ENGINE, type UnitName, type WorkloadName } from './config.js';
import type { RunResult, RunStatus } from './result.js';
import { VIEWS } from './views.js';

export interface Row {
  unit: UnitName;
  label: string;
  kind: 'engine' | 'floor';
  /** Repetitions that measured, of those that ran. */
  okReps: number;
  reps: number;
  /** Why repetitions did not measure, or what a measuring one left out (deduplicated). */
  problems: { status: RunStatus; note: string }[];
  metrics: Record<string, Spread>;
  /** metric -> this row's value / lmdb-js's, per repetition. */
  vsReference: Record<string, Spread>;
  /** metric -> this row's value / the floor's, per repetition. */
  vsFloor: Record<string, Spread>;
}

export interface WorkloadSummary {
  workload: WorkloadName;
  reference: UnitName;
  /** The floor the "÷ floor" ratios divide by (undefined when none measured). */
  floor: UnitName | undefined;
  rows: Row[];
}

function ratios(runs: RunResult[], other: RunResult[], metrics: string[]): Record<string, Spread> {
  const out: Record<string, Spread> = {};
  for (const m of metrics) {
    const xs: number[] = [];
    for (const r of runs) {
      const o = other.find((x) => x.rep === r.rep);
      const a = r.metrics[m];
      const b = o?.metrics[m];
      if (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b !== 0) xs.push(a / b);
    }
    if (xs.length > 0) out[m] = spread(xs);
  }
  return out;
}

export function summarize(runs: RunResult[], workload: WorkloadName, units: readonly UnitName[]): WorkloadSummary {
  const ok = (u: UnitName) => runs.filter((r) => r.workload === workload && r.unit === u && r.status === 'ok');
  const floor = PRIMARY_FLOOR[workload].find((f) => units.includes(f) && ok(f).length > 0);
  const view = VIEWS[workload];
  const rows: Row[] = [];
  for (const unit of units) {
    const all = runs.filter((r) => r.workload === workload && r.unit === unit);
    if (all.length === 0) continue;
    const good = all.filter((r) => r.status === 'ok');
    const metrics: Record<string, Spread> = {};
    const names = new Set(good.flatMap((r) => Object.keys(r.metrics)));
    for (const m of names) {
      const xs = good.map((r) => r.metrics[m]).filter((x): x is number => x !== undefined && Number.isFinite(x));
      if (xs.length > 0) metrics[m] = spread(xs);
    }
    const problems: Row['problems'] = [];
    for (const r of all) {
      const p = r.status !== 'ok' ? { status: r.status, note: r.note ?? '' } : r.missing !== undefined ? { status: 'missing' as const, note: r.missing } : undefined;
      if (p && !problems.some((x) => x.note === p.note)) problems.push(p);
    }
    const isFloor = (FLOORS as readonly string[]).includes(unit);
    rows.push({
      unit,
      label: LABELS[unit],
      kind: isFloor ? 'floor' : 'engine',
      okReps: good.length,
      reps: all.length,
      problems,
      metrics,
      vsReference: isFloor || unit === REFERENCE_ENGINE ? {} : ratios(good, ok(REFERENCE_ENGINE), view.ratios),
      vsFloor: floor === undefined || unit === floor ? {} : ratios(good, ok(floor), view.ratios),
    });
  }
  return { workload, reference: REFERENCE_ENGINE, floor, rows };
}
