#!/usr/bin/env node
/**
 * zns-slab: the command line. `stats` (the ZNS-Slab allocator's stats_dump) and `zones` (the zone inspection
 * tool). Machine-readable output on stdout, human text on stderr; exit 0 on success, 1 when the
 * store or device cannot be read (one line on stderr), 2 for a usage error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CATALOG_FILE, DEFAULT_DEVICE_DIR, openStore, storeRelative } from '../engine/store.js';
import { type RecoverReport, rebuildCatalog } from '../engine/rebuild.js';
import { CACHE_PURPOSE, DESCRIPTOR_FILE, type SavedCacheStats, readCacheStats } from '../cache/cache.js';
import { type ClassStats, type EpochStats, type GlobalStats, type ZoneStats, SLAB_STATS_VERSION, zoneStats } from '../engine/stats.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { GC_MIN_GAIN_FRACTION } from '../engine/gc.js';
import { openZonedDevice } from '../zns/open.js';
import { observeZonedDevice } from '../zns/observe.js';
import { type ColorBy, renderZoneMap } from './zoneMap.js';
import { ZoneToolExit, isZoneVerb, runZoneVerb } from './zoneVerbs.js';
import { WATCH_DEFAULT_INTERVAL_MS, intervalProblem, watchZones } from './watch.js';
import { SERVE_DEFAULT_HOST, SERVE_DEFAULT_PORT, SERVE_LOOPBACK_HOSTS, serve } from './serve.js';
import { humanBytes } from './text.js';

const HELP: Record<string, string> = {
  main: `zns-slab: inspect zns-slab stores and zoned devices

Usage:
  zns-slab stats <store> [--json|--no-json] [--text|--no-text] [--class N] [--epoch N] [--salvage]
  zns-slab zones <store-or-device> [--json] [--svg FILE] [--range A-B] [--condition LIST] [--color-by epoch|condition] [--salvage]
  zns-slab zones report <store-or-device> [...]     (the same as above)
  zns-slab zones info <store-or-device>
  zns-slab zones reset|open|close|finish <store-or-device> <N|A-B|A-|--range A-B|--all> [--force] [--yes] [--dry-run]
  zns-slab zones <store-or-device> --watch [--interval MS] [--count N]
  zns-slab serve <store-or-device> [--port N] [--host 127.0.0.1|::1|localhost] [--interval MS]
  zns-slab recover <store> [--device PATH] [--force]
  zns-slab help [stats|zones|serve|recover]
  zns-slab --version

stats and zones open a store read-only: nothing is changed, and a store open in another
process is refused (ERR_STORE_LOCKED). recover rebuilds a lost or damaged catalog from the
device. zones reset|open|close|finish change zones (see zns-slab help zones).
zones --watch and serve show a store while another process uses it: read-only, no lock.
Exit codes: 0 ok, 1 the store or device could not be read, 2 usage error; the zone verbs
add ${ZoneToolExit.OWNED} (refused: a store owns the zones), ${ZoneToolExit.NOT_CONFIRMED} (not confirmed), ${ZoneToolExit.ZONES_FAILED} (some zones failed).
See docs/OBSERVABILITY.md and docs/RELIABILITY.md.
`,
  recover: `zns-slab recover <store>: rebuild the catalog from the slabs on the device

Every sealed slab carries its own catalog row (store, slab id, generation, epoch, size class,
live bitmap at seal). recover reads every written zone, checks every live object's checksum,
and writes a new catalog:
  - <store>/catalog.db when the store has none (it was deleted or lost);
  - else <store>/catalog.recovered.db beside it (move it over catalog.db to use it),
    or, with --force, catalog.db itself (the old one kept as catalog.db.old).
Frees made after a slab's last seal come back; objects never sealed and epochs already closed
do not. Recovered epochs are CLOSING (readable, no new puts); a new epoch is current.

  --device PATH        the device (default: <store>/device, the embedded emulated device)
  --force              replace catalog.db (kept as catalog.db.old)

JSON report on stdout, progress and a summary on stderr.
`,
  serve: `zns-slab serve <store-or-device>: a local web page with the zone map and the stats, live

A web server on the loopback interface only (127.0.0.1; refused on any other address): one
page with the zone map and the key stats, updated every interval over server-sent events,
while another process uses the store (read-only, no lock, as zones --watch). From another
machine, tunnel it: ssh -L 8765:127.0.0.1:8765 host, then open http://127.0.0.1:8765/.

  --port N             port (default ${SERVE_DEFAULT_PORT}; 0: any free port)
  --host H             ${SERVE_LOOPBACK_HOSTS.join(', ')} (default ${SERVE_DEFAULT_HOST})
  --interval MS        time between snapshots (default ${WATCH_DEFAULT_INTERVAL_MS})

GET / (the page), /snapshot.json (the latest snapshot), /events (text/event-stream).
A JSON line with the URL on stdout, the URL and how to tunnel it on stderr. SIGINT,
SIGTERM or SIGHUP stop it.
`,
  stats: `zns-slab stats <store>: a versioned snapshot of the store's counters and derived metrics

  --json / --no-json   JSON on stdout (default: on). Schema version ${SLAB_STATS_VERSION}: docs/OBSERVABILITY.md
  --text / --no-text   human-readable report on stderr (default: on)
  --class N            only size class N (its statsClass snapshot)
  --epoch N            only epoch N (its statsEpoch snapshot)
  --salvage            open a damaged store anyway (see zones --salvage)

Counters are cumulative over the store's life (saved at every flush and close).
Example: zns-slab stats ./data --no-text | jq .version
`,
  zones: `zns-slab zones <store-or-device>: one row per zone

<store-or-device> is a zns-slab store folder (rows joined with the catalog: owning epoch,
slabs, live and dead bytes), an emulated device folder, or a zoned block device (/dev/nullb0).

  --json               a JSON array on stdout instead of the table
  --svg FILE           also draw the zone map (one cell per zone) to FILE
  --range A-B          only zones A to B, inclusive (A alone: one zone; A-: to the end)
  --condition LIST     only zones in these conditions, comma-separated:
                       empty,implicit-open,explicit-open,closed,full,read-only,offline,not-wp
  --color-by KEY       svg colour: epoch (default for a store) or condition
  --salvage            open a store whose zones are missing, truncated or unreadable:
                       damaged zones are marked DAMAGED (damaged: true in --json)

zns-slab zones <store-or-device> --watch: the zone map redrawn every interval, full screen,
while another process uses the store (read-only, no lock: it may run beside the writer).
One cell per zone: its condition's letter (. empty, o/O open, c closed, F full, R read-only,
X offline, N not-wp; W: written since the last frame) and its fill (write pointer /
capacity) as a block; colour by epoch (NO_COLOR=1: letters and blocks only). The header has
the time, zones by condition, bytes written, device writes per second since the last frame,
live / dead / unflushed bytes and puts per second; the live epochs are listed under the map.
Write pointers are read each frame; epochs, slabs, live and dead bytes and counters are
the catalog's as of the writer's last flush. q, Ctrl-C, SIGINT, SIGTERM or SIGHUP quit.
Without a terminal on stdout it prints one JSON snapshot per interval, one per line (NDJSON).

  --interval MS        time between frames (default ${WATCH_DEFAULT_INTERVAL_MS})
  --count N            stop after N frames

zns-slab zones report <store-or-device>: the same (an explicit name for it). A folder
named like a verb (info, report, reset, ...) is given as ./info.

zns-slab zones info <store-or-device>: the device's geometry (zone count, size, capacity,
block size, in bytes and as text), open and active limits, kind and model (a kernel device:
/sys/block/<dev>/queue/zoned, device/model, libzbd's model name; the emulated device: its
folder and the process holding it), conditions, and whether a store owns it. Read-only.

zns-slab zones reset|open|close|finish <store-or-device> <zones>: one operation per zone,
as blkzone reset|open|close|finish and zbd reset|open|close|finish do. <zones> is a zone
number N, A-B, A- (to the last zone), --range A-B, or --all. A zone already as asked is
skipped (close of an empty zone, reset of an empty one, finish of a full one). JSON on
stdout: per zone, condition and write pointer before and after, ok, the device's error
code (ERR_ZONE_OPEN_LIMIT, ERR_ZONE_ACTIVE_LIMIT, ERR_ZONE_CONDITION, ...); a summary on
stderr. Open zones stay open after the command, as with blkzone (the emulated device
records them in device.json).

  --force              act on zones a store owns (its catalog's zones; on any other device,
                       zones that start with a zns-slab slab header). A reset loses the
                       store's data there: the store then refuses to open
                       (ERR_DEVICE_MISMATCH); openStore(dir, { salvage: true }) serves the
                       rest, zns-slab recover rebuilds a catalog from what is left. finish,
                       open and close lose no data (after a finish the store writes elsewhere).
                       A store open in another process is never touched, even with --force:
                       the device is opened exclusively (ERR_DEVICE_LOCKED, ERR_STORE_LOCKED).
  --yes, -y            reset and finish destroy data or capacity: they ask on the terminal
                       ("Reset 12 zones of /dev/nullb0 (3.1 GiB written)? [y/N]"); without
                       a terminal they refuse unless --yes. open and close never ask.
  --dry-run            print what would be done (the JSON, conditionAfter null); change nothing

Exit codes: ${ZoneToolExit.OK} done; ${ZoneToolExit.ERROR} the store or device could not be opened, or is open in another
process; ${ZoneToolExit.USAGE} usage; ${ZoneToolExit.OWNED} refused, a store owns some of the zones (no --force); ${ZoneToolExit.NOT_CONFIRMED} reset or
finish not confirmed; ${ZoneToolExit.ZONES_FAILED} the device refused some zones (their codes are in the JSON). With
${ZoneToolExit.ERROR}-${ZoneToolExit.NOT_CONFIRMED} nothing was changed.
`,
};

class UsageError extends Error {}

/** Where recover writes when the store still has a catalog.db. */
const RECOVERED_CATALOG_FILE = 'catalog.recovered.db';
/** Without a terminal, recover prints a progress line every this many zones. */
const PROGRESS_EVERY_ZONES = 64;

interface Args {
  command: string | undefined;
  target: string | undefined;
  /** Positional arguments after the target (only the zone verbs take one). */
  rest: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS = new Set(['--svg', '--range', '--condition', '--class', '--epoch', '--color-by', '--device', '--interval', '--count', '--port', '--host']);
const BOOLEAN_FLAGS = new Set(['--json', '--no-json', '--text', '--no-text', '--help', '-h', '--force', '--salvage', '--version', '--yes', '-y', '--dry-run', '--all', '--watch']);

/** The package's version, from its package.json (two folders above dist/tools/cli.js). */
function packageVersion(): string {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('-')) {
      const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
      if (VALUE_FLAGS.has(name)) {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(`${name} needs a value`);
        flags.set(name, value);
      } else if (BOOLEAN_FLAGS.has(name)) flags.set(name, true);
      else throw new UsageError(`unknown option ${name}`);
    } else positional.push(arg);
  }
  return { command: positional[0], target: positional[1], rest: positional.slice(2), flags };
}

function out(text: string): void {
  process.stdout.write(text);
}

function err(text: string): void {
  process.stderr.write(text);
}

const pct = (n: number | null) => (n === null ? 'n/a' : `${n.toFixed(1)}%`);

function intFlag(args: Args, name: string): number | undefined {
  const v = args.flags.get(name);
  if (v === undefined) return undefined;
  if (v === true || !/^\d+$/.test(v)) throw new UsageError(`${name} takes a non-negative integer`);
  return Number(v);
}

function statsText(s: GlobalStats): string {
  const g = s.device.geometry;
  const c = s.counters;
  const lines = [
    `zns-slab stats (schema v${s.version}) for ${path.resolve(s.store)}, taken ${s.takenAt}`,
    `device: ${s.device.kind}, ${g.zoneCount} zones of ${humanBytes(g.zoneSize)} (capacity ${humanBytes(g.zoneCapacity)}), at most ${g.maxOpenZones || 'any'} open / ${g.maxActiveZones || 'any'} active`,
    `zones: ${s.zones.owned} owned, ${s.zones.free} free, ${s.zones.active} active, ${s.zones.open} open, ${s.zones.full} full, ${s.zones.needingReset} needing reset, ${s.zones.unusable} unusable`,
    `objects: ${s.liveObjects} live in ${s.slabs} slabs; live ${humanBytes(s.derived.liveBytes)}, dead ${humanBytes(s.derived.deadBytes)} in owned zones; ` +
      `write amplification ${s.derived.writeAmplification ?? 'n/a'} (${humanBytes(c.deviceBytesWritten)} written for ${humanBytes(c.userBytesPut)} put)`,
    `why slow? new slabs ${c.slowPathCacheMiss} (partial null ${c.currentPartialNull}, partial full ${c.currentPartialFull}), ` +
      `ids recycled ${c.slabsRecycled} / new ${c.slabsOverflowed} (recycle rate ${pct(s.derived.recycleRatePct)}), hot reuse ${c.slabsReusedHot}, ` +
      `refused (epoch closed) ${c.slowPathEpochClosed}, lease commits ${c.leaseCommits}, zones finished early ${c.zonesFinishedEarly} (${humanBytes(c.finishWasteBytes)} left unwritten)`,
    `space back? zone resets ${c.zoneResets} (${humanBytes(c.zoneResetBytes)}), reset failures ${c.zoneResetFailures}, recovery resets ${c.recoveryZoneResets}, slabs freed ${c.slabsFreed}, net slabs ${s.derived.netSlabs}`,
    `zone GC: ${s.gc.enabled ? 'on' : 'not running (a read-only open; a writer sets it per open)'}; space amplification ${s.derived.spaceAmplification ?? 'n/a'} (${humanBytes(s.gc.bytesWritten)} held for ${humanBytes(s.gc.bytesLive)} live); ` +
      `collected ${c.gcZonesCollected} zones (${humanBytes(c.gcBytesFreed)} back), moved ${c.gcSlabsMoved} slabs (${humanBytes(c.gcBytesMoved)}) in ${(c.gcMs / 1000).toFixed(2)} s; failed steps ${c.gcStepFailures}`,
    `operations: puts ${c.puts}, gets ${c.gets}, frees ${c.frees}, flushes ${c.flushes}`,
    '',
    `epochs (current ${s.epochCurrent}):`,
    `  ${'epoch'.padEnd(7)}${'state'.padEnd(9)}${'zones'.padStart(6)}${'slabs'.padStart(8)}${'live objs'.padStart(11)}${'live'.padStart(12)}${'dead'.padStart(12)}${'reclaimable'.padStart(13)}`,
    ...s.epochs.map((e) => epochRow(e)),
    '',
    'size classes with activity:',
    `  ${'class'.padEnd(6)}${'size'.padStart(8)}${'slabs'.padStart(7)}${'live objs'.padStart(11)}${'puts'.padStart(10)}${'new slabs'.padStart(11)}${'recycle'.padStart(9)}${'refused'.padStart(9)}`,
    ...s.classes.map((k) => classRow(k)),
  ];
  return lines.join('\n') + '\n';
}

function epochRow(e: EpochStats): string {
  return `  ${String(e.epoch).padEnd(7)}${e.state.padEnd(9)}${String(e.zones).padStart(6)}${String(e.slabs).padStart(8)}${String(e.liveObjects).padStart(11)}${humanBytes(e.liveBytes).padStart(12)}${humanBytes(e.deadBytes).padStart(12)}${humanBytes(e.reclaimableBytes).padStart(13)}`;
}

function classRow(k: ClassStats): string {
  return `  ${String(k.sizeClass).padEnd(6)}${String(k.size).padStart(8)}${String(k.slabs).padStart(7)}${String(k.liveObjects).padStart(11)}${String(k.counters.puts).padStart(10)}${String(k.counters.slowPathCacheMiss).padStart(11)}${pct(k.derived.recycleRatePct).padStart(9)}${String(k.counters.slowPathEpochClosed).padStart(9)}`;
}

function isStore(target: string): boolean {
  return fs.existsSync(path.join(target, CATALOG_FILE));
}

/**
 * Refuses, naming the path and what is wrong with it, a target that cannot be a store folder,
 * an emulated device folder or a zoned block device: missing, a regular file, a character
 * device (such as /dev/null). What is left (a folder, a block device) the opener judges.
 */
function checkTarget(target: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${target} does not exist`);
    throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${target} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  if (stat.isDirectory() || stat.isBlockDevice()) return;
  const what = stat.isFile() ? 'a regular file' : stat.isCharacterDevice() ? 'a character device' : 'neither a folder nor a block device';
  throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${target} is ${what}: give a store folder, an emulated device folder or a zoned block device`);
}

function cacheText(c: SavedCacheStats, deviceBytes: number): string {
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const mb = (x: number | null) => (x === null ? 'n/a' : `${(x / 1048576).toFixed(1)} MiB`);
  return [
    `cache (as of ${c.savedAt ?? 'its last flush'}): ${c.entries ?? '?'} entries, ${mb(c.heldBytes)} held of ${mb(c.maxBytes)}, ${c.ttlBuckets} TTL buckets`,
    `  hits ${c.hits}, misses ${c.misses}, hit ratio ${pct(c.hitRatio)}; sets ${c.sets}, deletes ${c.deletes}`,
    `  evicted ${c.evictions.entries} entries in ${c.evictions.epochs} epochs (${mb(c.evictions.bytes)}); reinserted ${c.reinsertions.entries} (${mb(c.reinsertions.bytes)}); expired ${c.expirations.entries} in ${c.expirations.epochs} epochs`,
    `  user bytes ${mb(c.userBytes)}, device bytes ${mb(deviceBytes)}, write amplification ${c.userBytes === 0 ? 'n/a' : (deviceBytes / c.userBytes).toFixed(2)}; index ${c.indexBytesPerEntry === null ? 'n/a' : c.indexBytesPerEntry.toFixed(1)} B/entry`,
    '',
  ].join('\n');
}

function cmdStats(args: Args): number {
  if (!args.target) throw new UsageError('stats needs a store folder');
  if (!isStore(args.target)) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `${args.target} is not a zns-slab store (no ${CATALOG_FILE})`);
  const json = !args.flags.has('--no-json');
  const text = !args.flags.has('--no-text');
  const sizeClass = intFlag(args, '--class');
  const epoch = intFlag(args, '--epoch');
  const store = openStore(args.target, args.flags.has('--salvage') ? { salvage: true } : { readOnly: true });
  try {
    const global = store.statsGlobal();
    // A cache folder: its counters as of its last flush, beside the store's.
    const cache = readCacheStats(args.target);
    let snapshot: unknown = cache === undefined ? global : { ...global, cache: { ...cache, deviceBytes: global.counters.deviceBytesWritten, writeAmplification: cache.userBytes === 0 ? null : global.counters.deviceBytesWritten / cache.userBytes } };
    if (sizeClass !== undefined) snapshot = store.statsClass(sizeClass);
    else if (epoch !== undefined) snapshot = store.statsEpoch(epoch);
    if (json) out(JSON.stringify(snapshot, null, 2) + '\n');
    if (text) {
      if (sizeClass !== undefined) err(`size class ${sizeClass}:\n${classRow(snapshot as ClassStats)}\n`);
      else if (epoch !== undefined) err(`epoch ${epoch}:\n${epochRow(snapshot as EpochStats)}\n`);
      else {
        err(statsText(global));
        if (cache !== undefined) err(cacheText(cache, global.counters.deviceBytesWritten));
      }
    }
  } finally {
    store.close();
  }
  return 0;
}

function parseRange(spec: string, count: number): [number, number] {
  const m = /^(\d+)(?:(-)(\d*))?$/.exec(spec);
  if (!m) throw new UsageError(`--range takes A, A-B or A-, got ${spec}`);
  const a = Number(m[1]);
  const b = m[2] ? (m[3] ? Number(m[3]) : count - 1) : a;
  if (a > b) throw new UsageError(`--range ${spec}: the first zone (${a}) is after the last (${b})`);
  if (a >= count) throw new UsageError(`--range ${spec} is outside zones 0-${count - 1}`);
  return [a, Math.min(b, count - 1)];
}

/** The zone's part in zone GC: a head (user/gc), being collected, or what collecting it would give back. */
function gcCell(z: ZoneStats): string {
  if (z.collecting) return 'collecting';
  if (z.head !== null) return `${z.head} head`;
  return z.gcGainBytes > 0 && z.gcGainBytes >= GC_MIN_GAIN_FRACTION * z.capacity ? `+${humanBytes(z.gcGainBytes)}` : '-';
}

function zonesTable(rows: readonly ZoneStats[], forStore: boolean): string {
  const head = ['zone', 'start', 'size', 'capacity', 'wp', 'fill%', 'type', 'condition', ...(forStore ? ['epoch', 'state', 'slabs', 'live', 'dead', 'gc'] : [])];
  const body = rows.map((z) => [
    String(z.index),
    `0x${z.start.toString(16)}`,
    humanBytes(z.size),
    humanBytes(z.capacity),
    `0x${z.writePointer.toString(16)}`,
    z.fillPct.toFixed(1),
    z.type,
    z.damaged ? `${z.condition} DAMAGED` : z.condition,
    ...(forStore ? [z.epoch === null ? '-' : String(z.epoch), z.epochState ?? '-', String(z.slabs), humanBytes(z.liveBytes), humanBytes(z.deadBytes), gcCell(z)] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n') + '\n';
}

function cmdZones(args: Args): number {
  if (!args.target) throw new UsageError('zones needs a store folder or a zoned device');
  const colorFlag = args.flags.get('--color-by');
  if (colorFlag !== undefined && colorFlag !== 'epoch' && colorFlag !== 'condition') throw new UsageError('--color-by takes epoch or condition');
  const conditionFlag = args.flags.get('--condition');
  const conditions = typeof conditionFlag === 'string' ? new Set(conditionFlag.split(',').map((c) => c.trim())) : undefined;
  const known = new Set(['empty', 'implicit-open', 'explicit-open', 'closed', 'full', 'read-only', 'offline', 'not-wp']);
  for (const c of conditions ?? []) if (!known.has(c)) throw new UsageError(`unknown condition ${c} (one of ${[...known].join(', ')})`);

  const forStore = isStore(args.target);
  let rows: ZoneStats[];
  let title: string;
  if (forStore) {
    const store = openStore(args.target, args.flags.has('--salvage') ? { salvage: true } : { readOnly: true });
    try {
      rows = store.statsZones();
      title = `zns-slab store ${path.resolve(args.target)} (${store.device.kind} device)`;
    } finally {
      store.close();
    }
  } else {
    // Observed, not opened: looking changes nothing (no torn block cut off under a writer, no
    // zone someone opened closed again) and takes no lock.
    const device = observeZonedDevice(args.target);
    try {
      rows = zoneStats(device.reportZones());
      title = `${device.kind} zoned device ${device.path}`;
    } finally {
      device.close();
    }
  }
  const total = rows.length;
  const rangeFlag = args.flags.get('--range');
  if (typeof rangeFlag === 'string') {
    const [a, b] = parseRange(rangeFlag, total);
    rows = rows.slice(a, b + 1);
  }
  if (conditions) rows = rows.filter((z) => conditions.has(z.condition));

  const svg = args.flags.get('--svg');
  if (typeof svg === 'string') {
    const colorBy: ColorBy = (colorFlag as ColorBy | undefined) ?? (forStore ? 'epoch' : 'condition');
    fs.writeFileSync(svg, renderZoneMap(rows, { title, colorBy }));
    err(`zone map of ${rows.length} zones written to ${svg}\n`);
  }
  if (args.flags.has('--json')) out(JSON.stringify(rows, null, 2) + '\n');
  else out(zonesTable(rows, forStore));
  err(`${rows.length} of ${total} zones shown\n`);
  return 0;
}

/** zones --watch and serve: they run until stopped (tools/watch.ts, tools/serve.ts). */
function cmdLive(args: Args): Promise<number> {
  const watching = args.command === 'zones';
  if (!args.target) throw new UsageError(`${watching ? 'zones --watch' : 'serve'} needs a store folder or a zoned device`);
  checkTarget(args.target);
  const allowed = new Set(watching ? ['--watch', '--interval', '--count'] : ['--interval', '--port', '--host']);
  for (const flag of args.flags.keys()) if (!allowed.has(flag)) throw new UsageError(`${watching ? 'zones --watch' : 'serve'} takes ${[...allowed].join(', ')}, not ${flag}`);
  const intervalMs = intFlag(args, '--interval') ?? WATCH_DEFAULT_INTERVAL_MS;
  const problem = intervalProblem(intervalMs);
  if (problem !== undefined) throw new UsageError(problem);
  if (watching) {
    const count = intFlag(args, '--count');
    if (count === 0) throw new UsageError('--count takes a positive number of frames');
    return watchZones({ target: args.target, intervalMs, ...(count !== undefined ? { count } : {}), stdout: process.stdout, stdin: process.stdin, err, env: process.env });
  }
  const port = intFlag(args, '--port') ?? SERVE_DEFAULT_PORT;
  if (port > 65535) throw new UsageError(`--port takes 0 to 65535, got ${port}`);
  const host = args.flags.get('--host');
  if (host !== undefined && (host === true || !SERVE_LOOPBACK_HOSTS.includes(host))) {
    throw new UsageError(`--host: serve listens on the loopback interface only (${SERVE_LOOPBACK_HOSTS.join(', ')}); from elsewhere, use an SSH tunnel`);
  }
  return serve({ target: args.target, host: typeof host === 'string' ? host : SERVE_DEFAULT_HOST, port, intervalMs, out, err });
}

function cmdRecover(args: Args): number {
  if (!args.target) throw new UsageError('recover needs a store folder');
  const dir = args.target;
  const deviceFlag = args.flags.get('--device');
  const devicePath = typeof deviceFlag === 'string' ? deviceFlag : path.join(dir, DEFAULT_DEVICE_DIR);
  if (!fs.existsSync(devicePath)) throw new ZnsSlabError(ErrorCode.INVALID_STORE, `no device at ${devicePath} (name it with --device)`);
  const current = path.join(dir, CATALOG_FILE);
  let target = current;
  if (fs.existsSync(current)) {
    if (args.flags.has('--force')) {
      for (const suffix of ['', '-wal', '-shm']) if (fs.existsSync(current + suffix)) fs.renameSync(current + suffix, `${current}.old${suffix}`);
    } else target = path.join(dir, RECOVERED_CATALOG_FILE);
  }
  if (fs.existsSync(target)) throw new UsageError(`${target} exists: remove it, or use --force to replace ${CATALOG_FILE}`);
  const device = openZonedDevice(devicePath, { exclusive: true });
  let report: RecoverReport;
  try {
    const tty = process.stderr.isTTY === true;
    report = rebuildCatalog(device, target, storeRelative(dir, device.path), (zone, zones, slabs, objects) => {
      const line = `recover: zone ${zone + 1}/${zones}, ${slabs} slabs, ${objects} objects so far`;
      if (tty && zone % 16 === 0) err(`\r${line}`);
      else if (!tty && (zone % PROGRESS_EVERY_ZONES === 0 || zone === zones - 1)) err(`${line}\n`);
    }, fs.existsSync(path.join(dir, DESCRIPTOR_FILE)) ? { purpose: CACHE_PURPOSE } : {}); // a cache folder stays a cache
  } finally {
    device.close();
  }
  if (process.stderr.isTTY) err('\n');
  out(JSON.stringify(report, null, 2) + '\n');
  const mb = (report.bytesScanned / 1e6).toFixed(1);
  err(
    `recovered store ${report.storeId}: ${report.objects} objects in ${report.slabs} slabs of ${report.epochs.length} epochs, ` +
      `from ${report.zonesWithData} written zones (${mb} MB read) in ${report.seconds.toFixed(2)} s\n` +
      (report.objectsCorrupt > 0 ? `  ${report.objectsCorrupt} objects failed their checksum and were left out\n` : '') +
      (report.zonesUnreadable.length > 0 ? `  zones that could not be read: ${report.zonesUnreadable.join(', ')}\n` : '') +
      `  frees made after a slab's last seal are back; recovered epochs are CLOSING, a new one is current\n` +
      `  catalog written to ${target}` +
      (target === current ? '\n' : `\n  to use it: mv ${target} ${current}  (after moving the old one away)\n`),
  );
  return 0;
}

export function main(argv: string[]): number | Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
    // zns-slab zones <verb> <target> [zones]: the verb comes before the target.
    const verb = args.command === 'zones' && args.target !== undefined && isZoneVerb(args.target) ? args.target : undefined;
    if (verb !== undefined) args = { ...args, target: args.rest[0], rest: args.rest.slice(1) };
    if (verb === undefined || verb === 'report' || verb === 'info') {
      if (args.rest.length > 0) throw new UsageError(`unexpected argument ${args.rest[0]}`);
    }
    if (verb !== undefined && verb !== 'report' && args.target === undefined && !args.flags.has('--help') && !args.flags.has('-h')) {
      throw new UsageError(`zones ${verb} needs a store folder or a zoned device`);
    }
    if (args.flags.has('--version')) {
      out(`zns-slab ${packageVersion()}\n`);
      return 0;
    }
    if (args.target !== undefined && (args.command === 'stats' || args.command === 'zones' || args.command === 'recover')) checkTarget(args.target);
    if (args.command === undefined || args.command === 'help' || (args.flags.has('--help') && args.command === undefined)) {
      const topic = args.command === 'help' ? args.target : undefined;
      out(HELP[topic ?? 'main'] ?? HELP.main!);
      return args.command === undefined && !args.flags.has('--help') ? 2 : 0;
    }
    if (args.flags.has('--help') || args.flags.has('-h')) {
      out(HELP[args.command] ?? HELP.main!);
      return 0;
    }
    if (args.command === 'serve' || (args.command === 'zones' && (verb === undefined || verb === 'report') && args.flags.has('--watch'))) return cmdLive(args).catch(exitFor);
    if (args.command === 'stats') return cmdStats(args);
    if (args.command === 'zones' && verb !== undefined && verb !== 'report') {
      return runZoneVerb(verb, args.target!, args.rest, args.flags, { usage: (message) => { throw new UsageError(message); }, out, err });
    }
    if (args.command === 'zones') return cmdZones(args);
    if (args.command === 'recover') return cmdRecover(args);
    throw new UsageError(`unknown command ${args.command}`);
  } catch (e) {
    return exitFor(e);
  }
}

/** The exit code for an error, said on stderr in one line (a usage error with the usage). */
function exitFor(e: unknown): number {
  if (e instanceof UsageError) {
    err(`zns-slab: ${e.message}\n${HELP.main}`);
    return 2;
  }
  if (e instanceof ZnsSlabError) {
    err(`zns-slab: ${e.code}: ${e.message}\n`);
    return 1;
  }
  err(`zns-slab: ${(e as Error).message}\n`);
  return 1;
}

const exit = main(process.argv.slice(2));
if (typeof exit === 'number') process.exitCode = exit;
else void exit.then((code) => (process.exitCode = code));
