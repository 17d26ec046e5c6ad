/**
 * Differential testing of zoned devices (issue 14): a seeded random sequence of zone operations
 * runs on two devices (a kernel device through LibzbdDevice, and the emulation with the
 * matching geometry and profile) and is compared operation by operation: the result class (ok,
 * or the error code) and the report of every zone (condition, write pointer) after each one.
 * A divergence is shrunk (delta debugging on the operation list, each candidate replayed on
 * reset devices) to the shortest sequence that still shows one, printed with its seed.
 *
 * The operations are generated from the seed alone; a write's offset and length are relative
 * (at the write pointer, a few blocks off it; so many blocks, up to the capacity and past it)
 * and resolved against the first device's report when the operation runs, so the same list
 * means the same bytes on both devices while they agree, and keeps its meaning when shrunk.
 */
import { ZnsSlabError } from '../../errors.js';
import { type Zone, type ZonedDevice, ZONE_CONDITION_NAMES, ZoneCondition } from '../../zns/device.js';

/** Where a write goes, relative to its zone's write pointer (from the first device's report). */
export type WriteAt = { at: 'wp' } | { at: 'wp+'; blocks: number } | { at: 'start' };
/** How long a write is: so many blocks, or up to the capacity plus (or minus) some blocks. */
export type WriteLength = { blocks: number } | { toCapacity: number };

export type Op =
  | { op: 'write'; zone: number; where: WriteAt; length: WriteLength }
  | { op: 'read'; zone: number; past: 'wp' | 'capacity' }
  | { op: 'reset' | 'open' | 'close' | 'finish'; zone: number }
  | { op: 'reset-all' };

export interface DiffGeometry {
  zoneCount: number;
  zoneSize: number;
  zoneCapacity: number;
  logicalBlockSize: number;
}

/** mulberry32: small, fast, and the same on every Node. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` operations from `seed`, on the first `zones` zones (few, so the open and active
 * limits are reached often). Writes are mostly small (the VM's CPU is emulated), some many
 * blocks (the kernel splits those into several requests), some up to or past the capacity.
 */
export function generate(seed: number, count: number, zones: number): Op[] {
  const r = rng(seed);
  const pick = (n: number) => Math.floor(r() * n);
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const zone = pick(zones);
    const x = r();
    if (x < 0.5) {
      const y = r();
      const where: WriteAt = y < 0.9 ? { at: 'wp' } : y < 0.96 ? { at: 'wp+', blocks: 1 + pick(4) } : { at: 'start' };
      const z = r();
      const length: WriteLength =
        z < 0.5 ? { blocks: 1 } : z < 0.8 ? { blocks: 2 + pick(7) } : z < 0.93 ? { blocks: 24 + pick(72) } : { toCapacity: pick(5) - 2 };
      ops.push({ op: 'write', zone, where, length });
    } else if (x < 0.58) ops.push({ op: 'read', zone, past: r() < 0.7 ? 'wp' : 'capacity' });
    else if (x < 0.68) ops.push({ op: 'reset', zone });
    else if (x < 0.8) ops.push({ op: 'open', zone });
    else if (x < 0.9) ops.push({ op: 'close', zone });
    else if (x < 0.98) ops.push({ op: 'finish', zone });
    else ops.push({ op: 'reset-all' });
  }
  return ops;
}

/** What an operation came to: 'ok' or the error's code (a non-package error: its message). */
export type Outcome = string;
/** A zone as compared: condition and write pointer, relative to the zone start. */
export type ZoneView = string;

export function viewZones(zones: Zone[]): ZoneView[] {
  return zones.map((z) => `${ZONE_CONDITION_NAMES[z.condition] ?? z.condition}@${z.condition === ZoneCondition.FULL ? 'full' : z.writePointer - z.start}`);
}

/**
 * What is compared of an outcome: ok, one of the limits, or refused (every other error: the
 * kernel answers a misplaced write, a write to a FULL zone, a split write that failed part way
 * and a zone operation in the wrong condition alike, with EIO).
 */
export function outcomeClass(o: Outcome): string {
  return o === 'ok' || o === 'ERR_ZONE_OPEN_LIMIT' || o === 'ERR_ZONE_ACTIVE_LIMIT' ? o : 'refused';
}

function outcomeOf(fn: () => void): Outcome {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof ZnsSlabError) return err.code;
    return `thrown: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The offset and length of a write, against `reference`'s report. */
export function resolveWrite(op: Extract<Op, { op: 'write' }>, reference: Zone, g: DiffGeometry): { offset: number; length: number } {
  const wp = reference.condition === ZoneCondition.FULL ? reference.start + g.zoneCapacity : reference.writePointer;
  const lbs = g.logicalBlockSize;
  const offset = op.where.at === 'wp' ? wp : op.where.at === 'start' ? reference.start : wp + op.where.blocks * lbs;
  let length: number;
  if ('blocks' in op.length) length = op.length.blocks * lbs;
  else length = reference.start + g.zoneCapacity - offset + op.length.toCapacity * lbs;
  if (length <= 0) length = lbs;
  // Not past the zone's end into the next zone's LBAs, and inside the device.
  length = Math.min(length, reference.start + g.zoneSize - offset);
  if (length <= 0) length = lbs;
  return { offset, length };
}

/** Bytes of a write: the op's index in the block's first byte, so misplaced data shows. */
function payload(length: number, tag: number): Buffer {
  return Buffer.alloc(length, tag & 0xff);
}

/**
 * Runs one operation on `dev`; writes resolved to `at`, reads against `zones` (the reference
 * device's report before the operation).
 */
export function apply(dev: ZonedDevice, op: Op, g: DiffGeometry, at: { offset: number; length: number } | undefined, tag: number, zones: Zone[]): Outcome {
  switch (op.op) {
    case 'write':
      return outcomeOf(() => dev.write(at!.offset, payload(at!.length, tag)));
    case 'read': {
      const z = zones[op.zone]!;
      const end = op.past === 'wp' ? (z.condition === ZoneCondition.FULL ? z.start + g.zoneCapacity : z.writePointer) : z.start + g.zoneCapacity;
      // One block across the line (the block before it and the one after).
      const from = Math.max(z.start, end - g.logicalBlockSize);
      return outcomeOf(() => dev.read(from, Math.min(2 * g.logicalBlockSize, z.start + g.zoneSize - from)));
    }
    case 'reset':
      return outcomeOf(() => dev.resetZone(op.zone));
    case 'open':
      return outcomeOf(() => dev.openZone(op.zone));
    case 'close':
      return outcomeOf(() => dev.closeZone(op.zone));
    case 'finish':
      return outcomeOf(() => dev.finishZone(op.zone));
    case 'reset-all':
      return outcomeOf(() => resetAll(dev));
  }
}

/** Every zone back to EMPTY (only those that are not). */
export function resetAll(dev: ZonedDevice): void {
  for (const z of dev.reportZones()) if (z.condition !== ZoneCondition.EMPTY) dev.resetZone(z.index);
}

export interface Step {
  index: number;
  op: Op;
  at?: { offset: number; length: number };
  outcomes: [Outcome, Outcome];
  zones: [ZoneView[], ZoneView[]];
}

export interface Divergence {
  /** Index of the first operation whose outcome or zone report differs. */
  index: number;
  step: Step;
}

/**
 * Runs `ops` on both devices (each reset first), stopping at the first divergence. Zones are
 * compared over the first `zones` zones (the ones the ops touch) plus one.
 */
export function runPair(a: ZonedDevice, b: ZonedDevice, ops: Op[], g: DiffGeometry, zones: number): Divergence | undefined {
  resetAll(a);
  resetAll(b);
  const shown = Math.min(zones + 1, g.zoneCount);
  // One report per device per operation: the reference's also places the next operation.
  let reference = a.reportZones(0, shown);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const at = op.op === 'write' ? resolveWrite(op, reference[op.zone]!, g) : undefined;
    const outcomes: [Outcome, Outcome] = [apply(a, op, g, at, i + 1, reference), apply(b, op, g, at, i + 1, reference)];
    reference = a.reportZones(0, shown);
    const views: [ZoneView[], ZoneView[]] = [viewZones(reference), viewZones(b.reportZones(0, shown))];
    if (outcomeClass(outcomes[0]) !== outcomeClass(outcomes[1]) || views[0].join() !== views[1].join()) {
      return { index: i, step: { index: i, op, at, outcomes, zones: views } };
    }
  }
  return undefined;
}

/**
 * The shortest sublist of `ops` (ddmin, then one-at-a-time removal) for which `diverges` still
 * holds. `diverges(ops)` must hold for the input.
 */
export function shrink(ops: Op[], diverges: (ops: Op[]) => boolean): Op[] {
  let cur = ops;
  let n = 2;
  while (cur.length >= 2) {
    const chunk = Math.ceil(cur.length / n);
    let reduced = false;
    for (let start = 0; start < cur.length; start += chunk) {
      const complement = [...cur.slice(0, start), ...cur.slice(start + chunk)];
      if (complement.length > 0 && diverges(complement)) {
        cur = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= cur.length) break;
      n = Math.min(cur.length, 2 * n);
    }
  }
  // 1-minimal: no single op can go.
  for (let i = cur.length - 1; i >= 0 && cur.length > 1; i--) {
    const without = [...cur.slice(0, i), ...cur.slice(i + 1)];
    if (diverges(without)) cur = without;
  }
  return cur;
}

export function describeOp(op: Op): string {
  switch (op.op) {
    case 'write': {
      const where = op.where.at === 'wp' ? 'at wp' : op.where.at === 'start' ? 'at zone start' : `at wp+${op.where.blocks} blocks`;
      const len = 'blocks' in op.length ? `${op.length.blocks} blocks` : `to capacity${op.length.toCapacity >= 0 ? '+' : ''}${op.length.toCapacity} blocks`;
      return `write z${op.zone} ${len} ${where}`;
    }
    case 'read':
      return `read z${op.zone} across ${op.past}`;
    case 'reset-all':
      return 'reset-all';
    default:
      return `${op.op} z${op.zone}`;
  }
}

/** A divergence as a person reads it: the seed, the sequence, and where and how it differs. */
export function formatDivergence(label: string, seed: number, ops: Op[], d: Divergence, names: [string, string]): string {
  const lines = [`${label}: seed ${seed} diverges at op ${d.index + 1} of the shortest sequence (${ops.length} ops):`];
  ops.forEach((op, i) => lines.push(`  ${i + 1}. ${describeOp(op)}${i === d.index && d.step.at ? ` (offset ${d.step.at.offset}, ${d.step.at.length} bytes)` : ''}`));
  lines.push(`  ${names[0]}: ${d.step.outcomes[0]}; zones ${d.step.zones[0].join(' ')}`);
  lines.push(`  ${names[1]}: ${d.step.outcomes[1]}; zones ${d.step.zones[1].join(' ')}`);
  return lines.join('\n');
}

/** The divergence `runPair` finds, as a class that survives shrinking: which op kind and which outcomes. */
export function divergenceKey(d: Divergence): string {
  const o = d.step.outcomes.map(outcomeClass);
  return `${d.step.op.op}: ${o[0]} vs ${o[1]}${o[0] === o[1] ? ' (zone reports differ)' : ''}`;
}
