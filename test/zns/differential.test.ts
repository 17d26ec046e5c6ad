/**
 * The differential harness (test/zns/differential.ts) on the host: deterministic generation,
 * the emulation against itself (no divergence), and a planted divergence found and shrunk to
 * its shortest sequence. The kernel-against-emulation runs are test/zns/differential.device.test.ts (VM).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, ZnsSlabError } from '../../errors.js';
import type { ZonedDevice } from '../../zns/device.js';
import { createEmulatedDevice } from '../../zns/emulated.js';
import { type Op, describeOp, divergenceKey, formatDivergence, generate, runPair, shrink } from './differential.js';

const GEOMETRY = { zoneCount: 16, zoneSize: 1 << 20, zoneCapacity: 768 * 1024, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 6 };
const dirs: string[] = [];
const devices: ZonedDevice[] = [];
function emulated(): ZonedDevice {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-diff-'));
  dirs.push(dir);
  const dev = createEmulatedDevice(dir, GEOMETRY);
  devices.push(dev);
  return dev;
}
afterEach(() => {
  for (const d of devices.splice(0)) d.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('differential harness', () => {
  it('generates the same operations from the same seed, and others from another', () => {
    expect(generate(7, 200, 8)).toEqual(generate(7, 200, 8));
    expect(generate(7, 200, 8)).not.toEqual(generate(8, 200, 8));
    const kinds = new Set(generate(1, 2000, 8).map((o) => o.op));
    expect([...kinds].sort()).toEqual(['close', 'finish', 'open', 'read', 'reset', 'reset-all', 'write']);
  });

  it('finds no divergence between the emulation and itself (20 seeds x 200 ops)', () => {
    const a = emulated();
    const b = emulated();
    for (let seed = 1; seed <= 20; seed++) expect(runPair(a, b, generate(seed, 200, 8), GEOMETRY, 8)).toBeUndefined();
  });

  it('finds a planted divergence and shrinks it to the shortest sequence that shows it', () => {
    const a = emulated();
    const inner = emulated();
    // A device that gets one rule wrong: finishing an EXPLICIT_OPEN zone 2 is refused.
    const b = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'finishZone') {
          return (zone: number) => {
            if (zone === 2 && target.reportZones(2, 1)[0]!.condition === 3) throw new ZnsSlabError(ErrorCode.ZONE_CONDITION, 'planted');
            target.finishZone(zone);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    }) as ZonedDevice;
    let seed = 1;
    let ops: Op[] = [];
    let d;
    for (; seed < 200; seed++) {
      ops = generate(seed, 200, 8);
      d = runPair(a, b, ops, GEOMETRY, 8);
      if (d) break;
    }
    expect(d).toBeDefined();
    const key = divergenceKey(d!);
    const shortest = shrink(ops.slice(0, d!.index + 1), (o) => {
      const x = runPair(a, b, o, GEOMETRY, 8);
      return x !== undefined && divergenceKey(x) === key;
    });
    expect(shortest.map(describeOp)).toEqual(['open z2', 'finish z2']);
    const text = formatDivergence('planted', seed, shortest, runPair(a, b, shortest, GEOMETRY, 8)!, ['a', 'b']);
    expect(text).toContain(`seed ${seed}`);
    expect(text).toContain('2. finish z2');
  });
});
