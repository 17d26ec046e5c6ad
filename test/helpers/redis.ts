/**
 * A throwaway redis-server for tests: a free port on 127.0.0.1, no persistence, stopped with
 * SIGTERM. `.ci/run` installs redis-server (Debian's package); on a machine without it,
 * `startRedis` throws and suites should register skipped, saying why:
 *
 *   const why = redisUnavailable();
 *   describe.skipIf(why !== undefined)(`... ${why ? `(skipped: ${why})` : ''}`, () => { ... });
 *
 * REDIS_SERVER may name the binary; otherwise it is looked up on PATH.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  url: string;
  port: number;
  /** SIGTERM, then waits for the process to exit (SIGKILL if it has not within 5 s). */
  stop(): Promise<void>;
}

/** The redis-server binary: REDIS_SERVER, else the first on PATH; undefined if there is none. */
export function redisServerPath(): string | undefined {
  const explicit = process.env['REDIS_SERVER'];
  if (explicit) return isExecutable(explicit) ? explicit : undefined;
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'redis-server');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Why redis tests cannot run here, or undefined when they can. */
export function redisUnavailable(): string | undefined {
  if (redisServerPath() !== undefined) return undefined;
  return process.env['REDIS_SERVER']
    ? `REDIS_SERVER=${process.env['REDIS_SERVER']} is not an executable file`
    : 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)';
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A port free right now: listen on port 0, read the port the kernel chose, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: the server has no TCP address'));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}

/** One PING over a raw socket: true on +PONG, false on anything else (refused, reset, timeout). */
export function ping(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.setEncoding('latin1');
    socket.once('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG\r\n'));
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/**
 * Starts redis-server on a free port of 127.0.0.1 without persistence (`--save ''`,
 * `--appendonly no`) and resolves once it answers PING. Throws if redis-server is missing, or
 * exits or stays silent before answering (with its output in the message). Retries a few times
 * if another process took the port between `freePort` and the server's bind.
 */
export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerPath();
  if (bin === undefined) throw new Error(`startRedis: ${redisUnavailable()!}`);
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await startOn(bin, port);
    } catch (err) {
      lastError = err as Error;
      if (!/address already in use/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function startOn(bin: string, port: number): Promise<RedisServer> {
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    if (output.length < 16_384) output += chunk.toString('utf8');
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exitInfo: string | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      exitInfo ??= `could not be started: ${err.message}`;
      resolve();
    });
  });
  // A test run that ends without stop() must not leave the server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    if (exitInfo !== undefined || spawnError !== undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitInfo !== undefined) {
      await stop();
      throw new Error(`startRedis: redis-server ${exitInfo} before answering PING on port ${port}:\n${output.trim()}`);
    }
    if (await ping(port, 500)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`startRedis: redis-server gave no +PONG on port ${port} within ${START_TIMEOUT_MS} ms:\n${output.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  let stopping: Promise<void> | undefined;
  return { url: `redis://127.0.0.1:${port}`, port, stop: () => (stopping ??= stop()) };
}
