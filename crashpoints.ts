/**
 * Named crash points for the real-process crash loop (sim/crashloop.ts). A child process run
 * with `ZNS_SLAB_CRASH_AT=<point>:<n>` kills itself with SIGKILL the n-th time it reaches that
 * point: inside a device write (after half of it reached the file), before a device flush's
 * fsync, inside a catalog commit's transaction, before a zone reset or finish takes effect,
 * inside close, and after zone GC moved a slab (before the commit that records it). Unset (always, outside that loop), a crash point is one comparison.
 */
export type CrashPointName = 'device.write' | 'device.flush' | 'catalog.commit' | 'zone.reset' | 'zone.finish' | 'store.close' | 'gc.moved';

export const CRASH_POINT_NAMES: readonly CrashPointName[] = ['device.write', 'device.flush', 'catalog.commit', 'zone.reset', 'zone.finish', 'store.close', 'gc.moved'];

const ENV = 'ZNS_SLAB_CRASH_AT';

function parse(spec: string | undefined): { name: string; countdown: number } | undefined {
  if (spec === undefined || spec === '') return undefined;
  const [name, n] = spec.split(':');
  const countdown = Number(n ?? '1');
  if (!CRASH_POINT_NAMES.includes(name as CrashPointName) || !Number.isSafeInteger(countdown) || countdown < 1) {
    throw new RangeError(`${ENV} must be <point>:<n> with a point in ${CRASH_POINT_NAMES.join(', ')} and n >= 1, got ${spec}`);
  }
  return { name: name!, countdown };
}

const armed = parse(process.env[ENV]);

/**
 * True when this point is the armed one and its count is up: the caller does what must happen
 * first (a torn write) and calls `crashNow`. A plain call, no closure, so the hot path allocates nothing.
 */
export function crashPointReached(name: CrashPointName): boolean {
  return armed !== undefined && armed.name === name && --armed.countdown === 0;
}

/** Dies here, as SIGKILL would kill it anywhere. */
export function crashNow(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL was sent');
}

/** Dies here when this point is the armed one and its count is up. */
export function crashPoint(name: CrashPointName): void {
  if (crashPointReached(name)) crashNow();
}
