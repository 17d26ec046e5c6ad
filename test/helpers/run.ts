/** Running a program as a test does: output kept, a time limit, nothing left behind. */
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** How long a program may end with processes of its own still holding its pipes (ms). */
const LEFT_BEHIND_GRACE_MS = 2_000;

/**
 * Runs a program in a process group of its own. When it ends (or is killed at `timeoutMs`),
 * whatever it left running in the background is killed with it, and its output is what it
 * wrote until then: a forgotten `&` fails the test instead of hanging it.
 */
export function runProgram(cmd: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(killGroup, options.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // let the pipes drain, then end what the program left behind (closing the pipes too)
      let leftBehind = false;
      const leftovers = setTimeout(() => {
        leftBehind = true;
        killGroup();
      }, LEFT_BEHIND_GRACE_MS);
      child.once('close', () => {
        clearTimeout(leftovers);
        killGroup();
        if (leftBehind) stderr += `\n[${cmd}: the program ended with processes of its own still running: killed]`;
        resolve({ code: leftBehind && code === 0 ? 1 : code, signal, stdout, stderr, ms: performance.now() - started });
      });
    });
  });
}
