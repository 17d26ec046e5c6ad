/** The machine a run measured: what the report's description is made of. */
import fs from 'node:fs';
import os from 'node:os';
import Database from 'better-sqlite3';
import { r3 } from '../lib/stats.js';
import { fsType, packageVersion } from '../lib/system.js';

export interface Machine {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  kernel: string;
  node: string;
  /** Filesystem of the folder the run worked in. */
  filesystem: string;
  workDir: string;
  loadAverageStart: number[];
  loadAverageEnd?: number[];
  versions: Record<string, string>;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux: os.cpus() below
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return String(db.prepare('SELECT sqlite_version()').pluck().get());
  } finally {
    db.close();
  }
}

export function describeMachine(workDir: string, tools: Record<string, string | undefined>): Machine {
  const versions: Record<string, string> = {};
  for (const name of ['lmdb', 'better-sqlite3', 'classic-level']) versions[name] = packageVersion(name) ?? 'not installed';
  versions.sqlite = sqliteVersion();
  for (const [k, v] of Object.entries(tools)) versions[k] = v ?? 'not installed';
  return {
    nproc: os.availableParallelism(),
    memoryGiB: r3(os.totalmem() / 2 ** 30),
    cpuModel: cpuModel(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    filesystem: fsType(workDir),
    workDir,
    loadAverageStart: os.loadavg().map(r3),
    versions,
  };
}
