/**
 * The three bugs of the Trust I issue, each as found by a user with ordinary calls. They fail on
 * the engine before the catalog writer and the generation rule were given one owner each.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../errors.js';
import { openStore } from '../../engine/store.js';
import { SMALL_GEOMETRY, codeOf, storeFixture, type StoreFixture } from '../helpers/store.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, '..', 'fixtures', 'trust.mjs');

function runChild(dir: string, scenario: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, [child, dir, scenario, JSON.stringify(SMALL_GEOMETRY)], { encoding: 'utf8' });
  if (r.stderr) process.stderr.write(r.stderr);
  expect(r.signal).toBe('SIGKILL');
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

let fx: StoreFixture;
beforeEach(() => {
  fx = storeFixture();
});
afterEach(() => fx.cleanup());

describe('bug 1: a clean close leaves a store that opens again', () => {
  it('free empties a sealed slab of a CLOSING epoch, a domain reuses its id, then close', async () => {
    const store = fx.open();
    const h = store.put(Buffer.from('one'));
    store.flush();
    store.epochAdvance();
    store.free(h);
    using domain = store.epochDomainCreate();
    await domain.run(async () => {
      store.put(Buffer.from('scratch'));
    });
    store.close();
    fx.open().close();
    fx.open({ readOnly: true }).close();
  });

  it('free empties a sealed slab, a put reuses its id, its epoch closes, then close', () => {
    const store = fx.open();
    const h = store.put(Buffer.from('one'));
    store.flush();
    store.epochAdvance();
    store.free(h);
    const kept = store.put(Buffer.from('kept'));
    store.epochClose(store.epochCurrent());
    store.close();
    const again = fx.open();
    expect(codeOf(() => again.get(kept))).toBe(ErrorCode.STALE_HANDLE);
    again.close();
  });

  it('put; flush; free; epochClose; SIGKILL', () => {
    runChild(fx.dir, 'free-close-kill');
    fx.open().close();
  });
});

describe('bug 2: a handle handed out before a crash never returns another object', () => {
  it('a recycled slab id is never reused under a generation a lost handle may carry', () => {
    const report = runChild(fx.dir, 'lost-handle') as { lost: string; revived: string[] };
    const store = fx.open();
    store.epochAdvance(); // the revived objects' epoch is CLOSING: emptying their slab recycles its id
    for (const h of report.revived) {
      try {
        store.free(BigInt(h));
      } catch (err) {
        expect((err as { code?: string }).code).toBe(ErrorCode.STALE_HANDLE);
      }
    }
    const lost = BigInt(report.lost);
    const fresh = Array.from({ length: 40 }, (_, i) => store.put(Buffer.from(`after-${i}`)));
    expect(fresh).not.toContain(lost);
    expect([ErrorCode.STALE_HANDLE, ErrorCode.INVALID_HANDLE]).toContain(codeOf(() => store.get(lost)));
    store.close();
  });
});

describe('bug 3: a put that hits a full device loses nothing a later flush acknowledges', () => {
  it('ERR_DEVICE_FULL, close an epoch, flush, reopen: every handed-out object is there', () => {
    const geometry = { ...SMALL_GEOMETRY, zoneCount: 8 };
    const dir = path.join(fx.dir, 'small');
    let store = openStore(dir, { geometry });
    const live: { h: bigint; bytes: Buffer }[] = [];
    const first = store.epochCurrent();
    let full = false;
    for (let i = 0; !full; i++) {
      if (i % 3000 === 2999) store.epochAdvance();
      const bytes = Buffer.alloc(300 + (i % 50), i & 0xff);
      try {
        live.push({ h: store.put(bytes), bytes });
      } catch (err) {
        expect((err as { code?: string }).code).toBe(ErrorCode.DEVICE_FULL);
        full = true;
      }
    }
    store.epochClose(first);
    const survivors = live.filter((o) => codeOf(() => store.get(o.h)) === undefined);
    expect(survivors.length).toBeGreaterThan(0);
    store.flush();
    store.close();
    store = openStore(dir, { geometry });
    let lost = 0;
    for (const o of survivors) if (codeOf(() => store.get(o.h)) !== undefined || !store.get(o.h).equals(o.bytes)) lost++;
    expect(lost).toBe(0);
    store.close();
  });
});
