/**
 * `node dist/bench/crc32.bench.js --from DIR`: Node's zlib.crc32 (what engine/slab.ts uses for
 * every slot) against the crc32 packages on npm that install here, on 64 B, 1 KiB, 64 KiB and
 * 1 MiB buffers, in GB/s. The alternatives are not dependencies of zns-slab: install them into a
 * scratch folder and name it with --from, e.g.
 *
 *   npm install --prefix /tmp/crcbench crc-32 @node-rs/crc32 buffer-crc32 hash-wasm turbo-crc32 crc
 *   node dist/bench/crc32.bench.js --from /tmp/crcbench
 *
 * A package missing from DIR is skipped. Every implementation is first checked against zlib on
 * random bytes, whole and continued from a previous value as the slot checksum does (a
 * checksum over the slot's identity, continued over its payload): the crc is part of the
 * on-disk format, so only the same polynomial, with the same results, could replace it.
 * JSON on stdout, a table on stderr. Options: --quick.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import zlib from 'node:zlib';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const FROM = args.includes('--from') ? args[args.indexOf('--from') + 1] : undefined;
const SIZES = [64, 1024, 64 * 1024, 1024 * 1024];
const RUNS = QUICK ? 3 : 7;
/** Bytes hashed per timed run (at least one call). */
const BYTES_PER_RUN = QUICK ? 16 << 20 : 64 << 20;

function say(line: string): void {
  process.stderr.write(line + '\n');
}

interface Impl {
  name: string;
  /** crc32 of `data`, continued from `previous` (the crc of what came before) when given. */
  crc(data: Buffer, previous?: number): number;
  /** Whether it takes a previous value (else it is checked on whole buffers only). */
  continues: boolean;
}

async function implementations(): Promise<Impl[]> {
  // As engine/slab.ts calls it: an empty payload is not handed to zlib (see agrees()).
  const impls: Impl[] = [{ name: 'zlib.crc32 (node:zlib, in use)', crc: (d, p) => (d.length === 0 ? (p ?? 0) : zlib.crc32(d, p)), continues: true }];
  if (FROM === undefined) {
    say('no --from DIR: only zlib.crc32 is measured');
    return impls;
  }
  const req = createRequire(path.join(path.resolve(FROM), 'package.json'));
  const load = (name: string): unknown => {
    try {
      return req(name);
    } catch (err) {
      say(`${name}: not installed in ${FROM}, skipped (${(err as Error).message.split('\n')[0]})`);
      return undefined;
    }
  };
  const crc32js = load('crc-32') as { buf(data: Uint8Array, seed?: number): number } | undefined;
  if (crc32js) impls.push({ name: 'crc-32 (SheetJS, pure JS)', crc: (d, p) => crc32js.buf(d, p) >>> 0, continues: true });
  const noders = load('@node-rs/crc32') as { crc32(data: Uint8Array, initial?: number): number } | undefined;
  if (noders) impls.push({ name: '@node-rs/crc32 (Rust, SIMD)', crc: (d, p) => noders.crc32(d, p) >>> 0, continues: true });
  const bufferCrc = load('buffer-crc32') as { unsigned(data: Buffer, previous?: number): number } | undefined;
  if (bufferCrc) impls.push({ name: 'buffer-crc32 (pure JS)', crc: (d, p) => bufferCrc.unsigned(d, p), continues: true });
  const crcPkg = load('crc') as { crc32(data: Buffer, previous?: number): number } | undefined;
  if (crcPkg) impls.push({ name: 'crc (pure JS)', crc: (d, p) => crcPkg.crc32(d, p) >>> 0, continues: true });
  const turbo = load('turbo-crc32/crc32') as ((data: Buffer) => number) | undefined;
  if (turbo) impls.push({ name: 'turbo-crc32 (slicing-by-8, JS)', crc: (d) => turbo(d) >>> 0, continues: false });
  const hashWasm = load('hash-wasm') as { createCRC32(): Promise<{ init(): unknown; update(d: Uint8Array): unknown; digest(kind: 'binary'): Uint8Array }> } | undefined;
  if (hashWasm) {
    const hasher = await hashWasm.createCRC32();
    impls.push({
      name: 'hash-wasm (WebAssembly)',
      crc: (d) => {
        hasher.init();
        hasher.update(d);
        const out = hasher.digest('binary');
        return ((out[0]! << 24) | (out[1]! << 16) | (out[2]! << 8) | out[3]!) >>> 0;
      },
      continues: false,
    });
  }
  return impls;
}

/**
 * Same results as zlib on random data, whole and (where it can) continued. For 0 bytes the
 * answer is the value continued from (0 for a whole crc), not zlib's: Node's zlib.crc32 of an
 * empty typed array whose ArrayBuffer has no data pointer (which Buffer.alloc(0) can be)
 * returns 0 whatever value it was given (engine/slab.ts does not ask it).
 */
function agrees(impl: Impl): string | undefined {
  for (const size of [0, 1, 7, 64, 1000, 4096, 100_000]) {
    const data = randomBytes(size);
    const whole = size === 0 ? 0 : zlib.crc32(data);
    if (impl.crc(data) !== whole) return `differs from zlib on ${size} random bytes`;
    if (impl.continues) {
      const seed = zlib.crc32(randomBytes(12));
      const got = impl.crc(data, seed);
      const expected = size === 0 ? seed : zlib.crc32(data, seed);
      if (got !== expected) return `differs from zlib continued from ${seed} on ${size} bytes: ${got}, expected ${expected}`;
    }
  }
  return undefined;
}

function gbPerSecond(impl: Impl, data: Buffer): number {
  const calls = Math.max(1, Math.floor(BYTES_PER_RUN / data.length));
  let sink = 0;
  for (let i = 0; i < Math.min(calls, 2000); i++) sink ^= impl.crc(data); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) sink ^= impl.crc(data);
    const ns = Number(process.hrtime.bigint() - t0);
    rates.push((calls * data.length) / ns); // bytes per ns = GB/s
  }
  if (sink === 0.5) say('never');
  rates.sort((a, b) => a - b);
  return Number(rates[Math.floor(rates.length / 2)]!.toFixed(3));
}

async function main(): Promise<void> {
  const impls = await implementations();
  const results: { name: string; agrees: boolean; note?: string; gbps: Record<string, number> }[] = [];
  for (const impl of impls) {
    const why = agrees(impl);
    const gbps: Record<string, number> = {};
    for (const size of SIZES) gbps[String(size)] = gbPerSecond(impl, randomBytes(size));
    results.push({ name: impl.name, agrees: why === undefined, ...(why !== undefined ? { note: why } : {}), gbps });
  }
  say(`| implementation | same results as zlib | ${SIZES.map((s) => (s >= 1024 * 1024 ? `${s >> 20} MiB` : s >= 1024 ? `${s >> 10} KiB` : `${s} B`)).join(' | ')} (GB/s) |`);
  say(`|---|---|${SIZES.map(() => '---:').join('|')}|`);
  for (const r of results) say(`| ${r.name} | ${r.agrees ? 'yes' : `no: ${r.note}`} | ${SIZES.map((s) => r.gbps[String(s)]!.toFixed(2)).join(' | ')} |`);
  process.stdout.write(JSON.stringify({ date: new Date().toISOString(), node: process.version, quick: QUICK, results }, null, 2) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`crc32 bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
