// Ids over HTTP, in process, with real requests on loopback: every route and error, the
// refusals, keep-alive, HTTP and UDP from one node at once, the allowlist, the rate limit,
// bearer tokens, slow and oversized clients, connection limits and a graceful close.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HailstoneError, decode, openNode, serve } from '../src/index.js';
import { HTTP_MAX_IDS, answerIdRoute, idScratch } from '../src/server/http-routes.js';
import { type HttpIdServer, type HttpServeOptions, readTokenFile, serveHttp } from '../src/server/http-server.js';
import { warmHttpPath } from '../src/server/http-warmup.js';
import { metricsHandler, METRICS_PATHS } from '../src/server/metrics.js';
import { type ServingNode, servingNodeOf } from '../src/server/server.js';
import { waitFor } from './support/child.js';
import { parseResponses, rawConnection } from './support/http.js';
import { silent } from './support/logger.js';
import { Load, duplicatesIn } from './support/serve-process.js';
import { type TestServer, startServer } from './support/udp.js';

const root = mkdtempSync(join(tmpdir(), 'hailstone-http-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Everything a test started, closed after it even when it failed. */
const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

async function udpServer(): Promise<TestServer> {
  // A 1 s lead (renewals with 500 ms of reservation left), not the 300 ms most server tests
  // use: these tests expect 200s, and with two busy loops on both cores a 300 ms lead's
  // renewals can fall behind — a refusal that is correct, but not what they test.
  const s = await startServer({ maxLeadMs: 1000, reservationMs: 500 });
  opened.push({ close: () => s.stop() });
  return s;
}

async function http(options: Partial<HttpServeOptions> & { source: ServingNode }): Promise<{ server: HttpIdServer; url: string }> {
  const server = await serveHttp({ port: 0, logger: silent, ...options });
  opened.push({ close: () => server.close(0) });
  return { server, url: `http://127.0.0.1:${server.address.port}` };
}

/**
 * A GET that asks again on a 503, for up to 15 s: on a loaded machine the node may be
 * extending its reservation (it says how long to wait).
 */
async function served(url: string, init?: RequestInit): Promise<Response> {
  let response = await fetch(url, init);
  const until = Date.now() + 15_000;
  while (response.status === 503 && Date.now() < until) {
    const wait = Number(((await response.json()) as { retryAfterMs?: number }).retryAfterMs ?? 20);
    await new Promise((r) => setTimeout(r, Math.min(Math.max(wait, 1), 200)));
    response = await fetch(url, init);
  }
  return response;
}

async function json(response: Response): Promise<any> {
  expect(response.headers.get('content-type')).toBe('application/json');
  return response.json();
}

describe('ids over HTTP', () => {
  it('GET /v1/ids (JSON and text), GET /v1/id: decimal strings from the UDP server\'s node', async () => {
    const udp = await udpServer();
    const { url } = await http({ source: servingNodeOf(udp.server) });

    const three = await served(`${url}/v1/ids?count=3`);
    expect(three.status).toBe(200);
    expect(three.headers.get('cache-control')).toBe('no-store');
    const body = await json(three);
    expect(Object.keys(body)).toEqual(['ids']);
    expect(body.ids).toHaveLength(3);
    expect(body.ids.every((id: unknown) => typeof id === 'string' && /^\d+$/.test(id))).toBe(true);
    expect(new Set(body.ids).size).toBe(3);
    // Past 2^53: a JSON number would have lost digits.
    expect(body.ids.every((id: string) => BigInt(id) > 2n ** 53n && decode(id).nodeId === 3)).toBe(true);

    const text = await served(`${url}/v1/ids?count=5`, { headers: { accept: 'text/plain' } });
    expect(text.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const lines = (await text.text()).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(5);
    expect(lines.every((l) => /^\d+$/.test(l) && decode(l).nodeId === 3)).toBe(true);

    const one = await served(`${url}/v1/id`);
    expect(one.status).toBe(200);
    expect(one.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await one.text()).toMatch(/^\d+\n$/);
    // The server's fast path for GET /v1/id and the routes' answer (count=1 as text) are one answer.
    // (Asked again while a loaded machine has the reservation being extended: 503.)
    const routed = await waitFor(() => {
      const a = answerIdRoute('/v1/id', 'GET', '', undefined, servingNodeOf(udp.server), idScratch());
      return a.status === 200 ? a : undefined;
    }, { what: 'an id from answerIdRoute' });
    expect({ status: routed.status, headers: routed.headers, body: /^\d+\n$/.test(routed.body) }).toEqual({
      status: one.status,
      headers: { 'content-type': one.headers.get('content-type'), 'cache-control': one.headers.get('cache-control') },
      body: true,
    });

    expect((await json(await fetch(`${url}/v1/ids`))).ids).toHaveLength(1);
    const most = (await json(await fetch(`${url}/v1/ids?count=${HTTP_MAX_IDS}&other=1`))).ids as string[];
    expect(most).toHaveLength(HTTP_MAX_IDS);
    expect(new Set(most).size).toBe(HTTP_MAX_IDS);
  });

  it('400 for a bad count, 404 for other paths, 405 for other methods: JSON errors only', async () => {
    const udp = await udpServer();
    const { url } = await http({ source: servingNodeOf(udp.server) });
    for (const count of ['0', '-1', '1.5', 'abc', '', '4097', '99999999999999999999', '1e3', '0x10', ' 1', '01']) {
      const r = await fetch(`${url}/v1/ids?count=${encodeURIComponent(count)}`);
      expect(r.status, `count=${count}`).toBe(400);
      const b = await json(r);
      expect(b).toEqual({ error: { code: 'BAD_REQUEST', message: expect.stringMatching(/count must be an integer from 1 to 4096/) } });
    }
    const twice = await fetch(`${url}/v1/ids?count=1&count=2`);
    expect(twice.status).toBe(400);
    expect((await json(twice)).error.message).toMatch(/more than once/);

    for (const path of ['/', '/v1', '/v1/ids/', '/v2/ids', '/metrics', '/v1/id?x', '/%ff']) {
      const r = await served(`${url}${path}`);
      if (path === '/v1/id?x') {
        expect(r.status).toBe(200);
        continue;
      }
      expect(r.status, path).toBe(404);
      expect((await json(r)).error.code).toBe('NOT_FOUND');
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      for (const path of ['/v1/id', '/v1/ids?count=2']) {
        const r = await fetch(`${url}${path}`, { method });
        expect(r.status, `${method} ${path}`).toBe(405);
        expect(r.headers.get('allow')).toBe('GET, HEAD');
        expect((await json(r)).error.code).toBe('METHOD_NOT_ALLOWED');
      }
    }
    // Percent-encoding is how a count is spelled, not what it is: %35 is 5.
    const encoded = await served(`${url}/v1/ids?count=%35`);
    expect(encoded.status).toBe(200);
    expect((await json(encoded)).ids).toHaveLength(5);
    // What node:http would answer by itself with no body, or not at all, is answered as the
    // docs say: no Host header and an unknown Expect are served; CONNECT is a 405 in JSON.
    const port = Number(new URL(url).port);
    for (const [request, status] of [
      ['GET /v1/id HTTP/1.1\r\nConnection: close\r\n\r\n', 200],
      ['GET /v1/id HTTP/1.1\r\nHost: x\r\nExpect: banana\r\nConnection: close\r\n\r\n', 200],
      ['CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n', 405],
    ] as const) {
      // A 503 (the reservation being extended on a loaded machine) is asked again.
      let reply: ReturnType<typeof parseResponses>[number] | undefined;
      const until = Date.now() + 15_000;
      while (reply === undefined || (reply.status === 503 && Date.now() < until)) {
        if (reply !== undefined) await new Promise((r) => setTimeout(r, 20));
        const c = await rawConnection(port);
        c.write(request);
        await c.closed;
        [reply] = parseResponses(c.received());
      }
      expect(reply?.status, request).toBe(status);
      if (status === 200) expect(reply!.body, request).toMatch(/^\d+\n$/);
      else expect(JSON.parse(reply!.body).error.code).toBe('METHOD_NOT_ALLOWED');
    }
    // Not HTTP at all: a JSON 400, and the connection closed.
    const raw = await rawConnection(port);
    raw.write('NOT HTTP\r\n\r\n');
    await raw.closed;
    const [answer] = parseResponses(raw.received());
    expect(answer?.status).toBe(400);
    expect(JSON.parse(answer!.body).error.code).toBe('BAD_REQUEST');
  });

  it('HEAD on the id routes (a load balancer\'s probe): the status a GET would get, no body, and no id issued', async () => {
    const udp = await udpServer();
    const real = servingNodeOf(udp.server);
    // The real node, with every tryFill (the only way an id is issued) counted.
    let fills = 0;
    const counted = (node: NonNullable<ReturnType<ServingNode['node']>>) =>
      new Proxy(node, { get: (target, key) => (key === 'tryFill' ? (fills++, target.tryFill.bind(target)) : Reflect.get(target, key)) });
    const source: ServingNode = { node: () => { const n = real.node(); return n && counted(n); }, retryAfterMs: (status) => real.retryAfterMs(status) };
    const { url, server } = await http({ source });
    await served(`${url}/v1/id`);
    const fillsBefore = fills;
    for (const path of ['/v1/id', '/v1/ids?count=4096']) {
      // 200 once the node can issue (a loaded machine may have it extending its reservation: 503 then, as GET would get).
      const r = await waitFor(async () => { const h = await fetch(`${url}${path}`, { method: 'HEAD' }); return h.status === 200 ? h : (expect(h.status).toBe(503), undefined); }, { what: `HEAD ${path} 200` });
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(await r.text()).toBe('');
    }
    // A count a GET would refuse is refused by HEAD too.
    expect((await fetch(`${url}/v1/ids?count=0`, { method: 'HEAD' })).status).toBe(400);
    expect(fills).toBe(fillsBefore);
    expect(server.stats().idsServed).toBe(1);
    // Starting, and a node that cannot issue: 503 with its Retry-After, as GET would.
    let node: ReturnType<ServingNode['node']>;
    const starting = await http({ source: { node: () => node, retryAfterMs: () => 1500 } });
    const early = await fetch(`${starting.url}/v1/id`, { method: 'HEAD' });
    expect([early.status, early.headers.get('retry-after')]).toEqual([503, '2']);
    node = { status: () => ({ healthy: false, reason: 'the clock is behind', retryAfterMs: 700 }) } as never;
    const unhealthy = await fetch(`${starting.url}/v1/ids`, { method: 'HEAD' });
    expect([unhealthy.status, unhealthy.headers.get('retry-after')]).toEqual([503, '1']);
  });

  it('refusals: 503 with Retry-After in whole seconds (rounded up) and retryAfterMs; STARTING while the node opens', async () => {
    const refusing = new HailstoneError('CLOCK_BEHIND', 'ids would run 1500 ms ahead of the clock', { retryAfterMs: 1001 });
    const behind: ServingNode = {
      node: () => ({ tryFill: () => -2, refusalOf: () => refusing }) as never,
      retryAfterMs: (status) => (status === -2 ? 1001 : 0),
    };
    const { url } = await http({ source: behind });
    for (const path of ['/v1/id', '/v1/ids?count=10']) {
      const r = await fetch(`${url}${path}`);
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('2');
      expect(await json(r)).toEqual({ error: { code: 'CLOCK_BEHIND', message: refusing.message, retryAfterMs: 1001 } });
    }

    // A node whose lead runs out part way: the ids already issued are answered, not dropped.
    let calls = 0;
    const partial = await http({
      source: { node: () => ({ tryFill: (b: Buffer, offset: number) => (calls++ === 0 ? (b.fill(0x11, offset, offset + 16), 2) : -2), refusalOf: () => refusing }) as never, retryAfterMs: () => 1001 },
    });
    const some = await fetch(`${partial.url}/v1/ids?count=10`);
    expect(some.status).toBe(200);
    expect((await json(some)).ids).toEqual([String(0x1111111111111111n), String(0x1111111111111111n)]);
    // A node that issues nothing without a refusal status: an answer, never a spinning loop.
    const none = await http({ source: { node: () => ({ tryFill: () => 0, refusalOf: () => refusing }) as never, retryAfterMs: () => 100 } });
    const nothing = await fetch(`${none.url}/v1/id`);
    expect(nothing.status).toBe(503);
    expect((await json(nothing)).error).toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 100 });

    let node: ReturnType<ServingNode['node']>;
    const starting = await http({ source: { node: () => node, retryAfterMs: () => 250 } });
    const r = await fetch(`${starting.url}/v1/id`);
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect((await json(r)).error).toMatchObject({ code: 'STARTING', retryAfterMs: 250 });

    // A real node, closed under the server: CLOSED, with the retry-after UDP sends (60 s).
    node = await openNode({ nodeId: 9, stateDir: join(root, 'closed'), maxLeadMs: 300, reservationMs: 300, logger: silent });
    const server = await serve({ node, port: 0, logger: silent });
    opened.push(server);
    const real = await http({ source: servingNodeOf(server) });
    await waitFor(async () => (await fetch(`${real.url}/v1/id`)).status === 200, { what: 'the node to issue' });
    await node.close();
    const closed = await fetch(`${real.url}/v1/ids?count=2`);
    expect(closed.status).toBe(503);
    expect(closed.headers.get('retry-after')).toBe('60');
    expect((await json(closed)).error).toMatchObject({ code: 'CLOSED', retryAfterMs: 60_000 });
  });

  it('keep-alive: many requests over one connection', async () => {
    const udp = await udpServer();
    const { url } = await http({ source: servingNodeOf(udp.server) });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<Socket>();
    try {
      for (let i = 0; i < 50; i++) {
        const body = await new Promise<string>((resolve, reject) => {
          const req = request(`${url}/v1/ids?count=2`, { agent }, (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
          });
          req.on('socket', (s) => sockets.add(s));
          req.on('error', reject).end();
        });
        expect(JSON.parse(body).ids).toHaveLength(2);
      }
    } finally {
      agent.destroy();
    }
    expect(sockets.size).toBe(1);
  });

  it('10^5 ids over HTTP and 10^5 over UDP from one node at once: no duplicate', async () => {
    const udp = await udpServer();
    const { url, server } = await http({ source: servingNodeOf(udp.server) });
    const load = new Load([udp.endpoint], { concurrency: 4, batch: 149 });
    const httpIds: string[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (httpIds.length < 100_000) {
        const r = await fetch(`${url}/v1/ids?count=4096`);
        if (r.status === 200) httpIds.push(...((await r.json()) as { ids: string[] }).ids);
        else await r.body?.cancel();
      }
    });
    try {
      await Promise.all([...loops, load.more(100_000, 25_000)]);
    } finally {
      await load.stop();
    }
    expect(httpIds.length).toBeGreaterThanOrEqual(100_000);
    expect(load.ids.length).toBeGreaterThanOrEqual(100_000);
    const all = [...load.ids, ...httpIds.map(BigInt)];
    expect(duplicatesIn(all)).toEqual([]);
    expect(all.every((id) => decode(id).nodeId === 3)).toBe(true);
    expect(server.stats().idsServed).toBe(httpIds.length);
  });

  it('rate limit per source: 429 with Retry-After once the bucket is empty', async () => {
    const udp = await udpServer();
    const { url, server } = await http({ source: servingNodeOf(udp.server), rateLimit: { perSecond: 0.1, burst: 3 } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${url}/v1/id`);
      statuses.push(r.status);
      if (r.status === 429) {
        expect(r.headers.get('retry-after')).toBe('10');
        expect((await json(r)).error).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 10_000 });
      } else await r.text();
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(server.stats().requests['/v1/id']).toEqual({ 200: 3, 429: 2 });
  });

  it('allowlist: a connection from outside it is closed unread; one from inside is answered', async () => {
    const udp = await udpServer();
    const outside = await http({ source: servingNodeOf(udp.server), allow: ['10.0.0.0/8', '::1/128'] });
    await expect(fetch(`${outside.url}/v1/id`)).rejects.toThrow();
    expect(outside.server.stats().connectionsDropped.not_allowed).toBeGreaterThanOrEqual(1);
    expect(outside.server.stats().requests).toEqual({});
    const inside = await http({ source: servingNodeOf(udp.server), allow: ['10.0.0.0/8', '127.0.0.0/8'] });
    expect((await fetch(`${inside.url}/v1/id`)).status).toBe(200);
  });

  it('bearer tokens from two files (rotation): either is accepted, anything else is 401', async () => {
    const udp = await udpServer();
    const oldFile = join(root, 'old.token');
    const newFile = join(root, 'new.token');
    writeFileSync(oldFile, 'old-token-0123456789abcdef\n', { mode: 0o600 });
    writeFileSync(newFile, 'new-token-fedcba9876543210\n', { mode: 0o600 });
    const both = await http({ source: servingNodeOf(udp.server), tokens: [readTokenFile(oldFile), readTokenFile(newFile)] });
    const get = (url: string, authorization?: string) => fetch(`${url}/v1/ids?count=2`, authorization === undefined ? {} : { headers: { authorization } });
    expect((await get(both.url, 'Bearer old-token-0123456789abcdef')).status).toBe(200);
    expect((await get(both.url, 'bearer new-token-fedcba9876543210')).status).toBe(200);
    for (const bad of [undefined, '', 'Bearer', 'Bearer ', 'Basic b2xkOnRva2Vu', 'Bearer old-token-0123456789abcde', 'Bearer old-token-0123456789abcdef0', 'old-token-0123456789abcdef']) {
      const r = await get(both.url, bad);
      expect(r.status, String(bad)).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="hailstone"');
      expect((await json(r)).error.code).toBe('UNAUTHORIZED');
    }
    // Rotation done: the old file is dropped and its token no longer opens anything.
    const rotated = await http({ source: servingNodeOf(udp.server), tokens: [readTokenFile(newFile)] });
    expect((await get(rotated.url, 'Bearer old-token-0123456789abcdef')).status).toBe(401);
    expect((await get(rotated.url, 'Bearer new-token-fedcba9876543210')).status).toBe(200);

    writeFileSync(join(root, 'short.token'), 'short\n');
    expect(() => readTokenFile(join(root, 'short.token'))).toThrow(/at least 16 characters/);
    expect(() => readTokenFile(join(root, 'missing.token'))).toThrow(/cannot read the token file/);
  });

  it('a client sending its headers one byte at a time is cut off by the headers timeout (408)', async () => {
    const udp = await udpServer();
    const { server } = await http({ source: servingNodeOf(udp.server), headersTimeoutMs: 400, requestTimeoutMs: 400 });
    const raw = await rawConnection(server.address.port);
    const head = 'GET /v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'x'.repeat(100) + '\r\n\r\n';
    const started = Date.now();
    let sent = 0;
    // One byte per 100 ms (a test's second): the whole head would take over 13 s.
    const trickle = setInterval(() => raw.write(head[sent++] ?? ''), 100);
    try {
      await raw.closed;
    } finally {
      clearInterval(trickle);
    }
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(5000);
    expect(sent).toBeLessThan(head.length);
    const [answer] = parseResponses(raw.received());
    expect(answer?.status).toBe(408);
    expect(JSON.parse(answer!.body).error.code).toBe('REQUEST_TIMEOUT');
  });

  it('a client trickling a body after its headers is cut off by the request timeout', async () => {
    const udp = await udpServer();
    const { server } = await http({ source: servingNodeOf(udp.server), headersTimeoutMs: 300, requestTimeoutMs: 600 });
    const raw = await rawConnection(server.address.port);
    raw.write('GET /v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n');
    const started = Date.now();
    const trickle = setInterval(() => raw.write('a'), 100);
    try {
      await raw.closed;
    } finally {
      clearInterval(trickle);
    }
    // The GET is answered once its headers are in; the connection does not outlive the request timeout.
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(5000);
    const answers = parseResponses(raw.received());
    expect(answers[0]?.status).toBe(200);
    expect(answers.at(-1)?.status).toBe(408);
  });

  it('a 64 KiB header is rejected with 431; a normal request still works', async () => {
    const udp = await udpServer();
    const { server, url } = await http({ source: servingNodeOf(udp.server) });
    const raw = await rawConnection(server.address.port);
    raw.write(`GET /v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    await raw.closed;
    const [answer] = parseResponses(raw.received());
    expect(answer?.status).toBe(431);
    expect(JSON.parse(answer!.body).error.code).toBe('HEADERS_TOO_LARGE');
    // fetch too: it sees the 431 (or, if the server closed before fetch finished writing, a failure) — never ids.
    const viaFetch = await fetch(`${url}/v1/id`, { headers: { 'x-big': 'a'.repeat(64 * 1024) } }).then((r) => r.status, () => 'closed');
    expect([431, 'closed']).toContain(viaFetch);
    expect((await fetch(`${url}/v1/id`)).status).toBe(200);
  });

  it('at most maxConnections open at once: one more is closed unread', async () => {
    const udp = await udpServer();
    const { server } = await http({ source: servingNodeOf(udp.server), maxConnections: 2 });
    const a = await rawConnection(server.address.port);
    const b = await rawConnection(server.address.port);
    const c = await rawConnection(server.address.port);
    try {
      await c.closed;
      expect(c.received()).toBe('');
      expect(server.stats().connectionsDropped.max_connections).toBe(1);
      a.write('GET /v1/id HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => parseResponses(a.received())[0], { what: 'an answer on an admitted connection' });
      expect(parseResponses(a.received())[0]!.status).toBe(200);
    } finally {
      for (const s of [a, b, c]) s.destroy();
    }
  });

  it('close(): stops accepting, answers a request in flight with Connection: close, closes idle keep-alive connections', async () => {
    const udp = await udpServer();
    const server = await serveHttp({ source: servingNodeOf(udp.server), port: 0, logger: silent });
    opened.push({ close: () => server.close(0) });
    const port = server.address.port;
    const idle = await rawConnection(port);
    idle.write('GET /v1/id HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => parseResponses(idle.received())[0], { what: 'the first answer' });
    expect(parseResponses(idle.received())[0]!.headers.connection).toBe('keep-alive');
    const inFlight = await rawConnection(port);
    inFlight.write('GET /v1/ids?count=3 HTTP/1.1\r\nHost: x\r\n');
    // A round trip on another connection: by its answer the server has read the partial head.
    const probe = await rawConnection(port);
    probe.write('GET /v1/id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await probe.closed;
    expect(parseResponses(probe.received())[0]?.status).toBe(200);

    const closing = server.close();
    // Idle: closed at once, not after the 5 s keep-alive timeout.
    await idle.closed;
    await expect(fetch(`http://127.0.0.1:${port}/v1/id`)).rejects.toThrow();
    expect(inFlight.isClosed()).toBe(false);
    inFlight.write('Accept: application/json\r\n\r\n');
    await inFlight.closed;
    const [answer] = parseResponses(inFlight.received());
    expect(answer?.status).toBe(200);
    expect(answer?.headers.connection).toBe('close');
    expect(JSON.parse(answer!.body).ids).toHaveLength(3);
    await closing;
  });

  it('/metrics on the same server: requests by route and status, and the id routes\' latency', async () => {
    const udp = await udpServer();
    let front: HttpIdServer | undefined;
    const snapshot = async () => ({ workers: [], workerRestarts: 0, expectedWorkers: 0, ...(front === undefined ? {} : { http: front.stats() }) });
    const { server, url } = await http({ source: servingNodeOf(udp.server), extra: { paths: METRICS_PATHS, handle: metricsHandler(snapshot) } });
    front = server;
    for (let i = 0; i < 3; i++) await (await fetch(`${url}/v1/ids?count=4`)).text();
    await (await fetch(`${url}/v1/id`)).text();
    await (await fetch(`${url}/v1/ids?count=0`)).text();
    await (await fetch(`${url}/nope`)).text();
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain('hailstone_http_requests_total{route="/v1/ids",status="200"} 3');
    expect(text).toContain('hailstone_http_requests_total{route="/v1/ids",status="400"} 1');
    expect(text).toContain('hailstone_http_requests_total{route="/v1/id",status="200"} 1');
    expect(text).toContain('hailstone_http_requests_total{route="other",status="404"} 1');
    expect(text).toContain('hailstone_http_ids_served_total 13');
    expect(text).toMatch(/hailstone_http_request_duration_seconds_bucket\{route="\/v1\/ids",le="\+Inf"\} 4\n/);
    expect(text).toMatch(/hailstone_http_request_duration_seconds_count\{route="\/v1\/id"\} 1\n/);
    await (await fetch(`${url}/healthz`)).text();
    expect(server.stats().requests['/metrics']).toEqual({ 200: 1 });
  });
});

describe('the start-up warm-up of node:http\'s path', () => {
  const listening = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

  it('answers its requests on a private loopback server, then closes it; stop() ends it early', async () => {
    const before = listening();
    const w = warmHttpPath(300);
    await w.done;
    expect(w.answered()).toBe(300);
    expect(listening()).toBe(before);
    const endless = warmHttpPath(10_000_000);
    await waitFor(() => endless.answered() > 0 || undefined, { what: 'the warm-up to answer' });
    endless.stop();
    await endless.done;
    expect(endless.answered()).toBeLessThan(10_000_000);
    expect(listening()).toBe(before);
  });

  it('serveHttp runs it without touching the id server: no request counted, no id issued', async () => {
    const udp = await udpServer();
    const issuedBefore = udp.server.node.status().generator;
    const { server } = await http({ source: servingNodeOf(udp.server) });
    await server.warmedUp;
    expect(server.stats().requests).toEqual({});
    expect(server.stats().idsServed).toBe(0);
    expect(udp.server.node.status().generator).toEqual(issuedBefore);
  });
});

describe('docs/openapi.yaml', () => {
  it('describes the routes and the limit the server has', () => {
    const spec = readFileSync(join(import.meta.dirname, '../docs/openapi.yaml'), 'utf8');
    expect(spec).toMatch(/^openapi: 3\.1\.\d+\n/);
    expect([...spec.matchAll(/^ {2}(\/\S+):$/gm)].map((m) => m[1])).toEqual(['/v1/ids', '/v1/id']);
    expect(spec).toContain(`maximum: ${HTTP_MAX_IDS}`);
    expect(spec).toContain(`maxItems: ${HTTP_MAX_IDS}`);
  });
});
