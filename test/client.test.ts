// The client against loss, duplication, reordering, forgery and dead servers.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HailstoneError, compose, createClient } from '../src/index.js';
import { Authenticator } from '../src/protocol/auth.js';
import { HEADER_SIZE, STATUS_OK, TAG_SIZE, writeReplyHeader } from '../src/protocol/wire.js';
import { LossyProxy } from './support/lossy-proxy.js';
import { prng, testSeed } from './support/seed.js';
import { Probe, TRANSPORTS, startServer } from './support/udp.js';

describe.each(TRANSPORTS)('%s transport', (transport) => {
  describe('client', () => {
    it('through 30% loss, 10% duplication and reordering: every call returns unique ids or rejects by its deadline', async () => {
      const random = prng(testSeed('lossy-proxy'));
      const s = await startServer({ transport });
      const proxy = await LossyProxy.start(s.port, { drop: 0.3, duplicate: 0.1, maxDelayMs: 15, random });
      const client = createClient({ servers: [`127.0.0.1:${proxy.port}`], timeoutMs: 40, retries: 40, deadlineMs: 4000 });
      const seen = new Set<bigint>();
      let received = 0;
      let rejected = 0;
      const calls = Array.from({ length: 200 }, async (_, i) => {
        const n = i % 4 === 0 ? 1 + Math.floor(random() * 400) : 1;
        const started = Date.now();
        try {
          const ids = await client.nextIds(n);
          expect(ids.length).toBe(n);
          for (const id of ids) seen.add(id);
          received += ids.length;
        } catch (error) {
          expect(error).toBeInstanceOf(HailstoneError);
          expect(['TIMEOUT', 'UNAVAILABLE']).toContain((error as HailstoneError).code);
          // By its deadline: 4 s, plus slack for timers that fire late on a loaded machine.
          expect(Date.now() - started).toBeLessThan(4000 + 3000);
          rejected++;
        }
      });
      await Promise.all(calls);
      console.log(`lossy proxy: ${received} ids, ${rejected} rejected calls, proxy dropped ${proxy.dropped}, duplicated ${proxy.duplicated}`);
      expect(proxy.dropped).toBeGreaterThan(50);
      expect(proxy.duplicated).toBeGreaterThan(10);
      expect(received).toBeGreaterThan(1000);
      expect(seen.size).toBe(received);
      // Duplicated and late replies were seen and refused.
      expect(client.stats().rejectedReplies).toBeGreaterThan(0);
      await client.close();
      await proxy.close();
      await s.stop();
    });

    it('never accepts a forged reply: wrong nonce, wrong sender, bad or missing tag, implausible ids', async () => {
      const key = randomBytes(32);
      const auth = new Authenticator(key);
      const fakeServer = await Probe.open();
      const forger = await Probe.open();
      const client = createClient({ servers: [`127.0.0.1:${fakeServer.port}`], key, timeoutMs: 2000, deadlineMs: 3000 });
      const pending = client.nextIds(2);
      const [{ msg: request, port: clientPort }] = await fakeServer.waitFor(1, 2000);
      const t = Date.now();
      const good = [compose({ timestamp: t, nodeId: 1, sequence: 5 }), compose({ timestamp: t, nodeId: 1, sequence: 6 })];
      const reply = (ids: bigint[], opts: { nonceFrom?: Buffer; sign?: Authenticator | null } = {}) => {
        const out = Buffer.alloc(HEADER_SIZE + 8 * ids.length + TAG_SIZE);
        writeReplyHeader(out, opts.nonceFrom ?? request!, STATUS_OK, ids.length, 0, true);
        ids.forEach((id, i) => out.writeBigUInt64BE(id, HEADER_SIZE + 8 * i));
        if (opts.sign !== null) (opts.sign ?? auth).sign(out, out.length);
        return out;
      };
      const otherNonce = Buffer.from(request!);
      otherNonce[8]! ^= 0xff;
      const forged = [
        { from: fakeServer, msg: reply(good, { nonceFrom: otherNonce }) }, // not an outstanding nonce
        { from: forger, msg: reply(good) }, // right nonce, wrong sender
        { from: fakeServer, msg: reply(good, { sign: new Authenticator(randomBytes(32)) }) }, // another key
        { from: fakeServer, msg: reply(good, { sign: null }) }, // no valid tag
        { from: fakeServer, msg: reply([good[1]!, good[0]!]) }, // not increasing
        { from: fakeServer, msg: reply([compose({ timestamp: t, nodeId: 1, sequence: 1 }), compose({ timestamp: t, nodeId: 2, sequence: 2 })]) }, // two nodes
        { from: fakeServer, msg: reply([compose({ timestamp: t + 10 * 86_400_000, nodeId: 1, sequence: 1 })]) }, // far future
      ];
      for (const f of forged) await f.from.send(f.msg, clientPort);
      // The genuine reply after them, from the same sender: the client reads its socket in
      // order, so once it accepts this one, every forgery before it was already handled —
      // while the nonce was still outstanding, so each was refused for what it is.
      const genuine = reply(good);
      await fakeServer.send(genuine, clientPort);
      expect(await pending).toEqual(good);
      // The client's socket is connected to the server it asked: the kernel drops what
      // another sender sends it, so only the rest reach the client to be rejected.
      const delivered = forged.filter((f) => f.from !== forger).length;
      expect(client.stats().rejectedReplies).toBe(delivered);
      // The same reply again (a duplicate): its nonce is retired.
      await fakeServer.send(genuine, clientPort);
      // Then a second exchange: once its reply is accepted, the duplicate before it was handled.
      const next = client.nextIds(1);
      const { msg: request2 } = (await fakeServer.waitFor(2, 2000))[1]!;
      const more = [compose({ timestamp: t, nodeId: 1, sequence: 7 })];
      await fakeServer.send(reply(more, { nonceFrom: request2 }), clientPort);
      expect(await next).toEqual(more);
      expect(client.stats().rejectedReplies).toBe(delivered + 1);
      await client.close();
      await fakeServer.close();
      await forger.close();
    });

    it('fails over from a server that does not answer to one that does', async () => {
      const dead = await Probe.open();
      const s = await startServer({ transport });
      const client = createClient({ servers: [`127.0.0.1:${dead.port}`, s.endpoint], timeoutMs: 50 });
      const ids = await Promise.all([client.nextId(), client.nextId(), client.nextId(), client.nextId()]);
      expect(new Set(ids).size).toBe(4);
      expect(client.stats().timeouts).toBeGreaterThan(0);
      await client.close();
      await dead.close();
      await s.stop();
    });

    it('rejects bad options with the argument named', () => {
      expect(() => createClient({ servers: [] })).toThrow(/servers/);
      expect(() => createClient({ servers: ['localhost'] })).toThrow(/host:port/);
      expect(() => createClient({ servers: ['127.0.0.1:0'] })).toThrow(/port 0 is out of range/);
      expect(() => createClient({ servers: ['127.0.0.1:99999'] })).toThrow(/port 99999 is out of range \(1 to 65535\)/);
      expect(() => createClient({ servers: ['127.0.0.1:7077'], timeoutMs: 0 })).toThrow(/timeoutMs/);
    });
  });
});
