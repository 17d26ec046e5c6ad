/** `zns-slab stats` and `zns-slab zones`, run as a user runs them: a child process. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { openCache } from '../../cache/cache.js';
import { createEmulatedDevice, emulatedZoneFile } from '../../zns/emulated.js';
import { validate } from '../helpers/schema.js';
import { SMALL_GEOMETRY } from '../helpers/store.js';
import { tempDir } from '../helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
const statsSchema = JSON.parse(fs.readFileSync(path.join(root, 'docs', 'stats.schema.json'), 'utf8'));
const zonesSchema = JSON.parse(fs.readFileSync(path.join(root, 'docs', 'zones.schema.json'), 'utf8'));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Checks that `svg` is well-formed XML as far as tags go: every element closed, in order. */
function wellFormed(svg: string): boolean {
  const body = svg.replace(/<\?xml[^>]*\?>/, '');
  const stack: string[] = [];
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w:-]*)([^>]*?)(\/?)>/g)) {
    const [, closing, name, attrs, selfClosing] = m;
    if (/[<&](?!(lt|gt|amp|quot|apos);)/.test(attrs!)) return false;
    if (selfClosing) continue;
    if (closing) {
      if (stack.pop() !== name) return false;
    } else stack.push(name!);
  }
  return stack.length === 0 && !/&(?!(lt|gt|amp|quot|apos);)/.test(body);
}

let tmp: ReturnType<typeof tempDir>;
let storeDir: string;
let epochs: { closing: number; active: number };

beforeAll(() => {
  tmp = tempDir();
  storeDir = path.join(tmp.dir, 'store');
  const store = openStore(storeDir, { geometry: SMALL_GEOMETRY });
  const closing = store.epochCurrent();
  const hs = Array.from({ length: 40 }, (_, i) => store.put(Buffer.alloc(60_000, i)));
  store.flush();
  for (const h of hs.filter((_, i) => i % 2 === 0)) store.free(h);
  const active = store.epochAdvance();
  for (let i = 0; i < 500; i++) store.put(Buffer.alloc(200, i));
  store.close();
  epochs = { closing, active };
});
afterAll(() => tmp.cleanup());

describe('zns-slab stats', () => {
  it('recover on a cache folder that lost its catalog rebuilds a cache (openCache takes it, openStore refuses to write it)', () => {
    const dir = path.join(tmp.dir, 'cache-recover');
    const cache = openCache(dir, { maxBytes: 8 * 1024 * 1024 });
    for (let i = 0; i < 500; i++) cache.set(`k${i}`, `v${i}`);
    cache.close();
    for (const suffix of ['', '-wal', '-shm', '.reserve']) fs.rmSync(path.join(dir, `catalog.db${suffix}`), { force: true });
    const r = run('recover', dir);
    expect(r.status, r.stderr).toBe(0);
    expect(() => openStore(dir)).toThrow(expect.objectContaining({ code: 'ERR_IS_A_CACHE' }));
    const again = openCache(dir);
    expect(again.size).toBe(500);
    expect(again.get('k499')).toBe('v499');
    again.verify();
    again.close();
  });

  it('on a cache folder adds the cache counters as of its last flush, in the schema, and a text block', () => {
    const dir = path.join(tmp.dir, 'cache');
    const cache = openCache(dir, { maxBytes: 8 * 1024 * 1024 });
    for (let i = 0; i < 10_000; i++) cache.set(`k${i}`, Buffer.alloc(900, i));
    cache.get('k9999');
    cache.get('k0');
    cache.close();
    const r = run('stats', dir);
    expect(r.status, r.stderr).toBe(0);
    const snapshot = JSON.parse(r.stdout);
    expect(validate(statsSchema, snapshot)).toEqual([]);
    expect(snapshot.cache).toMatchObject({ entries: expect.any(Number), sets: 10_000, hits: 1, misses: 1, hitRatio: 0.5 });
    expect(snapshot.cache.evictions.epochs).toBeGreaterThan(0);
    expect(snapshot.cache.writeAmplification).toBeGreaterThan(1);
    expect(r.stderr).toMatch(/cache \(as of .*\): \d+ entries/);
    expect(run('stats', storeDir).stdout).not.toMatch(/"cache"/);
  });

  it('prints a snapshot that matches the documented schema, and text on stderr', () => {
    const r = run('stats', storeDir);
    expect(r.status).toBe(0);
    const snapshot = JSON.parse(r.stdout);
    expect(validate(statsSchema, snapshot)).toEqual([]);
    expect(validate(statsSchema, { ...snapshot, surprise: 1 })).toEqual(['$: unexpected surprise']);
    expect(validate(statsSchema, { ...snapshot, version: 2 })).toHaveLength(1);
    expect(snapshot.version).toBe(1);
    expect(snapshot.liveObjects).toBe(520);
    expect(snapshot.epochs.map((e: { epoch: number }) => e.epoch)).toEqual([epochs.closing, epochs.active]);
    expect(r.stderr).toMatch(/why slow\?/);
    expect(r.stderr).toMatch(/space back\?/);
  });

  it('honours --no-text, --no-json, --json and --text', () => {
    const jsonOnly = run('stats', storeDir, '--no-text');
    expect(jsonOnly.stderr).toBe('');
    expect(JSON.parse(jsonOnly.stdout).version).toBe(1);
    const textOnly = run('stats', storeDir, '--no-json');
    expect(textOnly.stdout).toBe('');
    expect(textOnly.stderr).toMatch(/zns-slab stats \(schema v1\)/);
    const neither = run('stats', storeDir, '--no-json', '--no-text');
    expect([neither.status, neither.stdout, neither.stderr]).toEqual([0, '', '']);
    const both = run('stats', storeDir, '--json', '--text');
    expect(JSON.parse(both.stdout).version).toBe(1);
    expect(both.stderr.length).toBeGreaterThan(0);
  });

  it('prints one class or one epoch', () => {
    const c = run('stats', storeDir, '--class', '0', '--no-text');
    expect(validate({ $ref: '#/$defs/classStats', $defs: statsSchema.$defs }, JSON.parse(c.stdout))).toEqual([]);
    const e = run('stats', storeDir, '--epoch', String(epochs.closing), '--no-text');
    const epoch = JSON.parse(e.stdout);
    expect(validate({ $ref: '#/$defs/epochStats', $defs: statsSchema.$defs }, epoch)).toEqual([]);
    expect(epoch.state).toBe('CLOSING');
    expect(epoch.liveObjects).toBe(20);
  });

  it('exits non-zero with one line on stderr for a missing, invalid or locked store', () => {
    const missing = run('stats', path.join(tmp.dir, 'nope'));
    expect(missing.status).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/ERR_INVALID_STORE/);
    const junk = path.join(tmp.dir, 'junk');
    fs.mkdirSync(junk);
    fs.writeFileSync(path.join(junk, 'catalog.db'), 'not a database, just some text long enough to be read as one'.repeat(40));
    const invalid = run('stats', junk);
    expect(invalid.status).toBe(1);
    expect(invalid.stderr).toMatch(/ERR_INVALID_STORE/);
    const store = openStore(storeDir);
    try {
      const locked = run('stats', storeDir);
      expect(locked.status).toBe(1);
      expect(locked.stderr).toMatch(/ERR_STORE_LOCKED/);
    } finally {
      store.close();
    }
  });

  it('is an executable bin, as `npx zns-slab` needs', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(path.resolve(root, pkg.bin['zns-slab']!)).toBe(cli);
    expect(fs.statSync(cli).mode & 0o111).not.toBe(0);
    expect(fs.readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const direct = spawnSync(cli, ['--help'], { encoding: 'utf8' });
    expect(direct.status).toBe(0);
  });

  it('names the path and what is wrong with it: missing, a regular file, a character device', () => {
    const missing = run('zones', path.join(tmp.dir, 'nope'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/ERR_INVALID_STORE: .*nope does not exist/);
    const file = path.join(tmp.dir, 'plain.txt');
    fs.writeFileSync(file, 'x');
    for (const cmd of ['stats', 'zones', 'recover']) {
      const r = run(cmd, file);
      expect(r.status, cmd).toBe(1);
      expect(r.stderr, cmd).toMatch(/plain\.txt is a regular file: give a store folder/);
      expect(r.stderr, cmd).not.toMatch(/ENOTDIR|device\.json/);
    }
    const nul = run('zones', '/dev/null');
    expect(nul.status).toBe(1);
    expect(nul.stderr).toMatch(/\/dev\/null is a character device/);
  });

  it('prints its version', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const r = run('--version');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`zns-slab ${pkg.version}\n`);
  });

  it('prints help, and exits 2 on usage errors', () => {
    expect(run('--help').status).toBe(0);
    expect(run('stats', '--help').stdout).toMatch(/--no-json/);
    expect(run('help', 'zones').stdout).toMatch(/--svg FILE/);
    expect(run().status).toBe(2);
    expect(run('stats', storeDir, '--bogus').status).toBe(2);
    expect(run('frobnicate').status).toBe(2);
    expect(run('stats').status).toBe(2);
    expect(run('stats', storeDir, '--class', 'x').status).toBe(2);
  });
});

describe('zns-slab zones', () => {
  it('on a store: one row per zone, matching what the engine knows', () => {
    const r = run('zones', storeDir, '--json');
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(validate(zonesSchema, rows)).toEqual([]);
    expect(rows).toHaveLength(SMALL_GEOMETRY.zoneCount!);
    const store = openStore(storeDir, { readOnly: true });
    try {
      expect(rows).toEqual(JSON.parse(JSON.stringify(store.statsZones())));
      for (const epoch of [epochs.closing, epochs.active]) {
        const stats = store.statsEpoch(epoch);
        const owned = rows.filter((z: { epoch: number | null }) => z.epoch === epoch);
        expect(owned).toHaveLength(stats.zones);
        expect(owned.reduce((n: number, z: { liveBytes: number }) => n + z.liveBytes, 0)).toBe(stats.liveBytes);
      }
    } finally {
      store.close();
    }
    const closingZones = rows.filter((z: { epoch: number | null }) => z.epoch === epochs.closing);
    expect(closingZones.every((z: { epochState: string; deadBytes: number }) => z.epochState === 'CLOSING' && z.deadBytes > 0)).toBe(true);
  });

  it('prints a table by default, and filters by range and condition', () => {
    const table = run('zones', storeDir);
    expect(table.status).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/zone\s+start\s+size\s+capacity\s+wp\s+fill%\s+type\s+condition\s+epoch\s+state\s+slabs\s+live\s+dead/);
    expect(lines).toHaveLength(1 + SMALL_GEOMETRY.zoneCount!);
    const range = JSON.parse(run('zones', storeDir, '--json', '--range', '2-5').stdout);
    expect(range.map((z: { index: number }) => z.index)).toEqual([2, 3, 4, 5]);
    const empty = JSON.parse(run('zones', storeDir, '--json', '--condition', 'empty').stdout);
    expect(empty.length).toBeGreaterThan(0);
    expect(empty.every((z: { condition: string }) => z.condition === 'empty')).toBe(true);
    expect(run('zones', storeDir, '--range', '99-100').status).toBe(2);
    const backwards = run('zones', storeDir, '--range', '9-2');
    expect(backwards.status).toBe(2);
    expect(backwards.stderr).toMatch(/--range 9-2: the first zone \(9\) is after the last \(2\)/);
    expect(run('zones', storeDir, '--condition', 'sleepy').status).toBe(2);
  });

  it('draws a well-formed SVG with one cell per zone', () => {
    const svg = path.join(tmp.dir, 'zones.svg');
    expect(run('zones', storeDir, '--svg', svg).status).toBe(0);
    const text = fs.readFileSync(svg, 'utf8');
    expect(wellFormed(text)).toBe(true);
    expect(text.match(/<rect class="zone"/g)).toHaveLength(SMALL_GEOMETRY.zoneCount!);
    expect(text).toMatch(new RegExp(`epoch ${epochs.closing}`));
    const some = path.join(tmp.dir, 'some.svg');
    run('zones', storeDir, '--svg', some, '--range', '0-7', '--color-by', 'condition');
    expect(fs.readFileSync(some, 'utf8').match(/<rect class="zone"/g)).toHaveLength(8);
    expect(wellFormed('<svg><g></svg></g>')).toBe(false); // the checker itself can fail
  });

  it('on a bare emulated device with no store, like blkzone report', () => {
    const devDir = path.join(tmp.dir, 'bare-device');
    const dev = createEmulatedDevice(devDir, { ...SMALL_GEOMETRY, zoneCount: 8 });
    dev.write(0, Buffer.alloc(8192, 1));
    dev.finishZone(3);
    dev.close();
    const r = run('zones', devDir, '--json');
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(validate(zonesSchema, rows)).toEqual([]);
    expect(rows.map((z: { condition: string }) => z.condition)).toEqual(['closed', 'empty', 'empty', 'full', 'empty', 'empty', 'empty', 'empty']);
    expect(rows[0].writePointer).toBe(8192);
    expect(rows[0].epoch).toBeNull();
    expect(run('zones', devDir).stdout.split('\n')[0]).not.toMatch(/epoch/);
  });

  it('report and info change nothing on an emulated device: a part-written last block (a write landing) is left as it is', () => {
    const devDir = path.join(tmp.dir, 'landing-device');
    const dev = createEmulatedDevice(devDir, { ...SMALL_GEOMETRY, zoneCount: 8 });
    dev.write(0, Buffer.alloc(8192, 1));
    dev.close();
    // A store beside this would be writing zone 0: the file already holds part of the next block.
    fs.appendFileSync(emulatedZoneFile(devDir, 0), Buffer.alloc(100, 2));
    for (const args of [['zones', devDir, '--json'], ['zones', 'report', devDir, '--json'], ['zones', 'info', devDir]]) {
      const r = run(...args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(fs.statSync(emulatedZoneFile(devDir, 0)).size, args.join(' ')).toBe(8192 + 100);
    }
    // Whole blocks only count, as a reopen would count them.
    expect(JSON.parse(run('zones', devDir, '--json').stdout)[0].writePointer).toBe(8192);
  });
});
