/**
 * Device writes off the calling thread: a few worker threads, each writing (`pwrite` through
 * node's fs) what it is handed, in the order it is handed. A device starts a write and goes on;
 * it learns of the end by polling (`ended`), or blocks for it (`wait`, Atomics.wait: this is how
 * a synchronous flush waits for writes in flight), or awaits it (`waitAsync`).
 *
 * Why workers and not libuv's pool (`fs.write`): a synchronous caller cannot wait for a libuv
 * request, and the store's `flush()` is synchronous. Why per-zone order holds: a zone's writes
 * always go to the same worker (zone modulo workers), and its device allows one in flight per
 * zone anyway.
 *
 * The bytes must stay unchanged until the write ends; they are shared with the worker, not
 * copied, so they must live in a SharedArrayBuffer (`ioBuffer`).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { assert } from '../errors.js';

/** Worker threads per device: two let two zones' writes proceed at once on a 2-core machine. */
export const WRITE_WORKERS = 2;
/** Writes one queue holds in flight; a device's own limit (one per zone) is lower in practice. */
export const MAX_WRITES_IN_FLIGHT = 64;

// Slot states in the control array.
const SLOT_FREE = 0;
const SLOT_PENDING = 1;
const SLOT_ENDED = 2;
/** Control layout: [0] = writes ended (for waiting), then per slot: state, bytes written, errno. */
const CONTROL_ENDED = 0;
const SLOT_FIELDS = 3;

// The worker is plain CommonJS, evaluated from a string: the same code then runs from dist/,
// from vitest's TypeScript sources and from a CommonJS bundle without a file to resolve.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const control = new Int32Array(workerData.control);
parentPort.on('message', (m) => {
  let done = 0;
  let errno = 0;
  try {
    while (done < m.data.length) {
      const n = fs.writeSync(m.fd, m.data, done, m.data.length - done, m.position + done);
      if (n <= 0) { errno = -5; break; }
      done += n;
    }
  } catch (err) {
    errno = typeof err.errno === 'number' && err.errno < 0 ? err.errno : -5;
  }
  const base = 1 + m.slot * ${SLOT_FIELDS};
  Atomics.store(control, base + 1, done);
  Atomics.store(control, base + 2, errno);
  Atomics.store(control, base, ${SLOT_ENDED});
  Atomics.add(control, ${CONTROL_ENDED}, 1);
  Atomics.notify(control, ${CONTROL_ENDED});
});
`;

/** How one write ended. `errno` is 0 when all `length` bytes were written. */
export interface WriteEnd {
  readonly ticket: number;
  /** Bytes that reached the file before the end (all of them, or fewer on an error). */
  readonly written: number;
  readonly errno: number;
  /** The errno's name (EIO, ENOSPC, ...), or '' on success. */
  readonly code: string;
}

// Node 20 has Atomics.waitAsync; TypeScript's es2022 lib does not declare it yet.
const atomicsWaitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

export class WriteQueue {
  readonly #control: Int32Array;
  readonly #workers: (Worker | undefined)[] = [];
  /** Slot -> ticket of the write in it (-1: free). */
  readonly #tickets = new Int32Array(MAX_WRITES_IN_FLIGHT).fill(-1);
  #nextTicket = 1;
  #inFlight = 0;
  #closed = false;

  constructor() {
    this.#control = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * (1 + MAX_WRITES_IN_FLIGHT * SLOT_FIELDS)));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Starts writing `data` (a view of a SharedArrayBuffer) at `position` of `fd` on the worker
   * for `lane` (a zone: the same lane keeps its order). Returns the write's ticket.
   */
  start(fd: number, data: Uint8Array, position: number, lane: number): number {
    assert(!this.#closed, 'write queue is open');
    assert(data.buffer instanceof SharedArrayBuffer, 'a queued write\'s bytes are shared with the worker');
    if (this.#inFlight === MAX_WRITES_IN_FLIGHT) this.wait();
    const slot = this.#tickets.indexOf(-1);
    assert(slot >= 0, 'a free write slot');
    const ticket = this.#nextTicket++;
    this.#tickets[slot] = ticket;
    Atomics.store(this.#control, 1 + slot * SLOT_FIELDS, SLOT_PENDING);
    this.#inFlight++;
    this.#worker(lane).postMessage({ slot, fd, data, position });
    return ticket;
  }

  /** Writes that ended since the last call; never blocks. */
  ended(): WriteEnd[] {
    if (this.#inFlight === 0) return [];
    const out: WriteEnd[] = [];
    for (let slot = 0; slot < MAX_WRITES_IN_FLIGHT; slot++) {
      const ticket = this.#tickets[slot]!;
      if (ticket < 0) continue;
      const base = 1 + slot * SLOT_FIELDS;
      if (Atomics.load(this.#control, base) !== SLOT_ENDED) continue;
      const errno = Atomics.load(this.#control, base + 2);
      out.push({ ticket, written: Atomics.load(this.#control, base + 1), errno, code: errno === 0 ? '' : (ERRNO_NAMES.get(-errno) ?? ERRNO_NAMES.get(errno) ?? 'EIO') });
      Atomics.store(this.#control, base, SLOT_FREE);
      this.#tickets[slot] = -1;
      this.#inFlight--;
    }
    // Ended slots come back in slot order; callers want start order.
    return out.sort((a, b) => a.ticket - b.ticket);
  }

  /** Whether the write with `ticket` has ended (and not been collected by `ended` yet). */
  hasEnded(ticket: number): boolean {
    const slot = this.#tickets.indexOf(ticket);
    return slot < 0 || Atomics.load(this.#control, 1 + slot * SLOT_FIELDS) === SLOT_ENDED;
  }

  /** Blocks until `ticket` (or, without one, every write in flight) has ended. Does not collect. */
  wait(ticket?: number): void {
    for (;;) {
      const seen = Atomics.load(this.#control, CONTROL_ENDED);
      if (ticket === undefined ? this.#allEnded() : this.hasEnded(ticket)) return;
      Atomics.wait(this.#control, CONTROL_ENDED, seen);
    }
  }

  /** Resolves once every write in flight now has ended, without blocking the event loop. */
  async waitAsync(): Promise<void> {
    while (!this.#allEnded()) {
      const seen = Atomics.load(this.#control, CONTROL_ENDED);
      if (this.#allEnded()) return;
      const w = atomicsWaitAsync(this.#control, CONTROL_ENDED, seen);
      if (w.async) await w.value;
    }
  }

  /** Waits for every write, then stops the workers. */
  close(): void {
    if (this.#closed) return;
    this.wait();
    this.#closed = true;
    for (const w of this.#workers) if (w !== undefined) void w.terminate();
  }

  #allEnded(): boolean {
    for (let slot = 0; slot < MAX_WRITES_IN_FLIGHT; slot++) {
      if (this.#tickets[slot]! >= 0 && Atomics.load(this.#control, 1 + slot * SLOT_FIELDS) !== SLOT_ENDED) return false;
    }
    return true;
  }

  #worker(lane: number): Worker {
    const i = lane % WRITE_WORKERS;
    let w = this.#workers[i];
    if (w === undefined) {
      w = new Worker(WORKER_SOURCE, { eval: true, workerData: { control: this.#control.buffer } });
      // A store that is never closed must not keep the process alive for its workers.
      w.unref();
      this.#workers[i] = w;
    }
    return w;
  }
}

/** A buffer for queued writes: on a SharedArrayBuffer, so the worker writes from it without a copy. */
export function sharedBuffer(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}
