/** `npm start`'s demo, run as a user runs it: a child process, JSON on stdout, text on stderr. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const demo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'tools', 'demo.js');

describe('demo', () => {
  it('writes three epochs, closes one, reopens and verifies every byte; JSON on stdout with --json, else a summary last', () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, 'data');
      const r = spawnSync(process.execPath, [demo, dir, '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as { epochs: { state: string }[]; objectsVerified: number; objectsLive: number; handlesStale: number; zonesReset: number; diskBytesAfterClose: number; diskBytesBeforeClose: number };
      expect(summary.objectsVerified).toBe(35_000);
      expect(summary.objectsLive).toBe(35_000);
      expect(summary.handlesStale).toBe(25_000);
      expect(summary.zonesReset).toBeGreaterThan(0);
      expect(summary.diskBytesAfterClose).toBeLessThan(summary.diskBytesBeforeClose);
      expect(summary.epochs.map((e) => e.state)).toEqual(['CLOSING', 'ACTIVE']);
      expect(r.stderr).toMatch(/verified byte for byte/);
      expect(fs.existsSync(path.join(dir, 'catalog.db'))).toBe(true);
      // Run twice: it replaces its own previous store... Without --json its summary comes last, as text.
      const plain = spawnSync(process.execPath, [demo, dir], { encoding: 'utf8' });
      expect(plain.status, plain.stderr).toBe(0);
      expect(plain.stdout).not.toMatch(/[{}]/);
      expect(plain.stdout.trim().split('\n').at(-1)).toMatch(/^inspect: npx zns-slab stats /);
      expect(plain.stdout).toMatch(/35000 objects verified after reopen, 25000 handles of the closed epoch refused as stale/);
      // ...but never a folder that is not a zns-slab store.
      const other = path.join(tmp.dir, 'precious');
      fs.mkdirSync(other);
      fs.writeFileSync(path.join(other, 'keep.txt'), 'mine');
      expect(spawnSync(process.execPath, [demo, other]).status).toBe(2);
      expect(fs.readFileSync(path.join(other, 'keep.txt'), 'utf8')).toBe('mine');
    } finally {
      tmp.cleanup();
    }
  });
});
