/** The workload tables, as plain text (stderr) and as markdown (docs/BENCHMARKS.md). */
import type { Spread } from '../lib/stats.js';
import { LABELS, type Sizes } from './config.js';
import type { WorkloadSummary } from './summary.js';
import { VIEWS } from './views.js';

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
  footnotes: string[];
}

export function fmtNum(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function fmtRatio(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 0.1 ? x.toFixed(2) : x.toPrecision(2);
}

function withSpread(s: Spread | undefined, f: (x: number) => string): string {
  if (s === undefined) return '–';
  return s.n > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}

export function workloadTable(s: WorkloadSummary, z: Sizes): Table {
  const view = VIEWS[s.workload];
  const labelOf = (metric: string) => view.columns.find((c) => c.metric === metric)?.label ?? metric;
  const ref = LABELS[s.reference];
  const floor = s.floor === undefined ? undefined : LABELS[s.floor];
  const showRef = s.rows.some((r) => Object.keys(r.vsReference).length > 0);
  const header = ['engine', ...view.columns.map((c) => c.label)];
  for (const m of view.ratios) {
    if (showRef) header.push(`${labelOf(m)} ÷ ${ref}`);
    if (floor !== undefined) header.push(`${labelOf(m)} ÷ floor`);
  }
  const rows: string[][] = [];
  const footnotes: string[] = [];
  for (const r of s.rows) {
    const name = r.okReps < r.reps && r.okReps > 0 ? `${r.label} (${r.okReps} of ${r.reps} reps)` : r.label;
    if (r.okReps === 0) {
      const p = r.problems[0];
      rows.push([name, `${p?.status ?? 'no result'}: see below`, ...new Array<string>(header.length - 2).fill('–')]);
    } else {
      const cells = view.columns.map((c, i) => (i === 0 ? withSpread(r.metrics[c.metric], fmtNum) : fmtNum(r.metrics[c.metric]?.median)));
      for (const m of view.ratios) {
        if (showRef) cells.push(withSpread(r.vsReference[m], fmtRatio));
        if (floor !== undefined) cells.push(s.floor === r.unit ? '1' : withSpread(r.vsFloor[m], fmtRatio));
      }
      rows.push([name, ...cells]);
    }
    for (const p of r.problems) footnotes.push(`${r.label}: ${p.status}: ${p.note}`);
  }
  if (floor !== undefined) footnotes.unshift(`÷ floor divides by ${floor.replace(/^floor: /, '')}.`);
  return { title: `${s.workload}: ${view.title(z)}`, header, rows, footnotes };
}

export function renderText(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [t.title, line(t.header), ...t.rows.map(line), ...t.footnotes.map((f) => `  ${f}`)].join('\n');
}

export function renderMarkdown(t: Table): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  const out = [`| ${t.header.map(esc).join(' | ')} |`, `|${t.header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of t.rows) out.push(`| ${r.map(esc).join(' | ')} |`);
  return out.join('\n');
}
