/**
 * `node dist/bench/peers/report.js FILE [--doc docs/BENCHMARKS.md]`: rewrites the bench:peers
 * section of docs/BENCHMARKS.md (between `<!-- peers:begin -->` and `<!-- peers:end -->`; the
 * markers and a heading are appended when absent) from a saved bench:peers JSON. `--print`
 * writes the section to stdout instead.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { argValue } from './config.js';
import { type PeersReport, markdownSection, rewriteSection } from './document.js';

const HEADING = '## Against peers and the device floor (issue 12): `npm run bench:peers`';

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((a, i) => !a.startsWith('--') && (i === 0 || args[i - 1] !== '--doc'));
  if (file === undefined) throw new Error('usage: node dist/bench/peers/report.js FILE.json [--doc docs/BENCHMARKS.md] [--print]');
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const doc = argValue(args, '--doc') ?? path.join(root, 'docs', 'BENCHMARKS.md');
  const report = JSON.parse(fs.readFileSync(file, 'utf8')) as PeersReport;
  const rel = path.relative(root, path.resolve(file));
  const section = markdownSection(report, rel.startsWith('..') ? file : rel);
  if (args.includes('--print')) {
    process.stdout.write(section + '\n');
    return;
  }
  fs.writeFileSync(doc, rewriteSection(fs.readFileSync(doc, 'utf8'), section, HEADING));
  process.stderr.write(`rewrote the bench:peers section of ${doc} from ${file}\n`);
}

main();
