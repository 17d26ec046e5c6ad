/**
 * The qd-read floor from fio, run by the parent when fio is installed: --rw=randread --direct=1
 * over the store's zone files, qdFloorReadBytes per read, for qdSecondsPerDepth at each queue
 * depth; psync at depth 1, io_uring (or libaio, whichever works here) above.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { r3 } from '../../lib/stats.js';
import { QUEUE_DEPTHS, type Sizes } from '../config.js';
import type { RunResult } from '../result.js';
import { zoneFiles } from './zoneFiles.js';

const ASYNC_ENGINES = ['io_uring', 'libaio'] as const;

export interface FioSetup {
  version: string;
  /** The engine for depths above 1 (the first of ASYNC_ENGINES that ran a probe job here). */
  asyncEngine: string;
}

interface FioJob {
  iops: number;
  bw_bytes: number;
  lat_ns?: { percentile?: Record<string, number> };
  clat_ns?: { percentile?: Record<string, number> };
}

function runFio(args: string[]): { read?: FioJob; error?: string } {
  const r = spawnSync('fio', [...args, '--output-format=json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) return { error: r.error.message };
  if (r.status !== 0) return { error: `fio exited ${r.status}: ${(r.stderr || r.stdout).trim().slice(0, 300)}` };
  try {
    const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: { read: FioJob; error: number }[] };
    const job = out.jobs[0];
    if (!job || job.error !== 0) return { error: `fio job error ${job?.error}` };
    return { read: job.read };
  } catch (err) {
    return { error: `fio output: ${String(err)}` };
  }
}

/** fio's version and a working async engine, or why it cannot be used (probes with a tiny job in `scratchDir`). */
export function fioSetup(scratchDir: string): FioSetup | { missing: string } {
  const v = spawnSync('fio', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return { missing: 'fio is not installed (Debian: apt-get install fio)' };
  const file = path.join(scratchDir, 'fio-probe.bin');
  fs.writeFileSync(file, Buffer.alloc(1 << 20, 1));
  try {
    for (const engine of ASYNC_ENGINES) {
      const r = runFio(['--name=probe', `--filename=${file}`, '--rw=randread', '--bs=4k', '--direct=1', '--iodepth=4', `--ioengine=${engine}`, '--size=1m', '--io_size=64k', '--readonly']);
      if (r.read) return { version: v.stdout.trim(), asyncEngine: engine };
    }
    return { missing: `fio ${v.stdout.trim()} has neither ${ASYNC_ENGINES.join(' nor ')} working here` };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

export function fioQdRead(setup: FioSetup, storeDir: string, z: Sizes): RunResult {
  const t0 = performance.now();
  const files = zoneFiles(storeDir, z.qdFloorReadBytes).map((f) => f.file);
  const metrics: Record<string, number> = {};
  const commands: string[] = [];
  for (const depth of QUEUE_DEPTHS) {
    const engine = depth === 1 ? 'psync' : setup.asyncEngine;
    const args = [
      `--name=qd${depth}`,
      `--filename=${files.join(':')}`,
      '--file_service_type=random',
      '--rw=randread',
      `--bs=${z.qdFloorReadBytes}`,
      '--direct=1',
      `--iodepth=${depth}`,
      `--ioengine=${engine}`,
      `--runtime=${Math.max(1, Math.round(z.qdSecondsPerDepth * 1000))}ms`,
      '--time_based',
      '--readonly',
      '--norandommap',
      '--lat_percentiles=1',
      '--percentile_list=50:99:99.9',
    ];
    commands.push(`fio ${args.join(' ').replace(files.join(':'), `<${files.length} zone files>`)}`);
    const r = runFio(args);
    if (!r.read) return { workload: 'qd-read', unit: 'fio', status: 'error', note: r.error ?? 'no result', metrics, wallMs: r3(performance.now() - t0) };
    metrics[`qd${depth}OpsPerSec`] = Math.round(r.read.iops);
    metrics[`qd${depth}MBps`] = r3(r.read.bw_bytes / 1e6);
    if (depth === 1) {
      const p = r.read.lat_ns?.percentile ?? r.read.clat_ns?.percentile ?? {};
      const us = (k: string) => r3((p[k] ?? NaN) / 1000);
      metrics.qd1P50Us = us('50.000000');
      metrics.qd1P99Us = us('99.000000');
      metrics.qd1P999Us = us('99.900000');
    }
  }
  return { workload: 'qd-read', unit: 'fio', status: 'ok', metrics, detail: { version: setup.version, asyncEngine: setup.asyncEngine, files: files.length, commands }, wallMs: r3(performance.now() - t0) };
}
