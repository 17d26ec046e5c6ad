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
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ZnsSlabError, assert } from '../errors.js';
import type { WriteEnded } from './device.js';

/** Worker threads per device: two let two zones' writes proceed at once on a 2-core machine. */
export const WRITE_WORKERS = 2;
/** Writes one queue holds in flight; a device's own limit (one per zone) is lower in practice. */
export const MAX_WRITES_IN_FLIGHT = 64;

// A slot's state word is ticket * 4 + phase, so a claim (compare-and-swap) names the write it
// claims: a worker holding a message for a slot that was since reused cannot take the new write.
const PHASE_PENDING = 1;
const PHASE_CLAIMED = 2;
const PHASE_ENDED = 3;
/** Tickets wrap here, so ticket * 4 + phase stays a positive int32. */
const TICKET_WRAP = 1 << 28;
/**
 * Control layout (Int32): [0] writes ended, [1] want a message (waitAsync), [2] writes posted
 * (what idle workers wait on); then per slot: state, bytes written, errno, fd, lane, buffer id,
 * byte offset, length. Positions are in a Float64Array beside it (offsets past 2^31).
 */
const CONTROL_ENDED = 0;
/** Set while someone awaits `waitAsync`: workers then also post a message per ended write. */
const CONTROL_WANT_MESSAGE = 1;
const CONTROL_POSTED = 2;
const CONTROL_FIELDS = 3;
const SLOT_FIELDS = 8;
const F_STATE = 0;
const F_WRITTEN = 1;
const F_ERRNO = 2;
const F_FD = 3;
const F_LANE = 4;
const F_BUFFER = 5;
const F_OFFSET = 6;
const F_LENGTH = 7;

/**
 * One write, done by whoever claimed it: a worker, or the caller itself (see `wait`). Shared by
 * both, as source text for the worker.
 */
function writeAll(fs: { writeSync(fd: number, b: Uint8Array, off: number, len: number, pos: number): number }, fd: number, data: Uint8Array, position: number): [number, number] {
  let done = 0;
  let errno = 0;
  try {
    while (done < data.length) {
      const n = fs.writeSync(fd, data, done, data.length - done, position + done);
      if (n <= 0) {
        errno = -5;
        break;
      }
      done += n;
    }
  } catch (err) {
    const e = (err as { errno?: unknown }).errno;
    errno = typeof e === 'number' && e < 0 ? e : -5;
  }
  return [done, errno];
}

/** Records how a claimed write ended and wakes whoever waits. */
function endWrite(control: Int32Array, slot: number, ticket: number, done: number, errno: number): void {
  const base = CONTROL_FIELDS + slot * SLOT_FIELDS;
  Atomics.store(control, base + 1, done);
  Atomics.store(control, base + 2, errno);
  Atomics.store(control, base, ticket * 4 + PHASE_ENDED);
  Atomics.add(control, CONTROL_ENDED, 1);
  Atomics.notify(control, CONTROL_ENDED);
}

// The worker is evaluated from a string: the same code then runs from dist/, from vitest's
// TypeScript sources and from a CommonJS bundle without a file to resolve. Modules come by
// import(), which works whether it runs as CommonJS or (in a process started with
// --input-type=module) as an ES module. It takes jobs from the shared slots, not from
// messages: a postMessage per write cost ~40 us on the caller's thread while the worker was
// busy writing. Messages carry only buffers, each once (receiveMessageOnPort, synchronously).
const WORKER_SOURCE = `
Promise.all([import('node:worker_threads'), import('node:fs')]).then(([{ parentPort, workerData, receiveMessageOnPort }, fs]) => {
const control = new Int32Array(workerData.control);
const positions = new Float64Array(workerData.positions);
const { index, workers, slots } = workerData;
const CONTROL_FIELDS = ${CONTROL_FIELDS}, SLOT_FIELDS = ${SLOT_FIELDS}, CONTROL_ENDED = ${CONTROL_ENDED}, PHASE_ENDED = ${PHASE_ENDED};
const writeAll = ${writeAll.toString()};
const endWrite = ${endWrite.toString()};
const buffers = new Map();
const drain = () => {
  for (let m = receiveMessageOnPort(parentPort); m !== undefined; m = receiveMessageOnPort(parentPort)) {
    if (m.message.drop !== undefined) buffers.delete(m.message.drop);
    else buffers.set(m.message.id, m.message.sab);
  }
};
for (;;) {
  const posted = Atomics.load(control, ${CONTROL_POSTED});
  let worked = false;
  for (let slot = 0; slot < slots; slot++) {
    const base = CONTROL_FIELDS + slot * SLOT_FIELDS;
    const state = Atomics.load(control, base);
    if ((state & 3) !== ${PHASE_PENDING} || Atomics.load(control, base + ${F_LANE}) % workers !== index) continue;
    const ticket = state >> 2;
    // The caller may have taken this write itself (it never waits for a worker that has not taken it).
    if (Atomics.compareExchange(control, base, state, ticket * 4 + ${PHASE_CLAIMED}) !== state) continue;
    const id = Atomics.load(control, base + ${F_BUFFER});
    if (!buffers.has(id)) drain();
    const data = new Uint8Array(buffers.get(id), Atomics.load(control, base + ${F_OFFSET}), Atomics.load(control, base + ${F_LENGTH}));
    const [done, errno] = writeAll(fs, Atomics.load(control, base + ${F_FD}), data, positions[slot]);
    endWrite(control, slot, ticket, done, errno);
    if (Atomics.load(control, ${CONTROL_WANT_MESSAGE}) === 1) parentPort.postMessage(0);
    worked = true;
  }
  if (!worked) Atomics.wait(control, ${CONTROL_POSTED}, posted);
}
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

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

interface Job {
  readonly fd: number;
  readonly data: Uint8Array;
  readonly position: number;
}

export class WriteQueue {
  readonly #control: Int32Array;
  readonly #workers: (Worker | undefined)[] = [];
  /** Slot -> ticket of the write in it (-1: free). */
  readonly #tickets = new Int32Array(MAX_WRITES_IN_FLIGHT).fill(-1);
  #nextTicket = 1;
  /** Slot -> what to write, so the caller can do a write no worker has taken yet. */
  readonly #jobs: (Job | undefined)[] = new Array<Job | undefined>(MAX_WRITES_IN_FLIGHT);
  /** Callers of `waitAsync` waiting for a worker's message, and how many calls are pending. */
  #waiters: (() => void)[] = [];
  #asyncWaits = 0;
  #inFlight = 0;
  /** The ended counter when `ended` last scanned. */
  #endedSeen = 0;
  #closed = false;

  /** Each write's file position (a double: offsets pass 2^31). */
  readonly #positions = new Float64Array(new SharedArrayBuffer(Float64Array.BYTES_PER_ELEMENT * MAX_WRITES_IN_FLIGHT));
  /** Buffers by id, as the workers know them; which workers have each (a bit per worker). */
  readonly #bufferIds = new WeakMap<SharedArrayBuffer, number>();
  readonly #sentTo = new Map<number, number>();
  #nextBufferId = 1;
  /** A buffer the caller let go is dropped by the workers too (they hold it by id). */
  readonly #forget = new FinalizationRegistry<number>((id) => {
    const mask = this.#sentTo.get(id) ?? 0;
    this.#sentTo.delete(id);
    this.#workers.forEach((w, i) => {
      if (w !== undefined && (mask & (1 << i)) !== 0) w.postMessage({ drop: id });
    });
  });

  constructor() {
    this.#control = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * (CONTROL_FIELDS + MAX_WRITES_IN_FLIGHT * SLOT_FIELDS)));
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
    const ticket = this.#nextTicket;
    this.#nextTicket = ticket + 1 === TICKET_WRAP ? 1 : ticket + 1;
    this.#tickets[slot] = ticket;
    this.#jobs[slot] = { fd, data, position };
    const worker = this.#worker(lane);
    const sab = data.buffer as SharedArrayBuffer;
    let id = this.#bufferIds.get(sab);
    if (id === undefined) {
      id = this.#nextBufferId++;
      this.#bufferIds.set(sab, id);
      this.#forget.register(sab, id);
    }
    const bit = 1 << (lane % WRITE_WORKERS);
    const mask = this.#sentTo.get(id) ?? 0;
    if ((mask & bit) === 0) {
      // Once per buffer and worker; before the job, so the worker finds it when it drains.
      worker.postMessage({ id, sab });
      this.#sentTo.set(id, mask | bit);
    }
    const base = CONTROL_FIELDS + slot * SLOT_FIELDS;
    const c = this.#control;
    c[base + F_FD] = fd;
    c[base + F_LANE] = lane;
    c[base + F_BUFFER] = id;
    c[base + F_OFFSET] = data.byteOffset;
    c[base + F_LENGTH] = data.byteLength;
    this.#positions[slot] = position;
    // The state last: a worker reads the fields only after it sees PENDING (seq-cst atomics).
    Atomics.store(c, base + F_STATE, ticket * 4 + PHASE_PENDING);
    this.#inFlight++;
    Atomics.add(c, CONTROL_POSTED, 1);
    Atomics.notify(c, CONTROL_POSTED);
    return ticket;
  }

  /** Writes that ended since the last call; never blocks. */
  ended(after: 'poll' | 'wait' = 'poll'): WriteEnd[] {
    if (this.#inFlight === 0) return [];
    // A poll skips the scan when the ended count has not moved since the last look (a put polls
    // on its way). After a wait it always scans: a worker marks a write ended before it counts
    // it, so a wait can see the end before the count moves (found by the crash loop; the test
    // 'WriteQueue races' holds it). A poll that misses such an end finds it next time.
    const count = Atomics.load(this.#control, CONTROL_ENDED);
    if (after === 'poll' && count === this.#endedSeen) return [];
    this.#endedSeen = count;
    const out: WriteEnd[] = [];
    for (let slot = 0; slot < MAX_WRITES_IN_FLIGHT; slot++) {
      const ticket = this.#tickets[slot]!;
      if (ticket < 0) continue;
      const base = CONTROL_FIELDS + slot * SLOT_FIELDS;
      if (Atomics.load(this.#control, base) !== ticket * 4 + PHASE_ENDED) continue;
      const errno = Atomics.load(this.#control, base + 2);
      out.push({ ticket, written: Atomics.load(this.#control, base + 1), errno, code: errno === 0 ? '' : (ERRNO_NAMES.get(-errno) ?? ERRNO_NAMES.get(errno) ?? 'EIO') });
      Atomics.store(this.#control, base, 0);
      this.#tickets[slot] = -1;
      this.#jobs[slot] = undefined;
      this.#inFlight--;
    }
    // Ended slots come back in slot order; callers want start order.
    return out.sort((a, b) => a.ticket - b.ticket);
  }

  /** Whether the write with `ticket` has ended (and not been collected by `ended` yet). */
  hasEnded(ticket: number): boolean {
    const slot = this.#tickets.indexOf(ticket);
    return slot < 0 || Atomics.load(this.#control, CONTROL_FIELDS + slot * SLOT_FIELDS) === ticket * 4 + PHASE_ENDED;
  }

  /**
   * Blocks until `ticket` (or, without one, every write in flight) has ended. Does not collect.
   * A write no worker has taken yet, the caller takes and does itself: it never blocks on a
   * worker that has not started (a worker's start can need this very thread, e.g. under ESM
   * loader hooks, and would deadlock).
   */
  wait(ticket?: number): void {
    for (;;) {
      const seen = Atomics.load(this.#control, CONTROL_ENDED);
      let waiting = false;
      for (let slot = 0; slot < MAX_WRITES_IN_FLIGHT; slot++) {
        const t = this.#tickets[slot]!;
        if (t < 0 || (ticket !== undefined && t !== ticket)) continue;
        const state = CONTROL_FIELDS + slot * SLOT_FIELDS;
        if (Atomics.compareExchange(this.#control, state, t * 4 + PHASE_PENDING, t * 4 + PHASE_CLAIMED) === t * 4 + PHASE_PENDING) {
          const job = this.#jobs[slot]!;
          const [done, errno] = writeAll(fs, job.fd, job.data, job.position);
          endWrite(this.#control, slot, t, done, errno);
        } else if (Atomics.load(this.#control, state) !== t * 4 + PHASE_ENDED) waiting = true; // a worker is writing it
      }
      if (!waiting) return;
      Atomics.wait(this.#control, CONTROL_ENDED, seen);
    }
  }

  /**
   * Resolves once every write in flight now has ended, without blocking the event loop. (Not
   * Atomics.waitAsync: on Node 20 its promise may not wake an otherwise idle event loop.) The
   * flag is set before the check, and workers read it after counting an end, so either this
   * sees the end or the worker sees the flag and posts.
   */
  async waitAsync(): Promise<void> {
    // The workers are unref'd (an unclosed store lets the process exit), so hold the loop open
    // while someone awaits them: else an awaited flushAsync could end the process unresolved.
    if (this.#asyncWaits++ === 0) for (const w of this.#workers) w?.ref();
    Atomics.store(this.#control, CONTROL_WANT_MESSAGE, 1);
    try {
      while (!this.#allEnded()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    } finally {
      if (--this.#asyncWaits === 0) {
        Atomics.store(this.#control, CONTROL_WANT_MESSAGE, 0);
        for (const w of this.#workers) w?.unref();
      }
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
      const t = this.#tickets[slot]!;
      if (t >= 0 && Atomics.load(this.#control, CONTROL_FIELDS + slot * SLOT_FIELDS) !== t * 4 + PHASE_ENDED) return false;
    }
    return true;
  }

  #worker(lane: number): Worker {
    const i = lane % WRITE_WORKERS;
    let w = this.#workers[i];
    if (w === undefined) {
      // stdout/stderr: true keeps the worker's streams its own: piping them to ours would make
      // our stdout non-blocking (libuv), and a user's fs.writeSync(1, ...) could then fail EAGAIN.
      w = new Worker(WORKER_SOURCE, {
        eval: true,
        stdout: true,
        stderr: true,
        workerData: { control: this.#control.buffer, positions: this.#positions.buffer, index: i, workers: WRITE_WORKERS, slots: MAX_WRITES_IN_FLIGHT },
      });
      w.on('message', () => {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const wake of waiters) wake();
      });
      // A store that is never closed must not keep the process alive for its workers. After the
      // listener: adding a 'message' listener refs the worker's port again.
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

/**
 * A device's writes in the background, one per zone: what both device kinds share. The device
 * checks a write and starts it here; when it ends, `apply` moves the device's own zone state
 * (the write pointer; or, on a failure, back) and returns the error to report, if any.
 */
export class ZoneWrites {
  #queue: WriteQueue | undefined;
  /** Zone -> its write in flight. */
  readonly #inFlight = new Map<number, { ticket: number; offset: number; length: number; done: number }>();
  /** Ends applied (by a wait inside the device) and not yet reported by `ended`. */
  #ended: WriteEnded[] = [];
  readonly #apply: (zone: number, length: number, end: WriteEnd) => ZnsSlabError | undefined;

  constructor(apply: (zone: number, length: number, end: WriteEnd) => ZnsSlabError | undefined) {
    this.#apply = apply;
  }

  has(zone: number): boolean {
    return this.#inFlight.has(zone);
  }

  /** Starts writing `data` (shared memory) at `position` of `fd`: zone `zone`'s append at device offset `offset`. */
  /**
   * `done`: bytes of this write at `offset` the caller already wrote itself (a first request
   * sent alone); `data` is the rest, at `position`. The write is reported whole: `offset`, and
   * `done` plus data's length, with `done` counted in the bytes written.
   */
  start(zone: number, fd: number, data: Uint8Array, position: number, offset: number, done = 0): void {
    assert(!this.#inFlight.has(zone), `zone ${zone} has no write in flight`);
    const ticket = (this.#queue ??= new WriteQueue()).start(fd, data, position, zone);
    this.#inFlight.set(zone, { ticket, offset, length: done + data.length, done });
  }

  /** Writes that ended since the last call, applied; never blocks. */
  ended(): WriteEnded[] {
    this.#collect();
    const out = this.#ended;
    this.#ended = [];
    return out;
  }

  /** Waits for `zone`'s write (or every one), applies how it ended; `ended` reports it. */
  settle(zone?: number): void {
    if (this.#inFlight.size === 0) return;
    if (zone === undefined) this.#queue!.wait();
    else {
      const w = this.#inFlight.get(zone);
      if (w === undefined) return;
      this.#queue!.wait(w.ticket);
    }
    this.#collect('wait');
    assert(zone === undefined ? this.#inFlight.size === 0 : !this.#inFlight.has(zone), 'a settled write was collected');
  }

  /** `settle`, then `ended`: what a device's `writesWait` returns. */
  wait(zone?: number): WriteEnded[] {
    this.settle(zone);
    return this.ended();
  }

  async waitAsync(): Promise<void> {
    if (this.#queue !== undefined) await this.#queue.waitAsync();
  }

  /** Waits for every write and stops the workers (before the device closes its fds). */
  close(): void {
    this.#queue?.close();
  }

  #collect(after: 'poll' | 'wait' = 'poll'): void {
    if (this.#inFlight.size === 0) return;
    for (const end of this.#queue!.ended(after)) {
      let zone = -1;
      for (const [z, w] of this.#inFlight) if (w.ticket === end.ticket) zone = z;
      assert(zone >= 0, `write ${end.ticket} ended in a zone with a write in flight`);
      const w = this.#inFlight.get(zone)!;
      this.#inFlight.delete(zone);
      const error = this.#apply(zone, w.length, w.done === 0 ? end : { ...end, written: w.done + end.written });
      this.#ended.push({ zone, offset: w.offset, length: w.length, error });
    }
  }
}
