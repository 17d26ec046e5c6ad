/**
 * `zns-slab zones info|reset|open|close|finish`: the zone tool's verbs, for parity with
 * util-linux's `blkzone` and libzbd's `zbd`, on kernel zoned devices and emulated device folders.
 *
 * - `info` prints the device's geometry, limits, kind and model, and whether a store owns it.
 * - `reset|open|close|finish` act on one zone, a range or every zone, one operation per zone,
 *   and report each zone's condition and write pointer before and after.
 *
 * Safety, in order: the device is opened exclusively (as a store opens it), so nothing is ever
 * changed under a running store, even with `--force` (ERR_DEVICE_LOCKED / ERR_STORE_LOCKED,
 * exit 1); zones a store owns are refused without `--force` (EXIT_OWNED); `reset` and `finish`
 * ask on the terminal, and without one refuse unless `--yes` (EXIT_NOT_CONFIRMED).
 *
 * Which zones a store owns: for a store folder (or its emulated device folder, `<store>/device`)
 * the catalog's zone rows say; for any other device, a zone whose first block is a zns-slab
 * slab header (engine/slabHeader.ts, what `zns-slab recover` reads) holds a store's data.
 *
 * JSON on stdout, human text on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import tty from 'node:tty';
import { Catalog } from '../catalog/catalog.js';
import { CATALOG_FILE, DEFAULT_DEVICE_DIR } from '../engine/store.js';
import { SLAB_HEADER_BYTES, readSlabHeader } from '../engine/slabHeader.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { type DeviceGeometry, type Zone, type ZonedDevice, ZONE_CONDITION_NAMES, ZoneCondition, ZoneType } from '../zns/device.js';
import { isEmulatedDevice } from '../zns/emulated.js';
import { LOCK_FILE } from '../zns/lock.js';
import { type LibzbdDevice } from '../zns/libzbd.js';
import { isBlockDevice, openZonedDevice } from '../zns/open.js';
import { observeZonedDevice } from '../zns/observe.js';
import { humanBytes } from './text.js';

/** The zone tool's exit codes (0, 1 and 2 are every zns-slab command's). */
export const ZoneToolExit = {
  /** Done: every zone's operation succeeded or had nothing to do. */
  OK: 0,
  /** The store or device could not be opened or read, or is open in another process (nothing was changed). */
  ERROR: 1,
  /** Bad command line. */
  USAGE: 2,
  /** Refused: a store owns some of the zones, and `--force` was not given (nothing was changed). */
  OWNED: 3,
  /** Refused: `reset`/`finish` not confirmed (answered no, or no terminal and no `--yes`; nothing was changed). */
  NOT_CONFIRMED: 4,
  /** The device refused the operation on some zones (each one's code is in the JSON); the others were done. */
  ZONES_FAILED: 5,
} as const;

export const ZONE_VERBS = ['info', 'report', 'reset', 'open', 'close', 'finish'] as const;
export type ZoneVerb = (typeof ZONE_VERBS)[number];
type ZoneOp = 'reset' | 'open' | 'close' | 'finish';

export function isZoneVerb(word: string): word is ZoneVerb {
  return (ZONE_VERBS as readonly string[]).includes(word);
}

/** Flags each verb takes (besides --help). */
const VERB_FLAGS: Readonly<Record<Exclude<ZoneVerb, 'report'>, readonly string[]>> = {
  info: [],
  reset: ['--range', '--all', '--force', '--yes', '-y', '--dry-run'],
  finish: ['--range', '--all', '--force', '--yes', '-y', '--dry-run'],
  // --yes is taken (and has nothing to confirm) so that one script line can run any verb.
  open: ['--range', '--all', '--force', '--yes', '-y', '--dry-run'],
  close: ['--range', '--all', '--force', '--yes', '-y', '--dry-run'],
};

/** What changing a store's zones does to the store (the refusal and the --force summary say it). */
const FORCE_CONSEQUENCE: Readonly<Record<ZoneOp, string>> = {
  reset:
    "Resetting a store's zone loses its data there: the store then refuses to open (ERR_DEVICE_MISMATCH); " +
    'openStore(dir, { salvage: true }) serves the rest, zns-slab recover rebuilds a catalog from what is left.',
  finish: "Finishing a store's zone loses no data but ends its writes there (the store writes elsewhere; the rest of the zone is lost until a reset).",
  open: "Opening a store's zone loses no data but takes one of the device's open zones from it until it is closed.",
  close: "Closing a store's zone loses no data (the store reopens it when it writes there).",
};

/** Longest answer read at the confirmation prompt. */
const ANSWER_MAX_BYTES = 256;
/** A terminal read that would block (a non-blocking stdin) is retried after this many ms. */
const ANSWER_RETRY_MS = 20;
/** Zone lists in messages name at most this many ranges, then "and N more". */
const MESSAGE_MAX_RANGES = 8;
/** The summary on stderr names at most this many failed zones (the JSON has all). */
const MESSAGE_MAX_FAILURES = 8;

/** libzbd's names of the zone models (lib/zbd_utils.c: zbd_device_model_str), long and short. */
const LIBZBD_MODEL_NAMES: Readonly<Record<number, readonly [string, string]>> = {
  1: ['host-managed', 'HM'],
  2: ['host-aware', 'HA'],
  3: ['not-zoned', 'NZ'],
};

export interface ZoneVerbContext {
  /** Throws the CLI's usage error (exit 2). */
  usage(message: string): never;
  out(text: string): void;
  err(text: string): void;
}

/** One zone's result, as printed (a JSON array of these on stdout). */
export interface ZoneOpResult {
  zone: number;
  start: number;
  conditionBefore: string;
  writePointerBefore: number;
  /** null with --dry-run (nothing was done). */
  conditionAfter: string | null;
  writePointerAfter: number | null;
  /** Why the operation was not sent: the zone was already as asked (e.g. `close` of an empty zone). */
  skipped: string | null;
  ok: boolean;
  /** The device's error code (ERR_ZONE_OPEN_LIMIT, ERR_ZONE_CONDITION, ...) when not ok. */
  code: string | null;
  message: string | null;
  /** The id of the store that owns the zone, if one does (the operation needed --force). */
  owner: string | null;
}

/** Who owns what on the device. */
interface Ownership {
  /** The store folder, when the target is a store or the emulated device of one. */
  storeDir: string | null;
  storeId: string | null;
  /** Zone -> id of the store whose data it holds. */
  zones: Map<number, string>;
  /** How ownership was found. */
  source: 'catalog' | 'slab headers';
}

interface Target {
  /** The path given. */
  given: string;
  /** The device to open. */
  device: string;
  /** The store folder, when the target is one or its device is a store's. */
  storeDir: string | null;
  /** `info` only: the store is open in another process, so its catalog cannot be read (ownership comes from the slab headers). */
  storeRunning: boolean;
}

/** Runs `zns-slab zones <verb> <target> [zones]`; returns the exit code. */
export function runZoneVerb(verb: Exclude<ZoneVerb, 'report'>, target: string, rest: readonly string[], flags: ReadonlyMap<string, string | true>, ctx: ZoneVerbContext): number {
  for (const name of flags.keys()) {
    if (name !== '--help' && name !== '-h' && !VERB_FLAGS[verb].includes(name)) ctx.usage(`${name} is not an option of zones ${verb}`);
  }
  if (verb === 'info') {
    if (rest.length > 0) ctx.usage(`unexpected argument ${rest[0]}`);
    return info(target, ctx);
  }
  if (rest.length > 1) ctx.usage(`unexpected argument ${rest[1]}`);
  return zoneOp(verb, target, rest[0], flags, ctx);
}

// ---------------------------------------------------------------------------------------------
// Targets and ownership

/**
 * Where the device is and which store (if any) it belongs to. Reads the catalog when there is
 * one: ERR_STORE_LOCKED while a store has it open, except for a look (`read`) at a store's own
 * emulated device, which the device's files answer.
 */
function resolveTarget(given: string, purpose: 'read' | 'change'): Target {
  const running = (e: unknown) => purpose === 'read' && e instanceof ZnsSlabError && e.code === ErrorCode.STORE_LOCKED;
  if (fs.existsSync(path.join(given, CATALOG_FILE))) {
    try {
      const meta = withCatalog(given, (c) => c.readMeta());
      return { given, device: path.resolve(given, meta.devicePath), storeDir: given, storeRunning: false };
    } catch (e) {
      const own = path.join(given, DEFAULT_DEVICE_DIR);
      if (running(e) && isEmulatedDevice(own)) return { given, device: own, storeDir: given, storeRunning: true };
      throw e;
    }
  }
  // An emulated device in a store folder (the default layout, <store>/device).
  if (!isBlockDevice(given) && isEmulatedDevice(given)) {
    const parent = path.dirname(path.resolve(given));
    if (fs.existsSync(path.join(parent, CATALOG_FILE))) {
      try {
        const meta = withCatalog(parent, (c) => c.readMeta());
        if (path.resolve(parent, meta.devicePath) === path.resolve(given)) return { given, device: given, storeDir: parent, storeRunning: false };
      } catch (e) {
        if (running(e) && path.basename(path.resolve(given)) === DEFAULT_DEVICE_DIR) return { given, device: given, storeDir: parent, storeRunning: true };
        throw e;
      }
    }
  }
  return { given, device: given, storeDir: null, storeRunning: false };
}

/** Opens the store's catalog read-only (ERR_STORE_LOCKED while a store has it open), runs `fn`, closes it. */
function withCatalog<T>(storeDir: string, fn: (c: Catalog) => T): T {
  let catalog: Catalog;
  try {
    catalog = new Catalog(path.join(storeDir, CATALOG_FILE), { readonly: true, mustExist: true });
  } catch (e) {
    if (e instanceof ZnsSlabError && e.code === ErrorCode.STORE_LOCKED) {
      throw new ZnsSlabError(ErrorCode.STORE_LOCKED, `store ${storeDir} is open in another process: the zone tool never works under a running store, even with --force (close the store first)`, { cause: e });
    }
    throw e;
  }
  try {
    return fn(catalog);
  } finally {
    catalog.close();
  }
}

/** The zones' owners: the catalog's rows for a store, else the slab headers at the zones' starts. */
function findOwnership(target: Target, device: ZonedDevice, zones: readonly Zone[]): Ownership {
  if (target.storeDir !== null && !target.storeRunning) {
    const { storeId, rows } = withCatalog(target.storeDir, (c) => ({ storeId: c.readMeta().storeId, rows: c.zones() }));
    return { storeDir: target.storeDir, storeId, zones: new Map(rows.map((r) => [r.zone, storeId])), source: 'catalog' };
  }
  const owned = new Map<number, string>();
  for (const z of zones) {
    const id = slabHeaderStore(device, z);
    if (id !== undefined) owned.set(z.index, id);
  }
  const ids = new Set(owned.values());
  const storeId = ids.size === 1 ? [...ids][0]! : ids.size === 0 ? (device.owner ?? null) : null;
  return { storeDir: target.storeDir, storeId, zones: owned, source: 'slab headers' };
}

/** The store id in the slab header at the zone's start, if the zone holds one. */
function slabHeaderStore(device: ZonedDevice, z: Zone): string | undefined {
  if (z.type === ZoneType.CONVENTIONAL || z.condition === ZoneCondition.OFFLINE || writtenBytes(z) < SLAB_HEADER_BYTES) return undefined;
  let head: Buffer;
  try {
    head = device.read(z.start, SLAB_HEADER_BYTES);
  } catch {
    return undefined; // an unreadable zone shows no header: whose it is cannot be told
  }
  return readSlabHeader(head)?.storeId.toString('hex');
}

/** Bytes written in the zone (a FULL zone counts its capacity; a conventional one, none: it has no write pointer). */
function writtenBytes(z: Zone): number {
  if (z.condition === ZoneCondition.FULL) return z.capacity;
  if (z.condition === ZoneCondition.EMPTY || z.condition === ZoneCondition.OFFLINE || z.condition === ZoneCondition.NOT_WRITE_POINTER) return 0;
  return z.writePointer - z.start;
}

// ---------------------------------------------------------------------------------------------
// info

export interface ZoneInfo {
  target: string;
  device: string;
  kind: ZonedDevice['kind'];
  /** libzbd's model name (host-managed, host-aware), or `emulated`. */
  model: string;
  /** For a kernel device: /sys/block/<dev>/queue/zoned, device/model and the vendor id libzbd reads. Null elsewhere. */
  kernel: { name: string; zoned: string | null; deviceModel: string | null; vendorId: string; modelShort: string; physicalBlockSize: number; sectors: number } | null;
  /** For an emulated device: its folder and the pid of the process holding its lock (a store), if one does. */
  emulated: { folder: string; lockedBy: number | null } | null;
  geometry: DeviceGeometry;
  bytes: { zoneSize: number; zoneCapacity: number; deviceSize: number; deviceCapacity: number; written: number };
  human: { zoneSize: string; zoneCapacity: string; deviceSize: string; deviceCapacity: string; written: string };
  /** Zones per condition name. */
  conditions: Record<string, number>;
  /**
   * The store that owns it: its folder (when known), id, the zones it owns and how that was
   * found; `running`: a store has it open in another process (then the catalog cannot be read,
   * and the slab headers say which zones hold its data).
   */
  store: { dir: string | null; storeId: string | null; ownedZones: number; source: Ownership['source']; running: boolean } | null;
}

function info(given: string, ctx: ZoneVerbContext): number {
  const target = resolveTarget(given, 'read');
  // An emulated device is observed, not opened: opening cuts a torn last block off a zone file,
  // which beside a store writing to it would cut into a write landing. A kernel device is
  // opened for libzbd's model and vendor (keepOpenZones: zones someone opened stay open).
  const device = isBlockDevice(target.device) ? openZonedDevice(target.device, { keepOpenZones: true }) : observeZonedDevice(target.device);
  let result: ZoneInfo;
  try {
    const zones = device.reportZones();
    const owners = findOwnership(target, device, zones);
    const g = device.geometry;
    const conditions: Record<string, number> = {};
    for (const name of Object.values(ZONE_CONDITION_NAMES)) conditions[name] = 0;
    let written = 0;
    for (const z of zones) {
      conditions[ZONE_CONDITION_NAMES[z.condition]] = (conditions[ZONE_CONDITION_NAMES[z.condition]] ?? 0) + 1;
      written += writtenBytes(z);
    }
    const bytes = { zoneSize: g.zoneSize, zoneCapacity: g.zoneCapacity, deviceSize: g.zoneCount * g.zoneSize, deviceCapacity: g.zoneCount * g.zoneCapacity, written };
    const owned = owners.zones.size > 0 || owners.storeDir !== null || owners.storeId !== null;
    const lockedBy = device.kind === 'emulated' ? lockHolder(device.path) : null;
    result = {
      target: given,
      device: device.path,
      kind: device.kind,
      model: device.kind === 'emulated' ? 'emulated' : LIBZBD_MODEL_NAMES[(device as LibzbdDevice).info.model]?.[0] ?? 'unknown',
      kernel: device.kind === 'libzbd' ? kernelInfo(device as LibzbdDevice) : null,
      emulated: device.kind === 'emulated' ? { folder: path.resolve(device.path), lockedBy } : null,
      geometry: { ...g },
      bytes,
      human: {
        zoneSize: humanBytes(bytes.zoneSize),
        zoneCapacity: humanBytes(bytes.zoneCapacity),
        deviceSize: humanBytes(bytes.deviceSize),
        deviceCapacity: humanBytes(bytes.deviceCapacity),
        written: humanBytes(bytes.written),
      },
      conditions,
      store: owned
        ? { dir: owners.storeDir === null ? null : path.resolve(owners.storeDir), storeId: owners.storeId, ownedZones: owners.zones.size, source: owners.source, running: target.storeRunning || lockedBy !== null }
        : null,
    };
  } finally {
    device.close();
  }
  ctx.out(JSON.stringify(result, null, 2) + '\n');
  ctx.err(infoText(result));
  return ZoneToolExit.OK;
}

function kernelInfo(device: LibzbdDevice): NonNullable<ZoneInfo['kernel']> {
  const name = path.basename(fs.realpathSync(device.path));
  const sys = (file: string): string | null => {
    try {
      return fs.readFileSync(path.join('/sys/block', name, file), 'utf8').trim();
    } catch {
      return null;
    }
  };
  const names = LIBZBD_MODEL_NAMES[device.info.model];
  return {
    name,
    zoned: sys('queue/zoned'),
    deviceModel: sys('device/model'),
    vendorId: device.info.vendorId,
    modelShort: names?.[1] ?? '??',
    physicalBlockSize: device.info.physicalBlockSize,
    sectors: device.info.nrSectors,
  };
}

/** The pid in an emulated device's lock file, if that process is alive (a store has the device open). */
function lockHolder(dir: string): number | null {
  let pid: number;
  try {
    pid = Number.parseInt(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'), 10);
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

function infoText(r: ZoneInfo): string {
  const g = r.geometry;
  const limit = (n: number) => (n === 0 ? 'no limit' : String(n));
  const lines = [
    `${r.target}: ${r.kind === 'emulated' ? `emulated zoned device, folder ${r.emulated!.folder}` : `${r.model} zoned block device ${r.device}`}`,
  ];
  if (r.kernel) {
    lines.push(`  kernel: /sys/block/${r.kernel.name}/queue/zoned ${r.kernel.zoned ?? '(unreadable)'}, model ${r.kernel.deviceModel ?? '(none)'}, vendor id '${r.kernel.vendorId}', libzbd model ${r.model} (${r.kernel.modelShort})`);
  }
  if (r.emulated?.lockedBy) lines.push(`  open in process ${r.emulated.lockedBy} (a store)`);
  lines.push(
    `  zones: ${g.zoneCount} of ${r.human.zoneSize} (${g.zoneSize} bytes), capacity ${r.human.zoneCapacity} (${g.zoneCapacity} bytes); block ${g.logicalBlockSize} bytes`,
    `  size ${r.human.deviceSize} (${r.bytes.deviceSize} bytes), capacity ${r.human.deviceCapacity}, written ${r.human.written}`,
    `  limits: open ${limit(g.maxOpenZones)}, active ${limit(g.maxActiveZones)}`,
    `  conditions: ${Object.entries(r.conditions).filter(([, n]) => n > 0).map(([c, n]) => `${n} ${c}`).join(', ')}`,
  );
  if (r.store === null) lines.push('  no zns-slab store owns it');
  else {
    const who = r.store.dir !== null ? `store ${r.store.dir}` : 'a zns-slab store';
    lines.push(`  owned by ${who}${r.store.storeId ? ` (store id ${r.store.storeId})` : ''}: ${r.store.ownedZones} zones (by its ${r.store.source})${r.store.running ? ', open in another process' : ''}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// reset, open, close, finish

/** Zones `[first, last]` named by a positional `A`, `A-B` or `A-`, by `--range`, or by `--all`. */
function selection(spec: string | undefined, flags: ReadonlyMap<string, string | true>, count: number, ctx: ZoneVerbContext): [number, number] {
  const range = flags.get('--range');
  const all = flags.has('--all');
  const given = [spec !== undefined, typeof range === 'string', all].filter(Boolean).length;
  if (given === 0) ctx.usage('name the zones: a zone number, A-B, --range A-B or --all');
  if (given > 1) ctx.usage('name the zones once: a zone number, A-B, --range A-B or --all');
  if (all) return [0, count - 1];
  const text = spec ?? (range as string);
  const m = /^(\d+)(?:(-)(\d*))?$/.exec(text);
  if (!m) ctx.usage(`zones are A, A-B or A-, got ${text}`);
  const a = Number(m[1]);
  const b = m[2] ? (m[3] ? Number(m[3]) : count - 1) : a;
  if (a > b) ctx.usage(`zones ${text}: the first zone (${a}) is after the last (${b})`);
  if (b >= count) ctx.usage(`zones ${text} are outside zones 0-${count - 1}`);
  return [a, b];
}

/** Why `op` has nothing to do on a zone in `condition`, or undefined when it is sent. */
function nothingToDo(op: ZoneOp, condition: ZoneCondition): string | undefined {
  if (condition === ZoneCondition.NOT_WRITE_POINTER) return 'conventional (no write pointer)';
  switch (op) {
    case 'reset':
      return condition === ZoneCondition.EMPTY ? 'already empty' : undefined;
    case 'open':
      return condition === ZoneCondition.EXPLICIT_OPEN ? 'already open' : undefined;
    case 'close':
      if (condition === ZoneCondition.CLOSED) return 'already closed';
      if (condition === ZoneCondition.EMPTY || condition === ZoneCondition.FULL) return `not open (${ZONE_CONDITION_NAMES[condition]})`;
      return undefined;
    case 'finish':
      return condition === ZoneCondition.FULL ? 'already full' : undefined;
  }
}

function apply(device: ZonedDevice, op: ZoneOp, zone: number): void {
  if (op === 'reset') device.resetZone(zone);
  else if (op === 'open') device.openZone(zone);
  else if (op === 'close') device.closeZone(zone);
  else device.finishZone(zone);
}

function zoneOp(op: ZoneOp, given: string, spec: string | undefined, flags: ReadonlyMap<string, string | true>, ctx: ZoneVerbContext): number {
  const force = flags.has('--force');
  const yes = flags.has('--yes') || flags.has('-y');
  const dryRun = flags.has('--dry-run');
  const target = resolveTarget(given, 'change');
  // Exclusive, as a store opens it: a running store's device is refused (ERR_DEVICE_LOCKED), and
  // no store can open it while we work.
  let device: ZonedDevice;
  try {
    device = openZonedDevice(target.device, { exclusive: true, keepOpenZones: true });
  } catch (e) {
    if (e instanceof ZnsSlabError && e.code === ErrorCode.DEVICE_LOCKED) {
      throw new ZnsSlabError(ErrorCode.DEVICE_LOCKED, `${e.message}: its zones are never changed under a running store, even with --force (close the store first)`, { cause: e });
    }
    throw e;
  }
  try {
    const [first, last] = selection(spec, flags, device.geometry.zoneCount, ctx);
    const before = device.reportZones(first, last - first + 1);
    const owners = findOwnership(target, device, before);
    const touched = before.filter((z) => nothingToDo(op, z.condition) === undefined);
    const ownedTouched = touched.filter((z) => owners.zones.has(z.index)).map((z) => z.index);
    const where = target.device === given ? given : `${given} (device ${target.device})`;
    if (ownedTouched.length > 0 && !force) {
      const who = owners.storeDir !== null ? `store ${owners.storeDir} (id ${owners.storeId})` : `zns-slab store ${[...new Set(ownedTouched.map((z) => owners.zones.get(z)))].join(', ')} (found by its slab headers)`;
      const one = ownedTouched.length === 1;
      ctx.err(
        `zns-slab: zones ${op}: refused: ${one ? 'zone' : 'zones'} ${zoneList(ownedTouched)} of ${where} ${one ? 'belongs' : 'belong'} to ${who}; nothing was changed.\n` +
          `  ${FORCE_CONSEQUENCE[op]} Give --force to do it anyway.\n`,
      );
      return ZoneToolExit.OWNED;
    }
    const rows = before.map((z): ZoneOpResult => ({
      zone: z.index,
      start: z.start,
      conditionBefore: ZONE_CONDITION_NAMES[z.condition],
      writePointerBefore: z.writePointer,
      conditionAfter: null,
      writePointerAfter: null,
      skipped: nothingToDo(op, z.condition) ?? null,
      ok: true,
      code: null,
      message: null,
      owner: owners.zones.get(z.index) ?? null,
    }));
    const bytes = touched.reduce((sum, z) => sum + (op === 'finish' ? z.capacity - writtenBytes(z) : writtenBytes(z)), 0);
    const what = `${touched.length} ${touched.length === 1 ? 'zone' : 'zones'} of ${where}`;
    const cost = op === 'reset' ? `${humanBytes(bytes)} written` : `${humanBytes(bytes)} of capacity left unwritten`;
    if (dryRun) {
      ctx.out(JSON.stringify(rows, null, 2) + '\n');
      ctx.err(`dry run: would ${op} ${what}${op === 'reset' || op === 'finish' ? ` (${cost})` : ''}; ${rows.length - touched.length} need nothing${ownedTouched.length > 0 ? `; ${ownedTouched.length} owned by a store (--force given)` : ''}. Nothing was changed.\n`);
      return ZoneToolExit.OK;
    }
    if ((op === 'reset' || op === 'finish') && touched.length > 0 && !yes) {
      const question = `${op === 'reset' ? 'Reset' : 'Finish'} ${what} (${cost}${ownedTouched.length > 0 ? `, ${ownedTouched.length} owned by a zns-slab store` : ''})? [y/N] `;
      if (!tty.isatty(0)) {
        ctx.err(`zns-slab: zones ${op}: not confirmed: ${op === 'reset' ? 'resetting' : 'finishing'} ${what} (${cost}) needs --yes when there is no terminal to ask on; nothing was changed\n`);
        return ZoneToolExit.NOT_CONFIRMED;
      }
      ctx.err(question);
      if (!/^\s*y(es)?\s*$/i.test(readAnswer())) {
        ctx.err(`zns-slab: zones ${op}: not confirmed; nothing was changed\n`);
        return ZoneToolExit.NOT_CONFIRMED;
      }
    }
    for (const row of rows) {
      if (row.skipped !== null) continue;
      try {
        apply(device, op, row.zone);
      } catch (e) {
        if (!(e instanceof ZnsSlabError) || e.code === ErrorCode.INTERNAL) throw e;
        row.ok = false;
        row.code = e.code;
        row.message = e.message;
      }
    }
    const after = device.reportZones(first, last - first + 1);
    for (const [i, z] of after.entries()) {
      rows[i]!.conditionAfter = ZONE_CONDITION_NAMES[z.condition];
      rows[i]!.writePointerAfter = z.writePointer;
    }
    ctx.out(JSON.stringify(rows, null, 2) + '\n');
    const failed = rows.filter((r) => !r.ok);
    const done = rows.filter((r) => r.ok && r.skipped === null).length;
    const lines = [`zones ${op}: ${done} done, ${rows.length - touched.length} needed nothing, ${failed.length} failed, of ${rows.length} zones of ${where}`];
    for (const r of failed.slice(0, MESSAGE_MAX_FAILURES)) lines.push(`  zone ${r.zone}: ${r.code}: ${r.message}`);
    if (failed.length > MESSAGE_MAX_FAILURES) lines.push(`  ... and ${failed.length - MESSAGE_MAX_FAILURES} more (see the JSON)`);
    const changedOwned = rows.filter((r) => r.owner !== null && r.skipped === null && r.ok).map((r) => r.zone);
    if (changedOwned.length > 0) {
      lines.push(`  --force: ${changedOwned.length === 1 ? 'zone' : 'zones'} ${zoneList(changedOwned)} belonged to a store. ${FORCE_CONSEQUENCE[op]}`);
    }
    ctx.err(lines.join('\n') + '\n');
    return failed.length > 0 ? ZoneToolExit.ZONES_FAILED : ZoneToolExit.OK;
  } finally {
    device.close();
  }
}

/** One line from the terminal on stdin (synchronously; stdin as a stream is never touched). */
function readAnswer(): string {
  const buf = Buffer.alloc(ANSWER_MAX_BYTES);
  let line = '';
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ANSWER_RETRY_MS);
        continue;
      }
      throw e;
    }
    if (n === 0) return line; // end of input: no answer is no
    line += buf.toString('utf8', 0, n);
    if (line.includes('\n') || line.length >= ANSWER_MAX_BYTES) return line.split('\n')[0]!;
  }
}

/** "3-5, 9" (ranges of consecutive zones), at most MESSAGE_MAX_RANGES ranges. */
export function zoneList(zones: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < zones.length; ) {
    let j = i;
    while (j + 1 < zones.length && zones[j + 1] === zones[j]! + 1) j++;
    ranges.push(i === j ? String(zones[i]) : `${zones[i]}-${zones[j]}`);
    i = j + 1;
  }
  return ranges.length > MESSAGE_MAX_RANGES ? `${ranges.slice(0, MESSAGE_MAX_RANGES).join(', ')} and ${ranges.length - MESSAGE_MAX_RANGES} more ranges` : ranges.join(', ');
}


