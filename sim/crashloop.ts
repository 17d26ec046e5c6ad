#!/usr/bin/env node
/**
 * npm run crashloop -- [--kills N] [--seed S] [--dir D] [--mode mix|classic|churn]
 * npm run crashloop -- --cache [--kills N] [--seed S] [--dir D]   (the cache's loop: sim/cacheCrashloop.ts)
 *
 * The real-process crash loop: SQLite's and the filesystem's own durability, tested for real.
 * Each round spawns a writer (crashChild.ts) on the same store and kills it with SIGKILL, at
 * a random time or at a named crash point (crashpoints.ts: inside a write, a device flush, a
 * catalog commit, a zone reset or finish, close). Then this process, a fresh one for the
 * store, opens it (read-only first, then read-write) and checks every handle ever handed out
 * against what the writer had acknowledged (the rules of docs/RELIABILITY.md):
 * flushed and not freed: exactly its bytes; anything else: its bytes or a stale/invalid
 * handle, never another object's bytes. JSON summary on stdout, progress on stderr.
 *
 * Zone GC: with `--mode mix` (the default) about half the rounds run the writer's churn
 * workload (crashChild.ts: a long-lived live set churned, GC running often, explicit gc()
 * calls) and are killed mostly at the points a collection passes: after a slab moved
 * (`gc.moved`), in a relocation's device write, in the commit that records a victim's moves,
 * in the victim's zone reset. A kill at a point the writer never reached is a late timed kill,
 * and counted as one. The summary says how many kills landed inside a gc() call, and what GC
 * the writers committed (zones collected, slabs moved).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRASH_POINT_NAMES, type CrashPointName } from '../crashpoints.js';
import { openStore, ZnsSlabError } from '../index.js';
import { runAsMain } from './main.js';
import { Rng, payloadFor } from './rng.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crashChild.js');
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'tools', 'cli.js');
/** Share of kills after which the catalog is deleted too, and rebuilt with `zns-slab recover`. */
const RECOVER_SHARE = 0.08;
/** Big enough to hold a growing live set, small enough that epochs must be closed to go on. */
export const CRASH_LOOP_GEOMETRY = { zoneCount: 48, zoneSize: 1024 * 1024, zoneCapacity: 1024 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
/** The writer's workload for one round (crashChild.ts). */
export type WriterMode = 'classic' | 'churn';
/** Zone GC in churn rounds: a step after every seal and in every flush once the store holds 1.1x its live bytes. */
export const GC_CHURN_OPTIONS = Object.freeze({ idleMs: 0, spaceAmplification: 1.1, stepBytes: 64 * 1024 });
/** Where churn rounds are killed, by weight: the points a collection passes (and a few others). */
const CHURN_KILL_POINTS = { 'gc.moved': 4, 'device.write': 2, 'catalog.commit': 2, 'zone.reset': 2, 'device.flush': 1, 'zone.finish': 0.5, 'store.close': 0.5 } as const satisfies Partial<Record<CrashPointName, number>>;
/** Operations a writer runs when no kill comes first (then it closes cleanly). */
const WRITER_OPS = 30_000;
/** Dead handles re-checked each round: the newest, and a seeded sample of the rest. */
const GRAVEYARD_NEWEST = 3000;
const GRAVEYARD_SAMPLE = 1000;

interface Obj {
  n: number;
  size: number;
  epoch: number;
  durable: boolean;
  freed: 'no' | 'volatile';
}

export interface CrashLoopResult {
  rounds: number;
  /** Rounds per writer workload. */
  modes: Record<WriterMode, number>;
  kills: number;
  /** Kills by where they landed: a named point the writer reached, or 'timed'. */
  killsAtPoints: Record<string, number>;
  /** Rounds armed at a point the writer did not reach before the late timed kill (or its clean end). */
  pointsNotReached: Record<string, number>;
  /** Kills that landed inside a store.gc() call of the writer, by where. */
  killsInsideGc: Record<string, number>;
  /** Zone GC work the writers committed (from the store's saved counters). */
  gcZonesCollected: number;
  gcSlabsMoved: number;
  cleanCloses: number;
  handlesChecked: number;
  objectsLive: number;
  lost: number;
  wrong: number;
  refusedToOpen: number;
  /** Kills after which the catalog was also deleted and rebuilt by `zns-slab recover`. */
  recoveries: number;
  failures: string[];
}

function runChild(
  dir: string,
  seed: number,
  first: number,
  liveFile: string,
  mode: WriterMode,
  env: NodeJS.ProcessEnv,
  killAfterMs: number | undefined,
): Promise<{ lines: string[]; signal: NodeJS.Signals | null; code: number | null; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, dir, String(seed), String(first), liveFile, String(WRITER_OPS), mode], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer =
      killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, killAfterMs);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ lines: out.split('\n').filter((l) => l.length > 0), signal, code, stderr: err, timedOut });
    });
  });
}

export async function crashLoop(options: { kills: number; seed: number; dir?: string; mode?: WriterMode | 'mix'; log?: (s: string) => void }): Promise<CrashLoopResult> {
  const log = options.log ?? (() => {});
  const base = options.dir ?? fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'zns-slab-crashloop-'));
  const dir = path.join(base, 'store');
  const liveFile = path.join(base, 'live.json');
  const rng = new Rng(options.seed);
  const objects = new Map<bigint, Obj>();
  const graveyard: bigint[] = [];
  /** The same handles, to catch a handle handed out twice. */
  const buried = new Map<bigint, Obj>();
  const bury = (h: bigint): void => {
    const o = objects.get(h);
    objects.delete(h);
    graveyard.push(h);
    if (o !== undefined) buried.set(h, o);
  };
  const closedDurably = new Set<number>();
  const result: CrashLoopResult = {
    rounds: 0, modes: { classic: 0, churn: 0 }, kills: 0, killsAtPoints: {}, pointsNotReached: {}, killsInsideGc: {}, gcZonesCollected: 0, gcSlabsMoved: 0,
    cleanCloses: 0, handlesChecked: 0, objectsLive: 0, lost: 0, wrong: 0, refusedToOpen: 0, recoveries: 0, failures: [],
  };
  const bump = (counts: Record<string, number>, key: string): void => {
    counts[key] = (counts[key] ?? 0) + 1;
  };
  /** GC counters as the store had them after the last round (they restart at 0 after a recover). */
  const gcSeen = { gcZonesCollected: 0, gcSlabsMoved: 0 };
  let nextObject = 1;
  try {
    while (result.kills < options.kills) {
      result.rounds++;
      const live = [...objects].filter(([, o]) => o.freed === 'no').map(([h, o]) => [h.toString(), o.epoch]);
      fs.writeFileSync(liveFile, JSON.stringify(live));
      const env = { ...process.env };
      let killAfterMs: number | undefined;
      let point = 'timed';
      const mode: WriterMode = options.mode === 'classic' || options.mode === 'churn' ? options.mode : rng.chance(0.5) ? 'churn' : 'classic';
      result.modes[mode]++;
      if (rng.chance(mode === 'churn' ? 0.65 : 0.5)) {
        point = mode === 'churn' ? rng.weighted(CHURN_KILL_POINTS) : CRASH_POINT_NAMES[rng.below(CRASH_POINT_NAMES.length)]!;
        const many = point === 'device.write' || point === 'catalog.commit' || point === 'gc.moved';
        env.ZNS_SLAB_CRASH_AT = `${point}:${1 + rng.below(many ? 40 : 4)}`;
        killAfterMs = 4000; // the point may never be reached: then a late timed kill
      } else {
        delete env.ZNS_SLAB_CRASH_AT;
        killAfterMs = 150 + rng.below(600);
      }
      const run = await runChild(dir, rng.u32(), nextObject, liveFile, mode, env, rng.chance(0.08) ? undefined : killAfterMs);
      const clean = run.lines[run.lines.length - 1] === 'X';
      if (!clean && run.signal !== 'SIGKILL') {
        result.failures.push(`writer exited ${run.code}: ${run.stderr.trim().split('\n').slice(0, 8).join(' | ')}`);
        break;
      }
      // Armed at a point it never reached: our timer killed it (or it ended cleanly), not the point.
      if (point !== 'timed' && (run.timedOut || clean)) {
        bump(result.pointsNotReached, point);
        point = 'timed';
      }
      if (clean) result.cleanCloses++;
      else {
        result.kills++;
        bump(result.killsAtPoints, point);
        if (run.lines[run.lines.length - 1] === 'g') bump(result.killsInsideGc, point);
      }
      // What the writer had acknowledged.
      const closing = new Set<number>();
      for (const line of run.lines) {
        const [k, a, b, c, d] = line.split(' ');
        if (k === 'P') {
          const h = BigInt(a!);
          if (objects.has(h) || buried.has(h)) {
            result.wrong++;
            result.failures.push(`round ${result.rounds}: put returned handle ${h}, which was handed out before (its old holder would read the new bytes)`);
          }
          objects.set(h, { n: Number(b), size: Number(c), epoch: Number(d), durable: false, freed: 'no' });
          nextObject = Math.max(nextObject, Number(b) + 1);
        } else if (k === 'F') objects.get(BigInt(a!))!.freed = 'volatile';
        else if (k === 'S' || k === 'X') {
          for (const [h, o] of objects) {
            o.durable = true;
            if (o.freed === 'volatile' || closing.has(o.epoch)) bury(h);
          }
          for (const e of closing) closedDurably.add(e);
          closing.clear();
        } else if (k === 'c') closing.add(Number(a));
        else if (k === 'C') {
          closing.delete(Number(a));
          closedDurably.add(Number(a));
          for (const [h, o] of objects) if (o.epoch === Number(a)) bury(h);
        }
      }
      // Some kills also lose the catalog: the store must refuse, then `zns-slab recover` rebuilds it.
      const lostCatalog = !clean && rng.chance(RECOVER_SHARE);
      if (lostCatalog) {
        for (const suffix of ['', '-wal', '-shm', '.reserve']) fs.rmSync(path.join(dir, 'catalog.db' + suffix), { force: true });
        let code: string | undefined;
        try {
          openStore(dir).close();
        } catch (err) {
          code = (err as ZnsSlabError).code;
        }
        if (code !== 'ERR_CATALOG_MISSING') {
          result.failures.push(`round ${result.rounds}: open without a catalog gave ${code ?? 'a store'}, not ERR_CATALOG_MISSING`);
          return result;
        }
        const r = spawnSync(process.execPath, [CLI, 'recover', dir], { encoding: 'utf8' });
        if (r.status !== 0) {
          result.failures.push(`round ${result.rounds}: zns-slab recover exited ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
          return result;
        }
        result.recoveries++;
      }
      // A fresh process's view: read-only first (it must open too), then read-write.
      for (const readOnly of [true, false]) {
        let store;
        try {
          // Read-write with zone GC off: this check must not move anything (nor count GC work as the writers').
          store = openStore(dir, readOnly ? { readOnly } : { gc: false });
        } catch (err) {
          result.refusedToOpen++;
          result.failures.push(`round ${result.rounds} (${point}): the store refused to open${readOnly ? ' read-only' : ''}: ${(err as Error).message}`);
          return result;
        }
        try {
          if (readOnly) {
            // What GC the writer committed (the counters are saved with every commit; a recover starts them at 0).
            const c = store.statsGlobal().counters;
            for (const name of ['gcZonesCollected', 'gcSlabsMoved'] as const) {
              result[name] += c[name] >= gcSeen[name] ? c[name] - gcSeen[name] : c[name];
              gcSeen[name] = c[name];
            }
          }
          for (const [h, o] of [...objects]) {
            const mustLive = o.durable && o.freed === 'no' && !closing.has(o.epoch);
            const verdict = check(store, h, o, mustLive, result, `round ${result.rounds} (${point})`);
            if (!readOnly) {
              if (verdict) {
                o.durable = true;
                o.freed = 'no';
              } else bury(h);
            }
          }
          if (lostCatalog) {
            // After a rebuild, a dead handle may come back (a free after its slab's seal, a closed
            // epoch whose zones were not reset yet), but only ever with its own bytes.
            const stillDead: bigint[] = [];
            for (const h of graveyard) {
              const was = buried.get(h);
              if (was !== undefined && check(store, h, was, false, result, `round ${result.rounds} (after recover)`)) {
                if (!readOnly) {
                  objects.set(h, { ...was, durable: true, freed: 'no' });
                  buried.delete(h);
                } else stillDead.push(h);
              } else stillDead.push(h);
            }
            if (!readOnly) {
              graveyard.length = 0;
              for (const h of stillDead) graveyard.push(h);
            }
          } else {
            const newest = Math.max(0, graveyard.length - GRAVEYARD_NEWEST);
            for (let i = newest; i < graveyard.length; i++) check(store, graveyard[i]!, undefined, false, result, `round ${result.rounds} (${point})`);
            for (let i = 0; i < GRAVEYARD_SAMPLE && newest > 0; i++) check(store, graveyard[rng.below(newest)]!, undefined, false, result, `round ${result.rounds} (${point})`);
          }
          if (!readOnly) store.verify();
        } finally {
          store.close();
        }
      }
      result.objectsLive = objects.size;
      const inGc = !clean && run.lines[run.lines.length - 1] === 'g' ? ' inside gc()' : '';
      log(
        `round ${result.rounds} (${mode}): ${clean ? 'clean close' : `killed (${point}${inGc})${lostCatalog ? ', catalog lost, recovered' : ''}`}, ${run.lines.length} acknowledged steps, ` +
          `${objects.size} live objects, ${graveyard.length} dead handles, GC so far ${result.gcZonesCollected} zones / ${result.gcSlabsMoved} slabs`,
      );
      if (result.failures.length > 0) break;
    }
  } finally {
    if (options.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  }
  return result;
}

/** One handle against the model; true when its object is there with exactly its bytes. */
function check(store: { get(h: bigint): Buffer }, h: bigint, o: Obj | undefined, mustLive: boolean, result: CrashLoopResult, where: string): boolean {
  result.handlesChecked++;
  let out: Buffer;
  try {
    out = store.get(h);
  } catch (err) {
    const code = err instanceof ZnsSlabError ? err.code : 'uncoded';
    if (mustLive || (code !== 'ERR_STALE_HANDLE' && code !== 'ERR_INVALID_HANDLE')) {
      result.lost++;
      result.failures.push(`${where}: handle ${h} (object #${o?.n}) ${mustLive ? 'was flushed and not freed, but' : ''} gave ${code}: ${(err as Error).message}`);
    }
    return false;
  }
  if (o === undefined || !out.equals(payloadFor(o.n, o.size))) {
    result.wrong++;
    result.failures.push(`${where}: handle ${h} returned ${o === undefined ? 'bytes for a dead handle' : `other bytes than object #${o.n}`}`);
    return false;
  }
  return true;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--cache')) return (await import('./cacheCrashloop.js')).main(argv);
  let kills = 40;
  let seed = Math.floor(Math.random() * 1_000_000_000);
  let dir: string | undefined;
  let mode: WriterMode | 'mix' = 'mix';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--kills') kills = Number(argv[++i]);
    else if (argv[i] === '--seed') seed = Number(argv[++i]);
    else if (argv[i] === '--dir') dir = argv[++i];
    else if (argv[i] === '--mode') {
      const m = argv[++i];
      if (m !== 'mix' && m !== 'classic' && m !== 'churn') throw new RangeError('--mode takes mix, classic or churn');
      mode = m;
    } else throw new RangeError(`unknown argument ${argv[i]} (options: --kills N --seed S --dir D --mode mix|classic|churn; --cache for the cache's loop)`);
  }
  if (!Number.isSafeInteger(kills) || kills < 1) throw new RangeError('--kills takes a positive integer');
  process.stderr.write(`crash loop: ${kills} kills, seed ${seed}, writers ${mode}\n`);
  const started = Date.now();
  const result = await crashLoop({ kills, seed, mode, ...(dir ? { dir } : {}), log: (s) => process.stderr.write(s + '\n') });
  process.stdout.write(JSON.stringify({ seed, seconds: (Date.now() - started) / 1000, ...result }, null, 2) + '\n');
  const insideGc = Object.values(result.killsInsideGc).reduce((a, b) => a + b, 0);
  process.stderr.write(
    `crash loop: ${result.kills} kills (${result.recoveries} with the catalog lost and recovered; ${result.killsAtPoints['gc.moved'] ?? 0} at gc.moved, ${insideGc} inside a gc() call), ` +
      `${result.cleanCloses} clean closes, GC committed ${result.gcZonesCollected} zones collected / ${result.gcSlabsMoved} slabs moved, ${result.handlesChecked} handle checks: ` +
      `${result.lost} lost, ${result.wrong} wrong, ${result.refusedToOpen} refused to open\n`,
  );
  for (const f of result.failures.slice(0, 10)) process.stderr.write(`  ${f}\n`);
  return result.failures.length === 0 ? 0 : 1;
}

runAsMain(import.meta.url, main);
