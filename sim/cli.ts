#!/usr/bin/env node
/**
 * npm run sim -- [--seed N] [--seeds K] [--ops M] [--no-faults] [--soak] [--replay FILE] [--shrink-ms MS]
 *
 * Runs the deterministic simulator: K seeds from N (default: the fixed CI set plus one random
 * seed, printed), M operations each. A failure prints its seed, the shortest failing operation
 * list it found (also written to sim-failures/seed-N.json) and how to replay it; exit 1.
 * JSON summary on stdout, progress and failures on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Op } from './ops.js';
import { type RunResult, runOps, runSeed } from './runner.js';
import { runAsMain } from './main.js';
import { shrink } from './shrink.js';

/** The seeds CI runs every time (docs/RELIABILITY.md says what they cover). */
export const CI_SEEDS = Array.from({ length: 24 }, (_, i) => i + 1);
export const CI_OPS = 1500;

interface Args {
  seeds: number[];
  ops: number;
  faults: boolean;
  replay?: string;
  shrinkMs: number;
}

function parseArgs(argv: string[]): Args {
  let seed: number | undefined;
  let count: number | undefined;
  let ops = CI_OPS;
  let faults = true;
  let replay: string | undefined;
  let shrinkMs = 120_000;
  let soak = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new RangeError(`${a} needs a value`);
      return v;
    };
    if (a === '--seed') seed = Number(value());
    else if (a === '--seeds') count = Number(value());
    else if (a === '--ops') ops = Number(value());
    else if (a === '--no-faults') faults = false;
    else if (a === '--replay') replay = value();
    else if (a === '--shrink-ms') shrinkMs = Number(value());
    else if (a === '--soak') soak = true;
    else throw new RangeError(`unknown argument ${a}`);
  }
  for (const [name, v] of [['--seed', seed], ['--seeds', count], ['--ops', ops]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`${name} takes a non-negative integer`);
  }
  let seeds: number[];
  if (seed !== undefined) seeds = Array.from({ length: count ?? 1 }, (_, i) => seed! + i);
  else if (soak) {
    const base = Date.now() % 1_000_000_000;
    seeds = Array.from({ length: count ?? 100 }, (_, i) => base + i);
  } else seeds = [...CI_SEEDS, Math.floor(Math.random() * 1_000_000_000)];
  return { seeds, ops, faults, ...(replay ? { replay } : {}), shrinkMs };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.replay !== undefined) {
    const saved = JSON.parse(fs.readFileSync(args.replay, 'utf8')) as { seed: number; ops: Op[] };
    const result = await runOps(saved.seed, saved.ops);
    process.stdout.write(JSON.stringify({ replay: args.replay, seed: saved.seed, result }, null, 2) + '\n');
    if (result.failure) process.stderr.write(`still fails at step ${result.failure.step}: ${result.failure.message}\n`);
    else process.stderr.write('passes now\n');
    return result.failure ? 1 : 0;
  }
  const started = Date.now();
  const totals = { seeds: 0, ops: 0, crashes: 0, faults: 0, reopens: 0, recoveries: 0, puts: 0, gets: 0, verifiedAfterReopen: 0, failures: 0 };
  const failures: { seed: number; step: number; message: string; shrunkOps: number; file: string }[] = [];
  for (const seed of args.seeds) {
    const t0 = Date.now();
    const { result, ops } = await runSeed(seed, args.ops, { faults: args.faults });
    add(totals, result);
    process.stderr.write(
      `seed ${seed}: ${result.ops} ops, ${result.crashes} crashes, ${result.faults} faults, ${result.reopens} reopens, ${result.recoveries} recovered catalogs, ${Date.now() - t0} ms` +
        (result.failure ? `  FAILED at step ${result.failure.step}: ${result.failure.message}` : '') + '\n',
    );
    if (result.failure) {
      process.stderr.write(`shrinking (up to ${args.shrinkMs} ms)...\n`);
      const small = await shrink(seed, ops, args.shrinkMs, (n) => process.stderr.write(`  ${n} ops still fail\n`));
      const dir = path.resolve('sim-failures');
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `seed-${seed}.json`);
      fs.writeFileSync(file, JSON.stringify({ seed, failure: small.result.failure, ops: small.ops }, null, 1) + '\n');
      process.stderr.write(
        `seed ${seed} fails with ${small.ops.length} ops (${small.trials} trials): ${small.result.failure?.message}\n` +
          `  replay: npm run sim -- --replay ${path.relative(process.cwd(), file)}   (or --seed ${seed} --ops ${args.ops})\n`,
      );
      failures.push({ seed, step: result.failure.step, message: result.failure.message, shrunkOps: small.ops.length, file });
    }
  }
  const summary = { ...totals, seconds: (Date.now() - started) / 1000, opsPerSeed: args.ops, seedList: args.seeds, failures };
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  process.stderr.write(`sim: ${totals.seeds} seeds, ${totals.ops} ops, ${totals.crashes} crashes, ${totals.faults} faults, ${totals.recoveries} recovered catalogs: ${failures.length === 0 ? '0 failures' : `${failures.length} FAILED`}\n`);
  return failures.length === 0 ? 0 : 1;
}

function add(t: { seeds: number; ops: number; crashes: number; faults: number; reopens: number; recoveries: number; puts: number; gets: number; verifiedAfterReopen: number; failures: number }, r: RunResult): void {
  t.recoveries += r.recoveries;
  t.seeds++;
  t.ops += r.ops;
  t.crashes += r.crashes;
  t.faults += r.faults;
  t.reopens += r.reopens;
  t.puts += r.puts;
  t.gets += r.gets;
  t.verifiedAfterReopen += r.verifiedAfterReopen;
  if (r.failure) t.failures++;
}

runAsMain(import.meta.url, main);
