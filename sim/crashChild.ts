/**
 * The writer of the real-process crash loop (crashloop.ts): opens a store, runs a seeded
 * workload, and reports every acknowledged step on stdout, one line each, written before the
 * next call, so the parent knows what was acknowledged when the SIGKILL lands.
 *
 *   P <handle> <n> <size> <epoch>   put returned        F <handle>   free returned
 *   S                                flush returned      A <epoch>    advanced to <epoch>
 *   c <epoch> / C <epoch>            epochClose called / returned
 *   g / G                            store.gc() called / returned (a kill between them was inside a collection)
 *   X                                close returned (a clean end)
 *
 * Two workloads (`mode`):
 * - classic: puts, frees, flushes, epoch advances and closes, with zone GC's default options;
 * - churn: zone GC's work: a long-lived live set churned (a random live object freed, a new
 *   one put), so zones stay partly live; GC options that make it run often (GC_CHURN_OPTIONS:
 *   a step after seals and in each flush), and explicit, bounded store.gc() calls. Epochs
 *   advance and close rarely.
 *
 * Usage: node crashChild.js <storeDir> <seed> <firstObject> <liveFile> <ops> [classic|churn]
 */
import fs from 'node:fs';
import { openStore } from '../index.js';
import { Rng, payloadFor } from './rng.js';
import { CRASH_LOOP_GEOMETRY, GC_CHURN_OPTIONS, type WriterMode } from './crashloop.js';

const [dir, seedArg, firstArg, liveFile, opsArg, modeArg] = process.argv.slice(2) as [string, string, string, string, string, string | undefined];
const mode: WriterMode = modeArg === 'churn' ? 'churn' : 'classic';
const rng = new Rng(Number(seedArg));
let n = Number(firstArg);
const live: { h: bigint; epoch: number }[] = (JSON.parse(fs.readFileSync(liveFile, 'utf8')) as [string, number][]).map(([h, epoch]) => ({ h: BigInt(h), epoch }));
const say = (line: string): void => {
  fs.writeSync(1, line + '\n');
};

const store = openStore(dir, { geometry: CRASH_LOOP_GEOMETRY, ...(mode === 'churn' ? { gc: GC_CHURN_OPTIONS } : {}) });
const epochs = new Set<number>(live.map((o) => o.epoch));
epochs.add(store.epochCurrent());

function closeOldest(): void {
  const oldest = Math.min(...epochs);
  epochs.delete(oldest);
  say(`c ${oldest}`);
  store.epochClose(oldest);
  say(`C ${oldest}`);
  for (let i = live.length - 1; i >= 0; i--) if (live[i]!.epoch === oldest) live.splice(i, 1);
  epochs.add(store.epochCurrent());
}

/** The device is full: close the oldest epoch that is not the current one (advance first if need be). */
function makeRoom(): void {
  if (epochs.size === 1) {
    const e = store.epochAdvance();
    epochs.add(e);
    say(`A ${e}`);
  }
  closeOldest();
}
function put(size: number): void {
  const id = n++;
  const h = store.put(payloadFor(id, size));
  const epoch = store.epochCurrent();
  live.push({ h, epoch });
  say(`P ${h} ${id} ${size} ${epoch}`);
}

function freeAt(i: number): void {
  const { h } = live[i]!;
  live[i] = live[live.length - 1]!;
  live.pop();
  store.free(h);
  say(`F ${h}`);
}

/** The churn workload's live set: about this many objects (a few MiB of the 48 MiB device). */
const CHURN_LIVE = 6000;

/** One step of the churn workload. */
function churnStep(): void {
  const r = rng.below(1000);
  const size = rng.chance(0.95) ? 16 + rng.below(1500) : rng.below(16_000);
  if (r < 700) {
    // Free a random live object (any epoch: the dead bytes spread over every zone), put a new one.
    if (live.length >= CHURN_LIVE / 2) freeAt(rng.below(live.length));
    put(size);
  } else if (r < 800) {
    if (live.length < CHURN_LIVE) put(size);
    else freeAt(rng.below(live.length));
  } else if (r < 930) {
    store.flush();
    say('S');
  } else if (r < 990) {
    // Bounded: a collection moves at most a few zones' worth, and never runs past its time.
    say('g');
    try {
      store.gc({ maxBytes: (1 + rng.below(8)) * 256 * 1024, maxMs: 250 });
    } finally {
      say('G');
    }
  } else if (r < 997) {
    const e = store.epochAdvance();
    epochs.add(e);
    say(`A ${e}`);
  } else if (epochs.size > 2) closeOldest();
}

for (let op = 0; op < Number(opsArg); op++) {
  const r = rng.below(100);
  try {
    if (mode === 'churn') churnStep();
    else if (r < 60) {
      const size = rng.chance(0.9) ? rng.below(2000) : rng.below(Math.min(store.maxObjectSize, 120_000));
      const id = n++;
      const h = store.put(payloadFor(id, size));
      const epoch = store.epochCurrent();
      live.push({ h, epoch });
      say(`P ${h} ${id} ${size} ${epoch}`);
    } else if (r < 82 && live.length > 0) {
      const i = rng.below(live.length);
      const { h } = live[i]!;
      live[i] = live[live.length - 1]!;
      live.pop();
      store.free(h);
      say(`F ${h}`);
    } else if (r < 95) {
      store.flush();
      say('S');
    } else if (r < 97) {
      // Free a run of the oldest epoch's objects one by one: whole slabs empty and recycle.
      const oldest = Math.min(...epochs);
      let freed = 0;
      for (let i = 0; i < live.length && freed < 300; ) {
        if (live[i]!.epoch !== oldest) {
          i++;
          continue;
        }
        const { h } = live[i]!;
        live.splice(i, 1);
        store.free(h);
        say(`F ${h}`);
        freed++;
      }
    } else if (r < 99) {
      const e = store.epochAdvance();
      epochs.add(e);
      say(`A ${e}`);
    } else {
      closeOldest();
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_DEVICE_FULL') throw err;
    makeRoom();
  }
}
// Close cleanly; a full device first gives up its oldest epoch.
for (;;) {
  try {
    store.flush();
    break;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_DEVICE_FULL') throw err;
    makeRoom();
  }
}
store.close();
say('X');
