/**
 * `npm run bench:peers` (issue 12): the store's workloads against lmdb-js, better-sqlite3 and
 * classic-level, beside the device floors measured in the same run.
 *
 * Workloads (bench/peers/views.ts has their titles, bench/peers/config.ts their sizes): bulk loads
 * of 1 KiB and 64 KiB values then one durable flush; a durable commit every 100 puts; random
 * gets (page-cached); 90% get / 10% put; expiry of the oldest keys (the store closes epochs, the
 * peers delete keys); the churn (bench/churn.bench.ts's adapters); O_DIRECT reads by queue depth.
 *
 * Floors: a raw append log in Node (always there), dd with and without oflag=direct for the
 * 64 KiB load, fio --rw=randread --direct=1 by queue depth where fio is installed, and Node
 * O_DIRECT preads at the same depths. A floor that cannot run is reported as missing.
 *
 * Every engine and Node floor runs in a child process of its own (bench/peers/child.ts, JSON back
 * on stdout), on a fresh folder under os.tmpdir() (a real disk: tmpfs has no O_DIRECT).
 * Repetitions interleave: for each repetition, each workload runs every engine and floor once,
 * in the same order; tables show the median of repetitions [min–max], and ratios to lmdb-js and
 * to the floor taken within each repetition, then their median.
 *
 * Flags: --quick (tiny sizes, 1 repetition: CI's smoke run, numbers are not claims), --reps N,
 * --engines a,b (engines and floors to run), --workloads a,b, --out FILE (also write the JSON;
 * bench/results/YYYY-MM-DD-issue12-peers.json by convention). Progress and tables on stderr, JSON
 * on stdout. `node dist/bench/peers/report.js FILE` writes docs/BENCHMARKS.md's section from it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHURN_GEOMETRY } from './lib/churnEngines.js';
import { r3 } from './lib/stats.js';
import { say } from './lib/system.js';
import {
  ENGINES,
  FLOORS,
  LABELS,
  QD_THREADPOOL_SIZE,
  QUEUE_DEPTHS,
  SEED,
  STORE_GEOMETRY,
  UNITS,
  type UnitName,
  WORKLOADS,
  type WorkloadName,
  argValue,
  listArg,
  sizesFor,
} from './peers/config.js';
import { ddVersion, ddWrite } from './peers/floors/dd.js';
import { type FioSetup, fioQdRead, fioSetup } from './peers/floors/fio.js';
import { describeMachine } from './peers/machine.js';
import { type PeersReport, REPORT_NOTES } from './peers/document.js';
import type { RunResult } from './peers/result.js';
import { summarize } from './peers/summary.js';
import { fmtNum, renderText, workloadTable } from './peers/table.js';
import { VIEWS } from './peers/views.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const OUT = argValue(args, '--out');
const REPS_ARG = argValue(args, '--reps');
const REPS = REPS_ARG === undefined ? (QUICK ? 1 : 3) : Number(REPS_ARG);
if (!Number.isSafeInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer, got ${REPS_ARG}`);
const ONLY_UNITS = listArg<UnitName>(args, '--engines', [...ENGINES, ...FLOORS]);
const ONLY_WORKLOADS = listArg<WorkloadName>(args, '--workloads', WORKLOADS);
const Z = sizesFor(QUICK);
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'child.js');

const workloads = WORKLOADS.filter((w) => ONLY_WORKLOADS === undefined || ONLY_WORKLOADS.includes(w));
const unitsOf = (w: WorkloadName): UnitName[] => UNITS[w].filter((u) => ONLY_UNITS === undefined || ONLY_UNITS.includes(u));

/** Runs one engine or Node floor in a child process; its stderr passes through. */
function runChild(unit: UnitName, w: WorkloadName, dir: string): Promise<RunResult> {
  const childArgs = ['--expose-gc', CHILD, '--engine', unit, '--workload', w, '--dir', dir, ...(QUICK ? ['--quick'] : [])];
  // The qd-read children's async reads run on libuv's pool: sized for the deepest queue.
  const env = w === 'qd-read' ? { ...process.env, UV_THREADPOOL_SIZE: String(QD_THREADPOOL_SIZE) } : process.env;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, childArgs, { stdio: ['ignore', 'pipe', 'inherit'], env });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const fail = (note: string): RunResult => ({ workload: w, unit, status: 'error', note, metrics: {}, wallMs: r3(performance.now() - t0) });
    child.on('error', (err) => resolve(fail(`spawn: ${err.message}`)));
    child.on('close', (code, signal) => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        resolve(JSON.parse(text.slice(text.lastIndexOf('\n') + 1)) as RunResult);
      } catch {
        resolve(fail(`child exited with ${code ?? signal} and no result${text ? ` (${text.slice(0, 200)})` : ''}`));
      }
    });
  });
}

function progress(rep: number, r: RunResult): void {
  const head = VIEWS[r.workload].columns[0]!;
  const value = r.status === 'ok' ? `${fmtNum(r.metrics[head.metric])} ${head.label}${r.missing ? ` (MISSING: ${r.missing})` : ''}` : `${r.status.toUpperCase()}: ${r.note ?? ''}`;
  say(`  [rep ${rep + 1}/${REPS}] ${r.workload.padEnd(11)} ${LABELS[r.unit].padEnd(28)} ${value}  (${(r.wallMs / 1000).toFixed(1)} s)`);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-peers-'));
  const needsFio = workloads.includes('qd-read') && unitsOf('qd-read').includes('fio');
  const fio: FioSetup | { missing: string } | undefined = needsFio ? fioSetup(root) : undefined;
  const machine = describeMachine(root, { fio: fio && 'version' in fio ? `${fio.version} (${fio.asyncEngine})` : undefined, dd: ddVersion() });
  say(
    `bench:peers${QUICK ? ' --quick (a smoke run: numbers are not claims)' : ''}: ${REPS} rep(s), workloads ${workloads.join(', ')}; in ${root} (${machine.filesystem}); ` +
      `${machine.nproc} cpus, ${machine.cpuModel}, node ${machine.node}, load ${machine.loadAverageStart.join(' ')}`,
  );
  if (fio && 'missing' in fio) say(`  fio: MISSING: ${fio.missing}`);
  const runs: RunResult[] = [];
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const w of workloads) {
        // qd-read: the store's folder stays until its floors have read the same zone files.
        let qdStoreDir: string | undefined;
        let qdStoreNote: string | undefined;
        const cleanup: string[] = [];
        for (const unit of unitsOf(w)) {
          const dir = path.join(root, `${w}-${unit}-r${rep}`);
          let r: RunResult;
          if (unit === 'dd-direct' || unit === 'dd-buffered') {
            r = ddWrite(unit, dir + '.bin', Z.bulkLargeBytes, Z.bulkLargeCount);
            fs.rmSync(dir + '.bin', { force: true });
          } else if (unit === 'fio' || unit === 'node-direct') {
            if (unit === 'fio' && fio && 'missing' in fio) r = { workload: w, unit, status: 'missing', note: fio.missing, metrics: {}, wallMs: 0 };
            else if (qdStoreDir === undefined) r = { workload: w, unit, status: 'missing', note: `no O_DIRECT store to read the zone files of (${qdStoreNote ?? 'store-direct did not run'})`, metrics: {}, wallMs: 0 };
            else if (unit === 'fio') r = fioQdRead(fio as FioSetup, qdStoreDir, Z);
            else r = await runChild(unit, w, qdStoreDir);
          } else {
            fs.mkdirSync(dir);
            r = await runChild(unit, w, dir);
            if (w === 'qd-read' && unit === 'store-direct') {
              if (r.status === 'ok') qdStoreDir = dir;
              else qdStoreNote = `store-direct: ${r.note ?? r.status}`;
              cleanup.push(dir);
            } else fs.rmSync(dir, { recursive: true, force: true });
          }
          r.rep = rep;
          runs.push(r);
          progress(rep, r);
        }
        for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  machine.loadAverageEnd = os.loadavg().map(r3);
  const summaries = workloads.map((w) => summarize(runs, w, unitsOf(w)));
  const missing: PeersReport['missing'] = [];
  if (fio && 'missing' in fio) missing.push({ what: 'fio', why: fio.missing });
  for (const r of runs) {
    const why = r.status === 'missing' ? r.note : r.missing;
    if (why !== undefined && !missing.some((m) => m.what === `${r.unit} (${r.workload})`)) missing.push({ what: `${r.unit} (${r.workload})`, why });
  }
  const report: PeersReport = {
    benchmark: 'bench:peers (issue 12): bench/peers.bench.ts',
    date: new Date().toISOString(),
    quick: QUICK,
    elapsedSeconds: r3((performance.now() - t0) / 1000),
    config: {
      reps: REPS,
      workloads,
      units: Object.fromEntries(workloads.map((w) => [w, unitsOf(w)])),
      sizes: Z,
      seed: SEED,
      storeGeometry: STORE_GEOMETRY,
      churnGeometry: CHURN_GEOMETRY,
      queueDepths: [...QUEUE_DEPTHS],
      qdThreadpoolSize: QD_THREADPOOL_SIZE,
    },
    machine,
    missing,
    summaries,
    runs,
    notes: REPORT_NOTES,
  };
  say('');
  for (const s of summaries) say(renderText(workloadTable(s, Z)) + '\n');
  for (const m of missing) say(`MISSING: ${m.what}: ${m.why}`);
  const errors = runs.filter((r) => r.status === 'error');
  for (const e of errors) say(`ERROR: rep ${(e.rep ?? 0) + 1} ${e.workload} ${e.unit}: ${e.note}`);
  say(`bench:peers took ${report.elapsedSeconds.toFixed(0)} s; load ${machine.loadAverageEnd.join(' ')} at the end`);
  const json = JSON.stringify(report, null, 2) + '\n';
  process.stdout.write(json);
  if (OUT) fs.writeFileSync(OUT, json);
  if (errors.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  say(String(err instanceof Error ? err.stack : err));
  process.exitCode = 1;
});
