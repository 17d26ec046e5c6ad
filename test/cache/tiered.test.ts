/**
 * The shared tier: `cacheable`'s Cacheable with a zns-slab cache as each instance's local tier
 * (primary: Keyv over KeyvZnsSlab) and one redis-server as the tier the instances share
 * (secondary: Keyv over @keyv/redis). Every instance has its own cache folder and its own redis
 * connection, as separate processes would; they share only redis.
 *
 * What is tested is what cacheable 2.5 does, as observed: writes go to both tiers, a local miss
 * is filled from redis, a delete reaches redis but not other instances' local copies (those live
 * until their local TTL), and with redis stopped the default setup waits for it while
 * `nonBlocking` carries on locally.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import Keyv from 'keyv';
import { Cacheable } from 'cacheable';
import { type RedisClientType, createClient, createKeyv, createKeyvNonBlocking } from '@keyv/redis';
import { KeyvZnsSlab } from '../../cache/keyv.js';
import { type RedisServer, ping, redisServerPath, redisUnavailable, startRedis } from '../helpers/redis.js';

const MAX_BYTES = 4 * 1024 * 1024;
const TMP_ROOT = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

const why = redisUnavailable();
if (why !== undefined) process.stderr.write(`tiered.test.ts: ${why}: the shared-tier suite is skipped\n`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 'pending' if `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A redis-server on a given port (to bring a stopped one back where its clients look for it). */
async function redisOn(port: number): Promise<{ stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(redisServerPath()!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  while (!(await ping(port, 200))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not come back on port ${port}`);
    }
    await sleep(20);
  }
  return {
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

describe.skipIf(why !== undefined)(`Cacheable: zns-slab local tier + redis shared tier${why !== undefined ? ` (skipped: ${why})` : ''}`, () => {
  const folders: string[] = [];
  const teardown: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const t of teardown.splice(0).reverse()) await t();
    for (const dir of folders.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** One instance: its own cache folder and redis connection, the shared redis. */
  function instance(
    url: string,
    options: { localTtl?: number; nonBlocking?: boolean } = {},
  ): { cacheable: Cacheable; local: KeyvZnsSlab; secondary: Keyv; hits: string[]; errors: unknown[] } {
    const dir = fs.mkdtempSync(path.join(TMP_ROOT, 'zns-tier-'));
    folders.push(dir);
    const local = new KeyvZnsSlab(path.join(dir, 'cache'), { maxBytes: MAX_BYTES });
    const primary = new Keyv({ store: local, ...(options.localTtl !== undefined ? { ttl: options.localTtl } : {}) });
    const secondary = options.nonBlocking ? createKeyvNonBlocking(url) : createKeyv(url);
    const cacheable = new Cacheable({ primary, secondary, namespace: 'app', nonBlocking: options.nonBlocking ?? false });
    const hits: string[] = [];
    const errors: unknown[] = [];
    cacheable.on('cache:hit', (e: { store: string }) => hits.push(e.store));
    cacheable.on('error', (e: unknown) => errors.push(e));
    teardown.push(async () => {
      const client = (secondary.store as { client: RedisClientType }).client;
      if (client.isOpen && !client.isReady) client.destroy(); // redis gone: do not wait for it
      await cacheable.disconnect();
    });
    return { cacheable, local, secondary, hits, errors };
  }

  describe('with redis up', () => {
    let redis: RedisServer;
    let raw: RedisClientType;
    beforeAll(async () => {
      redis = await startRedis();
      raw = createClient({ url: redis.url }) as RedisClientType;
      await raw.connect();
    });
    afterAll(async () => {
      await raw?.close();
      await redis?.stop();
    });
    beforeEach(async () => {
      await raw.flushAll();
    });

    it("a set through A reaches redis; B gets it from redis, then from its own zns-slab folder", async () => {
      const a = instance(redis.url);
      const b = instance(redis.url);
      expect(await a.cacheable.set('user:42', { name: 'Ada' })).toBe(true);

      // In redis under the secondary's namespace ('app::'), Keyv-serialized, no expiry.
      const stored = await raw.get('app::user:42');
      expect(JSON.parse(stored!)).toEqual({ value: { name: 'Ada' } });
      expect(await raw.pTTL('app::user:42')).toBe(-1);
      // In A's local tier under the primary's ('app:'); not in B's yet.
      expect(a.local.cache.has('app:user:42')).toBe(true);
      expect(b.local.cache.has('app:user:42')).toBe(false);

      expect(await b.cacheable.get('user:42')).toEqual({ name: 'Ada' });
      expect(b.hits).toEqual(['secondary']);
      expect(b.local.cache.has('app:user:42')).toBe(true); // filled on the way

      // From now on B answers locally: even with the key gone from redis.
      await raw.del('app::user:42');
      expect(await b.cacheable.get('user:42')).toEqual({ name: 'Ada' });
      expect(b.hits).toEqual(['secondary', 'primary']);

      // getMany fills B's local misses from redis in one go.
      await a.cacheable.setMany([{ key: 'm1', value: 1 }, { key: 'm2', value: 2 }]);
      expect(await b.cacheable.getMany(['m1', 'm2', 'none'])).toEqual([1, 2, undefined]);
      expect([b.local.cache.has('app:m1'), b.local.cache.has('app:m2')]).toEqual([true, true]);
    });

    it("a delete through A empties A's local tier and redis; B's local copy lives until its local TTL", async () => {
      const a = instance(redis.url);
      const b = instance(redis.url, { localTtl: 600 }); // B keeps what it pulls for at most 600 ms
      await a.cacheable.set('price', 10);
      expect(await b.cacheable.get('price')).toBe(10); // now in B's local tier, for 600 ms
      const pulledAt = Date.now();

      expect(await a.cacheable.delete('price')).toBe(true);
      expect(await raw.get('app::price')).toBeNull();
      expect(a.local.cache.has('app:price')).toBe(false);
      expect(await a.cacheable.get('price')).toBeUndefined();

      // Nothing tells B (cacheable's `sync` option would, over a message bus): B serves its copy...
      expect(await b.cacheable.get('price')).toBe(10);
      // ...until the local TTL it was given ends; then it asks redis, which has nothing.
      await sleep(Math.max(0, pulledAt + 620 - Date.now()));
      expect(b.local.cache.has('app:price')).toBe(false); // expired in the cache itself
      expect(await b.cacheable.get('price')).toBeUndefined();

      // B's own delete reaches redis and A as well (A's local copy was already gone).
      await b.cacheable.set('fresh', 'x');
      expect(await a.cacheable.get('fresh')).toBe('x');
      await b.cacheable.delete('fresh');
      expect(await raw.exists('app::fresh')).toBe(0);
      expect(a.local.cache.has('app:fresh')).toBe(true); // the same staleness, the other way
    });

    it('a TTL reaches both tiers; B inherits what is left of it; per-store TTLs bound the local copy', async () => {
      const a = instance(redis.url);
      const b = instance(redis.url);
      const setAt = Date.now();
      await a.cacheable.set('token', 'abc', 500);
      const pttl = await raw.pTTL('app::token');
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(500);
      expect(a.local.cache.stats().ttlBuckets).toBe(1); // an expiring entry in A's cache, not only Keyv's stamp

      await sleep(150);
      expect(await b.cacheable.get('token')).toBe('abc');
      // B's copy expires when the original does (cacheable passes the remaining time).
      const bExpires = (JSON.parse(b.local.cache.get('app:token') as string) as { expires: number }).expires;
      expect(Math.abs(bExpires - (setAt + 500))).toBeLessThan(100);

      await sleep(Math.max(0, setAt + 520 - Date.now()));
      expect(await raw.exists('app::token')).toBe(0);
      expect(a.local.cache.has('app:token')).toBe(false);
      expect(b.local.cache.has('app:token')).toBe(false);
      expect(await a.cacheable.get('token')).toBeUndefined();
      expect(await b.cacheable.get('token')).toBeUndefined();

      // A short local TTL and a long shared one: the local copy goes first, redis refills it.
      await a.cacheable.set('page', '<html>', { ttl: { primary: 100, secondary: '1h' } });
      expect(await raw.pTTL('app::page')).toBeGreaterThan(3_500_000);
      await sleep(120);
      expect(a.local.cache.has('app:page')).toBe(false);
      a.hits.length = 0;
      expect(await a.cacheable.get('page')).toBe('<html>');
      expect(a.hits).toEqual(['secondary']);
    });
  });

  describe('with redis stopped', () => {
    it('by default (blocking), local hits go on, anything that needs redis waits for it, and completes when it is back', async () => {
      const redis = await startRedis();
      let revived: { stop: () => Promise<void> } | undefined;
      try {
        const a = instance(redis.url);
        const quitter = instance(redis.url);
        await a.cacheable.set('before', 1);
        await quitter.cacheable.set('q', 1);
        await redis.stop();
        // Wait until node-redis has seen the socket close: a command sent before that can still
        // be answered from what the server wrote before it exited (a timing race, not behaviour).
        const aClient = (a.secondary.store as { client: RedisClientType }).client;
        for (let waited = 0; aClient.isReady && waited < 5_000; waited += 10) await sleep(10);
        expect(aClient.isReady).toBe(false);

        expect(await within(a.cacheable.get('before'), 200)).toEqual({ value: 1 }); // a local hit: redis not asked
        const set = a.cacheable.set('during', 2);
        const miss = a.cacheable.get('nowhere');
        const has = a.cacheable.has('nowhere');
        expect(await within(set, 300)).toBe('pending'); // node-redis queues the command and reconnects
        expect(await within(miss, 10)).toBe('pending');
        expect(await within(has, 10)).toBe('pending');
        expect(a.local.cache.has('app:during')).toBe(true); // the local write is done already

        // Shutting down while redis is gone: disconnect() would wait for it (node-redis's close()
        // drains the queue); destroying the client first lets it return.
        const client = (quitter.secondary.store as { client: RedisClientType }).client;
        expect(client.isReady).toBe(false);
        client.destroy();
        expect(await within(quitter.cacheable.disconnect(), 2_000)).toEqual({ value: undefined });
        await expect(quitter.local.get('app:q')).rejects.toMatchObject({ code: 'ERR_CLOSED' }); // the local tier closed too
        expect(a.errors.length).toBeGreaterThan(0); // connection errors, as 'error' events
        expect(String((a.errors[0] as Error).message)).toMatch(/Socket closed unexpectedly|ECONNREFUSED/);

        revived = await redisOn(redis.port);
        expect(await within(set, 10_000)).toEqual({ value: true });
        expect(await within(miss, 10_000)).toEqual({ value: undefined });
        expect(await within(has, 10_000)).toEqual({ value: false });
        const raw = createClient({ url: redis.url });
        await raw.connect();
        expect(JSON.parse((await raw.get('app::during'))!)).toEqual({ value: 2 }); // the queued write landed
        await raw.close();
      } finally {
        for (const t of teardown.splice(0).reverse()) await t();
        await revived?.stop();
        await redis.stop();
      }
    });

    it('with nonBlocking (and createKeyvNonBlocking), everything answers from the local tier at once; writes made meanwhile never reach redis', async () => {
      const redis = await startRedis();
      let revived: { stop: () => Promise<void> } | undefined;
      try {
        const a = instance(redis.url, { nonBlocking: true });
        await a.cacheable.set('before', 1);
        await redis.stop();

        expect(await within(a.cacheable.set('during', 2), 200)).toEqual({ value: true }); // the local set won the race
        expect(await within(a.cacheable.get('during'), 200)).toEqual({ value: 2 });
        expect(await within(a.cacheable.get('nowhere'), 200)).toEqual({ value: undefined }); // a miss, not a wait
        expect(await within(a.cacheable.has('before'), 200)).toEqual({ value: true });
        expect(await within(a.cacheable.delete('before'), 200)).toEqual({ value: true });
        expect(a.local.cache.has('app:before')).toBe(false);
        const messages = a.errors.map((e) => String((e as Error).message ?? e));
        expect(messages.some((m) => /offline|ECONNREFUSED|Socket closed/.test(m))).toBe(true);

        // Redis back: the client connects again on use, and new writes reach it; the one made
        // while it was down is not replayed, and the delete did not happen there either.
        revived = await redisOn(redis.port);
        const raw = createClient({ url: redis.url });
        await raw.connect();
        const deadline = Date.now() + 10_000;
        for (let i = 0; ; i++) {
          await a.cacheable.set(`after${i}`, i);
          await sleep(20);
          if ((await raw.exists(`app::after${i}`)) === 1) break;
          if (Date.now() > deadline) throw new Error('the non-blocking client never reconnected');
        }
        expect(await raw.exists('app::during')).toBe(0);
        await raw.close();
      } finally {
        for (const t of teardown.splice(0).reverse()) await t();
        await revived?.stop();
        await redis.stop();
      }
    });
  });
});
