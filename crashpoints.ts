/**
 * Named crash points for the real-process crash loop (sim/crashloop.ts). A child process run
 * with `ZNS_SLAB_CRASH_AT=<point>:<n>` kills itself with SIGKILL the n-th time it reaches that
 * point: inside a device write (after half of it reached the file), before a device flush's
 * fsync, inside a catalog commit's transaction, before a zone reset or finish takes effect,
 * and inside close. Unset (always, outside that loop), a crash point is one comparison.
 */
export type CrashPointName = 'device.write' | 'device.flush' | 'catalog.commit' | 'zone.reset' | 'zone.finish' | 'store.close';

export const CRASH_POINT_NAMES: readonly CrashPointName[] = ['device.write', 'device.flush', 'catalog.commit', 'zone.reset', 'zone.finish', 'store.close'];

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

/** Dies here (SIGKILL, after `before` runs) when this point is the armed one and its count is up. */
export function crashPoint(name: CrashPointName, before?: () => void): void {
  if (armed === undefined || armed.name !== name || --armed.countdown > 0) return;
  before?.();
  process.kill(process.pid, 'SIGKILL');
}
