// The id server on real loopback sockets.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, decode, defineLayout, openNode, serve, type HailstoneNode } from '../src/index.js';
import { Authenticator } from '../src/protocol/auth.js';
import {
  HEADER_SIZE,
  MAX_REQUEST_SIZE,
  STATUS_BAD_REQUEST,
  STATUS_OK,
  STATUS_UNAVAILABLE,
  TAG_SIZE,
  parseReply,
  requestSize,
  writeRequestHeader,
} from '../src/protocol/wire.js';
import { propertyParams } from './support/seed.js';
import { silent } from './support/logger.js';
import { Probe, TRANSPORTS, startServer, type TestServer } from './support/udp.js';

/** The nonce a request carries and its reply echoes (bytes 8..15), as hex. */
function nonceOf(datagram: Uint8Array): string {
  return Buffer.from(datagram.subarray(8, 16)).toString('hex');
}

function request(count: number, options: { tagged?: boolean; size?: number; time?: number; nonce?: Uint8Array } = {}): Buffer {
  const tagged = options.tagged ?? false;
  const buf = Buffer.alloc(options.size ?? requestSize(count, tagged));
  writeRequestHeader(buf, count, options.nonce ?? randomBytes(8), options.time ?? Date.now(), tagged);
  return buf;
}

/**
 * What docs/protocol.md says a server without a key does with a datagram: nothing for
 * anything that is not a v1 request; BAD_REQUEST for a v1 request header with an invalid
 * field; otherwise ids (or UNAVAILABLE, should the node refuse). Written from the document,
 * not from parseRequest, so the two are checked against each other.
 */
function expectedAnswer(d: Uint8Array): 'none' | 'bad_request' | 'ids' {
  if (d.length < HEADER_SIZE || d.length > MAX_REQUEST_SIZE) return 'none';
  if (d[0] !== 0x48 || d[1] !== 0x53 || d[2] !== 1 || d[3] !== 1) return 'none';
  const tagged = (d[4]! & 1) !== 0;
  // Flagged as ending in a tag it has no room for: not a request either.
  if (tagged && d.length < HEADER_SIZE + TAG_SIZE) return 'none';
  const count = (d[6]! << 8) | d[7]!;
  if ((d[4]! & ~1) !== 0 || d[5] !== 0 || count < 1 || count > 149) return 'bad_request';
  if (d.length < HEADER_SIZE + 8 * count + (tagged ? TAG_SIZE : 0)) return 'bad_request';
  return 'ids';
}

describe.each(TRANSPORTS)('%s transport', (transport) => {
  describe('server without a key', () => {
    let s: TestServer;
    let probe: Probe;
    beforeAll(async () => {
      s = await startServer({ transport });
      probe = await Probe.open();
    });
    afterAll(async () => {
      await probe.close();
      await s.stop();
    });

    it('answers single ids and batches through the client, all unique and from its node', async () => {
      const client = createClient({ servers: [s.endpoint] });
      const one = await client.nextId();
      const batch = await client.nextIds(1000);
      await client.close();
      const all = [one, ...batch];
      expect(new Set(all).size).toBe(1001);
      expect(all.every((id) => decode(id).nodeId === 3)).toBe(true);
    });

    it('a raw request gets a reply of exactly its size, echoing the nonce, with increasing ids', async () => {
      probe.replies.length = 0;
      const nonce = randomBytes(8);
      const req = request(128, { nonce });
      await probe.send(req, s.port);
      const [reply] = await probe.waitFor(1, 2000);
      expect(reply!.msg.length).toBe(req.length);
      expect(parseReply(reply!.msg)).toMatchObject({ status: STATUS_OK, count: 128, tagged: false });
      expect(reply!.msg.subarray(8, 16)).toEqual(nonce);
      const ids = Array.from({ length: 128 }, (_, i) => reply!.msg.readBigUInt64BE(HEADER_SIZE + 8 * i));
      for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    });

    it('a duplicated request gets fresh ids, never the same ones', async () => {
      probe.replies.length = 0;
      const req = request(10);
      await probe.send(req, s.port);
      await probe.send(req, s.port);
      const replies = await probe.waitFor(2, 2000);
      const ids = replies.flatMap((r) => Array.from({ length: 10 }, (_, i) => r.msg.readBigUInt64BE(HEADER_SIZE + 8 * i)));
      expect(new Set(ids).size).toBe(20);
    });

    it('answers BAD_REQUEST, no larger than the request, for invalid fields of a good header', async () => {
      probe.replies.length = 0;
      const before = s.server.stats().replies.badRequest;
      const unpadded = request(100, { size: HEADER_SIZE + 8 });
      const zero = request(0, { size: HEADER_SIZE });
      const tooMany = request(150, { size: requestSize(150, false) });
      for (const r of [unpadded, zero, tooMany]) await probe.send(r, s.port);
      const replies = await probe.waitFor(3, 2000);
      expect(replies.length).toBe(3);
      for (const r of replies) {
        expect(parseReply(r.msg)).toMatchObject({ status: STATUS_BAD_REQUEST, count: 0 });
        expect(r.msg.length).toBe(HEADER_SIZE);
      }
      expect(s.server.stats().replies.badRequest - before).toBe(3);
    });

    it('drops and counts anything that is not a request, without a reply', async () => {
      probe.replies.length = 0;
      const before = s.server.stats().dropped.malformed;
      const reply = request(1);
      reply[3] = 2; // a reply datagram: never answered, so two servers cannot be made to ping-pong
      const junk = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(HEADER_SIZE - 1, 0x48), reply, randomBytes(1232)];
      for (const j of junk) await probe.send(j, s.port);
      const marker = request(1);
      await probe.send(marker, s.port); // a good one after them: answered, so the junk was processed first
      await probe.replyTo(marker);
      expect(probe.replies.map((r) => nonceOf(r.msg))).toEqual([nonceOf(marker)]);
      expect(s.server.stats().dropped.malformed - before).toBe(junk.length);
    });

    it('fuzz: random and mutated datagrams of any length 0..65507 never crash it; only v1 requests get a reply (BAD_REQUEST for an invalid field), one each, never outgrowing the request', async () => {
      const valid = request(5);
      const datagram = fc.oneof(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.uint8Array({ minLength: 0, maxLength: 2048 }),
        fc.integer({ min: 0, max: 65507 }).map((n) => randomBytes(n)),
        // Mutations of a valid request: flipped bytes, truncations, extensions.
        fc.tuple(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.integer({ min: 0, max: 200 }))
          .map(([edits, length]) => {
            const b = Buffer.alloc(length);
            valid.copy(b, 0, 0, Math.min(length, valid.length));
            for (const [at, v] of edits) if (at < b.length) b[at] = v;
            return b;
          }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(datagram, { minLength: 1, maxLength: 20 }), async (batch) => {
          probe.replies.length = 0;
          const before = s.server.stats();
          // Each datagram is followed by a valid marker request. The server handles its socket
          // in order, so whatever arrives between the replies to two markers answers the one
          // datagram sent between them — mutations of one request share its nonce, so the
          // nonce alone could not tell.
          const markers = batch.map(() => request(1));
          for (let i = 0; i < batch.length; i++) {
            await probe.send(batch[i]!, s.port);
            await probe.send(markers[i]!, s.port);
          }
          await probe.replyTo(markers.at(-1)!);
          // answers[i]: the replies after marker i - 1's and before marker i's; one more slot for any after the last.
          const answers: Buffer[][] = [...batch.map(() => []), []];
          let next = 0; // the marker whose reply comes next
          for (const { msg } of probe.replies) {
            if (next < markers.length && nonceOf(msg) === nonceOf(markers[next]!)) next++;
            else answers[next]!.push(msg);
          }
          expect(next, 'every marker answered, in order').toBe(markers.length);
          expect(answers[batch.length], 'replies after the last marker').toEqual([]);
          const expected = batch.map(expectedAnswer);
          batch.forEach((d, i) => {
            const what = `${expected[i]} expected for ${d.length} bytes ${Buffer.from(d.subarray(0, 24)).toString('hex')}`;
            if (expected[i] === 'none') return expect(answers[i], what).toEqual([]);
            expect(answers[i], what).toHaveLength(1);
            const reply = answers[i]![0]!;
            expect(nonceOf(reply), what).toBe(nonceOf(d));
            expect(reply.length, what).toBeLessThanOrEqual(d.length);
            const status = parseReply(reply)?.status;
            if (expected[i] === 'bad_request') expect(status, what).toBe(STATUS_BAD_REQUEST);
            else expect([STATUS_OK, STATUS_UNAVAILABLE], what).toContain(status);
          });
          // Every datagram that got no reply was counted as dropped, and nothing else was.
          const after = s.server.stats();
          const count = (kind: (typeof expected)[number]) => expected.filter((e) => e === kind).length;
          expect(after.dropped).toEqual({ ...before.dropped, malformed: before.dropped.malformed + count('none') });
          expect(after.replies.badRequest - before.replies.badRequest).toBe(count('bad_request'));
          expect(after.datagrams - before.datagrams).toBe(2 * batch.length);
        }),
        propertyParams('server-fuzz', 60),
      );
      // Still serving.
      const client = createClient({ servers: [s.endpoint] });
      expect(typeof (await client.nextId())).toBe('bigint');
      await client.close();
    });
  });

  describe('server with a key', () => {
    const key = randomBytes(32);
    const auth = new Authenticator(key);
    let s: TestServer;
    let probe: Probe;
    beforeAll(async () => {
      s = await startServer({ transport, key, replayWindowMs: 5000 });
      probe = await Probe.open();
    });
    afterAll(async () => {
      await probe.close();
      await s.stop();
    });

    const signed = (count: number, extra: { time?: number; nonce?: Uint8Array } = {}) => {
      const r = request(count, { tagged: true, ...extra });
      auth.sign(r, r.length);
      return r;
    };

    it('answers authenticated requests with tagged replies', async () => {
      probe.replies.length = 0;
      const req = signed(3);
      await probe.send(req, s.port);
      const [reply] = await probe.waitFor(1, 2000);
      expect(parseReply(reply!.msg)).toMatchObject({ status: STATUS_OK, tagged: true, count: 3 });
      expect(auth.verify(reply!.msg)).toBe(true);
      expect(reply!.msg.length).toBe(req.length);
      const client = createClient({ servers: [s.endpoint], key });
      expect((await client.nextIds(300)).length).toBe(300);
      await client.close();
    });

    it('no reply for: no tag, a wrong key, any flipped tag bit, a truncated tag, a stale or a replayed request', async () => {
      probe.replies.length = 0;
      const before = s.server.stats().dropped;
      const wrongKey = request(1, { tagged: true });
      new Authenticator(randomBytes(32)).sign(wrongKey, wrongKey.length);
      const bad: Buffer[] = [request(1), wrongKey];
      const good = signed(1);
      for (let bit = 0; bit < TAG_SIZE * 8; bit++) {
        const b = Buffer.from(good);
        b[good.length - TAG_SIZE + (bit >> 3)]! ^= 1 << (bit & 7);
        bad.push(b);
      }
      bad.push(good.subarray(0, good.length - 1));
      bad.push(signed(1, { time: Date.now() - 60_000 }));
      const replayed = signed(1);
      for (const b of bad) await probe.send(b, s.port);
      await probe.send(replayed, s.port);
      await probe.send(replayed, s.port);
      // A fresh signed request last: once it is answered, everything before it was handled.
      const marker = signed(1);
      await probe.send(marker, s.port);
      await probe.replyTo(marker);
      expect(probe.replies.map((r) => nonceOf(r.msg))).toEqual([nonceOf(replayed), nonceOf(marker)]);
      const after = s.server.stats().dropped;
      expect(after.unauthenticated - before.unauthenticated).toBe(bad.length - 1);
      expect(after.stale - before.stale).toBe(1);
      expect(after.replayed - before.replayed).toBe(1);
    });

    it('a client without the key gets a clear timeout, never ids', async () => {
      const client = createClient({ servers: [s.endpoint], deadlineMs: 300, timeoutMs: 100 });
      await expect(client.nextId()).rejects.toMatchObject({ code: 'TIMEOUT' });
      await client.close();
    });
  });

  describe('refusals and allowlist', () => {
    it('answers UNAVAILABLE with the retry-after when the node refuses; the client waits and retries', async () => {
      const stateDir = mkdtempSync(join(tmpdir(), 'hailstone-srv-'));
      let now = Date.now() + 1000;
      const clock = () => now;
      // 64 ids per ms and a 50 ms lead: a frozen clock allows 3,200 ids, then refusals.
      const layout = defineLayout({ sequenceBits: 6 });
      const node: HailstoneNode = await openNode({
        nodeId: 8,
        stateDir,
        clock,
        layout,
        maxLeadMs: 50,
        reservationMs: 50,
        logger: silent,
        sleep: async (ms) => {
          now += ms;
        },
      });
      const server = await serve({ node, port: 0, logger: silent, transport });
      const probe = await Probe.open();
      for (let i = 0; i < 80; i++) await probe.send(request(149), server.address.port);
      const replies = await probe.waitFor(80, 3000);
      const statuses = replies.map((r) => parseReply(r.msg)!.status);
      expect(statuses).toContain(STATUS_UNAVAILABLE);
      const refusal = replies.find((r) => parseReply(r.msg)!.status === STATUS_UNAVAILABLE)!;
      expect(parseReply(refusal.msg)!.retryAfterMs).toBeGreaterThan(0);
      expect(server.stats().replies.unavailable).toBe(statuses.filter((x) => x === STATUS_UNAVAILABLE).length);
      // Move the clock on while a client is retrying: it gets its ids.
      const client = createClient({ servers: [`127.0.0.1:${server.address.port}`], deadlineMs: 5000, layout });
      const pending = client.nextIds(149);
      setTimeout(() => {
        now += 10;
      }, 100);
      const interval = setInterval(() => {
        now += 1;
      }, 20);
      expect((await pending).length).toBe(149);
      clearInterval(interval);
      await client.close();
      await probe.close();
      await server.close();
      await node.close();
      rmSync(stateDir, { recursive: true, force: true });
    });

    it('drops requests from sources outside the allowed networks, before any work', async () => {
      const s = await startServer({ transport, allow: ['10.0.0.0/8', '127.0.0.2/32'] });
      const probe = await Probe.open(); // 127.0.0.1: outside
      const inside = await Probe.open(0, '127.0.0.2');
      await probe.send(request(1), s.port);
      // Then an allowed source asks the same socket: once its request is answered, the first
      // datagram was handled, and a reply to it would have been sent first.
      const marker = request(1);
      await inside.send(marker, s.port);
      await inside.replyTo(marker);
      expect(probe.replies.length).toBe(0);
      expect(s.server.stats().dropped.not_allowed).toBe(1);
      expect(s.server.stats().requests).toBe(1); // the allowed source's alone
      await probe.close();
      await inside.close();
      await s.stop();
      const open = await startServer({ transport, allow: ['127.0.0.0/8', '::1/128'] });
      const client = createClient({ servers: [open.endpoint] });
      expect(typeof (await client.nextId())).toBe('bigint');
      await client.close();
      await open.stop();
      await expect(startServer({ transport, allow: ['10.0.0.0/33'] })).rejects.toThrow(/not a CIDR/);
    });
  });
});
