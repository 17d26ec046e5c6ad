/**
 * Shrinking a failing run: removes chunks of operations (halves, then quarters, down to
 * single operations) while the run still fails, so a failure is reported as the shortest
 * list found within the time budget.
 */
import type { Op } from './ops.js';
import { type RunOptions, type RunResult, runOps } from './runner.js';

export async function shrink(
  seed: number,
  ops: readonly Op[],
  budgetMs: number,
  onProgress?: (length: number) => void,
  options: Omit<RunOptions, 'seed'> = {},
  /** Which failures count as the same bug (default: any): a shrink must not drift to another one. */
  same: (message: string) => boolean = () => true,
): Promise<{ ops: Op[]; result: RunResult; trials: number }> {
  const deadline = Date.now() + budgetMs;
  // Everything after the failing step is irrelevant.
  let best = [...ops];
  let bestResult = await runOps(seed, best, options);
  let trials = 1;
  if (bestResult.failure === undefined) return { ops: best, result: bestResult, trials };
  best = best.slice(0, bestResult.failure.step + 1);
  let chunk = Math.max(1, Math.floor(best.length / 2));
  while (chunk >= 1 && Date.now() < deadline) {
    let removed = false;
    for (let start = 0; start < best.length && Date.now() < deadline; ) {
      const candidate = [...best.slice(0, start), ...best.slice(start + chunk)];
      const result = await runOps(seed, candidate, options);
      trials++;
      if (result.failure !== undefined && same(result.failure.message)) {
        best = candidate.slice(0, result.failure.step + 1);
        bestResult = result;
        removed = true;
        onProgress?.(best.length);
      } else start += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return { ops: best, result: bestResult, trials };
}
