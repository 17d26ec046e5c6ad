#!/usr/bin/env node
/**
 * npm run crashloop -- --cache [--kills N] [--seed S] [--dir D]     (or node dist/sim/cacheCrashloop.js ...)
 *
 * The cache's real-process crash loop. Each round spawns a writer (cacheCrashChild.ts) on the
 * same cache folder (sets with and without TTL, gets, deletes, flushes, the odd clear; eviction
 * once it holds maxBytes) and kills it with SIGKILL at a random time or at a named crash point
 * (crashpoints.ts). Then this process, a fresh one for the cache, opens the folder read-only
 * as a store (inspection), then as a cache, and holds every key against what the writer had
 * tried and acknowledged (the rules of docs/CACHE.md, Durability):
 *
 * - a key holds its value as of the last acknowledged flush, or a value set (or tried) after it;
 * - it is absent only if it was absent at that flush, or deleted (or a delete tried) since, or
 *   its durable record may be gone with an epoch the cache closed (eviction, an overwrite's old
 *   record in an evicted epoch, a reinsertion's old copy), or it expired;
 * - never another key's value, a value overwritten or deleted before that flush, an expired
 *   value; `cache.verify()` passes.
 *
 * After a clean close (no kill came), exactly what the writer held. JSON summary on stdout,
 * progress on stderr.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { fileURLToPath } from 'node:url';
import { CRASH_POINT_NAMES } from '../crashpoints.js';
import { type Cache, openCache } from '../cache/cache.js';
import { openStore } from '../engine/store.js';
import { ZnsSlabError } from '../errors.js';
import { type ValueKind, cacheKey, cacheValue, identifyValue } from './cacheRunner.js';
import { runAsMain } from './main.js';
import { Rng } from './rng.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cacheCrashChild.js');
/** The writer's cache: small, so eviction runs within a few rounds; keys few enough to overwrite. */
export const CACHE_CRASH_LOOP = { maxBytes: 8 * 1024 * 1024, keySpace: 300 };
/** Operations a writer runs when no kill comes first (then it closes cleanly). */
const WRITER_OPS = 6_000;

/** What a writer is started with: the entries the cache holds (as the last check found them). */
export interface ChildState {
  entries: { key: number; n: number; kind: ValueKind; size: number; expiresAt: number }[];
}

interface Val {
  n: number;
  key: number;
  kind: ValueKind;
  size: number;
  expiresAt: number;
  accessed: boolean;
  /** The epoch its record went to (entries without TTL); undefined when unknown. */
  epoch: number | undefined;
}

interface KeyState {
  cur: Val | undefined;
  durable: Val | undefined;
  since: Val[];
  absentSince: boolean;
  mayLose: boolean;
}

export interface CacheCrashLoopResult {
  rounds: number;
  kills: number;
  killsAtPoints: Record<string, number>;
  cleanCloses: number;
  /** Flushes the writers acknowledged. */
  flushes: number;
  /** Epochs the writers reported evicted. */
  evictedEpochs: number;
  keysChecked: number;
  /** Keys that held a value when checked. */
  valuesChecked: number;
  lost: number;
  wrong: number;
  refusedToOpen: number;
  failures: string[];
}

function runChild(dir: string, seed: number, first: number, stateFile: string, env: NodeJS.ProcessEnv, killAfterMs: number | undefined): Promise<{ lines: string[]; signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, dir, String(seed), String(first), stateFile, String(WRITER_OPS)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      // A line cut by the kill is not a line.
      const lines = out.split('\n');
      lines.pop();
      resolve({ lines, signal, code, stderr: err });
    });
  });
}

export async function cacheCrashLoop(options: { kills: number; seed: number; dir?: string; log?: (s: string) => void }): Promise<CacheCrashLoopResult> {
  const log = options.log ?? (() => {});
  const base = options.dir ?? fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'zns-slab-cachecrash-'));
  const dir = path.join(base, 'cache');
  const stateFile = path.join(base, 'state.json');
  const rng = new Rng(options.seed);
  const keys: KeyState[] = Array.from({ length: CACHE_CRASH_LOOP.keySpace }, () => ({ cur: undefined, durable: undefined, since: [], absentSince: false, mayLose: false }));
  const result: CacheCrashLoopResult = { rounds: 0, kills: 0, killsAtPoints: {}, cleanCloses: 0, flushes: 0, evictedEpochs: 0, keysChecked: 0, valuesChecked: 0, lost: 0, wrong: 0, refusedToOpen: 0, failures: [] };
  let nextValue = 1;
  const madeDurable = () => {
    for (const st of keys) {
      st.durable = st.cur;
      st.since = [];
      st.absentSince = false;
      st.mayLose = false;
    }
  };
  try {
    while (result.kills < options.kills) {
      result.rounds++;
      const state: ChildState = { entries: [] };
      keys.forEach((st, key) => {
        if (st.cur !== undefined) state.entries.push({ key, n: st.cur.n, kind: st.cur.kind, size: st.cur.size, expiresAt: st.cur.expiresAt });
      });
      fs.writeFileSync(stateFile, JSON.stringify(state));
      const env = { ...process.env };
      let killAfterMs: number | undefined;
      let point = 'timed';
      if (rng.chance(0.45)) {
        point = CRASH_POINT_NAMES[rng.below(CRASH_POINT_NAMES.length)]!;
        env.ZNS_SLAB_CRASH_AT = `${point}:${1 + rng.below(point === 'device.write' || point === 'catalog.commit' || point === 'device.flush' ? 60 : 4)}`;
        killAfterMs = 6000; // the point may never be reached: then a late timed kill
      } else {
        delete env.ZNS_SLAB_CRASH_AT;
        killAfterMs = 250 + rng.below(1200);
      }
      const where = () => `round ${result.rounds} (${point})`;
      const run = await runChild(dir, rng.u32(), nextValue, stateFile, env, rng.chance(0.07) ? undefined : killAfterMs);
      // Kept with --dir: what the last writer said (to read a failure by).
      if (options.dir !== undefined) fs.writeFileSync(path.join(base, 'last-writer.log'), run.lines.join('\n') + '\n');
      const clean = run.lines[run.lines.length - 1] === 'X';
      if (!clean && run.signal !== 'SIGKILL') {
        result.failures.push(`${where()}: the writer exited ${run.code}: ${run.stderr.trim().split('\n').slice(0, 8).join(' | ')}`);
        break;
      }
      if (clean) result.cleanCloses++;
      else {
        result.kills++;
        result.killsAtPoints[point] = (result.killsAtPoints[point] ?? 0) + 1;
      }

      // What the writer tried and acknowledged.
      let inflight: { k: 's'; v: Val; mayEvict: boolean; applied: boolean } | { k: 'd'; key: number } | { k: 'f' | 'c' } | undefined;
      for (const line of run.lines) {
        const p = line.split(' ');
        switch (p[0]) {
          case 's': {
            const v: Val = { n: Number(p[2]), key: Number(p[1]), kind: p[3] as ValueKind, size: Number(p[4]), expiresAt: Number(p[5]), accessed: false, epoch: p[6] === '-' ? undefined : Number(p[6]) };
            nextValue = Math.max(nextValue, v.n + 1);
            keys[v.key]!.since.push(v);
            inflight = { k: 's', v, mayEvict: p[7] === '1', applied: false };
            break;
          }
          case 'd':
            keys[Number(p[1])]!.absentSince = true;
            inflight = { k: 'd', key: Number(p[1]) };
            break;
          case 'k':
          case 'e':
            // The set returned: its value is held (an eviction it ran may take it again, below).
            if (inflight?.k === 's' && !inflight.applied) {
              keys[inflight.v.key]!.cur = inflight.v;
              inflight.applied = true;
            }
            if (p[0] === 'k') {
              if (inflight?.k === 'd') keys[inflight.key]!.cur = undefined;
              inflight = undefined;
              break;
            }
            {
              const reinserted = Number(p[1]);
              const closed = new Set(p[2] === '-' ? [] : p[2]!.split(',').map(Number));
              result.evictedEpochs += closed.size;
              for (const g of p[3] === '-' ? [] : p[3]!.split(',').map(Number)) {
                keys[g]!.cur = undefined;
                keys[g]!.absentSince = true;
              }
              for (const st of keys) {
                const d = st.durable;
                if (d !== undefined && ((d !== st.cur && (d.epoch === undefined || closed.has(d.epoch))) || (reinserted > 0 && d.accessed))) st.mayLose = true;
                if (reinserted > 0) for (const v of [st.cur, st.durable]) if (v?.accessed) v.epoch = undefined;
              }
              if (inflight?.k === 's') inflight.mayEvict = false;
            }
            break;
          case 'g': {
            const cur = keys[Number(p[1])]!.cur;
            if (cur?.n === Number(p[2])) cur.accessed = true;
            break;
          }
          case 'f':
            inflight = { k: 'f' };
            break;
          case 'F':
            madeDurable();
            result.flushes++;
            inflight = undefined;
            break;
          case 'c':
            for (const st of keys) if (st.durable !== undefined) st.mayLose = true;
            inflight = { k: 'c' };
            break;
          case 'C':
            for (const st of keys) {
              st.cur = undefined;
              st.durable = undefined;
              st.since = [];
              st.absentSince = false;
              st.mayLose = false;
            }
            inflight = undefined;
            break;
          case 'X':
            madeDurable();
            break;
        }
      }
      // Killed inside a set that may have evicted before it could say so: any durable record may be gone.
      if (inflight?.k === 's' && inflight.mayEvict) for (const st of keys) if (st.durable !== undefined) st.mayLose = true;

      // A fresh process's view: the folder opens as a store read-only (inspection), then as a cache.
      const now0 = Date.now();
      try {
        openStore(dir, { readOnly: true }).close();
      } catch (err) {
        result.refusedToOpen++;
        result.failures.push(`${where()}: the cache's store refused to open read-only: ${describe(err)}`);
        break;
      }
      let cache: Cache;
      try {
        cache = openCache(dir);
      } catch (err) {
        result.refusedToOpen++;
        result.failures.push(`${where()}: the cache refused to open: ${describe(err)}`);
        break;
      }
      try {
        check(cache, keys, clean, now0, result, where());
      } finally {
        try {
          cache.close();
        } catch (err) {
          result.failures.push(`${where()}: close after the check failed: ${describe(err)}`);
        }
      }
      const held = keys.filter((st) => st.cur !== undefined).length;
      log(`round ${result.rounds}: ${clean ? 'clean close' : `killed (${point})`}, ${run.lines.length} lines, ${held} keys held, ${result.evictedEpochs} epochs evicted so far`);
      if (result.failures.length > 0) break;
    }
  } finally {
    if (options.dir === undefined) fs.rmSync(base, { recursive: true, force: true });
  }
  return result;
}

/** Every key against the model; then the model takes what the cache holds (durable from here: the check closes it cleanly). */
function check(cache: Cache, keys: KeyState[], clean: boolean, now0: number, result: CacheCrashLoopResult, where: string): void {
  const fail = (msg: string, kind: 'lost' | 'wrong') => {
    result[kind]++;
    result.failures.push(`${where}: ${msg}`);
  };
  try {
    cache.verify();
  } catch (err) {
    result.failures.push(`${where}: cache.verify() after reopen: ${describe(err)}`);
    return;
  }
  const have = new Map<number, unknown>();
  const ids = new Map<string, number>();
  keys.forEach((_, i) => {
    const k = cacheKey(i);
    ids.set(typeof k === 'string' ? `s${k}` : `b${k.toString('latin1')}`, i);
  });
  for (const [key, value] of cache.entries()) {
    const i = ids.get(typeof key === 'string' ? `s${key}` : `b${key.toString('latin1')}`);
    if (i === undefined) fail(`entries() gave a key never set: ${util.inspect(key)}`, 'wrong');
    else have.set(i, value);
  }
  const now1 = Date.now();
  const expiredBy = (v: Val, t: number) => v.expiresAt !== 0 && t >= v.expiresAt;
  keys.forEach((st, i) => {
    result.keysChecked++;
    const got = have.get(i);
    let v: Val | undefined;
    const allowed = clean ? [st.cur] : [st.durable, ...st.since];
    if (got === undefined) {
      const absentOk = clean
        ? st.cur === undefined || expiredBy(st.cur, now1)
        : st.durable === undefined || expiredBy(st.durable, now1) || st.absentSince || st.mayLose || st.since.some((a) => expiredBy(a, now1));
      if (!absentOk) fail(`key ${i} is missing; it held value #${(clean ? st.cur : st.durable)!.n}${clean ? ' at a clean close' : ', flushed, and neither deleted nor evicted since'}`, 'lost');
    } else {
      result.valuesChecked++;
      const id = identifyValue(got);
      const match = id === undefined || id.key !== i ? undefined : allowed.find((a) => a?.n === id.n);
      if (match === undefined) fail(`key ${i} returned ${id ? `value #${id.n} of key ${id.key}` : 'a value of no key'}, which it may not hold (allowed: ${allowed.filter((a) => a).map((a) => `#${a!.n}`).join(', ') || 'none'})`, 'wrong');
      else if (expiredBy(match, now0)) fail(`key ${i} returned value #${match.n}, expired ${now0 - match.expiresAt} ms before the cache opened`, 'wrong');
      else if (!util.isDeepStrictEqual(got, cacheValue(i, match.n, match.kind, match.size))) fail(`key ${i} returned value #${match.n} with other contents`, 'wrong');
      else v = match;
    }
    // has and get agree (unless the entry expired in between).
    const has = cache.has(cacheKey(i));
    if (has !== (v !== undefined) && !(v !== undefined && expiredBy(v, Date.now()))) fail(`has(key ${i}) is ${has}, entries() ${v === undefined ? 'lacks it' : 'has it'}`, 'wrong');
    if (i % 3 === 0 && has) {
      const g = cache.get(cacheKey(i));
      if (g !== undefined && (v === undefined || !util.isDeepStrictEqual(g, cacheValue(i, v.n, v.kind, v.size)))) fail(`get(key ${i}) disagrees with entries()`, 'wrong');
      if (v !== undefined && g !== undefined) v.accessed = true;
    }
    st.cur = v;
    st.durable = v;
    st.since = [];
    st.absentSince = false;
    st.mayLose = false;
  });
  try {
    cache.verify();
  } catch (err) {
    result.failures.push(`${where}: cache.verify() after the checks: ${describe(err)}`);
  }
}

function describe(err: unknown): string {
  if (err instanceof ZnsSlabError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let kills = 30;
  let seed = Math.floor(Math.random() * 1_000_000_000);
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--kills') kills = Number(argv[++i]);
    else if (argv[i] === '--seed') seed = Number(argv[++i]);
    else if (argv[i] === '--dir') dir = argv[++i];
    else if (argv[i] === '--cache') continue;
    else throw new RangeError(`unknown argument ${argv[i]}`);
  }
  if (!Number.isSafeInteger(kills) || kills < 1) throw new RangeError('--kills takes a positive integer');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError('--seed takes a non-negative integer');
  process.stderr.write(`cache crash loop: ${kills} kills, seed ${seed}\n`);
  const started = Date.now();
  const result = await cacheCrashLoop({ kills, seed, ...(dir ? { dir } : {}), log: (s) => process.stderr.write(s + '\n') });
  process.stdout.write(JSON.stringify({ seed, seconds: (Date.now() - started) / 1000, ...result }, null, 2) + '\n');
  process.stderr.write(
    `cache crash loop: ${result.kills} kills, ${result.cleanCloses} clean closes, ${result.flushes} flushes acknowledged, ${result.evictedEpochs} epochs evicted, ${result.keysChecked} key checks (${result.valuesChecked} values): ${result.lost} lost, ${result.wrong} wrong, ${result.refusedToOpen} refused to open\n`,
  );
  for (const f of result.failures.slice(0, 10)) process.stderr.write(`  ${f}\n`);
  if (result.failures.length > 0) process.stderr.write(`  replay: node dist/sim/cacheCrashloop.js --seed ${seed} --kills ${kills}  (kill timing makes a replay likely, not certain, to hit the same state)\n`);
  return result.failures.length === 0 ? 0 : 1;
}

runAsMain(import.meta.url, main);
