/**
 * `zns-slab zones <store-or-device> --watch`: the zone map redrawn in the terminal at an
 * interval, like watch(1) or htop, while another process uses the store (read only: see
 * engine/observe.ts for what is current and what is as of the writer's last flush).
 *
 * On a terminal: the alternate screen, cursor hidden, one cell per zone (its condition's letter
 * and its fill as a block; coloured by condition and epoch unless NO_COLOR is set), a header
 * with the time and totals, the live epochs; redrawn on resize; q, Ctrl-C, SIGINT, SIGTERM or
 * SIGHUP restore the screen and exit 0. Without a terminal on stdout: one JSON snapshot per interval,
 * one per line (NDJSON), for scripts.
 */
import { type Observation, type ObservedZone, Observer } from '../engine/observe.js';
import { ZnsSlabError } from '../errors.js';
import { humanBytes } from './text.js';

/** Default time between two frames, in milliseconds. */
export const WATCH_DEFAULT_INTERVAL_MS = 1000;
/** Shortest interval taken, in milliseconds (each frame copies the catalog when it changed). */
export const WATCH_MIN_INTERVAL_MS = 50;
/** Longest interval taken, in milliseconds. */
export const WATCH_MAX_INTERVAL_MS = 3_600_000;
/** Header lines above the zone map. */
const HEADER_LINES = 4;
/** Most epoch rows shown under the map (the rest are summed up in one line). */
const MAX_EPOCH_LINES = 8;
/** A terminal smaller than this gets a one-line "too small" frame. */
const MIN_COLUMNS = 40;
const MIN_ROWS = 10;

const ESC = '\x1b[';
const ALT_SCREEN_ON = '\x1b[?1049h';
const ALT_SCREEN_OFF = '\x1b[?1049l';
const CURSOR_HIDE = '\x1b[?25l';
const CURSOR_SHOW = '\x1b[?25h';
const HOME = `${ESC}H`;
const CLEAR_LINE = `${ESC}K`;
const CLEAR_BELOW = `${ESC}J`;
const RESET = `${ESC}0m`;

/** One letter per condition; `W` marks a zone written since the last frame. */
const CONDITION_LETTERS: Record<string, string> = {
  empty: '.',
  'implicit-open': 'o',
  'explicit-open': 'O',
  closed: 'c',
  full: 'F',
  'read-only': 'R',
  offline: 'X',
  'not-wp': 'N',
};
const MOVED_LETTER = 'W';
/** Signals that stop the view (and clean up): SIGHUP too, as when the terminal or SSH session goes away. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** SGR colour per condition (the zone map SVG's palette in 16 colours). */
const CONDITION_SGR: Record<string, string> = {
  empty: '90',
  'implicit-open': '94',
  'explicit-open': '34',
  closed: '33',
  full: '32',
  'read-only': '35',
  offline: '31',
  'not-wp': '37',
};
const UNICODE_FILL = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII_FILL = [' ', '.', ':', '-', '=', '+', '*', '#', '@'];

export interface FrameOptions {
  columns: number;
  rows: number;
  color: boolean;
  unicode: boolean;
  intervalMs: number;
  /** Shown in the header when the last snapshot failed (the frame shows the one before). */
  error?: string;
  now?: Date;
}


function sgr(on: boolean, code: string, text: string): string {
  return on ? `${ESC}${code}m${text}${RESET}` : text;
}

/** An epoch's colour: the SVG map's golden-angle hue, as the nearest of xterm's 6x6x6 cube. */
function epochSgr(epoch: number): string {
  const hue = (epoch * 137.508) % 360;
  // hsl(h, 62%, 45%) as in tools/zoneMap.ts
  const s = 0.62;
  const l = 0.45;
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
  const m = l - c / 2;
  const [r, g, b] = hue < 60 ? [c, x, 0] : hue < 120 ? [x, c, 0] : hue < 180 ? [0, c, x] : hue < 240 ? [0, x, c] : hue < 300 ? [x, 0, c] : [c, 0, x];
  const q = (v: number) => Math.round((v + m) * 5);
  return `38;5;${16 + 36 * q(r) + 6 * q(g) + q(b)}`;
}

/** Cuts `text` to `width` visible columns (it holds no escapes). */
function fit(text: string, width: number): string {
  return text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + '…';
}

function fillGlyph(z: Pick<ObservedZone, 'fillPct'>, unicode: boolean): string {
  const steps = unicode ? UNICODE_FILL : ASCII_FILL;
  if (z.fillPct <= 0) return steps[0]!;
  return steps[Math.min(8, Math.max(1, Math.ceil((z.fillPct / 100) * 8)))]!;
}

/** Several zones in one cell (a device too big for the terminal): the most common condition, the mean fill. */
function mergeZones(zones: readonly ObservedZone[]): ObservedZone {
  const counts = new Map<string, number>();
  for (const z of zones) counts.set(z.condition, (counts.get(z.condition) ?? 0) + 1);
  const condition = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  const epochs = zones.map((z) => z.epoch).filter((e): e is number => e !== null);
  return {
    ...zones[0]!,
    condition,
    fillPct: zones.reduce((n, z) => n + z.fillPct, 0) / zones.length,
    moved: zones.some((z) => z.moved),
    epoch: epochs.length > 0 ? epochs[epochs.length - 1]! : null,
  };
}

function ago(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/**
 * The frame for `obs` on a terminal of `columns` x `rows`: one string per line, each at most
 * `columns` visible characters (colour escapes aside). Pure: the tests call it directly.
 */
export function renderFrame(obs: Observation, o: FrameOptions): string[] {
  const { columns, rows, color } = o;
  if (columns < MIN_COLUMNS || rows < MIN_ROWS) return [fit(`too small: ${columns}x${rows}, zones --watch needs ${MIN_COLUMNS}x${MIN_ROWS}`, columns)];
  const now = o.now ?? new Date(obs.takenAt);
  const g = obs.device.geometry;
  const t = obs.totals;
  const lines: string[] = [];
  const time = now.toTimeString().slice(0, 8);
  lines.push(sgr(color, '1', fit(`zns-slab zones --watch  ${obs.target}  ${time}  every ${(o.intervalMs / 1000).toFixed(1)} s  (q quits)`, columns)));
  const inUse = obs.device.inUseBy !== null ? `in use by pid ${obs.device.inUseBy}` : obs.device.kind === 'emulated' ? 'not in use' : 'read-only view';
  lines.push(fit(`${obs.device.kind} device, ${g.zoneCount} zones x ${humanBytes(g.zoneSize)} (capacity ${humanBytes(g.zoneCapacity)}), open <= ${g.maxOpenZones || 'any'}, active <= ${g.maxActiveZones || 'any'}; ${inUse}`, columns));
  const conditions = Object.entries(t.byCondition).filter(([, n]) => n > 0).map(([c, n]) => `${n} ${c}`).join(', ');
  const rate = obs.rates === null ? 'device writes: (next frame)' : `device writes ${humanBytes(obs.rates.deviceBytesPerSecond)}/s`;
  const pct = t.capacityBytes === 0 ? 0 : (100 * t.writtenBytes) / t.capacityBytes;
  lines.push(fit(`zones: ${conditions} | written ${humanBytes(t.writtenBytes)} (${pct.toFixed(1)}%) | ${rate}`, columns));
  if (obs.catalog !== null) {
    const puts = obs.rates?.putsPerSecond ?? null;
    const age = Math.max(0, now.getTime() - Date.parse(obs.catalog.changedAt));
    lines.push(fit(`live ${humanBytes(t.liveBytes)}, dead ${humanBytes(t.deadBytes)}, unflushed ${humanBytes(t.unflushedBytes)} | puts/s ${puts ?? '-'} | catalog as of last flush: commit ${obs.catalog.commitSequence}, ${ago(age)} ago`, columns));
  } else lines.push(fit('a bare device: no catalog (conditions and write pointers only)', columns));
  if (o.error !== undefined) lines[lines.length - 1] = sgr(color, '31', fit(`last snapshot failed (showing the one before): ${o.error}`, columns));

  // Epochs under the map, as many as fit.
  const epochLines: string[] = [];
  const epochs = obs.stats?.epochs ?? [];
  if (epochs.length > 0) {
    epochLines.push(fit(`  ${'epoch'.padEnd(8)}${'state'.padEnd(9)}${'zones'.padStart(6)}${'slabs'.padStart(8)}${'live objs'.padStart(11)}${'live'.padStart(12)}${'dead'.padStart(12)}`, columns));
    const shown = epochs.length > MAX_EPOCH_LINES ? epochs.slice(-MAX_EPOCH_LINES + 1) : epochs;
    if (shown.length < epochs.length) epochLines.push(fit(`  ... ${epochs.length - shown.length} older epochs`, columns));
    for (const e of shown) {
      const current = e.epoch === obs.stats!.epochCurrent ? '*' : ' ';
      const text = `${String(e.epoch).padEnd(7)}${current}${e.state.padEnd(9)}${String(e.zones).padStart(6)}${String(e.slabs).padStart(8)}${String(e.liveObjects).padStart(11)}${humanBytes(e.liveBytes).padStart(12)}${humanBytes(e.deadBytes).padStart(12)}`;
      epochLines.push((color ? sgr(true, epochSgr(e.epoch), '# ') : '  ') + fit(text, columns - 2));
    }
  }
  const legend = fit(
    `. empty  o/O open  c closed  F full  R read-only  X offline  N not-wp  ${MOVED_LETTER} written since last frame | fill ${o.unicode ? UNICODE_FILL.slice(1).join('') : ASCII_FILL.slice(1).join('')}` +
      (color ? ` | colour: ${obs.kind === 'store' ? 'epoch' : 'condition'}` : ''),
    columns,
  );
  // Rows for the map: what the header, the legend, blank lines and (if room) the epochs leave.
  let mapRows = rows - HEADER_LINES - 1 - 1 - 1 - epochLines.length;
  if (mapRows < 3) {
    epochLines.length = 0;
    mapRows = rows - HEADER_LINES - 3;
  }
  const zones = obs.zones;
  const label = String(Math.max(0, zones.length - 1)).length + 1;
  // Cell width: letter, fill and a space; else letter and fill; else the fill alone.
  let width = 3;
  let perCell = 1;
  let perRow = 1;
  for (const w of [3, 2, 1]) {
    width = w;
    perRow = Math.max(1, Math.floor((columns - label) / w));
    if (Math.ceil(zones.length / perRow) <= mapRows) break;
  }
  if (Math.ceil(zones.length / perRow) > mapRows) perCell = Math.ceil(zones.length / (perRow * mapRows));
  const cells: ObservedZone[] = [];
  for (let i = 0; i < zones.length; i += perCell) cells.push(perCell === 1 ? zones[i]! : mergeZones(zones.slice(i, i + perCell)));
  lines.push(fit(perCell > 1 ? `zone map: 1 cell = ${perCell} zones (the most common condition, the mean fill)` : `zone map: ${zones.length} zones, ${perRow} a row`, columns));
  for (let r = 0; r * perRow < cells.length; r++) {
    let line = String(r * perRow * perCell).padStart(label - 1) + ' ';
    for (const z of cells.slice(r * perRow, (r + 1) * perRow)) {
      const letter = z.moved ? MOVED_LETTER : (CONDITION_LETTERS[z.condition] ?? '?');
      const glyph = fillGlyph(z, o.unicode);
      const letterText = color ? (z.moved ? sgr(true, '1;97;44', letter) : sgr(true, CONDITION_SGR[z.condition] ?? '37', letter)) : letter;
      const glyphColor = z.epoch !== null && obs.kind === 'store' ? epochSgr(z.epoch) : (CONDITION_SGR[z.condition] ?? '37');
      const glyphText = color ? sgr(true, glyphColor, glyph) : glyph;
      if (width === 3) line += letterText + glyphText + ' ';
      else if (width === 2) line += letterText + glyphText;
      else line += color ? glyphText : z.moved ? MOVED_LETTER : glyph === ' ' ? letter : glyph;
    }
    lines.push(line);
  }
  lines.push('');
  if (epochLines.length > 0) lines.push(...epochLines.slice(0, Math.max(0, rows - lines.length - 1)));
  while (lines.length < rows - 1) lines.push('');
  lines.push(sgr(color, '2', legend));
  return lines.slice(0, rows);
}

export interface WatchOptions {
  target: string;
  intervalMs: number;
  /** Stop after this many frames (default: until q, Ctrl-C, SIGINT or SIGTERM). */
  count?: number;
  /** Where frames go; a TTY gets the full-screen view, anything else NDJSON. */
  stdout: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  /** Human messages (stderr). */
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

/** Colour unless NO_COLOR is set (https://no-color.org) or the terminal is dumb. */
export function wantsColor(env: NodeJS.ProcessEnv): boolean {
  return !(env.NO_COLOR !== undefined && env.NO_COLOR !== '') && env.TERM !== 'dumb';
}

function wantsUnicode(env: NodeJS.ProcessEnv): boolean {
  return /utf-?8/i.test(env.LC_ALL || env.LC_CTYPE || env.LANG || '');
}

/**
 * Runs the view until it is told to stop; resolves to the exit code. The first snapshot is taken
 * before the screen is touched, so a store that cannot be read fails as `zns-slab zones` does.
 */
export async function watchZones(o: WatchOptions): Promise<number> {
  const observer = new Observer(o.target);
  let obs: Observation;
  try {
    obs = observer.observe();
  } catch (err) {
    observer.close();
    throw err;
  }
  const tty = o.stdout.isTTY === true;
  const color = tty && wantsColor(o.env);
  const unicode = wantsUnicode(o.env);
  let frames = 0;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let finish!: (code: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopped = false;

  const draw = (): void => {
    if (!tty) {
      o.stdout.write(JSON.stringify(obs) + '\n');
      return;
    }
    const lines = renderFrame(obs, { columns: o.stdout.columns || 80, rows: o.stdout.rows || 24, color, unicode, intervalMs: o.intervalMs, ...(error !== undefined ? { error } : {}), now: new Date() });
    o.stdout.write(HOME + lines.map((l) => l + CLEAR_LINE).join('\r\n') + CLEAR_BELOW);
  };
  const restore = (): void => {
    // The terminal may be gone (SIGHUP: the SSH session dropped): nothing to restore then.
    if (tty && o.stdout.writable) o.stdout.write(RESET + CURSOR_SHOW + ALT_SCREEN_OFF, () => undefined);
  };
  const onKey = (data: Buffer): void => {
    const key = data.toString('utf8');
    if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x1b') stop(0);
    else if (key === ' ' || key === 'r') tick(); // redraw now
  };
  const onSignal = (): void => stop(0);
  const onResize = (): void => draw();
  // The terminal went away under a write (EIO, EPIPE): stop as on SIGHUP.
  const onOutputError = (): void => stop(0);
  const onExit = (): void => restore();
  const stdinRaw = tty && o.stdin.isTTY === true;
  function stop(code: number): void {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    process.off('exit', onExit);
    o.stdout.off('resize', onResize);
    o.stdout.off('error', onOutputError);
    if (stdinRaw) {
      o.stdin.off('data', onKey);
      o.stdin.setRawMode(false);
      o.stdin.pause();
    }
    restore();
    observer.close();
    finish(code);
  }
  function tick(): void {
    if (stopped) return;
    clearTimeout(timer);
    if (frames > 0) {
      try {
        obs = observer.observe();
        error = undefined;
      } catch (err) {
        error = err instanceof ZnsSlabError ? `${err.code}: ${err.message}` : (err as Error).message;
        // Without a terminal a script sees the failure as a line of its own.
        if (!tty) o.err(`zns-slab: ${error}\n`);
      }
    }
    if (error === undefined || tty) draw();
    frames++;
    if (o.count !== undefined && frames >= o.count) {
      stop(0);
      return;
    }
    timer = setTimeout(tick, o.intervalMs);
  }

  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  if (tty) {
    process.on('exit', onExit);
    o.stdout.write(ALT_SCREEN_ON + CURSOR_HIDE);
    o.stdout.on('resize', onResize);
    o.stdout.on('error', onOutputError);
    if (stdinRaw) {
      o.stdin.setRawMode(true);
      o.stdin.resume();
      o.stdin.on('data', onKey);
    }
  } else o.err(`zns-slab zones --watch: no terminal on stdout, so one JSON snapshot per line every ${o.intervalMs} ms${o.count !== undefined ? ` (${o.count} in all)` : ' (SIGINT or SIGTERM stops)'}\n`);
  tick();
  return done;
}

/** What is wrong with an --interval of `ms` milliseconds, or undefined when it is fine. */
export function intervalProblem(ms: number): string | undefined {
  if (!Number.isInteger(ms) || ms < WATCH_MIN_INTERVAL_MS || ms > WATCH_MAX_INTERVAL_MS) {
    return `--interval takes milliseconds from ${WATCH_MIN_INTERVAL_MS} to ${WATCH_MAX_INTERVAL_MS}, got ${ms}`;
  }
  return undefined;
}
