/**
 * Durability across processes: a child writes, a fresh process (this one) reads. The crash
 * case kills the child with SIGKILL: no flush, no close, no exit handlers.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { openStore } from '../../engine/store.js';
import { payload } from '../fixtures/payload.mjs';
import { SMALL_GEOMETRY, codeOf } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const writer = path.join(here, '..', 'fixtures', 'writer.mjs');
const GEOMETRY = { ...SMALL_GEOMETRY, zoneCount: 64 };

interface Written {
  h: string;
  seed: number;
  i: number;
}

function runWriter(dir: string, scenario: string): { status: number | null; signal: NodeJS.Signals | null; out: Record<string, Written[]> } {
  const r = spawnSync(process.execPath, [writer, dir, scenario, JSON.stringify(GEOMETRY)], { encoding: 'utf8' });
  if (r.stderr) process.stderr.write(r.stderr);
  return { status: r.status, signal: r.signal, out: JSON.parse(r.stdout) as Record<string, Written[]> };
}

let tmp: ReturnType<typeof tempDir>;
let dir: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(here, '..', '..', 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it for you)');
  }
});
beforeEach(() => {
  tmp = tempDir();
  dir = path.join(tmp.dir, 'store');
});
afterEach(() => tmp.cleanup());

describe('across processes', () => {
  it('every live handle returns identical bytes in a new process; freed and closed ones are stale', () => {
    const { status, out } = runWriter(dir, 'clean');
    expect(status).toBe(0);
    expect(out.live!.length).toBe(400);
    const store = openStore(dir);
    try {
      for (const w of out.live!) expect(store.get(BigInt(w.h)).equals(payload(w.seed, w.i))).toBe(true);
      for (const w of out.gone!) expect(codeOf(() => store.get(BigInt(w.h)))).toBe(ErrorCode.STALE_HANDLE);
    } finally {
      store.close();
    }
  });

  it('after SIGKILL: flushed objects survive, unflushed handles never resolve, even after new writes', () => {
    const { signal, out } = runWriter(dir, 'crash');
    expect(signal).toBe('SIGKILL');
    const store = openStore(dir);
    try {
      for (const w of out.live!) expect(store.get(BigInt(w.h)).equals(payload(w.seed, w.i))).toBe(true);
      const lost = out.unflushed!.map((w) => BigInt(w.h));
      const check = () => {
        for (const h of lost) expect([ErrorCode.STALE_HANDLE, ErrorCode.INVALID_HANDLE]).toContain(codeOf(() => store.get(h)));
      };
      check();
      // New writes must not land under a slab id and generation a lost handle still carries.
      const fresh = Array.from({ length: 600 }, (_, i) => store.put(payload(9, i)));
      store.flush();
      check();
      fresh.forEach((h, i) => expect(store.get(h).equals(payload(9, i))).toBe(true));
      for (const w of out.live!) expect(store.get(BigInt(w.h)).equals(payload(w.seed, w.i))).toBe(true);
    } finally {
      store.close();
    }
  });
});
