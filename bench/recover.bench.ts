/**
 * `npm run bench:recover -- [--objects N]`: the lost-catalog drill, measured. Builds a store of
 * N objects (default 100,000; sizes 100 B to 4 KiB, five epochs, a fifth of them freed),
 * deletes its catalog, runs `zns-slab recover` as a user would, then opens the store and checks
 * every object. JSON on stdout, a summary on stderr.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CATALOG_FILE, openStore } from '../engine/store.js';
import { diskUsage } from '../tools/diskUsage.js';

const args = process.argv.slice(2);
const COUNT = args.includes('--objects') ? Number(args[args.indexOf('--objects') + 1]) : 100_000;
const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'tools', 'cli.js');

function bytesFor(i: number): Buffer {
  const b = Buffer.alloc(100 + ((i * 2654435761) >>> 0) % 4000, i & 0xff);
  b.writeUInt32LE(i, 0);
  return b;
}


const base = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-recover-bench-'));
try {
  const dir = path.join(base, 'store');
  let t = Date.now();
  const store = openStore(dir);
  const live = new Map<bigint, number>();
  for (let i = 0; i < COUNT; i++) {
    if (i > 0 && i % Math.ceil(COUNT / 5) === 0) store.epochAdvance();
    live.set(store.put(bytesFor(i)), i);
  }
  let n = 0;
  for (const h of [...live.keys()]) if (n++ % 5 === 0) {
    store.free(h);
    live.delete(h);
  }
  store.close();
  const buildSeconds = (Date.now() - t) / 1000;
  const storeBytes = diskUsage(dir);
  fs.rmSync(path.join(dir, CATALOG_FILE));
  for (const f of ['-wal', '-shm', '.reserve']) fs.rmSync(path.join(dir, CATALOG_FILE + f), { force: true });

  t = Date.now();
  const r = spawnSync(process.execPath, [cli, 'recover', dir], { encoding: 'utf8' });
  const recoverSeconds = (Date.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`recover failed: ${r.stderr}`);
  const report = JSON.parse(r.stdout) as { objects: number; slabs: number; bytesScanned: number; objectsCorrupt: number };

  t = Date.now();
  const back = openStore(dir, { readOnly: true });
  let verified = 0;
  let wrong = 0;
  for (const [h, i] of live) {
    if (back.get(h).equals(bytesFor(i))) verified++;
    else wrong++;
  }
  back.close();
  const verifySeconds = (Date.now() - t) / 1000;
  const result = {
    objectsPut: COUNT, objectsLive: live.size, storeBytes, buildSeconds,
    recover: { seconds: recoverSeconds, ...report }, verifySeconds, verified, wrong,
    // Frees made after a slab's last seal come back: here every free is one (the store was closed after them).
    freedThatCameBack: report.objects - live.size,
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.stderr.write(
    `recover: ${COUNT} objects put (${live.size} live), store ${(storeBytes / 1e6).toFixed(1)} MB; recover ${recoverSeconds.toFixed(2)} s ` +
      `(${(report.bytesScanned / 1e6).toFixed(1)} MB read, ${report.slabs} slabs, ${report.objects} objects); ${verified} verified, ${wrong} wrong\n`,
  );
  if (wrong > 0 || verified !== live.size) process.exitCode = 1;
} finally {
  fs.rmSync(base, { recursive: true, force: true });
}
