/**
 * `npm run bench:cache-reopen -- [--entries N] [--rounds R]`: how long a cache of N entries
 * (default 1,000,000; 64-byte values) takes to open again, each open in a fresh process (a
 * real restart, nothing warm in the heap):
 *   - clean: after close(), from the checkpoint;
 *   - stale: the checkpoint is one from before 10% more sets and 5% deletes (as after a crash
 *     that lost the last checkpoint): the reconcile reads what the checkpoint lacks;
 *   - none: no checkpoint at all: every entry is read from the device.
 * Every open is checked: the entry count, and a sample of values. Medians of R rounds (default
 * 3) with min and max. JSON on stdout, a summary on stderr.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCache } from '../cache/cache.js';
import { CHECKPOINT_FILE } from '../cache/checkpoint.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const self = fileURLToPath(import.meta.url);

if (args[0] === '--child') {
  // One timed open in a fresh process: prints {ms, size, ok}.
  const [, dir, expected] = args;
  const t = performance.now();
  const cache = openCache(dir!);
  const ms = performance.now() - t;
  const size = cache.size;
  let ok = size === Number(expected);
  // Keys below 80% of the first load were neither deleted nor added later.
  const sampleRange = Math.floor(Number(expected) * 0.75);
  for (let i = 0; i < 1000 && ok; i++) {
    const k = (i * 7919) % sampleRange;
    const v = cache.get(`key:${k}`) as Buffer | undefined;
    ok = v !== undefined && v.readUInt32LE(0) === k;
  }
  cache.close();
  process.stdout.write(JSON.stringify({ ms, size, ok }) + '\n');
  process.exit(0);
}

const ENTRIES = flag('--entries', 1_000_000);
const ROUNDS = flag('--rounds', 3);

function value(i: number): Buffer {
  const b = Buffer.alloc(64, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}

function timedOpen(dir: string, expected: number): { ms: number; ok: boolean } {
  const r = spawnSync(process.execPath, [self, '--child', dir, String(expected)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { ms: number; ok: boolean };
}

function summary(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s[s.length - 1]! };
}

const base = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'zns-cache-reopen-'));
try {
  const dir = path.join(base, 'cache');
  process.stderr.write(`cache-reopen: loading ${ENTRIES} entries...\n`);
  let t = performance.now();
  const cache = openCache(dir, { maxBytes: 4 * 1024 * 1024 * 1024 });
  for (let i = 0; i < ENTRIES; i++) cache.set(`key:${i}`, value(i));
  cache.close();
  const loadMs = performance.now() - t;
  const staleCheckpoint = fs.readFileSync(path.join(dir, CHECKPOINT_FILE));
  const checkpointBytes = staleCheckpoint.length;

  // 10% more entries and 5% deleted after the checkpoint we keep as "stale".
  const extra = Math.floor(ENTRIES / 10);
  const deleted = Math.floor(ENTRIES / 20);
  const more = openCache(dir);
  for (let i = ENTRIES; i < ENTRIES + extra; i++) more.set(`key:${i}`, value(i));
  for (let i = 0; i < deleted; i++) more.delete(`key:${ENTRIES - 1 - i * 2}`);
  more.close();
  const freshCheckpoint = fs.readFileSync(path.join(dir, CHECKPOINT_FILE));
  const size = ENTRIES + extra - deleted;

  const results: Record<string, number[]> = { clean: [], stale: [], none: [] };
  let allOk = true;
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['clean', 'stale', 'none'] as const) {
      const file = path.join(dir, CHECKPOINT_FILE);
      if (mode === 'clean') fs.writeFileSync(file, freshCheckpoint);
      if (mode === 'stale') fs.writeFileSync(file, staleCheckpoint);
      if (mode === 'none') fs.rmSync(file, { force: true });
      const { ms, ok } = timedOpen(dir, size);
      allOk &&= ok;
      results[mode]!.push(ms);
      process.stderr.write(`  round ${r + 1} ${mode}: ${ms.toFixed(0)} ms${ok ? '' : ' WRONG'}\n`);
    }
  }
  const out = {
    entries: size,
    valueBytes: 64,
    loadSeconds: loadMs / 1000,
    checkpointBytes,
    openMs: { clean: summary(results.clean!), stale: summary(results.stale!), none: summary(results.none!) },
    staleCheckpoint: { setsAfter: extra, deletesAfter: deleted },
    rounds: ROUNDS,
    ok: allOk,
  };
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  process.stderr.write(
    `cache-reopen: ${size} entries, checkpoint ${(checkpointBytes / 1e6).toFixed(1)} MB; open (median of ${ROUNDS}): ` +
      `clean ${out.openMs.clean.median.toFixed(0)} ms, stale checkpoint ${out.openMs.stale.median.toFixed(0)} ms, ` +
      `no checkpoint ${out.openMs.none.median.toFixed(0)} ms${allOk ? '' : '; SOME OPENS WERE WRONG'}\n`,
  );
  if (!allOk) process.exitCode = 1;
} finally {
  fs.rmSync(base, { recursive: true, force: true });
}
