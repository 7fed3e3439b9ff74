// Concurrent nextId() calls share requests (coalescing, on by default): the calls made in
// one tick are served by one nextIds(k), their ids handed out in call order — real servers
// on loopback, and a proxy that drops, duplicates and reorders datagrams.

import { describe, expect, it } from 'vitest';
import { type Client, HailstoneError, createClient } from '../src/index.js';
import { MAX_IDS_PER_REQUEST } from '../src/protocol/wire.js';
import { LossyProxy } from './support/lossy-proxy.js';
import { prng, testSeed } from './support/seed.js';
import { startServer } from './support/udp.js';

/**
 * Requests sent, less the ones sent again because an answer was UNAVAILABLE or lost: on a
 * loaded machine a node may refuse for a moment (fail closed), and the call asks again.
 */
function sent(client: Client): number {
  const { requests, unavailable, timeouts } = client.stats();
  return requests - unavailable - timeouts;
}

describe('coalescing nextId() calls', () => {
  it('64 calls in one tick: one request, 64 distinct ids in call order; coalesceMs: false sends one each', async () => {
    const s = await startServer({ maxLeadMs: 2000, reservationMs: 1000 });
    const shared = createClient({ servers: [s.endpoint] });
    const alone = createClient({ servers: [s.endpoint], coalesceMs: false });
    try {
      const ids = await Promise.all(Array.from({ length: 64 }, () => shared.nextId()));
      expect(new Set(ids).size).toBe(64);
      // Handed out in call order: the first caller has the smallest id of the one reply.
      expect([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(ids);
      expect(sent(shared)).toBe(1);
      await Promise.all(Array.from({ length: 8 }, () => alone.nextId()));
      expect(sent(alone)).toBe(8);
      // More callers than one datagram carries: one request per MAX_IDS_PER_REQUEST of them.
      const before = sent(shared);
      const many = await Promise.all(Array.from({ length: 2 * MAX_IDS_PER_REQUEST + 1 }, () => shared.nextId()));
      expect(new Set(many).size).toBe(many.length);
      expect(sent(shared) - before).toBe(3);
    } finally {
      await shared.close();
      await alone.close();
      await s.stop();
    }
  });

  it('a window: calls made within coalesceMs of the first share its request', async () => {
    const s = await startServer({ maxLeadMs: 2000, reservationMs: 1000 });
    // A window far longer than the 5 ms between the calls, even on a loaded machine.
    const client = createClient({ servers: [s.endpoint], coalesceMs: 500 });
    try {
      const early = client.nextId();
      await new Promise((r) => setTimeout(r, 5));
      const late = client.nextId();
      const [a, b] = await Promise.all([early, late]);
      expect(a).not.toBe(b);
      expect(sent(client)).toBe(1);
      expect(() => createClient({ servers: [s.endpoint], coalesceMs: -1 })).toThrow(/coalesceMs/);
    } finally {
      await client.close();
      await s.stop();
    }
  });

  it('5000 concurrent callers through 20% loss, 10% duplication and reordering: every call gets its own id or rejects by its deadline; no id twice', async () => {
    const seed = testSeed('coalesce-lossy');
    const random = prng(seed);
    const s = await startServer({ maxLeadMs: 2000, reservationMs: 1000 });
    const proxy = await LossyProxy.start(s.port, { drop: 0.2, duplicate: 0.1, maxDelayMs: 5, random });
    const client = createClient({ servers: [`127.0.0.1:${proxy.port}`], timeoutMs: 50, retries: 20, deadlineMs: 5000 });
    try {
      // Callers arrive in bursts of random size, each burst one tick; every call is awaited.
      const calls: Promise<bigint>[] = [];
      while (calls.length < 5000) {
        const burst = 1 + Math.floor(random() * 300);
        for (let i = 0; i < burst && calls.length < 5000; i++) calls.push(client.nextId());
        await new Promise((r) => setImmediate(r));
      }
      const settled = await Promise.allSettled(calls);
      const ids = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failures = settled.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      for (const f of failures) expect(f).toBeInstanceOf(HailstoneError);
      expect(new Set(ids).size, `seed ${seed}`).toBe(ids.length);
      expect(ids.length).toBeGreaterThan(4900);
      // Far fewer requests than calls, even with the retries loss costs.
      expect(client.stats().requests).toBeLessThan(2500);
      expect(proxy.duplicated).toBeGreaterThan(0);
    } finally {
      await client.close();
      await proxy.close();
      await s.stop();
    }
  }, 60_000);
});
