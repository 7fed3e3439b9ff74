// Test helpers for the UDP service: an in-process server on an ephemeral loopback port
// with its own state directory, and a raw socket to send any bytes and see what comes back.

import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type ServeOptions, type Server } from '../../src/index.js';
import { silent } from './logger.js';

/**
 * Every server test runs over both transports. On Linux the native one is expected to be
 * built (npm install builds it): a missing addon fails these tests rather than skipping
 * them. HAILSTONE_SKIP_NATIVE=1 (as for the install) leaves it out.
 */
export const TRANSPORTS: ('dgram' | 'native')[] =
  process.platform === 'linux' && process.env.HAILSTONE_SKIP_NATIVE !== '1' ? ['dgram', 'native'] : ['dgram'];

export interface TestServer {
  server: Server;
  port: number;
  endpoint: string;
  stop(): Promise<void>;
}

export async function startServer(options: Partial<ServeOptions> = {}): Promise<TestServer> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hailstone-srv-'));
  const server = await serve({ nodeId: 3, stateDir, port: 0, maxLeadMs: 300, reservationMs: 300, logger: silent, ...options });
  // Ready means able to issue: on a loaded machine the startup's write can take longer than a
  // 300 ms reservation, and the node then refuses until its first renewal lands.
  const until = Date.now() + 10_000;
  while (!server.node.status().healthy && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  return {
    server,
    port: server.address.port,
    endpoint: `127.0.0.1:${server.address.port}`,
    stop: async () => {
      await server.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** A loopback UDP port that was just bound and closed again: nothing listens there. */
export async function closedPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** A plain UDP socket: send arbitrary datagrams, collect whatever arrives. */
export class Probe {
  readonly replies: { msg: Buffer; port: number; address: string }[] = [];
  private readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.replies.push({ msg, port: rinfo.port, address: rinfo.address }));
  }

  static async open(port = 0, address = '127.0.0.1'): Promise<Probe> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(port, address, () => resolve()));
    return new Probe(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(msg: Uint8Array, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(msg, port, address, (e) => (e ? reject(e) : resolve())));
  }

  /** Waits until `count` replies arrived or `ms` passed; returns the replies so far. */
  async waitFor(count: number, ms: number): Promise<Probe['replies']> {
    const until = Date.now() + ms;
    while (this.replies.length < count && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
    return this.replies;
  }

  /**
   * Waits for the reply echoing `request`'s nonce (bytes 8..15); throws after `ms`. Sent
   * last, a valid request is a marker: a server handles its socket's datagrams in order, so
   * once the marker is answered, everything this socket sent it before was handled, and
   * any reply to those arrived before the marker's.
   */
  async replyTo(request: Uint8Array, ms = 2000): Promise<Probe['replies'][number]> {
    const nonce = request.subarray(8, 16);
    const until = Date.now() + ms;
    for (;;) {
      const reply = this.replies.find((r) => r.msg.subarray(8, 16).equals(nonce));
      if (reply !== undefined) return reply;
      if (Date.now() > until) throw new Error(`no reply to the request with nonce ${Buffer.from(nonce).toString('hex')} within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
