/**
 * The redis-server helper (test/helpers/redis.ts) that later suites use: it starts a server
 * that answers PING, and stop() really ends it and frees the port. Without redis-server the
 * suite registers skipped, under a name that says why.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ping, redisUnavailable, startRedis } from './redis.js';

const why = redisUnavailable();
if (why !== undefined) process.stderr.write(`redis.test.ts: ${why}: redis suites skipped\n`);

/** Whether anything accepts a TCP connection on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe.skipIf(why !== undefined)(`startRedis${why !== undefined ? ` (skipped: ${why})` : ''}`, () => {
  it('starts a server on a free local port that answers PING, and stop() ends it', async () => {
    const redis = await startRedis();
    try {
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
      expect(await ping(redis.port)).toBe(true);
      // A second server gets its own port.
      const other = await startRedis();
      try {
        expect(other.port).not.toBe(redis.port);
        expect(await ping(other.port)).toBe(true);
      } finally {
        await other.stop();
      }
      expect(await ping(redis.port)).toBe(true);
    } finally {
      await redis.stop();
    }
    expect(await accepts(redis.port)).toBe(false);
    expect(await ping(redis.port)).toBe(false);
    await redis.stop(); // twice is fine
  });
});

describe('startRedis without a redis-server', () => {
  it('throws a clear error when the binary is missing', async () => {
    const saved = process.env['REDIS_SERVER'];
    process.env['REDIS_SERVER'] = '/nonexistent/redis-server';
    try {
      await expect(startRedis()).rejects.toThrow(/REDIS_SERVER=\/nonexistent\/redis-server is not an executable file/);
    } finally {
      if (saved === undefined) delete process.env['REDIS_SERVER'];
      else process.env['REDIS_SERVER'] = saved;
    }
  });

  it('says redis-server is not installed when PATH has none', async () => {
    const saved = { path: process.env['PATH'], bin: process.env['REDIS_SERVER'] };
    process.env['PATH'] = '/nonexistent';
    delete process.env['REDIS_SERVER'];
    try {
      await expect(startRedis()).rejects.toThrow(/redis-server is not installed/);
    } finally {
      process.env['PATH'] = saved.path;
      if (saved.bin !== undefined) process.env['REDIS_SERVER'] = saved.bin;
    }
  });
});
