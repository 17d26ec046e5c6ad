/** The built package, as a user imports it: by name, through package.json's exports. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

describe('package', () => {
  it("`import { openStore } from 'zns-slab'` works from the repo root after a build, with types", () => {
    const tmp = tempDir();
    try {
      const script = `
        import { openStore, packHandle, unpackHandle, ZnsSlabError, ErrorCode, EpochState, openLibzbdDevice, openZonedDevice, createEmulatedDevice } from 'zns-slab';
        const store = openStore(${JSON.stringify(path.join(tmp.dir, 's'))});
        const h = store.put(Buffer.from('by name'));
        const ok = store.get(h).toString() === 'by name' && unpackHandle(h).version === 1 &&
          typeof packHandle === 'function' && ErrorCode.STALE_HANDLE === 'ERR_STALE_HANDLE' &&
          new ZnsSlabError(ErrorCode.CLOSED, 'x') instanceof Error && EpochState.ACTIVE === 'ACTIVE' &&
          typeof openLibzbdDevice === 'function' && typeof openZonedDevice === 'function' && typeof createEmulatedDevice === 'function';
        store.close();
        process.stdout.write(ok ? 'ok' : 'wrong');`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ok');
    } finally {
      tmp.cleanup();
    }
  });

  it("`require('zns-slab')` works too, synchronously, with the ES module build's exports (dist/cjs, a CommonJS package)", () => {
    const tmp = tempDir();
    try {
      const script = `
        const z = require('zns-slab');
        const store = z.openStore(${JSON.stringify(path.join(tmp.dir, 's'))});
        const ok = store.get(store.put(Buffer.from('required'))).toString() === 'required' && typeof require('zns-slab/keyv').KeyvZnsSlab === 'function';
        store.close();
        import('zns-slab').then((esm) => {
          const same = JSON.stringify(Object.keys(esm).sort()) === JSON.stringify(Object.keys(z).sort());
          process.stdout.write(ok && same ? 'ok' : 'wrong: ' + ok + ' ' + same);
        });`;
      const r = spawnSync(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: root, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ok');
    } finally {
      tmp.cleanup();
    }
    expect(JSON.parse(fs.readFileSync(path.join(root, 'dist', 'cjs', 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('every subpath of exports has its files for import and require, each typed', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, { types: string; default: string }>> };
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target !== 'string') expect(Object.keys(target).sort(), subpath).toEqual(['import', 'require']);
      const files = typeof target === 'string' ? [target] : Object.values(target).flatMap((t) => [t.types, t.default]);
      for (const file of files) expect(fs.existsSync(path.join(root, file)), `${subpath}: ${file}`).toBe(true);
    }
    // Every entry point the docs import or require is exported.
    const docs = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
    const used = new Set<string>();
    for (const doc of docs) {
      for (const m of fs.readFileSync(path.join(root, doc), 'utf8').matchAll(/(?:from\s+|require\(\s*|import\(\s*)'(zns-slab(?:\/[\w./-]+)?)'/g)) {
        used.add(m[1]!.replace(/^zns-slab/, '.'));
      }
    }
    expect([...used]).toContain('./keyv');
    for (const subpath of used) expect(Object.keys(pkg.exports)).toContain(subpath);
  });
});
