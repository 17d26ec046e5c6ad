/**
 * The code blocks of the project's Markdown docs, for the tests that run them (docs that cannot go stale).
 *
 * A fenced block runs when its info string carries `test` after the language:
 *
 *     ```ts test            a program of its own
 *     ```ts test:usage      one part of the program "usage": every block of that file tagged
 *                           test:usage, in order, joined into one program
 *
 * Hidden parts, never shown to a reader, are HTML comments in the same file:
 *
 *     <!-- test:usage
 *     const somethingSlow = () => new Promise((r) => setTimeout(r, 1));
 *     -->
 *
 * A hidden part joins its group in document order, like a visible block (put setup above the
 * first visible block, checks and cleanup after the last). Blocks without `test` are prose.
 */
import fs from 'node:fs';

export interface DocBlock {
  /** The Markdown file, as given. */
  readonly file: string;
  /** 1-based line of the opening fence (or of the `<!--` of a hidden part). */
  readonly line: number;
  /** The fence's language: ts, js, sh, ... ('' for a hidden part). */
  readonly lang: string;
  /** The group: the name after `test:`, or `<file>:<line>` for a block of its own. */
  readonly group: string;
  readonly hidden: boolean;
  readonly code: string;
}

export interface DocProgram {
  readonly file: string;
  readonly group: string;
  /** The first visible block's language. */
  readonly lang: string;
  /** Where each part starts, for messages. */
  readonly lines: readonly number[];
  /** The parts, in document order (their code joined by newlines is `code`). */
  readonly parts: readonly DocBlock[];
  readonly code: string;
}

/** Every fenced block of a file, tagged or not (for the check that nothing runnable is left untagged). */
export interface DocFence {
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  /** The info string after the language (`test:usage`, ...). */
  readonly info: string;
  readonly tagged: boolean;
  readonly code: string;
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)\s*(.*)$/;
const TAG = /(?:^|\s)test(?::([\w.-]+))?(?=\s|$)/;
const HIDDEN_OPEN = /^\s*<!--\s*test:([\w.-]+)\s*$/;

export function docBlocks(file: string): DocBlock[] {
  return scan(file).blocks;
}

/** Every fenced block of the file, in order. */
export function docFences(file: string): DocFence[] {
  return scan(file).fences;
}

function scan(file: string): { blocks: DocBlock[]; fences: DocFence[] } {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  const fences: DocFence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const hidden = HIDDEN_OPEN.exec(lines[i]!);
    if (hidden) {
      const start = i;
      const body: string[] = [];
      while (++i < lines.length && !/^\s*-->\s*$/.test(lines[i]!)) body.push(lines[i]!);
      if (i >= lines.length) throw new Error(`${file}:${start + 1}: hidden test part never closed with -->`);
      blocks.push({ file, line: start + 1, lang: '', group: hidden[1]!, hidden: true, code: body.join('\n') });
      continue;
    }
    const fence = FENCE.exec(lines[i]!);
    if (!fence) continue;
    const [, indent, marks, lang, rest] = fence;
    const start = i;
    const body: string[] = [];
    while (++i < lines.length && !lines[i]!.trimStart().startsWith(marks!)) {
      body.push(lines[i]!.startsWith(indent!) ? lines[i]!.slice(indent!.length) : lines[i]!);
    }
    const tag = TAG.exec(rest ?? '');
    fences.push({ file, line: start + 1, lang: lang ?? '', info: (rest ?? '').trim(), tagged: tag !== null, code: body.join('\n') });
    if (!tag) continue;
    blocks.push({ file, line: start + 1, lang: lang ?? '', group: tag[1] ?? `${file}:${start + 1}`, hidden: false, code: body.join('\n') });
  }
  return { blocks, fences };
}

/** The runnable programs of a file: each group's parts joined in document order. */
export function docPrograms(file: string): DocProgram[] {
  const groups = new Map<string, DocBlock[]>();
  for (const b of docBlocks(file)) {
    const g = groups.get(b.group) ?? [];
    g.push(b);
    groups.set(b.group, g);
  }
  const programs: DocProgram[] = [];
  for (const [group, parts] of groups) {
    const visible = parts.find((p) => !p.hidden);
    if (!visible) throw new Error(`${file}: test group ${group} has hidden parts only`);
    programs.push({
      file,
      group,
      lang: visible.lang,
      lines: parts.map((p) => p.line),
      parts,
      code: parts.map((p) => p.code).join('\n'),
    });
  }
  return programs;
}
