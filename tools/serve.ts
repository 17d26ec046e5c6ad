/**
 * `zns-slab serve <store-or-device>`: a local web page with the zone map and the key stats,
 * updated live (server-sent events), for a store another process is using (read only: see
 * engine/observe.ts). One self-contained page (tools/servePage.ts: inline CSS and JS, no
 * framework, no build step); the map is tools/zoneMap.ts's SVG, the same picture as
 * `zns-slab zones --svg`.
 *
 * It listens on the loopback interface only: from another machine, tunnel it over SSH
 * (`ssh -L 8765:127.0.0.1:8765 host`). Requests whose Host header is not a loopback name are
 * refused too, so a web page elsewhere cannot reach it by DNS rebinding.
 *
 *   GET /               the page
 *   GET /snapshot.json  the latest snapshot (engine/observe.ts's Observation, every zone's row)
 *   GET /events         text/event-stream: one snapshot per interval (without the zone rows,
 *                       with the map as SVG); `event: failure` when a snapshot fails.
 *                       `?limit=N`: the stream ends after N snapshots (the page's `?frames=N`,
 *                       for screenshots and scripts that want a page that settles)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Observation, Observer } from '../engine/observe.js';
import { ErrorCode, ZnsSlabError } from '../errors.js';
import { renderZoneMap } from './zoneMap.js';
import { SERVE_PAGE } from './servePage.js';

/** Port when none is given (0 picks a free one). */
export const SERVE_DEFAULT_PORT = 8765;
export const SERVE_DEFAULT_HOST = '127.0.0.1';
/** The only addresses serve listens on. */
export const SERVE_LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', '::1', 'localhost'];
/** Event streams open at once; past it a new one gets 503. */
export const SERVE_MAX_CLIENTS = 64;
/** A comment line this often keeps idle tunnels and proxies from closing an event stream (ms). */
export const SERVE_KEEPALIVE_MS = 15_000;
/** Signals that stop the server (SIGHUP: its terminal or SSH session went away). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** What the page's EventSource waits before reconnecting after the stream drops (ms). */
const SSE_RETRY_MS = 2000;

export interface ServeOptions {
  target: string;
  host: string;
  port: number;
  intervalMs: number;
  /** Machine-readable output (the JSON line with the URL). */
  out: (text: string) => void;
  /** Human messages. */
  err: (text: string) => void;
}

/** What an event carries: the snapshot without its zone rows, and the zone map as SVG. */
export interface LiveEvent extends Omit<Observation, 'zones'> {
  svg: string;
}

function eventOf(obs: Observation): LiveEvent {
  const { zones, ...rest } = obs;
  const title = obs.kind === 'store' ? `zns-slab store ${obs.target} (${obs.device.kind} device)` : `${obs.device.kind} zoned device ${obs.device.path}`;
  const svg = renderZoneMap(zones, { title, colorBy: obs.kind === 'store' ? 'epoch' : 'condition' }).replace(/^<\?xml[^>]*\?>\s*/, '');
  return { ...rest, svg };
}

/** A loopback name, with or without a port, as a Host header carries it. */
export function isLoopbackHost(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return false;
  const name = hostHeader.startsWith('[') ? hostHeader.slice(1, hostHeader.indexOf(']')) : hostHeader.replace(/:\d+$/, '');
  return name === '127.0.0.1' || name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

function describe(err: unknown): { code: string; message: string } {
  return err instanceof ZnsSlabError ? { code: err.code, message: err.message } : { code: ErrorCode.INTERNAL, message: (err as Error).message };
}

/**
 * Serves until SIGINT, SIGTERM or SIGHUP; resolves to the exit code. The first snapshot is taken before
 * listening, so a store that cannot be read fails at once (exit 1) as `zns-slab zones` does.
 */
export async function serve(o: ServeOptions): Promise<number> {
  if (!SERVE_LOOPBACK_HOSTS.includes(o.host)) {
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `serve listens on the loopback interface only (${SERVE_LOOPBACK_HOSTS.join(', ')}), not ${o.host}: reach it from elsewhere through an SSH tunnel`);
  }
  const observer = new Observer(o.target);
  let latest: { obs: Observation; at: number; event: string } | undefined;
  let failure: { code: string; message: string } | undefined;
  const take = (): void => {
    try {
      const obs = observer.observe();
      latest = { obs, at: Date.now(), event: JSON.stringify(eventOf(obs)) };
      failure = undefined;
    } catch (err) {
      failure = describe(err);
    }
  };
  try {
    const obs = observer.observe();
    latest = { obs, at: Date.now(), event: JSON.stringify(eventOf(obs)) };
  } catch (err) {
    observer.close();
    throw err;
  }
  /** Open event streams -> snapshots each may still be sent (Infinity without a limit). */
  const clients = new Map<http.ServerResponse, number>();
  let sequence = 0;
  let timer: NodeJS.Timeout | undefined;
  let keepalive: NodeJS.Timeout | undefined;
  const broadcast = (): void => {
    sequence++;
    const text = failure !== undefined ? `event: failure\ndata: ${JSON.stringify(failure)}\n\n` : `id: ${sequence}\ndata: ${latest!.event}\n\n`;
    for (const [res, left] of clients) send(res, left, text, failure === undefined);
  };
  const send = (res: http.ServerResponse, left: number, text: string, counts: boolean): void => {
    res.write(text);
    if (!counts) return;
    if (left <= 1) {
      clients.delete(res);
      res.end();
    } else clients.set(res, left - 1);
  };
  // Snapshots are taken only while someone watches (and on demand for /snapshot.json).
  const startTicking = (): void => {
    if (timer !== undefined) return;
    timer = setInterval(() => {
      take();
      broadcast();
    }, o.intervalMs);
    keepalive = setInterval(() => {
      for (const res of clients.keys()) res.write(': keepalive\n\n');
    }, SERVE_KEEPALIVE_MS);
  };
  const stopTicking = (): void => {
    clearInterval(timer);
    clearInterval(keepalive);
    timer = keepalive = undefined;
  };

  const server = http.createServer((req, res) => {
    const common = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (!isLoopbackHost(req.headers.host)) {
      res.writeHead(403, { ...common, 'content-type': 'text/plain; charset=utf-8' }).end('forbidden: this server answers loopback names only (127.0.0.1, localhost)\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...common, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { ...common, 'content-type': 'text/html; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : SERVE_PAGE);
    } else if (url.pathname === '/snapshot.json') {
      if (latest === undefined || Date.now() - latest.at >= o.intervalMs) take();
      if (failure !== undefined) res.writeHead(503, { ...common, 'content-type': 'application/json' }).end(JSON.stringify(failure) + '\n');
      else res.writeHead(200, { ...common, 'content-type': 'application/json' }).end(JSON.stringify(latest!.obs) + '\n');
    } else if (url.pathname === '/events') {
      const limitParam = url.searchParams.get('limit');
      const limit = limitParam === null ? Infinity : Number(limitParam);
      if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit > 0))) {
        res.writeHead(400, { ...common, 'content-type': 'text/plain; charset=utf-8' }).end('limit takes a positive number of snapshots\n');
        return;
      }
      if (clients.size >= SERVE_MAX_CLIENTS) {
        res.writeHead(503, { ...common, 'content-type': 'text/plain; charset=utf-8' }).end(`too many event streams (${SERVE_MAX_CLIENTS})\n`);
        return;
      }
      res.writeHead(200, { ...common, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
      res.write(`retry: ${SSE_RETRY_MS}\n\n`);
      // The latest snapshot at once, so a page never waits an interval for its first picture.
      if (latest === undefined || Date.now() - latest.at >= o.intervalMs) take();
      clients.set(res, limit);
      send(res, limit, failure !== undefined ? `event: failure\ndata: ${JSON.stringify(failure)}\n\n` : `id: ${sequence}\ndata: ${latest!.event}\n\n`, failure === undefined);
      if (clients.has(res)) startTicking();
      req.on('close', () => {
        clients.delete(res);
        if (clients.size === 0) stopTicking();
      });
    } else {
      res.writeHead(404, { ...common, 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /, /snapshot.json or /events\n');
    }
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    observer.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `port ${o.port} on ${o.host} is in use: pick another with --port (0: any free port)`, { cause: err });
    throw new ZnsSlabError(ErrorCode.INVALID_ARGUMENT, `cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`, { cause: err });
  }
  const address = server.address() as AddressInfo;
  const hostInUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${hostInUrl}:${address.port}/`;
  o.out(JSON.stringify({ url, host: address.address, port: address.port, target: observer.target, pid: process.pid }) + '\n');
  o.err(
    `zns-slab serve: ${url} (the ${observer.kind} at ${observer.target}, a snapshot every ${o.intervalMs} ms while a page is open)\n` +
      `  from another machine: ssh -L ${address.port}:${hostInUrl}:${address.port} <this host>, then open http://127.0.0.1:${address.port}/\n` +
      `  Ctrl-C stops\n`,
  );

  return new Promise<number>((resolve) => {
    const stop = (): void => {
      for (const signal of STOP_SIGNALS) process.off(signal, stop);
      stopTicking();
      for (const res of clients.keys()) res.end();
      clients.clear();
      server.close(() => {
        observer.close();
        o.err('zns-slab serve: stopped\n');
        resolve(0);
      });
      server.closeAllConnections();
    };
    for (const signal of STOP_SIGNALS) process.on(signal, stop);
  });
}
