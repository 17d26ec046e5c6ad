/**
 * The package as its users get it (issue 13). A copy of the checkout without dist/ (what a git
 * dependency starts from) is packed with `npm pack`, whose `prepare` script must build it; the
 * tarball is installed into a fresh `npm init -y` project, and there the README's examples run:
 * from an ES module, from CommonJS (`require`), and from TypeScript compiled by the project's
 * own tsc with `tsc --init`'s config plus only the README's changes, in an ES module project and
 * in a CommonJS one. The bin runs through npx, as the README's shell examples do.
 *
 * One install, in beforeAll, shared by every case. better-sqlite3's install script downloads
 * its binary from GitHub, or builds it from source (about a minute) where it cannot; when the
 * repo's own better-sqlite3 is the version that gets installed, its binary is offered as a
 * local prebuild (prebuild-install's `npm_config_better_sqlite3_local_prebuilds`), so the
 * install script still runs but needs neither GitHub nor a compiler. Skipped, saying why, when
 * the npm registry cannot be reached or this is not a git checkout.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DocProgram, docFences, docPrograms } from '../helpers/docBlocks.js';
import { type RunResult, runProgram } from '../helpers/run.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const README = path.join(root, 'README.md');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const PROGRAM_TIMEOUT_MS = 30_000;

/** The environment of every child: the test's own, without what `npm test` put there for this repo. */
const ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'),
);
ENV['NO_COLOR'] = '1';
ENV['FORCE_COLOR'] = '0';

/** Why this host cannot run these tests, or undefined. */
function cannotRun(): string | undefined {
  const git = spawnSync('git', ['-C', root, 'rev-parse', '--is-inside-work-tree'], { encoding: 'utf8', env: ENV });
  if (git.status !== 0) return `not a git checkout (git rev-parse: ${(git.stderr || String(git.error)).trim()})`;
  const ping = spawnSync('npm', ['ping'], { encoding: 'utf8', env: ENV, timeout: 20_000 });
  if (ping.status !== 0) return `the npm registry cannot be reached (npm ping: ${(ping.stderr || String(ping.error)).trim().split('\n').at(-1)})`;
  return undefined;
}
const skip = cannotRun();
if (skip !== undefined) process.stderr.write(`test/package/install.test.ts skipped: ${skip}\n`);

function run(cmd: string, args: readonly string[], cwd: string, timeoutMs = PROGRAM_TIMEOUT_MS, env: NodeJS.ProcessEnv = ENV): Promise<RunResult> {
  return runProgram(cmd, args, { cwd, env, timeoutMs });
}

/** The run, which must have exited 0 (else an error with its output). */
async function must(what: string, r: Promise<RunResult>): Promise<RunResult> {
  const res = await r;
  if (res.code !== 0) {
    throw new Error(`${what}: ${res.signal ? `killed (${res.signal})` : `exit ${res.code}`}\n--- stderr\n${res.stderr.trim()}\n--- stdout\n${res.stdout.trim()}`);
  }
  return res;
}

const timings: { what: string; ms: number }[] = [];
async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await f();
  } finally {
    timings.push({ what, ms: performance.now() - started });
  }
}

/** The README's programs (test/helpers/docBlocks.ts), by language. */
const programs = docPrograms(README);
const tsPrograms = programs.filter((p) => p.lang === 'ts');
const jsPrograms = programs.filter((p) => p.lang === 'js');
const shPrograms = programs.filter((p) => p.lang === 'sh');
const fileName = (p: DocProgram): string => p.group.replace(/\W/g, '_');

/** The README's tsconfig.json changes: its one json block with compilerOptions. */
function readmeTsconfig(): { compilerOptions: Record<string, unknown> } {
  const blocks = docFences(README).filter((f) => f.lang === 'json' && f.code.includes('"compilerOptions"'));
  expect(blocks.map((b) => b.line), 'README.md: one json block with compilerOptions').toHaveLength(1);
  return JSON.parse(blocks[0]!.code) as { compilerOptions: Record<string, unknown> };
}

/** tsconfig.json as `tsc --init` wrote it in `dir` (comments and trailing commas parsed), with `changes` applied. */
function changeTsconfig(dir: string, changes: Record<string, unknown>, file = 'tsconfig.json'): void {
  const read = ts.readConfigFile(path.join(dir, 'tsconfig.json'), ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const config = read.config as { compilerOptions: Record<string, unknown> };
  config.compilerOptions = { ...config.compilerOptions, ...changes };
  fs.writeFileSync(path.join(dir, file), JSON.stringify(config, null, 2));
}

let tmp = '';
let app = '';
let tarball = '';
let packed: string[] = [];
let installedBetterSqlite = '';
let localPrebuild = false;

/** The app's own tsc (TypeScript 5.9 installed into it). */
const tsc = (cwd: string, args: readonly string[]): Promise<RunResult> => run(process.execPath, [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], cwd);

/** A fresh folder in the app to run a program in (its './my-store' lands there). */
function runDir(name: string): string {
  return fs.mkdtempSync(path.join(app, `run-${name}-`));
}

/** A tarball in prebuild-install's layout holding the repo's better-sqlite3 binary; undefined if there is none to offer. */
function prebuildDir(): string | undefined {
  const dir = path.join(root, 'node_modules', 'better-sqlite3');
  const binary = path.join(dir, 'build', 'Release', 'better_sqlite3.node');
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (!fs.existsSync(binary) || (process.platform === 'linux' && glibc === undefined)) return undefined;
  const version = (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const out = path.join(tmp, 'prebuilds');
  fs.mkdirSync(out);
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const tar = spawnSync('tar', ['-czf', path.join(out, name), '-C', dir, 'build/Release/better_sqlite3.node'], { env: ENV });
  return tar.status === 0 ? out : undefined;
}

describe.skipIf(skip !== undefined)(`the package as installed from npm pack${skip === undefined ? '' : ` (skipped: ${skip})`}`, () => {
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zns-slab-package-'));

    // The checkout as git has it (tracked and new files, nothing ignored: no dist/, no
    // node_modules/), with the repo's node_modules for the build's tools.
    const src = path.join(tmp, 'src');
    const files = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', env: ENV }).stdout.split('\0').filter((f) => f !== '');
    for (const f of files) {
      const from = path.join(root, f);
      if (!fs.existsSync(from) || !fs.statSync(from).isFile()) continue;
      fs.mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
      fs.copyFileSync(from, path.join(src, f));
    }
    expect(fs.existsSync(path.join(src, 'dist'))).toBe(false);
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(src, 'node_modules'), 'dir');
    await timed('npm pack (prepare builds)', () => must('npm pack', run('npm', ['pack', '--pack-destination', tmp], src, 120_000)));
    const tgz = fs.readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
    expect(tgz).toEqual([`${pkg.name}-${pkg.version}.tgz`]);
    tarball = path.join(tmp, tgz[0]!);
    packed = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8', env: ENV }).stdout.split('\n').filter((l) => l !== '').map((l) => l.replace(/^package\//, ''));

    // A fresh project, as `npm init -y` makes it, with the tarball and TypeScript installed.
    app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    await must('npm init', run('npm', ['init', '-y'], app));
    const prebuilds = prebuildDir();
    const env = prebuilds === undefined ? ENV : { ...ENV, npm_config_better_sqlite3_local_prebuilds: prebuilds };
    await timed('npm install', () =>
      must('npm install', run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'typescript@5.9', '@types/node@20'], app, 240_000, env)),
    );
    installedBetterSqlite = (JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as { version: string }).version;
    localPrebuild = prebuilds !== undefined && fs.readdirSync(prebuilds).some((f) => f.startsWith(`better-sqlite3-v${installedBetterSqlite}-`));
  }, 300_000);

  afterAll(() => {
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
    if (timings.length > 0) {
      process.stderr.write(
        `install.test.ts: ${timings.map((t) => `${t.what} ${(t.ms / 1000).toFixed(1)} s`).join(', ')}; better-sqlite3 ${installedBetterSqlite}` +
          ` ${localPrebuild ? "from the repo's binary as a local prebuild" : 'fetched or built by its install script'}\n`,
      );
    }
  });

  it('npm pack from a checkout without dist/ builds it (prepare) and packs both builds, the CLI and the docs; no tests, benchmarks, simulator or source maps', () => {
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cache/keyv.js',
      'dist/cache/keyv.d.ts',
      'dist/cjs/package.json',
      'dist/cjs/index.js',
      'dist/cjs/index.d.ts',
      'dist/cjs/cache/keyv.js',
      'dist/cjs/cache/keyv.d.ts',
      'dist/tools/cli.js',
      'docs/CACHE.md',
    ]) {
      expect(packed, f).toContain(f);
    }
    expect(packed.filter((f) => /^(test|bench|sim|examples)\/|^dist\/(bench|sim|examples|test)\/|\.map$|\.ts$(?<!\.d\.ts$)|^dist\/tools\/demo\./.test(f))).toEqual([]);
    const cjsPkg = spawnSync('tar', ['-xzOf', tarball, 'package/dist/cjs/package.json'], { encoding: 'utf8', env: ENV }).stdout;
    expect(JSON.parse(cjsPkg)).toEqual({ type: 'commonjs' });
  });

  it("from an ES module: the README's TypeScript programs run (transpiled, ES2022), and every entry point imports", async () => {
    expect(tsPrograms.map((p) => p.group)).toContain('usage');
    for (const p of tsPrograms) {
      const out = ts.transpileModule(p.code, { fileName: `${fileName(p)}.ts`, compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
      const dir = runDir(`esm-${fileName(p)}`);
      fs.writeFileSync(path.join(dir, 'program.mjs'), out.outputText);
      await timed(`esm ${p.group}`, () => must(`README.md:${p.lines[0]} ${p.group} as an ES module`, run(process.execPath, ['program.mjs'], dir)));
    }
    const dir = runDir('esm-entry');
    fs.writeFileSync(
      path.join(dir, 'entry.mjs'),
      `import * as z from 'zns-slab';
       import * as k from 'zns-slab/keyv';
       import meta from 'zns-slab/package.json' with { type: 'json' };
       process.stdout.write(JSON.stringify({ api: Object.keys(z).sort(), keyv: Object.keys(k).sort(), version: meta.version }));`,
    );
    const r = await must('entry.mjs', run(process.execPath, ['entry.mjs'], dir));
    const got = JSON.parse(r.stdout) as { api: string[]; keyv: string[]; version: string };
    expect(got.api).toContain('openStore');
    expect(got.api).toContain('openCache');
    expect(got.keyv).toContain('KeyvZnsSlab');
    expect(got.version).toBe(pkg.version);
  });

  it("from CommonJS: the README's require example runs, require gives the ES module's API, and the two copies are what the README says", async () => {
    expect(jsPrograms.map((p) => p.group)).toContain('cjs');
    for (const p of jsPrograms) {
      const dir = runDir(`cjs-${fileName(p)}`);
      fs.writeFileSync(path.join(dir, 'program.cjs'), p.code);
      await timed(`cjs ${p.group}`, () => must(`README.md:${p.lines[0]} ${p.group} as CommonJS`, run(process.execPath, ['program.cjs'], dir)));
    }
    const dir = runDir('cjs-entry');
    fs.writeFileSync(
      path.join(dir, 'entry.cjs'),
      `const assert = require('node:assert/strict');
       const z = require('zns-slab');
       const k = require('zns-slab/keyv');
       assert.equal(require('zns-slab/package.json').version, ${JSON.stringify(pkg.version)});
       // Synchronous, like any require: a store opened and used on the next line.
       const store = z.openStore('./s');
       assert.equal(store.get(store.put(Buffer.from('sync'))).toString(), 'sync');
       import('zns-slab').then(async (esm) => {
         const keyvEsm = await import('zns-slab/keyv');
         assert.deepEqual(Object.keys(z).sort(), Object.keys(esm).sort());
         assert.deepEqual(Object.keys(k).sort(), Object.keys(keyvEsm).sort());
         // One copy per process: to the ES module copy the store is locked, and its errors are
         // not instances of the CommonJS copy's class (their code is the same).
         let err;
         try { esm.openStore('./s'); } catch (e) { err = e; }
         assert.equal(err?.code, 'ERR_STORE_LOCKED');
         assert.equal(err instanceof esm.ZnsSlabError, true);
         assert.equal(err instanceof z.ZnsSlabError, false);
         store.close();
         process.stdout.write('ok');
       });`,
    );
    const r = await must('entry.cjs', run(process.execPath, ['entry.cjs'], dir));
    expect(r.stdout).toBe('ok');
  });

  it("TypeScript in an ES module project: tsc --init's config with the README's changes compiles the README's programs against the import declarations, and they run; tsc --init's own target leaves `using` to Node 20, a SyntaxError", async () => {
    const dir = path.join(app, 'ts-esm');
    fs.mkdirSync(dir);
    await must('npm init', run('npm', ['init', '-y'], dir));
    await must('npm pkg set type=module', run('npm', ['pkg', 'set', 'type=module'], dir));
    await must('tsc --init', tsc(dir, ['--init']));
    const init = ts.readConfigFile(path.join(dir, 'tsconfig.json'), ts.sys.readFile).config as { compilerOptions: Record<string, unknown> };
    expect(init.compilerOptions['target']).toBe('esnext'); // what the README says tsc --init writes
    // The same sources, compiled with only `types` changed, into esnext/: the README's warning.
    changeTsconfig(dir, { types: ['node'], outDir: 'esnext' }, 'tsconfig.esnext.json');
    changeTsconfig(dir, readmeTsconfig().compilerOptions);
    for (const p of tsPrograms) fs.writeFileSync(path.join(dir, `${fileName(p)}.ts`), `${p.code}\n`);

    const compiled = await timed('tsc (ES module project)', () => must('tsc', tsc(dir, ['-p', '.', '--listFiles'])));
    const listed = compiled.stdout.split('\n').map((l) => path.relative(app, l.trim()));
    expect(listed).toContain(path.join('node_modules', 'zns-slab', 'dist', 'index.d.ts'));
    expect(listed).not.toContain(path.join('node_modules', 'zns-slab', 'dist', 'cjs', 'index.d.ts'));
    for (const p of tsPrograms) {
      const cwd = runDir(`ts-esm-${fileName(p)}`);
      await timed(`ts ${p.group}`, () => must(`README.md:${p.lines[0]} ${p.group} compiled by tsc`, run(process.execPath, [path.join(dir, `${fileName(p)}.js`)], cwd)));
    }

    await must('tsc -p tsconfig.esnext.json', tsc(dir, ['-p', 'tsconfig.esnext.json']));
    expect(fs.readFileSync(path.join(dir, 'esnext', 'usage.js'), 'utf8')).toMatch(/^using store = openStore/m);
    const r = await run(process.execPath, [path.join(dir, 'esnext', 'usage.js')], runDir('ts-esnext'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/SyntaxError/);
  });

  it("TypeScript in a CommonJS project (npm init's default): import = require compiles against the CommonJS declarations, with zns-slab's types, and runs", async () => {
    const dir = path.join(app, 'ts-cjs');
    fs.mkdirSync(dir);
    await must('npm init', run('npm', ['init', '-y'], dir));
    expect((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { type?: string }).type ?? 'commonjs').toBe('commonjs');
    await must('tsc --init', tsc(dir, ['--init']));
    changeTsconfig(dir, readmeTsconfig().compilerOptions);
    fs.writeFileSync(
      path.join(dir, 'main.ts'),
      `import zns = require('zns-slab');
import keyv = require('zns-slab/keyv');

using store = zns.openStore('./my-store');
const handle: bigint = store.put(Buffer.from('from CommonJS TypeScript'));
const cache: keyv.KeyvZnsSlab = new keyv.KeyvZnsSlab('./my-cache', { maxBytes: 64 << 20 });
void cache.disconnect();

function typed(s: zns.Store): void {
  // @ts-expect-error put takes bytes: the declarations are zns-slab's, not any
  s.put(42);
}
void typed;
console.log(store.get(handle).toString());
`,
    );
    const compiled = await timed('tsc (CommonJS project)', () => must('tsc', tsc(dir, ['-p', '.', '--listFiles'])));
    const listed = compiled.stdout.split('\n').map((l) => path.relative(app, l.trim()));
    expect(listed).toContain(path.join('node_modules', 'zns-slab', 'dist', 'cjs', 'index.d.ts'));
    expect(listed).toContain(path.join('node_modules', 'zns-slab', 'dist', 'cjs', 'cache', 'keyv.d.ts'));
    expect(listed).not.toContain(path.join('node_modules', 'zns-slab', 'dist', 'index.d.ts'));
    expect(fs.readFileSync(path.join(dir, 'main.js'), 'utf8')).toMatch(/require\("zns-slab"\)/);
    const r = await must('main.js', run(process.execPath, [path.join(dir, 'main.js')], runDir('ts-cjs')));
    expect(r.stdout).toBe('from CommonJS TypeScript\n');
  });

  it("the CLI through npx: --version, and the README's shell programs", async () => {
    const version = await must('npx zns-slab --version', run('npx', ['--no-install', 'zns-slab', '--version'], app));
    expect(version.stdout.trim()).toContain(pkg.version);
    expect(shPrograms.length).toBeGreaterThan(0);
    for (const p of shPrograms) {
      const jq = /\|\s*jq\b/.test(p.code) && spawnSync('jq', ['--version'], { env: ENV }).status !== 0;
      if (jq) {
        process.stderr.write(`install.test.ts: README.md:${p.lines[0]} ${p.group} not run: jq is not installed\n`);
        continue;
      }
      const dir = runDir(`sh-${fileName(p)}`);
      fs.writeFileSync(path.join(dir, 'program.sh'), `set -euo pipefail\n${p.code}\n`);
      await timed(`sh ${p.group}`, () => must(`README.md:${p.lines[0]} ${p.group} in bash`, run('bash', ['program.sh'], dir, 60_000)));
    }
  });
});
