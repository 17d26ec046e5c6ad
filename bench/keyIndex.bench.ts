/**
 * `npm run bench:index -- [--entries N]`: memory and speed of the cache's index (cache/keyIndex.ts)
 * against the `Map<string, bigint>` it replaces, each in its own child process started with
 * --expose-gc, so one run's garbage does not count against the other. Memory is everything the
 * process gained holding N entries: heap, external and array buffers. JSON on stdout.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KeyIndex, hashKey } from '../cache/keyIndex.js';

const args = process.argv.slice(2);
const ENTRIES = args.includes('--entries') ? Number(args[args.indexOf('--entries') + 1]) : 1_000_000;

interface Sample {
  kind: string;
  entries: number;
  bytesPerEntry: { heap: number; external: number; arrayBuffers: number; total: number };
  setNsPerOp: number;
  getNsPerOp: number;
}

function used(): { heap: number; external: number; arrayBuffers: number } {
  // Twice: the first frees the arrays a growth left behind, the second what their finalizers freed.
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external - m.arrayBuffers, arrayBuffers: m.arrayBuffers };
}

function measure(kind: string, n: number): Sample {
  const keys = Array.from({ length: n }, (_, i) => `user:${i}:session`);
  const hashes = new Uint32Array(n);
  for (let i = 0; i < n; i++) hashes[i] = hashKey(Buffer.from(keys[i]!));
  const before = used();
  let set: (i: number) => void;
  let get: (i: number) => bigint | undefined;
  let keep: unknown;
  if (kind === 'KeyIndex') {
    const index = new KeyIndex();
    keep = index;
    // The cache compares the key stored beside the value; here the handle is the key's number.
    set = (i) => void index.set(hashes[i]!, BigInt(i), (h) => h === BigInt(i));
    get = (i) => index.get(hashes[i]!, (h) => h === BigInt(i));
  } else {
    const map = new Map<string, bigint>();
    keep = map;
    set = (i) => void map.set(keys[i]!, BigInt(i));
    get = (i) => map.get(keys[i]!);
  }
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) set(i);
  const setNs = Number(process.hrtime.bigint() - t) / n;
  const after = used();
  t = process.hrtime.bigint();
  let found = 0;
  for (let i = 0; i < n; i++) if (get((i * 7919) % n) !== undefined) found++;
  const getNs = Number(process.hrtime.bigint() - t) / n;
  if (found !== n || keep === undefined) throw new Error(`${kind}: found ${found} of ${n}`);
  const per = (b: number, a: number) => Number(((a - b) / n).toFixed(2));
  const bytes = {
    heap: per(before.heap, after.heap),
    external: per(before.external, after.external),
    arrayBuffers: per(before.arrayBuffers, after.arrayBuffers),
    total: 0,
  };
  bytes.total = Number((bytes.heap + bytes.external + bytes.arrayBuffers).toFixed(2));
  return { kind, entries: n, bytesPerEntry: bytes, setNsPerOp: Number(setNs.toFixed(1)), getNsPerOp: Number(getNs.toFixed(1)) };
}

if (process.argv[2] === '--child') {
  process.stdout.write(JSON.stringify(measure(process.argv[3]!, Number(process.argv[4]))));
} else {
  const self = fileURLToPath(import.meta.url);
  const samples: Sample[] = [];
  for (const kind of ['KeyIndex', 'Map<string, bigint>', 'KeyIndex', 'Map<string, bigint>']) {
    const r = spawnSync(process.execPath, ['--expose-gc', self, '--child', kind, String(ENTRIES)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) throw new Error(r.stderr);
    samples.push(JSON.parse(r.stdout) as Sample);
    const s = samples[samples.length - 1]!;
    process.stderr.write(`${s.kind.padEnd(20)} ${ENTRIES} entries: ${s.bytesPerEntry.total} B/entry (heap ${s.bytesPerEntry.heap}, array buffers ${s.bytesPerEntry.arrayBuffers}), set ${s.setNsPerOp} ns, get ${s.getNsPerOp} ns\n`);
  }
  process.stdout.write(JSON.stringify({ entries: ENTRIES, samples }, null, 2) + '\n');
}
