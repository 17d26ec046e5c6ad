/**
 * `zns-slab zones --watch`, driven as a person drives it: in a real terminal (tmux), beside a
 * writer process that keeps the store busy; the screen is read back with capture-pane.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Observation, Observer } from '../../engine/observe.js';
import { renderFrame } from '../../tools/watch.js';
import { LIVE_GEOMETRY, type LiveWriter, expectServesLive, startLiveWriter, stopStillWriting } from '../helpers/liveWriter.js';
import { tempDir } from '../helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
/** tmux, if installed (.ci/run installs it). */
const TMUX = ['/usr/bin/tmux', '/usr/local/bin/tmux', '/bin/tmux'].find((p) => fs.existsSync(p));
const NO_TMUX = TMUX === undefined ? ' [SKIPPED: tmux is not installed (apt-get install tmux)]' : '';
/** The frame interval the tests ask for (ms), and the longest they wait for the screen to show something. */
const INTERVAL_MS = 200;
const SCREEN_WAIT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A tmux server of the test's own (-L), so a user's sessions are never touched. */
const socket = `zns-slab-watch-${process.pid}`;

function tmux(...args: string[]): string {
  // Colour is each test's choice: not inherited from CI's NO_COLOR (the tmux server passes its environment on).
  const { NO_COLOR: _n, FORCE_COLOR: _f, ...env } = process.env;
  const r = spawnSync(TMUX!, ['-L', socket, ...args], { encoding: 'utf8', env: { ...env, LANG: 'C.UTF-8' } });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The pane's text (with -e: its colour escapes too). */
function screen(session: string, escapes = false): string {
  return tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', session);
}

async function waitFor(session: string, test: (text: string) => boolean, what: string): Promise<string> {
  const until = Date.now() + SCREEN_WAIT_MS;
  for (;;) {
    const text = screen(session);
    if (test(text)) return text;
    if (Date.now() > until) throw new Error(`the screen never showed ${what}; it shows:\n${text}`);
    await sleep(50);
  }
}

/** A session running `zones --watch` in a shell that says how it ended and stays up. */
function startWatch(session: string, store: string, env: string, size: [number, number]): void {
  const command = `echo MARKER-BEFORE; ${env} node ${cli} zones ${store} --watch --interval ${INTERVAL_MS}; echo EXIT=$?; sleep 600`;
  tmux('-u', 'new-session', '-d', '-s', session, '-x', String(size[0]), '-y', String(size[1]), `sh -c '${command}'`);
}

const commitOf = (text: string): number => Number(/catalog as of last flush: commit (\d+)/.exec(text)?.[1] ?? NaN);

let tmp: ReturnType<typeof tempDir>;
let store: string;
let writer: LiveWriter;

beforeAll(async () => {
  tmp = tempDir();
  store = path.join(tmp.dir, 'store');
  writer = await startLiveWriter(store);
});
afterAll(async () => {
  if (TMUX !== undefined) spawnSync(TMUX, ['-L', socket, 'kill-server']);
  writer.child.kill('SIGKILL');
  tmp.cleanup();
});

describe('zns-slab zones --watch in a terminal' + NO_TMUX, () => {
  it.skipIf(TMUX === undefined)('draws the zone map and header beside a writer, follows it, fits a resize, and q restores the screen', async () => {
    const session = 'watch';
    startWatch(session, store, 'LANG=C.UTF-8', [120, 40]);
    const first = await waitFor(session, (t) => /zone map: 64 zones/.test(t) && /device writes \d/.test(t), 'the map and a second frame');
    const lines = first.split('\n');
    expect(lines[0]).toMatch(/^zns-slab zones --watch {2}\S*store {2}\d\d:\d\d:\d\d {2}every 0\.2 s {2}\(q quits\)/);
    expect(first).toContain(`emulated device, ${LIVE_GEOMETRY.zoneCount} zones x 1.0 MiB (capacity 1.0 MiB), open <= 6, active <= 6; in use by pid ${writer.pid}`);
    expect(first).toMatch(/zones: \d+ empty.* \| written [\d.]+ [KM]iB \(\d+\.\d%\) \| device writes [\d.]+ (B|KiB|MiB)\/s/);
    expect(first).toMatch(/live [\d.]+ [KM]iB, dead [\d.]+ (B|KiB|MiB), unflushed [\d.]+ (B|KiB|MiB) \| puts\/s \d+ \| catalog as of last flush: commit \d+, [\d.]+ m?s ago/);
    // The map: rows of cells labelled with their first zone, 39 cells of 3 columns a row at 120 columns.
    const rows = lines.filter((l) => /^\s*\d+ [.ocFRXNW]/.test(l));
    expect(rows.length).toBe(2);
    expect(rows[0]).toMatch(/^ 0 /);
    expect(rows[1]).toMatch(/^39 /);
    // Cells of three columns (letter, fill, space; capture-pane drops a line's trailing spaces).
    const cells = rows.flatMap((r) => r.slice(3).padEnd(39 * 3).match(/.{3}/g)!.filter((c) => c.trim() !== ''));
    expect(cells).toHaveLength(LIVE_GEOMETRY.zoneCount);
    for (const c of cells) expect(c).toMatch(/^[.ocOFRXNW][ ▁▂▃▄▅▆▇█] $/);
    expect(cells.some((c) => /^[cFW][▁▂▃▄▅▆▇█]/.test(c))).toBe(true); // written zones show their fill
    expect(first).toMatch(/epoch +state +zones +slabs +live objs +live +dead/);
    expect(first).toMatch(/\d+ +\*ACTIVE/);
    expect(lines.at(-2) ?? '').toMatch(/^\. empty {2}o\/O open {2}c closed {2}F full/);

    // The writer goes on: later frames show later commits.
    await sleep(4 * INTERVAL_MS);
    const later = await waitFor(session, (t) => commitOf(t) > commitOf(first), 'a later catalog commit');
    expect(later).not.toEqual(first);
    expect(screen(session, true)).toMatch(/\x1b\[[0-9;]*m/); // in colour

    // A smaller terminal: the frame is redrawn to fit it.
    tmux('resize-window', '-t', session, '-x', '60', '-y', '20');
    const small = await waitFor(session, (t) => /zone map: 64 zones, 19 a row/.test(t), 'the map redrawn for 60 columns');
    for (const line of small.split('\n')) expect(line.length, line).toBeLessThanOrEqual(60);
    expect(small.split('\n').filter((l) => /^\s*\d+ [.ocFRXNW]/.test(l)).length).toBe(4);

    tmux('send-keys', '-t', session, 'q');
    const after = await waitFor(session, (t) => /EXIT=\d+/.test(t), 'the shell after q');
    expect(after).toContain('EXIT=0');
    expect(after).toContain('MARKER-BEFORE');
    expect(after).not.toContain('zns-slab zones --watch'); // the alternate screen is gone
  });

  it.skipIf(TMUX === undefined)('with NO_COLOR: letters and blocks only, no colour; Ctrl-C quits as q does', async () => {
    const session = 'plain';
    startWatch(session, store, 'LANG=C.UTF-8 NO_COLOR=1', [100, 30]);
    await waitFor(session, (t) => /zone map: 64 zones/.test(t), 'the map');
    const withEscapes = screen(session, true);
    expect(withEscapes).toContain('zone map: 64 zones');
    expect(withEscapes).not.toMatch(/\x1b\[[0-9;]*m/);
    tmux('send-keys', '-t', session, 'C-c');
    const after = await waitFor(session, (t) => /EXIT=\d+/.test(t), 'the shell after Ctrl-C');
    expect(after).toContain('EXIT=0');
    expect(after).not.toContain('zone map');
  });

  it.skipIf(TMUX === undefined)('the terminal going away (SIGHUP, as a dropped SSH session) stops it, and it leaves nothing behind', async () => {
    const session = 'hangup';
    // The observer's own folder (its catalog copy) goes under a TMPDIR of this test's.
    const own = path.join(tmp.dir, 'hangup-tmp');
    fs.mkdirSync(own);
    startWatch(session, store, `LANG=C.UTF-8 TMPDIR=${own}`, [100, 30]);
    await waitFor(session, (t) => /zone map: 64 zones/.test(t), 'the map');
    expect(fs.readdirSync(own)).toHaveLength(1);
    tmux('kill-session', '-t', session);
    for (const until = Date.now() + SCREEN_WAIT_MS; fs.readdirSync(own).length > 0 && Date.now() < until; ) await sleep(20);
    expect(fs.readdirSync(own)).toEqual([]);
  });

  it('without a terminal: one JSON snapshot a line, as many as --count asks', () => {
    const r = spawnSync(process.execPath, [cli, 'zones', store, '--watch', '--interval', String(INTERVAL_MS), '--count', '3'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const snapshots = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Observation);
    expect(snapshots).toHaveLength(3);
    expect(snapshots.map((s) => s.zones.length)).toEqual([64, 64, 64]);
    expect(snapshots[0]!.rates).toBeNull();
    expect(snapshots[2]!.rates!.sinceMs).toBeGreaterThanOrEqual(INTERVAL_MS - 5);
    expect(snapshots[2]!.catalog!.commitSequence).toBeGreaterThan(snapshots[0]!.catalog!.commitSequence);
    expect(r.stderr).toContain('no terminal on stdout, so one JSON snapshot per line every 200 ms (3 in all)');
  });

  it('without a terminal and without --count: runs until SIGTERM, then exits 0', async () => {
    const child = spawn(process.execPath, [cli, 'zones', store, '--watch', '--interval', String(INTERVAL_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    for (const until = Date.now() + SCREEN_WAIT_MS; out.split('\n').length < 3 && Date.now() < until; ) await sleep(20);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect((JSON.parse(l) as Observation).zones).toHaveLength(LIVE_GEOMETRY.zoneCount);
  });

  it('refuses what it cannot do, as a usage error', () => {
    for (const [args, message] of [
      [['--watch', '--json'], 'zones --watch takes --watch, --interval, --count, not --json'],
      [['--watch', '--interval', '10'], '--interval takes milliseconds from 50 to 3600000, got 10'],
      [['--watch', '--count', '0'], '--count takes a positive number of frames'],
    ] as const) {
      const r = spawnSync(process.execPath, [cli, 'zones', store, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it('fits any terminal: a device too big for it gets several zones a cell', () => {
    const observer = new Observer(store);
    let obs: Observation;
    try {
      obs = observer.observe();
    } finally {
      observer.close();
    }
    // 4096 zones in an 80 x 24 terminal.
    const many: Observation = { ...obs, zones: Array.from({ length: 4096 }, (_, i) => ({ ...obs.zones[i % obs.zones.length]!, index: i })) };
    const lines = renderFrame(many, { columns: 80, rows: 24, color: false, unicode: true, intervalMs: 1000 });
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
    expect(lines.join('\n')).toMatch(/zone map: 1 cell = \d+ zones/);
    expect(renderFrame(obs, { columns: 20, rows: 5, color: false, unicode: true, intervalMs: 1000 })[0]).toContain('too small');
  });
});

describe('the store after being watched', () => {
  it('the writer kept writing and its store opens and serves its objects', async () => {
    expectServesLive(store, await stopStillWriting(writer), (s) => {
      s.put(Buffer.from('written after the watch'));
      s.flush();
    });
  });
});
