#!/usr/bin/env node
/**
 * Builds the two boot artefacts of the test VM from an unpacked Debian kernel package:
 *
 *   node tools/vm/build.mjs vmlinux   <vmlinuz> <out>
 *     The uncompressed ELF kernel. QEMU boots an ELF vmlinux through its PVH entry point,
 *     skipping the bzImage real-mode setup and self-decompression (the slowest part of a
 *     TCG boot). Same approach as the kernel's scripts/extract-vmlinux: find the payload's
 *     compression magic and decompress from there.
 *
 *   node tools/vm/build.mjs initramfs <modules-dir> <busybox> <init> <out> <module>...
 *     An uncompressed newc cpio: busybox, the init script, and the named modules with every
 *     module they depend on (read from each .ko's .modinfo, as depmod would), in load order.
 *     Written in JavaScript so the host needs neither cpio nor kmod.
 *
 * Plain .mjs (not TypeScript) so it runs before `npm run build`, on a fresh CI machine.
 * Human text goes to stderr; a JSON summary to stdout.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Payload magics, tried in order; Debian's amd64 kernels use xz. */
const PAYLOADS = [
  { name: 'xz', magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), cmd: ['xz', ['-dc', '--single-stream']] },
  { name: 'zstd', magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), cmd: ['zstd', ['-dc']] },
  { name: 'gzip', magic: Buffer.from([0x1f, 0x8b, 0x08]), cmd: ['gzip', ['-dc']] },
];
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
/** Biggest decompressed kernel we accept (a stock one is ~60 MiB). */
const MAX_VMLINUX_BYTES = 512 * 1024 * 1024;

function fail(message) {
  process.stderr.write(`build.mjs: ${message}\n`);
  process.exit(1);
}

function extractVmlinux(vmlinuz, out) {
  const image = fs.readFileSync(vmlinuz);
  for (const p of PAYLOADS) {
    let at = image.indexOf(p.magic);
    while (at >= 0) {
      // Trailing bytes after the payload make the decompressor complain; the ELF check decides.
      const r = spawnSync(p.cmd[0], p.cmd[1], { input: image.subarray(at), maxBuffer: MAX_VMLINUX_BYTES });
      const elf = r.stdout;
      if (elf && elf.length > ELF_MAGIC.length && elf.subarray(0, 4).equals(ELF_MAGIC)) {
        fs.writeFileSync(out + '.tmp', elf);
        fs.renameSync(out + '.tmp', out);
        process.stderr.write(`vmlinux: ${p.name} payload at ${at}, ${elf.length} bytes -> ${out}\n`);
        return { payload: p.name, offset: at, bytes: elf.length };
      }
      at = image.indexOf(p.magic, at + 1);
    }
  }
  return fail(`no decompressible ELF payload found in ${vmlinuz}`);
}

/** Module name as the kernel knows it: dashes and underscores are the same. */
const canon = (name) => name.replace(/-/g, '_');

function indexModules(dir) {
  const byName = new Map();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) byName.set(canon(e.name.slice(0, -3)), p);
    }
  };
  walk(dir);
  return byName;
}

function modinfoDepends(file) {
  const data = fs.readFileSync(file);
  const key = Buffer.from('\0depends=');
  const at = data.indexOf(key);
  if (at < 0) return [];
  const end = data.indexOf(0, at + key.length);
  const list = data.subarray(at + key.length, end).toString('latin1');
  return list ? list.split(',').map(canon) : [];
}

/** Dependencies first (post-order), each module once. */
function resolveModules(byName, wanted) {
  const order = [];
  const state = new Map();
  const visit = (name, from) => {
    const n = canon(name);
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') fail(`module dependency cycle at ${n}`);
    const file = byName.get(n);
    if (!file) fail(`module ${n}${from ? ` (needed by ${from})` : ''} not found`);
    state.set(n, 'visiting');
    for (const dep of modinfoDepends(file)) visit(dep, n);
    state.set(n, 'done');
    order.push({ name: n, file });
  };
  for (const w of wanted) visit(w);
  return order;
}

/** newc cpio writer (the format the kernel unpacks for an initramfs). */
function cpioNewc() {
  const chunks = [];
  let ino = 1;
  const hex = (n) => n.toString(16).padStart(8, '0');
  const pad4 = (n) => Buffer.alloc((4 - (n % 4)) % 4);
  const entry = (name, mode, data = Buffer.alloc(0)) => {
    const nameBuf = Buffer.from(name + '\0');
    const header =
      '070701' + hex(ino++) + hex(mode) + hex(0) + hex(0) + hex(1) + hex(0) + hex(data.length) +
      hex(0) + hex(0) + hex(0) + hex(0) + hex(nameBuf.length) + hex(0);
    chunks.push(Buffer.from(header, 'latin1'), nameBuf, pad4(110 + nameBuf.length), data, pad4(data.length));
  };
  return {
    dir: (name) => entry(name, 0o040755),
    file: (name, data, perm = 0o644) => entry(name, 0o100000 | perm, data),
    symlink: (name, target) => entry(name, 0o120777, Buffer.from(target)),
    finish: () => {
      entry('TRAILER!!!', 0);
      return Buffer.concat(chunks);
    },
  };
}

function buildInitramfs(modulesDir, busybox, init, out, wanted) {
  const byName = indexModules(modulesDir);
  const mods = resolveModules(byName, wanted);
  const c = cpioNewc();
  for (const d of ['bin', 'dev', 'proc', 'sys', 'host', 'etc', 'lib', 'lib/modules']) c.dir(d);
  c.file('bin/busybox', fs.readFileSync(busybox), 0o755);
  c.symlink('bin/sh', 'busybox');
  c.file('init', fs.readFileSync(init), 0o755);
  for (const m of mods) c.file(`lib/modules/${m.name}.ko`, fs.readFileSync(m.file));
  c.file('etc/modules.load', Buffer.from(mods.map((m) => m.name).join('\n') + '\n'));
  const image = c.finish();
  fs.writeFileSync(out + '.tmp', image);
  fs.renameSync(out + '.tmp', out);
  process.stderr.write(`initramfs: ${mods.length} modules (${mods.map((m) => m.name).join(' ')}), ${image.length} bytes -> ${out}\n`);
  return { modules: mods.map((m) => m.name), bytes: image.length };
}

const [cmd, ...args] = process.argv.slice(2);
let summary;
if (cmd === 'vmlinux' && args.length === 2) summary = extractVmlinux(args[0], args[1]);
else if (cmd === 'initramfs' && args.length >= 5) summary = buildInitramfs(args[0], args[1], args[2], args[3], args.slice(4));
else fail('usage: build.mjs vmlinux <vmlinuz> <out> | initramfs <modules-dir> <busybox> <init> <out> <module>...');
process.stdout.write(JSON.stringify({ [cmd]: summary }) + '\n');
