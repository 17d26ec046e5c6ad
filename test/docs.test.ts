/**
 * Docs that cannot go stale (issue 13): the code blocks of README.md and docs/*.md run here.
 *
 * - Every program of the docs (a block tagged ```ts test or ```ts test:GROUP, with its hidden
 *   `<!-- test:GROUP -->` parts: test/helpers/docBlocks.ts) runs for real, each in a child
 *   process whose cwd is a fresh folder inside the repo (.cache/docs-tests/), so `'./my-store'`
 *   lands there and `import ... from 'zns-slab'` resolves to the built package through
 *   package.json's exports (the tests run after `npm run build`). TypeScript is transpiled with
 *   the repo's `typescript` (ES2022: `using` is compiled, as for Node 20 users) and run as .mjs;
 *   sh runs in bash, where `npx zns-slab` is the built CLI.
 * - The TypeScript programs, and the blocks that cannot run here but must compile, type-check
 *   against the built package's declarations (an option the package does not have fails).
 * - A ts/js/sh block that does not run is in NOT_RUN below with the reason; a console block or
 *   pasted `$ command` output is a generated sample (tools/docSamples.ts), and the committed
 *   samples equal what the generator makes now.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DocFence, type DocProgram, docFences, docPrograms } from './helpers/docBlocks.js';
import { type RedisServer, redisUnavailable, startRedis } from './helpers/redis.js';
import { type RunResult, runProgram as runProcess } from './helpers/run.js';
import { type SampleRegion, type Samples, generateSamples, sampleRegions, staleFiles } from '../tools/docSamples.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(root, 'dist', 'tools', 'cli.js');
const WORK = path.join(root, '.cache', 'docs-tests');
const PROGRAM_TIMEOUT_MS = 30_000;
/** The Redis the docs use; a program that names it talks to a throwaway redis-server instead. */
const DOC_REDIS_URL = 'redis://127.0.0.1:6379';

/** README.md and docs/*.md, relative to the repo root. */
const DOC_FILES = ['README.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

/**
 * Blocks that are not run, and why. Matched by file and a piece of the block's first line; an
 * entry that matches no block fails (so the list cannot outlive its blocks). `typecheck`: the
 * block is a whole TypeScript module and must compile against the package.
 */
const NOT_RUN: readonly { file: string; first: string; why: string; typecheck?: boolean }[] = [
  { file: 'README.md', first: 'npm install && npm start', why: 'installs packages, and `npm test` is this very suite' },
  { file: 'README.md', first: 'npm install zns-slab', why: 'installs from the registry; test/package/install.test.ts installs the packed tarball and runs the README there' },
  { file: 'docs/DEVICES.md', first: "import { openStore } from 'zns-slab';", why: 'needs an NVMe ZNS SSD at /dev/nvme0n1', typecheck: true },
  { file: 'docs/DEVICES.md', first: 'npx zns-slab zones /dev/nullb0', why: 'needs a zoned block device (run in the VM by test/engine/device.store.test.ts)' },
  { file: 'docs/DEVICES.md', first: "import { openLibzbdDevice, openStore } from 'zns-slab';", why: 'needs a zoned block device', typecheck: true },
  { file: 'docs/DEVICES.md', first: "import { openLibzbdDevice, type LibzbdIoPath } from 'zns-slab';", why: 'needs a zoned block device', typecheck: true },
  { file: 'docs/DEVICES.md', first: 'tools/nullblk.sh create', why: 'needs root and the null_blk kernel module' },
  { file: 'docs/DEVICES.md', first: 'npm run test:zoned', why: 'boots a QEMU VM (.ci/run runs it)' },
  { file: 'docs/RELIABILITY.md', first: 'npm run sim', why: 'the simulator runs for minutes (.ci/run runs it; npm test runs its CI seeds in test/sim/)' },
  { file: 'docs/OBSERVABILITY.md', first: '# full screen, a frame a second; q quits', why: 'full screen until q, and serve until stopped (test/tools/watch.test.ts drives --watch in tmux, serve.test.ts the page in headless Chromium; the test:live program runs both from a script)' },
  { file: 'docs/OBSERVABILITY.md', first: 'ssh -L 8765:127.0.0.1:8765', why: 'needs a second machine' },
];

/** Languages of blocks that look like something to run. */
const RUNNABLE = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs', 'sh', 'bash', 'shell']);
const LANG = (lang: string): 'ts' | 'js' | 'sh' | undefined =>
  lang === 'ts' || lang === 'typescript' ? 'ts' : lang === 'js' || lang === 'javascript' || lang === 'mjs' ? 'js' : lang === 'sh' || lang === 'bash' || lang === 'shell' ? 'sh' : undefined;

const programs = DOC_FILES.flatMap((f) => docPrograms(path.join(root, f)).map((p) => ({ ...p, file: f })));

/** What a program needs that this host may lack: the reason it is skipped, or undefined. */
function missing(p: DocProgram): string | undefined {
  if (p.code.includes(DOC_REDIS_URL) || p.code.includes("'redis-server'")) {
    const why = redisUnavailable();
    if (why !== undefined) return why;
  }
  if (LANG(p.lang) === 'sh' && /\|\s*jq\b/.test(p.code) && !onPath('jq')) return 'jq is not installed';
  return undefined;
}

function onPath(bin: string): boolean {
  return (process.env['PATH'] ?? '').split(path.delimiter).some((d) => d !== '' && fs.existsSync(path.join(d, bin)));
}

/** The document line of line `n` (0-based) of a program. */
function docLine(p: DocProgram, n: number): number {
  for (const part of p.parts) {
    const count = part.code.split('\n').length;
    if (n < count) return part.line + 1 + n;
    n -= count;
  }
  return p.parts.at(-1)!.line;
}

/** The program with each line's place in the doc, for failure messages. */
function listing(p: DocProgram): string {
  return p.code
    .split('\n')
    .map((l, i) => `${String(docLine(p, i)).padStart(5)}| ${l}`)
    .join('\n');
}

const SH_PREAMBLE = (cli: string) => `set -euo pipefail
# \`npx zns-slab\` is the CLI just built (what npx finds in a project that depends on zns-slab).
npx() { if [ "\${1-}" = zns-slab ]; then shift; node ${JSON.stringify(cli)} "$@"; else command npx "$@"; fi; }
`;

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return runProcess(cmd, args, { cwd, env, timeoutMs: PROGRAM_TIMEOUT_MS });
}

let redis: RedisServer | undefined;
/** The samples, made once; started beside the programs (the demo alone takes seconds). */
let samples: Promise<Samples> | undefined;
const samplesNow = () => (samples ??= generateSamples(root));
const timings: { name: string; ms: number }[] = [];

/** Writes the program into a fresh folder and runs it there. */
async function runProgram(p: DocProgram): Promise<RunResult> {
  const lang = LANG(p.lang);
  if (lang === undefined) throw new Error(`${p.file}:${p.lines[0]}: test group ${p.group} has language '${p.lang}', which this suite cannot run`);
  let code = p.code;
  if (redis !== undefined) code = code.replaceAll(DOC_REDIS_URL, redis.url);
  fs.mkdirSync(WORK, { recursive: true });
  const dir = fs.mkdtempSync(path.join(WORK, `${path.basename(p.file, '.md')}-${p.lines[0]}-`));
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  try {
    if (lang === 'sh') {
      fs.writeFileSync(path.join(dir, 'program.sh'), SH_PREAMBLE(CLI) + code + '\n');
      return await run('bash', ['program.sh'], dir, env);
    }
    if (lang === 'ts') {
      const out = ts.transpileModule(code, {
        fileName: `${p.file.replace(/\W/g, '_')}_${p.group.replace(/\W/g, '_')}.ts`,
        reportDiagnostics: true,
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, inlineSourceMap: true, inlineSources: true },
      });
      const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
      if (errors.length > 0) throw new Error(errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n'));
      code = out.outputText;
    }
    // CommonJS (`require`, no `import`) runs as .cjs, the rest as an ES module
    const file = /\brequire\(/.test(code) && !/^\s*import\s/m.test(code) ? 'program.cjs' : 'program.mjs';
    fs.writeFileSync(path.join(dir, file), code);
    return await run(process.execPath, ['--enable-source-maps', file], dir, env);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the docs run', () => {
  const needRedis = programs.some((p) => p.code.includes(DOC_REDIS_URL)) && redisUnavailable() === undefined;
  beforeAll(async () => {
    samplesNow().catch(() => {}); // its error is the samples test's to report
    if (needRedis) redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
    await samples?.catch(() => {}); // its folders are removed when it ends, even in a filtered run
    if (timings.length > 0) {
      const total = timings.reduce((s, t) => s + t.ms, 0);
      const slowest = [...timings].sort((a, b) => b.ms - a.ms).slice(0, 3);
      process.stderr.write(`docs.test.ts: ${timings.length} doc programs, ${(total / 1000).toFixed(1)} s of child processes; slowest ${slowest.map((t) => `${t.name} ${(t.ms / 1000).toFixed(1)} s`).join(', ')}\n`);
    }
  });

  it('there are programs in the docs', () => {
    expect(programs.length).toBeGreaterThan(10);
  });

  for (const p of programs) {
    const name = `${p.file}:${p.lines.find((_, i) => !p.parts[i]!.hidden)} ${p.group.includes(':') ? '' : p.group}`.trim();
    const why = missing(p);
    if (why !== undefined) {
      it.skip(`${name} (skipped: ${why})`, () => {});
      continue;
    }
    it.concurrent(name, async () => {
      const r = await runProgram(p);
      timings.push({ name, ms: r.ms });
      if (r.code !== 0) {
        throw new Error(
          `${name} ${r.signal ? `was killed (${r.signal}${r.signal === 'SIGKILL' ? `, over ${PROGRAM_TIMEOUT_MS} ms` : ''})` : `exited with ${r.code}`}\n` +
            `--- stderr\n${r.stderr.trim()}\n--- stdout\n${r.stdout.trim()}\n--- the program (doc line | code)\n${listing(p)}`,
        );
      }
    });
  }
});

describe('the docs compile', () => {
  it('TypeScript programs and compile-only blocks type-check against the built package', () => {
    const dir = fs.mkdtempSync(path.join((fs.mkdirSync(WORK, { recursive: true }), WORK), 'typecheck-'));
    try {
      const units: { file: string; program: DocProgram }[] = [];
      const tsPrograms = programs.filter((p) => LANG(p.lang) === 'ts');
      const compileOnly = NOT_RUN.filter((n) => n.typecheck).map((n) => {
        const fence = fencesOf(n.file).find((f) => firstLine(f).includes(n.first));
        if (fence === undefined) throw new Error(`NOT_RUN: no block in ${n.file} starts with ${n.first}`);
        const part = { file: n.file, line: fence.line, lang: fence.lang, group: `${n.file}:${fence.line}`, hidden: false, code: fence.code };
        return { file: n.file, group: part.group, lang: fence.lang, lines: [fence.line], parts: [part], code: fence.code } satisfies DocProgram;
      });
      for (const [i, program] of [...tsPrograms, ...compileOnly].entries()) {
        const file = path.join(dir, `p${i}.ts`);
        // `export {}`: every program is a module of its own, even one with no import.
        fs.writeFileSync(file, `${program.code}\nexport {};\n`);
        units.push({ file, program });
      }
      const config = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
      const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
      const compiler = ts.createProgram(units.map((u) => u.file), { ...options, noEmit: true, declaration: false, sourceMap: false, rootDir: undefined, outDir: undefined });
      const problems = ts.getPreEmitDiagnostics(compiler).map((d) => {
        const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
        const unit = units.find((u) => d.file !== undefined && path.resolve(d.file.fileName) === u.file);
        if (unit === undefined || d.file === undefined || d.start === undefined) return text;
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        return `${unit.program.file}:${docLine(unit.program, line)} (${unit.program.group}): ${text}`;
      });
      expect(problems).toEqual([]);
      expect(units.length).toBeGreaterThan(5);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const fencesOf = (file: string): DocFence[] => docFences(path.join(root, file));
const firstLine = (f: DocFence): string => f.code.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';

describe('nothing runnable is left untagged', () => {
  it('every ts/js/sh block runs, or is in NOT_RUN with the reason', () => {
    const untagged: string[] = [];
    for (const file of DOC_FILES) {
      for (const f of fencesOf(file)) {
        if (f.tagged || !RUNNABLE.has(f.lang)) continue;
        if (NOT_RUN.some((n) => n.file === file && firstLine(f).includes(n.first))) continue;
        untagged.push(`${file}:${f.line} \`\`\`${f.lang}: ${firstLine(f)}`);
      }
    }
    expect(untagged).toEqual([]);
  });

  it('every NOT_RUN entry names an untagged block', () => {
    for (const n of NOT_RUN) {
      const matches = fencesOf(n.file).filter((f) => firstLine(f).includes(n.first));
      expect(matches.map((f) => f.tagged), `${n.file}: ${n.first}`).toEqual([false]);
    }
  });
});

const regionsOf = (file: string): SampleRegion[] => sampleRegions(fs.readFileSync(path.join(root, file), 'utf8'), file);
const inRegion = (file: string, line: number) => regionsOf(file).some((r) => r.begin < line && line < r.end);

/** The first lines where two texts differ, with a little context, for a failure message. */
function firstDifference(file: string, committed: string, generated: string): string {
  const a = committed.split('\n');
  const b = generated.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const show = (lines: string[]) => lines.slice(Math.max(0, i - 2), i + 4).join('\n');
  return `${file}:${i + 1}: committed\n${show(a)}\n--- generated now\n${show(b)}`;
}

describe('sample outputs are generated, not pasted', () => {
  it.concurrent('the samples in the docs are what the tools print now (else: npm run docs:samples)', async () => {
    const changed = staleFiles(root, await samplesNow());
    const messages = [...changed].map(([file, next]) => firstDifference(file, fs.readFileSync(path.join(root, file), 'utf8'), next));
    expect(messages).toEqual([]);
    expect(DOC_FILES.flatMap(regionsOf).length).toBeGreaterThan(5);
  }, 180_000);

  it('tool output in the docs (console blocks, `$ command` lines) is inside a sample region', () => {
    const pasted: string[] = [];
    for (const file of DOC_FILES) {
      for (const f of fencesOf(file)) {
        if (f.tagged || RUNNABLE.has(f.lang)) continue;
        const looksLikeOutput = f.lang === 'console' || f.code.split('\n').some((l) => l.startsWith('$ '));
        if (looksLikeOutput && !inRegion(file, f.line)) pasted.push(`${file}:${f.line}: ${firstLine(f)}`);
      }
    }
    expect(pasted).toEqual([]);
  });

  it('no test counts or "last run" results are pasted into the docs (they are in each run\'s log)', () => {
    const counts: string[] = [];
    for (const file of DOC_FILES) {
      fs.readFileSync(path.join(root, file), 'utf8')
        .split('\n')
        .forEach((l, i) => {
          const pasted = /\b\d[\d,]*(?:[–-]\d[\d,]*)? tests\b/.test(l) || /\b(?:the|its) last run\b/i.test(l);
          if (pasted && !inRegion(file, i + 1)) counts.push(`${file}:${i + 1}: ${l.trim()}`);
        });
    }
    expect(counts).toEqual([]);
  });
});
