// What the transports must agree on beyond the protocol tests, and what only the native
// one does: receiving in batches, writing replies in place, reporting sources lazily.

import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { createClient, decode } from '../src/index.js';
import { HEADER_SIZE, MAX_REQUEST_SIZE, STATUS_OK, parseReply, requestSize, writeRequestHeader } from '../src/protocol/wire.js';
import { nativeAvailability } from '../src/server/native-addon.js';
import { NativeTransport, compressIpv6 } from '../src/server/native-transport.js';
import { createTransport } from '../src/server/select-transport.js';
import type { DatagramSource } from '../src/server/transport.js';
import { waitFor } from './support/child.js';
import { Probe, TRANSPORTS, startServer } from './support/udp.js';

function request(count: number, size = requestSize(count, false)): Buffer {
  const buf = Buffer.alloc(size);
  writeRequestHeader(buf, count, randomBytes(8), Date.now(), false);
  return buf;
}

/** Whether this machine can bind ::1 (IPv6 loopback may be disabled). */
async function hasIpv6Loopback(): Promise<boolean> {
  const socket = createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    socket.close();
  }
}

describe.each(TRANSPORTS)('%s transport', (transport) => {
  it(`drops datagrams longer than ${MAX_REQUEST_SIZE} bytes as malformed, even well-formed ones; answers one of exactly ${MAX_REQUEST_SIZE} bytes`, async () => {
    const s = await startServer({ transport });
    const probe = await Probe.open();
    await probe.send(request(1, MAX_REQUEST_SIZE + 1), s.port);
    await probe.send(request(1, 60_000), s.port);
    const padded = request(2, MAX_REQUEST_SIZE);
    await probe.send(padded, s.port);
    // Sent last: once it is answered, the longer two were handled, and any reply to them came first.
    const reply = await probe.replyTo(padded);
    expect(probe.replies).toEqual([reply]);
    // The padded request's reply is as long as the ids it carries, not as the padding.
    expect(reply.msg.length).toBe(requestSize(2, false));
    expect(parseReply(reply.msg)).toMatchObject({ status: STATUS_OK, count: 2 });
    const stats = s.server.stats();
    expect(stats.dropped.malformed).toBe(2);
    if (transport === 'native') expect(stats.transport.truncated).toBe(2);
    await probe.close();
    await s.stop();
  });

  it('a burst of 300 requests from 3 sockets: every one answered once, to its own socket, all ids unique', async () => {
    // A 1 s lead: a renewal write slowed by a loaded machine must not turn a reply UNAVAILABLE here.
    const s = await startServer({ transport, maxLeadMs: 1000, reservationMs: 1000 });
    const probes = await Promise.all([Probe.open(), Probe.open(), Probe.open()]);
    const sent = probes.map(() => new Set<string>());
    // Queued before the server's next turn of the event loop (it runs in this process).
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const req = request(1 + (i % 149));
      sent[i % 3]!.add(req.subarray(8, 16).toString('hex'));
      sends.push(probes[i % 3]!.send(req, s.port));
    }
    await Promise.all(sends);
    await Promise.all(probes.map((p) => p.waitFor(100, 5000)));
    const ids: bigint[] = [];
    probes.forEach((p, k) => {
      expect(p.replies.length).toBe(100);
      for (const r of p.replies) {
        expect(sent[k]!.has(r.msg.subarray(8, 16).toString('hex'))).toBe(true);
        const header = parseReply(r.msg)!;
        expect(header.status, `refusals: ${JSON.stringify(s.server.node.status().refusals)}`).toBe(STATUS_OK);
        for (let i = 0; i < header.count; i++) ids.push(r.msg.readBigUInt64BE(HEADER_SIZE + 8 * i));
      }
    });
    expect(new Set(ids).size).toBe(ids.length);
    const stats = s.server.stats();
    expect(stats.transport.received).toBe(300);
    expect(stats.transport.sendFailures).toBe(0);
    // dgram calls in once per datagram; native once per recvmmsg, so far fewer times.
    if (transport === 'dgram') expect(stats.transport.batches).toBe(300);
    else expect(stats.transport.batches).toBeLessThan(100);
    await Promise.all(probes.map((p) => p.close()));
    await s.stop();
    // The last counters stay readable after the socket is closed.
    expect(s.server.stats().transport.received).toBe(300);
  });

  it('serves IPv6 clients, with allowlists applied to their addresses', async (context) => {
    if (!(await hasIpv6Loopback())) return context.skip();
    const open = await startServer({ transport, host: '::1', allow: ['::1/128'] });
    const client = createClient({ servers: [`[::1]:${open.server.address.port}`] });
    expect(decode(await client.nextId()).nodeId).toBe(3);
    await client.close();
    await open.stop();
    const closed = await startServer({ transport, host: '::1', allow: ['fe80::/10', '127.0.0.0/8'] });
    const denied = createClient({ servers: [`[::1]:${closed.server.address.port}`], timeoutMs: 50, deadlineMs: 300 });
    await expect(denied.nextId()).rejects.toMatchObject({ code: 'TIMEOUT' });
    await denied.close();
    expect(closed.server.stats().dropped.not_allowed).toBeGreaterThan(0);
    await closed.stop();
  });

  it('bound to "::", IPv4 clients are reported as ::ffff:a.b.c.d, as Node does', async (context) => {
    if (!(await hasIpv6Loopback())) return context.skip();
    const t = createTransport(transport);
    const seen: string[] = [];
    const bound = await t.listen('::', 0, (_buf, _offset, length, from) => {
      seen.push(`${from.family} ${from.address}`);
      return length;
    });
    const probe = await Probe.open();
    await probe.send(Buffer.from('hi'), bound.port);
    expect((await probe.waitFor(1, 2000)).map((r) => r.msg.toString())).toEqual(['hi']);
    expect(seen).toEqual(['IPv6 ::ffff:127.0.0.1']);
    await probe.close();
    await t.close();
  });

  it('a port in use is a clear error', async () => {
    const first = await startServer({ transport });
    const error = await startServer({ transport, port: first.port }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`UDP port ${first.port} is held by the hailstone server with pid ${process.pid}`) });
    await first.stop();
  });

  it('a host name is resolved (localhost: its IPv4 address); one that does not resolve is an argument error', async () => {
    const named = await startServer({ transport, host: 'localhost' });
    expect(named.server.address.host).toBe('127.0.0.1');
    await named.stop();
    await expect(startServer({ transport, host: 'no-such-host.invalid' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', argument: 'host', message: expect.stringContaining('does not resolve') });
  });

  it('a port another program holds is a clear error too', async () => {
    const other = createSocket('udp4');
    await new Promise<void>((resolve) => other.bind(0, '127.0.0.1', resolve));
    const error = await startServer({ transport, port: other.address().port }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`UDP port ${other.address().port} on 127.0.0.1 is in use by another process`) });
    await new Promise<void>((resolve) => other.close(() => resolve()));
  });
});

describe.runIf(TRANSPORTS.includes('native'))('native transport', () => {
  it('the addon is built and loads here', () => {
    const availability = nativeAvailability();
    expect(availability.available, availability.available ? '' : availability.reason).toBe(true);
  });

  it('hands the handler each datagram in its slot with its source, and sends back what the handler wrote over it', async () => {
    const transport = new NativeTransport({ batch: 4 });
    const seen: { text: string; source: DatagramSource }[] = [];
    const bound = await transport.listen('127.0.0.1', 0, (buf, offset, length, from) => {
      seen.push({ text: buf.toString('latin1', offset, offset + length), source: { address: from.address, port: from.port, family: from.family } });
      // The reply is the request upper-cased, in place; 'skip' gets no reply.
      if (buf.toString('latin1', offset, offset + length) === 'skip') return 0;
      for (let i = offset; i < offset + length; i++) buf[i] = buf[i]! >= 0x61 && buf[i]! <= 0x7a ? buf[i]! - 32 : buf[i]!;
      return length;
    });
    const probe = await Probe.open();
    const texts = ['ping', 'pong', 'skip', 'a', 'longer datagram', 'zz'];
    for (const text of texts) await probe.send(Buffer.from(text), bound.port);
    // Once the last datagram is answered, every one before it was handled, and any reply to them came first.
    await waitFor(() => probe.replies.some((r) => r.msg.toString() === 'ZZ'), { what: 'the reply to the last datagram', timeoutMs: 2000 });
    expect(probe.replies.map((r) => r.msg.toString())).toEqual(['PING', 'PONG', 'A', 'LONGER DATAGRAM', 'ZZ']);
    expect(seen.map((s) => s.text)).toEqual(texts);
    for (const s of seen) expect(s.source).toEqual({ address: '127.0.0.1', port: probe.port, family: 'IPv4' });
    expect(transport.stats()).toMatchObject({ received: 6, sendFailures: 0, truncated: 0 });
    await probe.close();
    await transport.close();
  });
});

describe('IPv6 text of a source address', () => {
  it('follows RFC 5952: the longest run of two or more zero groups becomes ::, lower-case hex', () => {
    const cases: [number[], string][] = [
      [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
      [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
      [[1, 0, 0, 0, 0, 0, 0, 0], '1::'],
      [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
      [[0x2001, 0xdb8, 0, 0, 0, 1, 0, 0], '2001:db8::1:0:0'],
      [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], '2001:db8:0:1:1:1:1:1'],
      [[0xfe80, 0, 0, 0, 0xabcd, 0xef, 0, 0], 'fe80::abcd:ef:0:0'],
    ];
    for (const [groups, text] of cases) expect(compressIpv6(groups), text).toBe(text);
  });
});
