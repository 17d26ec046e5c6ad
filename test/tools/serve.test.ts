/**
 * `zns-slab serve`, run as a user runs it (a child process) against a store another child keeps
 * writing: the page, /snapshot.json and the event stream over HTTP, then the page in headless
 * Chromium (Debian's `chromium`): its DOM after three live snapshots, and a screenshot whose
 * pixels must show the zone map.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Observation } from '../../engine/observe.js';
import type { LiveEvent } from '../../tools/serve.js';
import { LIVE_GEOMETRY, type LiveWriter, expectServesLive, startLiveWriter, stopStillWriting } from '../helpers/liveWriter.js';
import { decodePng, hslToRgb } from '../helpers/png.js';
import { tempDir } from '../helpers/tmp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'dist', 'tools', 'cli.js');
/** Debian's chromium, if installed (.ci/run installs it). */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/local/bin/chromium'].find((p) => fs.existsSync(p));
const NO_CHROMIUM = CHROMIUM === undefined ? ' [SKIPPED: chromium is not installed (apt-get install chromium)]' : '';
/** The snapshot interval the test asks for (ms). */
const INTERVAL_MS = 200;
/** Snapshots the page draws before it settles (?frames=N), for the DOM dump and the screenshot. */
const PAGE_FRAMES = 3;
const WINDOW: [number, number] = [1200, 800];
/** Chromium's longest run (ms): it starts in a few seconds. */
const CHROMIUM_TIMEOUT_MS = 45_000;

let tmp: ReturnType<typeof tempDir>;
let store: string;
let writer: LiveWriter;
let server: ChildProcess;
let serverErr = '';
let url: string;
let port: number;

/** Reads the server's first stdout line (its JSON with the URL). */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}): ${serverErr}`)));
  });
}

/** A GET with a chosen Host header (fetch would not send a forged one). */
function get(pathname: string, host?: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
  });
}

/** The first `n` snapshots of the event stream. */
async function events(n: number): Promise<LiveEvent[]> {
  const res = await fetch(`${url}events`);
  expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const reader = res.body!.getReader();
  const out: LiveEvent[] = [];
  let text = '';
  while (out.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
    for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (data !== undefined && !block.includes('event: failure')) out.push(JSON.parse(data.slice(6)) as LiveEvent);
    }
  }
  await reader.cancel();
  return out.slice(0, n);
}

/** The local address of the listening TCP socket on `port`, from /proc/net/tcp{,6}. */
function listeningAddresses(p: number): string[] {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '0A') continue; // LISTEN
      const [addr, hexPort] = f[1]!.split(':');
      if (parseInt(hexPort!, 16) !== p) continue;
      // IPv4: 8 hex digits, little-endian bytes.
      found.push(addr!.length === 8 ? addr!.match(/../g)!.reverse().map((h) => parseInt(h, 16)).join('.') : addr!);
    }
  }
  return found;
}

function chromium(args: string[], profile: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(CHROMIUM!, ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`, `--window-size=${WINDOW.join(',')}`, ...args], {
    encoding: 'utf8',
    timeout: CHROMIUM_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  tmp = tempDir();
  store = path.join(tmp.dir, 'store');
  writer = await startLiveWriter(store);
  server = spawn(process.execPath, [cli, 'serve', store, '--port', '0', '--interval', String(INTERVAL_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr!.on('data', (d: Buffer) => (serverErr += d.toString()));
  const line = JSON.parse(await firstLine(server)) as { url: string; host: string; port: number; target: string; pid: number };
  url = line.url;
  port = line.port;
  // stderr is another pipe: its lines may come a moment after stdout's.
  for (let waited = 0; !serverErr.includes('Ctrl-C stops') && waited < 5000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  expect(line).toMatchObject({ host: '127.0.0.1', target: store, pid: server.pid });
});
afterAll(async () => {
  server?.kill('SIGKILL');
  writer?.child.kill('SIGKILL');
  tmp?.cleanup();
});

describe('zns-slab serve', () => {
  it('listens on 127.0.0.1 only and says where, on stdout (JSON) and stderr', async () => {
    expect(url).toBe(`http://127.0.0.1:${port}/`);
    expect(port).toBeGreaterThan(0);
    expect(serverErr).toContain(`zns-slab serve: ${url}`);
    expect(serverErr).toContain(`ssh -L ${port}:127.0.0.1:${port}`);
    expect(listeningAddresses(port)).toEqual(['127.0.0.1']);
    // Not reachable on this machine's other addresses.
    const others = Object.values(os.networkInterfaces()).flat().filter((a) => a !== undefined && !a.internal && a.family === 'IPv4').map((a) => a!.address);
    for (const address of others) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, address);
        s.once('connect', () => (s.destroy(), resolve(false)));
        s.once('error', () => resolve(true));
      });
      expect(refused, address).toBe(true);
    }
    // A page elsewhere that rebinds its DNS name to 127.0.0.1 is refused by its Host header.
    expect((await get('/', 'evil.example:80')).status).toBe(403);
    expect((await get('/', `localhost:${port}`)).status).toBe(200);
    // Any other address is refused before anything is opened.
    const r = spawnSync(process.execPath, [cli, 'serve', store, '--host', '0.0.0.0'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--host: serve listens on the loopback interface only (127.0.0.1, ::1, localhost)');
  });

  it('serves one self-contained page, the latest snapshot, and live events that follow the writer', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('new EventSource(');
    expect(page.body).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//); // nothing fetched from elsewhere
    expect(page.body).not.toMatch(/<script[^>]+src=/);

    const snap = await get('/snapshot.json');
    expect(snap.status).toBe(200);
    const obs = JSON.parse(snap.body) as Observation;
    expect(obs.kind).toBe('store');
    expect(obs.zones).toHaveLength(LIVE_GEOMETRY.zoneCount);
    expect(obs.device.inUseBy).toBe(writer.pid);
    expect(obs.stats!.epochs.length).toBeGreaterThan(0);

    const stream = await events(3);
    expect(stream).toHaveLength(3);
    for (const e of stream) {
      expect(e.svg.match(/<g data-zone="/g)).toHaveLength(LIVE_GEOMETRY.zoneCount);
      expect(e.svg.startsWith('<svg')).toBe(true);
      expect(e).not.toHaveProperty('zones');
    }
    const times = stream.map((e) => Date.parse(e.takenAt));
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(INTERVAL_MS - 20);
    // The writer moved on between them.
    expect(stream[2]!.catalog!.commitSequence).toBeGreaterThan(stream[0]!.catalog!.commitSequence);
    expect(stream[2]!.stats!.counters.puts).toBeGreaterThan(stream[0]!.stats!.counters.puts);
    expect(stream[2]!.rates!.deviceBytesPerSecond).toBeGreaterThan(0);
    expect((await get('/nope')).status).toBe(404);
  });

  it.skipIf(CHROMIUM === undefined)('renders in headless Chromium: the DOM holds the map and live stats, the screenshot shows them' + NO_CHROMIUM, async () => {
    const profile = path.join(tmp.dir, 'chromium-profile');
    const page = `${url}?frames=${PAGE_FRAMES}`;
    // The page draws PAGE_FRAMES snapshots from the event stream, then the stream ends and the page settles.
    const dom = chromium(['--dump-dom', '--virtual-time-budget=5000', page], profile);
    expect(dom.status, dom.stderr).toBe(0);
    expect(dom.stdout).toMatch(new RegExp(`<title>zns-slab · ${LIVE_GEOMETRY.zoneCount} zones · [\\d.]+ [KM]iB written · snapshot ${PAGE_FRAMES}</title>`));
    expect(dom.stdout).toContain(`data-frames="${PAGE_FRAMES}"`);
    expect(dom.stdout).toContain(`data-zones="${LIVE_GEOMETRY.zoneCount}"`);
    expect(dom.stdout.match(/<g data-zone="\d+">/g)).toHaveLength(LIVE_GEOMETRY.zoneCount);
    expect(dom.stdout).toContain(`in use by pid ${writer.pid}`);
    expect(dom.stdout).toMatch(/<div class="k">catalog<\/div><div class="v">commit \d+<\/div>/);
    expect(dom.stdout).toMatch(/<div class="k">puts\/s<\/div><div class="v">\d+<\/div>/); // a rate: two snapshots were drawn
    expect(dom.stdout).toMatch(/\(current\)<\/td><td>ACTIVE<\/td>/);
    expect(dom.stdout).toContain(`stopped after ${PAGE_FRAMES} snapshots`);

    const shot = path.join(tmp.dir, 'serve.png');
    const r = chromium([`--screenshot=${shot}`, '--virtual-time-budget=5000', page], profile);
    expect(r.status, r.stderr).toBe(0);
    if (process.env.ZNS_SLAB_KEEP_SCREENSHOT) fs.copyFileSync(shot, process.env.ZNS_SLAB_KEEP_SCREENSHOT);
    const png = decodePng(fs.readFileSync(shot));
    expect([png.width, png.height]).toEqual(WINDOW);
    // The header bar (#1d2330).
    expect(png.rgb(5, 5)).toEqual([0x1d, 0x23, 0x30]);
    // The map: the empty cells' grey, and cells (and legend swatches) in epoch colours, solid
    // where the bytes are live. Epochs come and go fast here, so any epoch up to the current one counts.
    const latest = (await (await fetch(`${url}snapshot.json`)).json()) as Observation;
    const candidates = Array.from({ length: latest.stats!.epochCurrent }, (_, k) => hslToRgb(Math.round(((k + 1) * 137.508) % 360), 0.62, 0.45));
    const colours = new Map<string, number>();
    for (let y = 0; y < png.height; y++) {
      for (let x = 0; x < png.width; x++) {
        const key = png.rgb(x, y).join(',');
        colours.set(key, (colours.get(key) ?? 0) + 1);
      }
    }
    const near = (want: [number, number, number][]) =>
      [...colours].filter(([k]) => want.some((c) => k.split(',').every((v, i) => Math.abs(Number(v) - c[i]!) <= 3))).reduce((n, [, count]) => n + count, 0);
    // 64 cells of 22 x 22 px (scaled with the page), most of them empty.
    expect(near([[0xf4, 0xf4, 0xf4]])).toBeGreaterThan(40 * 300);
    expect(near(candidates)).toBeGreaterThan(300);
  });

  it('stops on SIGTERM, and the writer kept writing: its store opens and serves its objects', async () => {
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(serverErr).toContain('zns-slab serve: stopped');
    expectServesLive(store, await stopStillWriting(writer));
  });
});
