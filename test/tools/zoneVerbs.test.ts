/**
 * `zns-slab zones info|report|reset|open|close|finish` on the emulated device, run as a user
 * runs them: `node dist/tools/cli.js` in a child process. Every check reads the device back
 * (openEmulatedDevice(...).reportZones()) rather than trusting the tool's own JSON.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store.js';
import { ErrorCode } from '../../errors.js';
import { ZONE_CONDITION_NAMES, type Zone } from '../../zns/device.js';
import { createEmulatedDevice, openEmulatedDevice } from '../../zns/emulated.js';
import { type ZoneOpResult, ZoneToolExit } from '../../tools/zoneVerbs.js';
import { tempDir } from '../helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
const MIB = 1024 * 1024;
/** Open limit below the active limit, so opening past it trips ERR_ZONE_OPEN_LIMIT (not the active one). */
const GEOMETRY = { zoneCount: 16, zoneSize: MIB, zoneCapacity: MIB, logicalBlockSize: 4096, maxOpenZones: 2, maxActiveZones: 4 };
const STORE_GEOMETRY = { zoneCount: 32, zoneSize: MIB, zoneCapacity: MIB, logicalBlockSize: 4096, maxOpenZones: 4, maxActiveZones: 4 };
/** A terminal for the prompt tests: util-linux script(1) runs the command on a pty. */
const SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' });
const HAVE_SCRIPT = SCRIPT.status === 0;
/** How long a child may take to open a store and say so. */
const CHILD_READY_MS = 20_000;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI with stdin a pipe (not a terminal), given `input` or nothing. */
function run(args: string[], input = ''): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The device's zones, read back by a fresh opener. */
function report(dir: string): Zone[] {
  const dev = openEmulatedDevice(dir);
  try {
    return dev.reportZones();
  } finally {
    dev.close();
  }
}
const names = (zones: readonly Zone[]) => zones.map((z) => ZONE_CONDITION_NAMES[z.condition]);
const written = (zones: readonly Zone[]) => zones.map((z) => z.writePointer - z.start);

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

/**
 * A device with zone 0 partly written (8 KiB, closed), zone 1 full, zone 2 partly written
 * (4 KiB, closed), the rest empty.
 */
function device(name = 'dev'): string {
  const dir = path.join(tmp.dir, name);
  const dev = createEmulatedDevice(dir, GEOMETRY);
  dev.write(0, Buffer.alloc(8192, 1));
  dev.write(MIB, Buffer.alloc(MIB, 2));
  dev.write(2 * MIB, Buffer.alloc(4096, 3));
  dev.close();
  return dir;
}

/** A closed store with data in its first zones; returns its folder and the zones its catalog owns. */
function store(): { dir: string; owned: number[]; storeId: string } {
  const dir = path.join(tmp.dir, 'store');
  const s = openStore(dir, { geometry: STORE_GEOMETRY });
  for (let i = 0; i < 60; i++) s.put(Buffer.alloc(60_000, i));
  s.flush();
  const owned = s.statsZones().filter((z) => z.epoch !== null).map((z) => z.index);
  s.close();
  const storeId = JSON.parse(fs.readFileSync(path.join(dir, 'device', 'device.json'), 'utf8')).owner as string;
  return { dir, owned, storeId };
}

/** A child process that opens `code`'s store or device and holds it until killed. */
async function holder(code: string): Promise<ChildProcess> {
  const script = `import(${JSON.stringify(path.join(root, 'dist', 'index.js'))}).then((m) => { ${code}; console.log('ready'); setInterval(() => {}, 1000); })`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let errText = '';
    const timer = setTimeout(() => reject(new Error(`holder not ready after ${CHILD_READY_MS} ms: ${errText}`)), CHILD_READY_MS);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (errText += d.toString()));
    child.on('exit', (status) => {
      clearTimeout(timer);
      reject(new Error(`holder exited ${status}: ${errText}`));
    });
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

describe('zns-slab zones info', () => {
  it('prints geometry, limits, sizes, kind, model, conditions; no store owns a bare device', () => {
    const dir = device();
    const r = run(['zones', 'info', dir]);
    expect(r.status, r.stderr).toBe(ZoneToolExit.OK);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({
      target: dir,
      kind: 'emulated',
      model: 'emulated',
      kernel: null,
      emulated: { folder: path.resolve(dir), lockedBy: null },
      geometry: GEOMETRY,
      bytes: { zoneSize: MIB, zoneCapacity: MIB, deviceSize: 16 * MIB, deviceCapacity: 16 * MIB, written: MIB + 8192 + 4096 },
      human: { zoneSize: '1.0 MiB', zoneCapacity: '1.0 MiB', deviceSize: '16.0 MiB', deviceCapacity: '16.0 MiB', written: '1.0 MiB' },
      store: null,
    });
    expect(info.conditions).toMatchObject({ empty: 13, closed: 2, full: 1, 'explicit-open': 0 });
    expect(r.stderr).toMatch(/emulated zoned device, folder /);
    expect(r.stderr).toMatch(/zones: 16 of 1\.0 MiB \(1048576 bytes\)/);
    expect(r.stderr).toMatch(/limits: open 2, active 4/);
    expect(r.stderr).toMatch(/no zns-slab store owns it/);
  });

  it('on a store, its device folder, and a copy of the device: who owns it and how that is known', () => {
    const s = store();
    for (const target of [s.dir, path.join(s.dir, 'device')]) {
      const r = run(['zones', 'info', target]);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).store).toEqual({ dir: path.resolve(s.dir), storeId: s.storeId, ownedZones: s.owned.length, source: 'catalog', running: false });
      expect(r.stderr).toContain(`owned by store ${path.resolve(s.dir)} (store id ${s.storeId}): ${s.owned.length} zones (by its catalog)`);
    }
    // Away from its store folder the slab headers still say whose data it is.
    const copy = path.join(tmp.dir, 'copy');
    fs.cpSync(path.join(s.dir, 'device'), copy, { recursive: true });
    const r = run(['zones', 'info', copy]);
    expect(JSON.parse(r.stdout).store).toEqual({ dir: null, storeId: s.storeId, ownedZones: s.owned.length, source: 'slab headers', running: false });
  });

  it('looks at a store open in another process: its device, ownership from the slab headers', async () => {
    const s = store();
    const child = await holder(`m.openStore(${JSON.stringify(s.dir)})`);
    try {
      for (const target of [s.dir, path.join(s.dir, 'device')]) {
        const r = run(['zones', 'info', target]);
        expect(r.status, r.stderr).toBe(0);
        const info = JSON.parse(r.stdout);
        expect(info.store).toEqual({ dir: path.resolve(s.dir), storeId: s.storeId, ownedZones: s.owned.length, source: 'slab headers', running: true });
        expect(info.emulated.lockedBy).toBe(child.pid);
        expect(r.stderr).toContain(`${s.owned.length} zones (by its slab headers), open in another process`);
      }
    } finally {
      await stop(child);
    }
  });

  it('names the process that holds an emulated device open', async () => {
    const dir = device();
    const child = await holder(`m.openZonedDevice(${JSON.stringify(dir)}, { exclusive: true })`);
    try {
      const r = run(['zones', 'info', dir]);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).emulated.lockedBy).toBe(child.pid);
      expect(r.stderr).toContain(`open in process ${child.pid}`);
    } finally {
      await stop(child);
    }
  });
});

describe('zns-slab zones report', () => {
  it('is the explicit name of `zones <target>`, which keeps working', () => {
    const dir = device();
    const plain = run(['zones', dir, '--json']);
    const named = run(['zones', 'report', dir, '--json']);
    expect(plain.status).toBe(0);
    expect(named.status).toBe(0);
    expect(named.stdout).toBe(plain.stdout);
    expect(JSON.parse(named.stdout).map((z: { condition: string }) => z.condition).slice(0, 3)).toEqual(['closed', 'full', 'closed']);
    expect(run(['zones', 'report', dir, '--range', '1-2']).stdout).toBe(run(['zones', dir, '--range', '1-2']).stdout);
  });
});

describe('zns-slab zones reset|open|close|finish', () => {
  it('reset --yes: one zone, then a range; each zone reported before and after', () => {
    const dir = device();
    const one = run(['zones', 'reset', dir, '0', '--yes']);
    expect(one.status, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual([
      { zone: 0, start: 0, conditionBefore: 'closed', writePointerBefore: 8192, conditionAfter: 'empty', writePointerAfter: 0, skipped: null, ok: true, code: null, message: null, owner: null },
    ]);
    expect(names(report(dir)).slice(0, 3)).toEqual(['empty', 'full', 'closed']);
    const range = run(['zones', 'reset', dir, '0-3', '--yes']);
    expect(range.status, range.stderr).toBe(0);
    const rows = JSON.parse(range.stdout) as ZoneOpResult[];
    expect(rows.map((r) => [r.zone, r.conditionBefore, r.conditionAfter, r.skipped])).toEqual([
      [0, 'empty', 'empty', 'already empty'],
      [1, 'full', 'empty', null],
      [2, 'closed', 'empty', null],
      [3, 'empty', 'empty', 'already empty'],
    ]);
    expect(rows[1]!.writePointerBefore).toBe(2 * MIB); // FULL: start + size, as the kernel reports
    expect(range.stderr).toMatch(/zones reset: 2 done, 2 needed nothing, 0 failed, of 4 zones/);
    const after = report(dir);
    expect(names(after).every((c) => c === 'empty')).toBe(true);
    expect(written(after).every((w) => w === 0)).toBe(true);
  });

  it('open, close and finish on a zone and a range; open zones stay open after the command (and after a report)', () => {
    const dir = device();
    expect(run(['zones', 'open', dir, '3']).status).toBe(0);
    expect(names(report(dir)).slice(0, 5)).toEqual(['closed', 'full', 'closed', 'explicit-open', 'empty']);
    const opened = run(['zones', 'open', dir, '--range', '2-3']);
    expect(opened.status, opened.stderr).toBe(0);
    expect((JSON.parse(opened.stdout) as ZoneOpResult[]).map((r) => [r.conditionBefore, r.conditionAfter, r.skipped])).toEqual([
      ['closed', 'explicit-open', null],
      ['explicit-open', 'explicit-open', 'already open'],
    ]);
    // Looking (zones report, info) leaves them open.
    expect(run(['zones', dir, '--json']).status).toBe(0);
    expect(run(['zones', 'info', dir]).status).toBe(0);
    let zones = report(dir);
    expect(names(zones).slice(0, 5)).toEqual(['closed', 'full', 'explicit-open', 'explicit-open', 'empty']);
    expect(written(zones).slice(0, 4)).toEqual([8192, MIB, 4096, 0]);

    const closed = run(['zones', 'close', dir, '0-4']);
    expect(closed.status, closed.stderr).toBe(0);
    expect((JSON.parse(closed.stdout) as ZoneOpResult[]).map((r) => [r.zone, r.conditionAfter, r.skipped])).toEqual([
      [0, 'closed', 'already closed'],
      [1, 'full', 'not open (full)'],
      [2, 'closed', null], // written: closed
      [3, 'empty', null], // nothing written: empty again
      [4, 'empty', 'not open (empty)'],
    ]);
    zones = report(dir);
    expect(names(zones).slice(0, 5)).toEqual(['closed', 'full', 'closed', 'empty', 'empty']);

    const finished = run(['zones', 'finish', dir, '2-3', '--yes']);
    expect(finished.status, finished.stderr).toBe(0);
    zones = report(dir);
    expect(names(zones).slice(0, 5)).toEqual(['closed', 'full', 'full', 'full', 'empty']);
    expect(zones[2]!.writePointer).toBe(3 * MIB);
    expect(zones[3]!.writePointer).toBe(4 * MIB);
    expect(run(['zones', 'finish', dir, '1', '--yes']).stdout).toMatch(/"skipped": "already full"/);
  });

  it('--all acts on every zone', () => {
    const dir = device();
    const r = run(['zones', 'reset', dir, '--all', '--yes']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(GEOMETRY.zoneCount);
    expect(names(report(dir)).every((c) => c === 'empty')).toBe(true);
  });

  it('opening past the open limit: the device error per zone, the others done, exit ZONES_FAILED', () => {
    const dir = path.join(tmp.dir, 'dev');
    createEmulatedDevice(dir, GEOMETRY).close();
    const r = run(['zones', 'open', dir, '0-3']);
    expect(r.status).toBe(ZoneToolExit.ZONES_FAILED);
    const rows = JSON.parse(r.stdout) as ZoneOpResult[];
    expect(rows.map((x) => [x.zone, x.ok, x.code, x.conditionAfter])).toEqual([
      [0, true, null, 'explicit-open'],
      [1, true, null, 'explicit-open'],
      [2, false, ErrorCode.ZONE_OPEN_LIMIT, 'empty'],
      [3, false, ErrorCode.ZONE_OPEN_LIMIT, 'empty'],
    ]);
    expect(rows[2]!.message).toMatch(/limit is 2/);
    expect(r.stderr).toMatch(/2 done, 0 needed nothing, 2 failed/);
    expect(r.stderr).toMatch(/zone 2: ERR_ZONE_OPEN_LIMIT/);
    expect(names(report(dir)).slice(0, 4)).toEqual(['explicit-open', 'explicit-open', 'empty', 'empty']);
  });

  it('--dry-run prints the plan and changes nothing', () => {
    const dir = device();
    const before = report(dir);
    const r = run(['zones', 'reset', dir, '0-2', '--dry-run']);
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as ZoneOpResult[];
    expect(rows.map((x) => [x.conditionBefore, x.conditionAfter, x.writePointerAfter])).toEqual([
      ['closed', null, null],
      ['full', null, null],
      ['closed', null, null],
    ]);
    expect(r.stderr).toMatch(/dry run: would reset 3 zones of .* \(1\.0 MiB written\); 0 need nothing\. Nothing was changed\./);
    expect(report(dir)).toEqual(before);
  });

  it('reset and finish without --yes and without a terminal refuse and change nothing; open and close do not ask', () => {
    const dir = device();
    const before = report(dir);
    for (const op of ['reset', 'finish']) {
      const r = run(['zones', op, dir, '0-3'], 'y\n'); // an answer on a pipe is not a terminal's
      expect(r.status, r.stderr).toBe(ZoneToolExit.NOT_CONFIRMED);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`zones ${op}: not confirmed: .* needs --yes when there is no terminal to ask on; nothing was changed`));
    }
    expect(run(['zones', 'reset', dir, '0-3']).stderr).toMatch(/resetting 3 zones of .* \(1\.0 MiB written\)/);
    expect(report(dir)).toEqual(before);
    // Nothing to destroy, nothing to ask.
    expect(run(['zones', 'reset', dir, '5-6']).status).toBe(0);
    expect(run(['zones', 'open', dir, '5']).status).toBe(0);
    expect(run(['zones', 'close', dir, '5']).status).toBe(0);
  });

  it.skipIf(!HAVE_SCRIPT)(`asks on a terminal: n changes nothing, y resets (driven through script(1)${HAVE_SCRIPT ? '' : ': not installed, skipped'})`, () => {
    const dir = device();
    const before = report(dir);
    const onTerminal = (answer: string) => {
      const command = [process.execPath, cli, 'zones', 'reset', dir, '0-2'].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
      const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', input: answer });
      return { status: r.status, output: r.stdout };
    };
    const no = onTerminal('n\n');
    expect(no.status, no.output).toBe(ZoneToolExit.NOT_CONFIRMED);
    expect(no.output).toMatch(/Reset 3 zones of .* \(1\.0 MiB written\)\? \[y\/N\]/);
    expect(no.output).toMatch(/not confirmed; nothing was changed/);
    expect(report(dir)).toEqual(before);
    const yes = onTerminal('y\n');
    expect(yes.status, yes.output).toBe(ZoneToolExit.OK);
    expect(yes.output).toMatch(/zones reset: 3 done/);
    expect(names(report(dir)).slice(0, 3)).toEqual(['empty', 'empty', 'empty']);
  });

  it('usage errors exit 2; a missing target exits 1 naming it', () => {
    const dir = device();
    for (const args of [
      ['zones', 'reset', dir],
      ['zones', 'reset', dir, '3', '--all'],
      ['zones', 'reset', dir, '5-2', '--yes'],
      ['zones', 'reset', dir, '99', '--yes'],
      ['zones', 'reset', dir, 'x'],
      ['zones', 'open', dir, '1', '--svg', 'f.svg'],
      ['zones', 'info', dir, '3'],
      ['zones', 'info'],
      ['zones', 'reset', dir, '1', '2'],
    ]) {
      const r = run(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(ZoneToolExit.USAGE);
      expect(r.stderr).toMatch(/^zns-slab: /);
    }
    const missing = run(['zones', 'reset', path.join(tmp.dir, 'nope'), '1', '--yes']);
    expect(missing.status).toBe(ZoneToolExit.ERROR);
    expect(missing.stderr).toMatch(/ERR_INVALID_STORE: .*nope does not exist/);
    const file = path.join(tmp.dir, 'file');
    fs.writeFileSync(file, 'x');
    expect(run(['zones', 'info', file]).stderr).toMatch(/is a regular file/);
    expect(run(['zones', 'info', tmp.dir]).stderr).toMatch(/ERR_INVALID_STORE: no emulated zoned device/);
  });
});

describe('zones a store owns', () => {
  it('are refused without --force, by store folder, its device folder and a copy of the device; nothing changes', () => {
    const s = store();
    expect(s.owned.length).toBeGreaterThan(1);
    const deviceDir = path.join(s.dir, 'device');
    const before = report(deviceDir);
    const last = s.owned[s.owned.length - 1]!;
    for (const target of [s.dir, deviceDir]) {
      for (const op of ['reset', 'finish', 'open', 'close']) {
        for (const extra of [[], ['--dry-run']]) {
          const r = run(['zones', op, target, `0-${last + 2}`, '--yes', ...extra]);
          if (op === 'close') {
            // The store closed its zones: close has nothing to do on them, so nothing is refused.
            expect(r.status, r.stderr).toBe(0);
            continue;
          }
          expect(r.status, `${op} ${target}: ${r.stderr}`).toBe(ZoneToolExit.OWNED);
          expect(r.stdout).toBe('');
          expect(r.stderr).toContain(`zones ${op}: refused:`);
          // finish skips the full ones: only the store's head zone (closed) is left to refuse.
          expect(r.stderr).toMatch(op === 'finish' ? /refused: zone \d+ of .* belongs to store/ : /refused: zones 0-\d+ of .* belong to store/);
          expect(r.stderr).toContain(`to store ${s.dir} (id ${s.storeId}); nothing was changed`);
          expect(r.stderr).toContain('Give --force');
        }
      }
    }
    expect(report(deviceDir)).toEqual(before);
    // Zones the store does not own are free to change.
    expect(run(['zones', 'open', s.dir, String(last + 2)]).status).toBe(0);
    expect(run(['zones', 'close', s.dir, String(last + 2)]).status).toBe(0);
    const copy = path.join(tmp.dir, 'copy');
    fs.cpSync(deviceDir, copy, { recursive: true });
    const r = run(['zones', 'reset', copy, '--all', '--yes']);
    expect(r.status).toBe(ZoneToolExit.OWNED);
    expect(r.stderr).toContain(`belong to zns-slab store ${s.storeId} (found by its slab headers)`);
    expect(report(copy)).toEqual(before);
    openStore(s.dir).close(); // untouched: it opens
  });

  it('--force changes them on a closed store, which then refuses to open (ERR_DEVICE_MISMATCH) and salvages the rest', () => {
    const s = store();
    const zone = s.owned[0]!;
    const r = run(['zones', 'reset', s.dir, String(zone), '--force', '--yes']);
    expect(r.status, r.stderr).toBe(0);
    const [row] = JSON.parse(r.stdout) as ZoneOpResult[];
    expect(row).toMatchObject({ zone, ok: true, conditionAfter: 'empty', writePointerAfter: zone * MIB, owner: s.storeId });
    expect(r.stderr).toMatch(/--force: zone \d+ belonged to a store\. .*ERR_DEVICE_MISMATCH/);
    expect(report(path.join(s.dir, 'device'))[zone]!.writePointer).toBe(zone * MIB);
    expect(() => openStore(s.dir)).toThrow(expect.objectContaining({ code: ErrorCode.DEVICE_MISMATCH }));
    const salvaged = openStore(s.dir, { salvage: true });
    expect(salvaged.statsZones().filter((z) => z.damaged).map((z) => z.index)).toEqual([zone]);
    salvaged.close();
  });

  it('a store open in another process is refused even with --force (its catalog\'s lock), and nothing changes', async () => {
    const s = store();
    const deviceDir = path.join(s.dir, 'device');
    const before = report(deviceDir);
    const child = await holder(`m.openStore(${JSON.stringify(s.dir)})`);
    try {
      for (const args of [
        ['reset', s.dir, '--all', '--force', '--yes'],
        ['open', deviceDir, String(s.owned.at(-1)! + 2), '--force'],
        ['reset', deviceDir, '0', '--force', '--dry-run'],
      ]) {
        const r = run(['zones', ...args]);
        expect(r.status, r.stderr).toBe(ZoneToolExit.ERROR);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(/ERR_STORE_LOCKED: store .* is open in another process: the zone tool never works under a running store, even with --force/);
      }
    } finally {
      await stop(child);
    }
    expect(report(deviceDir)).toEqual(before);
    openStore(s.dir).close();
  });

  it('a device open in another process (its lock: a store on a device outside its folder) is refused even with --force', async () => {
    const dir = device();
    const before = report(dir);
    const child = await holder(`m.openStore(${JSON.stringify(path.join(tmp.dir, 'elsewhere'))}, { device: ${JSON.stringify(dir)}, overwriteDevice: true })`);
    const during = report(dir); // the store reset the zones it found with data
    try {
      for (const args of [['reset', dir, '--all', '--force', '--yes'], ['open', dir, '5', '--force'], ['finish', dir, '5', '--force', '--dry-run']]) {
        const r = run(['zones', ...args]);
        expect(r.status, r.stderr).toBe(ZoneToolExit.ERROR);
        expect(r.stderr).toMatch(new RegExp(`ERR_DEVICE_LOCKED: .*open in process ${child.pid}.*never changed under a running store, even with --force`));
      }
      expect(report(dir)).toEqual(during);
    } finally {
      await stop(child);
    }
    expect(names(during)).not.toEqual(names(before));
  });
});
