// The client's id pool: refills under concurrent callers, drops ids past maxAgeMs, closes
// with callers waiting, drains when the server refuses or is silent, and never hands out an
// id twice — also through a lossy, duplicating proxy.

import { type Socket, createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { HailstoneError, createClient } from '../src/index.js';
import { IdPool } from '../src/client/pool.js';
import { HEADER_SIZE, STATUS_UNAVAILABLE, writeReplyHeader } from '../src/protocol/wire.js';
import { ManualClock } from './support/clock.js';
import { LossyProxy } from './support/lossy-proxy.js';
import { prng, testSeed } from './support/seed.js';
import { startServer } from './support/udp.js';

describe('IdPool (in isolation)', () => {
  /** A fetch that counts calls and hands out 0, 1, 2, … */
  function source() {
    let next = 0n;
    const calls: number[] = [];
    let gate: Promise<void> = Promise.resolve();
    return {
      calls,
      hold: () => {
        let open!: () => void;
        gate = new Promise((r) => (open = r));
        return open;
      },
      fetch: async (n: number) => {
        calls.push(n);
        await gate;
        return Array.from({ length: n }, () => next++);
      },
    };
  }

  it('1000 concurrent callers: each gets a distinct id, with one refill in flight at a time', async () => {
    const src = source();
    let inFlight = 0;
    let maxInFlight = 0;
    const fetch = src.fetch;
    const counted = new IdPool(async (n) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        return await fetch(n);
      } finally {
        inFlight--;
      }
    }, { size: 100, lowWater: 25 });
    const ids = await Promise.all(Array.from({ length: 1000 }, () => counted.next()));
    expect(new Set(ids).size).toBe(1000);
    expect(maxInFlight).toBe(1);
    counted.close();
  });

  it('takeId: undefined while empty (starting a refill), an id once it arrived; refills below lowWater', async () => {
    const src = source();
    const open = src.hold();
    const pool = new IdPool(src.fetch, { size: 10, lowWater: 4 });
    expect(pool.take()).toBeUndefined();
    expect(src.calls).toEqual([10]);
    open();
    await new Promise((r) => setImmediate(r));
    const taken = Array.from({ length: 7 }, () => pool.take());
    expect(taken).toEqual([0n, 1n, 2n, 3n, 4n, 5n, 6n]);
    // 3 left, below lowWater 4: a refill for 7 more was started.
    expect(src.calls).toEqual([10, 7]);
    pool.close();
  });

  it('ids older than maxAgeMs are dropped, never handed out', async () => {
    const src = source();
    const clock = new ManualClock(1_000_000);
    const pool = new IdPool(src.fetch, { size: 10, lowWater: 0, maxAgeMs: 500 }, clock.read);
    expect(await pool.next()).toBe(0n);
    clock.advance(501);
    // The first batch (ids 1..9) is too old: the next id comes from a new batch.
    expect(await pool.next()).toBe(10n);
    expect(pool.stats().dropped).toBe(9);
    pool.close();
  });

  it('close() with callers waiting: they get CLOSED; what arrives later is discarded', async () => {
    const src = source();
    const open = src.hold();
    const pool = new IdPool(src.fetch, { size: 10 });
    const waiting = [pool.next(), pool.next()];
    pool.close();
    for (const w of waiting) await expect(w).rejects.toMatchObject({ code: 'CLOSED' });
    open();
    await new Promise((r) => setImmediate(r));
    expect(pool.take()).toBeUndefined();
    expect(pool.stats().dropped).toBe(10);
  });

  it('rejects bad options naming them', () => {
    expect(() => new IdPool(async () => [], { size: 0 })).toThrow(/pool\.size/);
    expect(() => new IdPool(async () => [], { size: 10, lowWater: 10 })).toThrow(/pool\.lowWater/);
    expect(() => new IdPool(async () => [], { maxAgeMs: 0 })).toThrow(/pool\.maxAgeMs/);
  });
});

/**
 * A relay in front of a server: forwards while `mode` is 'forward'; then answers every
 * request UNAVAILABLE ('refuse') or nothing at all ('silent').
 */
async function relay(serverPort: number): Promise<{ endpoint: string; mode: 'forward' | 'refuse' | 'silent'; close: () => Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  let client: { port: number; address: string } | undefined;
  const r = {
    endpoint: '',
    mode: 'forward' as 'forward' | 'refuse' | 'silent',
    close: () => new Promise<void>((done) => socket.close(() => done())),
  };
  socket.on('message', (msg, rinfo) => {
    if (rinfo.port === serverPort) {
      if (client !== undefined) socket.send(msg, client.port, client.address);
      return;
    }
    client = rinfo;
    if (r.mode === 'forward') socket.send(msg, serverPort, '127.0.0.1');
    else if (r.mode === 'refuse') {
      const reply = Buffer.alloc(HEADER_SIZE);
      writeReplyHeader(reply, msg, STATUS_UNAVAILABLE, 0, 100, false);
      socket.send(reply, rinfo.port, rinfo.address);
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  r.endpoint = `127.0.0.1:${socket.address().port}`;
  return r;
}

describe('a pooled client against real servers', () => {
  it('a burst of 5000 nextId() calls costs a few dozen requests, not 5000; all distinct', async () => {
    const s = await startServer();
    const client = createClient({ servers: [s.endpoint], pool: { size: 2000 } });
    try {
      const ids = await Promise.all(Array.from({ length: 5000 }, () => client.nextId()));
      expect(new Set(ids).size).toBe(5000);
      expect(client.stats().requests).toBeLessThan(100);
    } finally {
      await client.close();
      await s.stop();
    }
  });

  it.each([
    ['answers UNAVAILABLE', false],
    ['answers nothing', true],
  ] as const)('a server that %s while the pool drains: what is pooled is handed out, then the calls fail with the reason', async (_, silent) => {
    const s = await startServer();
    const r = await relay(s.port);
    const client = createClient({ servers: [r.endpoint], pool: { size: 50, lowWater: 0, maxAgeMs: 60_000 }, deadlineMs: 500, timeoutMs: 50, retries: 2 });
    const first = await client.nextId(); // fills the pool with 50
    r.mode = silent ? 'silent' : 'refuse';
    const rest: bigint[] = [];
    for (let i = 0; i < 49; i++) rest.push(await client.nextId());
    expect(new Set([first, ...rest]).size).toBe(50);
    const error = await client.nextId().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HailstoneError);
    expect((error as HailstoneError).code).toBe(silent ? 'TIMEOUT' : 'UNAVAILABLE');
    await client.close();
    await r.close();
    await s.stop();
  });

  it('3·10^5 ids through a pool and a proxy that drops 10% and duplicates 10% of datagrams: no id twice', async () => {
    // HAILSTONE_POOL_LOSSY_IDS for a longer run (npm test: 3·10^5, fifteen pool refills).
    const IDS = Number(process.env.HAILSTONE_POOL_LOSSY_IDS ?? 300_000);
    const random = prng(testSeed('pool-lossy'));
    const s = await startServer({ maxLeadMs: 2000, reservationMs: 1000 });
    const proxy = await LossyProxy.start(s.port, { drop: 0.1, duplicate: 0.1, maxDelayMs: 2, random });
    const client = createClient({ servers: [`127.0.0.1:${proxy.port}`], pool: { size: 20_000, maxAgeMs: 5000 }, timeoutMs: 50, retries: 50, deadlineMs: 10_000 });
    try {
      const seen = new Set<bigint>();
      let handed = 0;
      const started = Date.now();
      // Four callers draining the pool as fast as it refills, bounded by count and time.
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (handed < IDS && Date.now() - started < 60_000) {
            const id = client.takeId() ?? (await client.nextId());
            handed++;
            seen.add(id);
          }
        }),
      );
      expect(handed).toBeGreaterThanOrEqual(IDS);
      expect(seen.size).toBe(handed);
      expect(proxy.duplicated).toBeGreaterThan(0);
      expect(client.stats().rejectedReplies).toBeGreaterThan(0);
    } finally {
      await client.close();
      await proxy.close();
      await s.stop();
    }
  }, 90_000);
});
