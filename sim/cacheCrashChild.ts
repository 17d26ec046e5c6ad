/**
 * The writer of the cache's real-process crash loop (cacheCrashloop.ts): opens the cache, runs a
 * seeded workload of sets (with and without TTL), gets, deletes, flushes and the odd clear, and
 * reports on stdout, one line each, written before its next call (so the parent knows what was
 * tried and what acknowledged when the SIGKILL lands):
 *
 *   s <key> <n> <kind> <size> <expiresAt> <epoch|-> <w>   a set is about to run (w: 1 if it may evict)
 *   d <key>                                              a delete is about to run
 *   f / F <op>                                           a flush is about to run / returned (the durable point, after op <op>)
 *   c / C                                                a clear is about to run / returned
 *   e <reinserted> <closed epochs|-> <gone keys|->       the last call evicted: counts, epochs closed, keys gone
 *   k                                                    the set or delete returned
 *   g <key> <n>                                          a get returned value <n>
 *   X                                                    close returned (a clean end)
 *
 * It checks its own reads: a get or has that disagrees with what it set is printed to stderr
 * and ends it with exit code 3.
 *
 * Usage: node cacheCrashChild.js <cacheDir> <seed> <firstValue> <stateFile> <ops>
 */
import fs from 'node:fs';
import util from 'node:util';
import { openCache } from '../cache/cache.js';
import { type ValueKind, cacheKey, cacheValue } from './cacheRunner.js';
import { CACHE_CRASH_LOOP, type ChildState } from './cacheCrashloop.js';
import { Rng } from './rng.js';

const [dir, seedArg, firstArg, stateFile, opsArg] = process.argv.slice(2) as [string, string, string, string, string];
const rng = new Rng(Number(seedArg));
let n = Number(firstArg);
const say = (line: string): void => {
  fs.writeSync(1, line + '\n');
};
const die = (message: string): never => {
  fs.writeSync(2, message + '\n');
  process.exit(3);
};

interface Entry {
  n: number;
  kind: ValueKind;
  size: number;
  expiresAt: number;
}
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as ChildState;
const held = new Map<number, Entry>(state.entries.map((e) => [e.key, { n: e.n, kind: e.kind, size: e.size, expiresAt: e.expiresAt }]));

// The cache's clock is read once per operation, so the expiry the parent is told is exact.
let now = Date.now();
const cache = openCache(dir, { maxBytes: CACHE_CRASH_LOOP.maxBytes, clock: () => now });
const maxValue = cache.store.maxObjectSize - 600;
const expired = (e: Entry): boolean => e.expiresAt !== 0 && now >= e.expiresAt;

function pickKey(): number {
  const space = CACHE_CRASH_LOOP.keySpace;
  return rng.chance(0.5) ? rng.below(space / 4) : rng.below(space);
}

function valueSize(): number {
  const r = rng.below(100);
  if (r < 55) return rng.below(300);
  if (r < 92) return 300 + rng.below(6_000);
  return Math.min(maxValue, 6_300 + rng.below(60_000));
}

const TTLS = [40, 300, 1_000, 3_000, 60_000];

/** After a call that may have evicted: tells the parent what went. */
function reportEviction(before: { evicted: number; epochs: number; reinserted: number }, live: number[]): void {
  const s = cache.stats();
  if (s.evictions.entries === before.evicted && s.evictions.epochs === before.epochs && s.reinsertions.entries === before.reinserted) return;
  const after = new Set(cache.store.epochsLive());
  const closed = live.filter((e) => !after.has(e));
  const gone: number[] = [];
  for (const [key, e] of held) {
    if (expired(e) || cache.has(cacheKey(key))) continue;
    gone.push(key);
    held.delete(key);
  }
  say(`e ${s.reinsertions.entries - before.reinserted} ${closed.join(',') || '-'} ${gone.join(',') || '-'}`);
}

function counters(): { evicted: number; epochs: number; reinserted: number } {
  const s = cache.stats();
  return { evicted: s.evictions.entries, epochs: s.evictions.epochs, reinserted: s.reinsertions.entries };
}

const ops = Number(opsArg);
for (let op = 0; op < ops; op++) {
  now = Date.now();
  // Flushes every 30 operations or so: a kill finds sets and deletes that are not durable yet.
  const r = rng.below(10_000);
  if (r < 5_200) {
    const key = pickKey();
    const ttl = rng.chance(0.25) ? TTLS[rng.below(TTLS.length)]! : 0;
    const kind = (['bytes', 'string', 'object', 'object', 'number'] as const)[rng.below(5)]!;
    const e: Entry = { n: n++, kind, size: valueSize(), expiresAt: ttl > 0 ? now + ttl : 0 };
    const before = counters();
    const stats = cache.stats();
    const mayEvict = stats.heldBytes + 2 * 65_536 > stats.maxBytes ? 1 : 0;
    const live = cache.store.epochsLive();
    say(`s ${key} ${e.n} ${e.kind} ${e.size} ${e.expiresAt} ${ttl > 0 ? '-' : cache.store.epochCurrent()} ${mayEvict}`);
    cache.set(cacheKey(key), cacheValue(key, e.n, e.kind, e.size), ttl > 0 ? { ttl } : undefined);
    held.set(key, e);
    reportEviction(before, live);
    say('k');
  } else if (r < 7_800) {
    const key = pickKey();
    const got = cache.get(cacheKey(key));
    const want = held.get(key);
    if (want === undefined || expired(want)) {
      if (got !== undefined) die(`get of key ${key} returned ${util.inspect(got, { depth: 0 }).slice(0, 120)}; it holds ${want ? `value ${want.n}, expired` : 'nothing'}`);
      held.delete(key);
    } else {
      if (!util.isDeepStrictEqual(got, cacheValue(key, want.n, want.kind, want.size))) die(`get of key ${key} returned ${util.inspect(got, { depth: 0 }).slice(0, 120)}, not value ${want.n}`);
      say(`g ${key} ${want.n}`);
    }
  } else if (r < 8_900) {
    const key = pickKey();
    say(`d ${key}`);
    cache.delete(cacheKey(key));
    held.delete(key);
    say('k');
  } else if (r < 9_670) {
    const key = pickKey();
    const want = held.get(key);
    const has = cache.has(cacheKey(key));
    if (has !== (want !== undefined && !expired(want))) die(`has(key ${key}) is ${has}; it holds ${want ? `value ${want.n}${expired(want) ? ', expired' : ''}` : 'nothing'}`);
  } else if (r < 9_998) {
    say('f');
    cache.flush();
    say(`F ${op}`);
  } else {
    say('c');
    cache.clear();
    held.clear();
    say('C');
  }
}
now = Date.now();
cache.close();
say('X');
