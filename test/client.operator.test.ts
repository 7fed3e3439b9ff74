// What an application meets first with the client: servers named by host name, servers
// that ask it to wait, ports with nothing listening, and servers whose key does not match
// — each with a real socket.

import { randomBytes } from 'node:crypto';
import { type Socket, createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { HailstoneError, createClient } from '../src/index.js';
import { HEADER_SIZE, STATUS_UNAVAILABLE, writeReplyHeader } from '../src/protocol/wire.js';
import { Probe, closedPort, startServer } from './support/udp.js';

/** A server that answers every request UNAVAILABLE with the given retry-after, and counts them. */
async function refusingServer(retryAfterMs: number): Promise<{ endpoint: string; requests: () => number; close: () => Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  let requests = 0;
  socket.on('message', (msg, rinfo) => {
    requests++;
    const reply = Buffer.alloc(HEADER_SIZE);
    writeReplyHeader(reply, msg, STATUS_UNAVAILABLE, 0, retryAfterMs, false);
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    endpoint: `127.0.0.1:${socket.address().port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

describe('servers named by host name', () => {
  it('a name that resolves to loopback (not an IP literal, not localhost): its replies are accepted', async () => {
    const s = await startServer();
    const asked: string[] = [];
    try {
      const client = createClient({
        servers: [`ids.hailstone.test:${s.port}`],
        lookup: async (name) => {
          asked.push(name);
          return ['127.0.0.1'];
        },
      });
      const ids = await client.nextIds(10);
      expect(ids).toHaveLength(10);
      expect(client.stats().rejectedReplies).toBe(0);
      expect(asked).toEqual(['ids.hailstone.test']);
      await client.close();
    } finally {
      await s.stop();
    }
  });

  it('every address of a name is tried: a dead first address, then the live one; the name is resolved again after the loss', async () => {
    const s = await startServer();
    // 127.0.0.2 takes the datagram and answers nothing (a hung server); 127.0.0.1 serves.
    const hung = await Probe.open(s.port, '127.0.0.2');
    let lookups = 0;
    try {
      const client = createClient({
        servers: [`ids.hailstone.test:${s.port}`],
        timeoutMs: 100,
        lookup: async () => {
          lookups++;
          return ['127.0.0.2', '127.0.0.1'];
        },
      });
      expect(await client.nextIds(3)).toHaveLength(3);
      expect(client.stats().timeouts).toBe(1);
      expect(lookups).toBe(2);
      await client.close();
    } finally {
      await hung.close();
      await s.stop();
    }
  });

  it('an address of a name with nothing listening is passed over at once, for the next address', async () => {
    const s = await startServer();
    try {
      // Nothing is bound to 127.0.0.2 at that port: the kernel answers ICMP port unreachable.
      const client = createClient({ servers: [`ids.hailstone.test:${s.port}`], timeoutMs: 5000, deadlineMs: 10_000, lookup: async () => ['127.0.0.2', '127.0.0.1'] });
      const started = Date.now();
      expect(await client.nextIds(3)).toHaveLength(3);
      expect(Date.now() - started).toBeLessThan(1000); // not after the 5 s reply timeout
      expect(client.stats().timeouts).toBe(0);
      await client.close();
    } finally {
      await s.stop();
    }
  });

  it('a name that does not resolve: TIMEOUT saying so', async () => {
    const client = createClient({
      servers: ['nowhere.hailstone.test:7077'],
      retries: 1,
      lookup: async () => {
        throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.hailstone.test'), { code: 'ENOTFOUND' });
      },
    });
    await expect(client.nextId()).rejects.toThrow(/cannot resolve nowhere\.hailstone\.test: getaddrinfo ENOTFOUND/);
    await client.close();
  });
});

describe('servers that ask to wait', () => {
  it('two servers both UNAVAILABLE for 400 ms: each is asked about once per retry-after, and the call ends UNAVAILABLE by its deadline', async () => {
    const a = await refusingServer(400);
    const b = await refusingServer(400);
    try {
      const client = createClient({ servers: [a.endpoint, b.endpoint], deadlineMs: 1500 });
      const started = Date.now();
      const error = await client.nextId().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HailstoneError);
      expect((error as HailstoneError).code).toBe('UNAVAILABLE');
      expect((error as HailstoneError).retryAfterMs).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(1500 + 1000);
      // 1500 ms / 400 ms: at most 4 or 5 requests each (before this fix: hundreds).
      expect(a.requests()).toBeLessThanOrEqual(5);
      expect(b.requests()).toBeLessThanOrEqual(5);
      expect(a.requests() + b.requests()).toBeGreaterThanOrEqual(4);
      await client.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a server that asks to wait 1 ms again and again: one batch sends at most maxAttempts requests', async () => {
    const a = await refusingServer(1);
    const b = await refusingServer(1);
    try {
      const client = createClient({ servers: [a.endpoint, b.endpoint], deadlineMs: 3000, maxAttempts: 20 });
      await expect(client.nextId()).rejects.toBeInstanceOf(HailstoneError);
      expect(a.requests() + b.requests()).toBe(20);
      await client.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('one server waiting, the other serving: the call is served at once by the other', async () => {
    const a = await refusingServer(60_000);
    const s = await startServer();
    try {
      const client = createClient({ servers: [a.endpoint, s.endpoint] });
      for (let i = 0; i < 5; i++) await client.nextId();
      expect(a.requests()).toBe(1);
      await client.close();
    } finally {
      await a.close();
      await s.stop();
    }
  });
});

describe('a port with nothing listening', () => {
  it('callers that retry UNREACHABLE at once still let timers run: the loop a load test writes stops when told', async () => {
    const port = await closedPort();
    const client = createClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 50, deadlineMs: 500 });
    let stop = false;
    let failures = 0;
    const timer = setTimeout(() => (stop = true), 300);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        // Bounded, so a regression fails this test instead of hanging the run.
        while (!stop && failures < 200_000) {
          await client.nextIds(5).catch((e: unknown) => {
            if (!(e instanceof HailstoneError)) throw e;
            failures++;
          });
        }
      }),
    );
    clearTimeout(timer);
    await client.close();
    expect(stop).toBe(true);
    expect(failures).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  /** The call's outcome and how long it took. */
  async function timed<T>(call: Promise<T>): Promise<{ result: T | unknown; ms: number }> {
    const started = Date.now();
    const result = await call.catch((e: unknown) => e);
    return { result, ms: Date.now() - started };
  }

  it('the only server: UNREACHABLE at once, naming it, far within a 10 s deadline', async () => {
    const port = await closedPort();
    const client = createClient({ servers: [`127.0.0.1:${port}`], deadlineMs: 10_000 });
    try {
      const { result, ms } = await timed(client.nextIds(5));
      expect(result).toBeInstanceOf(HailstoneError);
      expect(result).toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining(`nothing listening on 127.0.0.1:${port} (ICMP port unreachable)`) });
      expect(ms).toBeLessThan(1000);
      expect(client.stats().timeouts).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('every server: UNREACHABLE at once, naming them all', async () => {
    const ports = [await closedPort(), await closedPort()];
    const client = createClient({ servers: ports.map((p) => `127.0.0.1:${p}`), deadlineMs: 10_000 });
    try {
      const { result, ms } = await timed(client.nextId());
      expect(result).toMatchObject({ code: 'UNREACHABLE', message: expect.stringContaining(`nothing listening on 127.0.0.1:${ports[0]}, 127.0.0.1:${ports[1]} (ICMP port unreachable)`) });
      expect(ms).toBeLessThan(1000);
    } finally {
      await client.close();
    }
  });

  it('one of two servers: it is skipped and the other serves every call at once', async () => {
    const s = await startServer();
    const port = await closedPort();
    // Either order: calls start at either server in turn.
    const client = createClient({ servers: [`127.0.0.1:${port}`, s.endpoint], timeoutMs: 5000, deadlineMs: 10_000 });
    try {
      const { result, ms } = await timed(Promise.all(Array.from({ length: 6 }, () => client.nextIds(10))));
      expect((result as bigint[][]).flat()).toHaveLength(60);
      expect(ms).toBeLessThan(2000);
      expect(client.stats().timeouts).toBe(0);
    } finally {
      await client.close();
      await s.stop();
    }
  });

  it('one server with nothing listening and one that does not answer: not UNREACHABLE, a TIMEOUT that names both', async () => {
    const port = await closedPort();
    const hung = await Probe.open();
    const client = createClient({ servers: [`127.0.0.1:${port}`, `127.0.0.1:${hung.port}`], timeoutMs: 100, retries: 2, deadlineMs: 10_000 });
    try {
      const { result } = await timed(client.nextId());
      expect(result).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining(`nothing listening on 127.0.0.1:${port} (ICMP port unreachable)`) });
      expect((result as Error).message).toContain(`no reply from 127.0.0.1:${hung.port}`);
      expect(hung.replies.length).toBeGreaterThan(0); // the hung server was asked
    } finally {
      await client.close();
      await hung.close();
    }
  });
});

describe('errors that point the right way', () => {
  it('a keyed client against a server without a key: the replies arrived and were rejected for carrying no tag', async () => {
    const s = await startServer();
    try {
      const client = createClient({ servers: [s.endpoint], key: randomBytes(32), timeoutMs: 100, retries: 1 });
      await expect(client.nextId()).rejects.toThrow(/replies from 127\.0\.0\.1:\d+ were rejected: they carry no tag/);
      await client.close();
    } finally {
      await s.stop();
    }
  });

  it('a client without a key against a keyed server: no reply, and the message says a key may be needed', async () => {
    const s = await startServer({ key: randomBytes(32) });
    try {
      const client = createClient({ servers: [s.endpoint], timeoutMs: 100, retries: 1 });
      await expect(client.nextId()).rejects.toThrow(/a server that requires a key drops requests without one/);
      await client.close();
    } finally {
      await s.stop();
    }
  });

  it('a client with another key: rejected because the tags do not verify', async () => {
    const s = await startServer({ key: randomBytes(32) });
    try {
      const client = createClient({ servers: [s.endpoint], key: randomBytes(32), timeoutMs: 100, retries: 1 });
      // The server drops the request (its tag does not verify there either): no reply at all.
      await expect(client.nextId()).rejects.toThrow(/no reply from .* check that the servers run and share this key/);
      await client.close();
    } finally {
      await s.stop();
    }
  });
});
