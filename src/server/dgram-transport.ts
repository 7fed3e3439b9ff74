// The Transport over Node's dgram module: a socket wrapped, not extended.

import { type Socket, createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { DatagramHandler, DatagramSource, Transport } from './transport.js';

export class DgramTransport implements Transport {
  private socket: Socket | undefined;
  /** Send failures (ENOBUFS, EHOSTUNREACH, …): counted, never thrown into the hot path. */
  sendErrors = 0;

  constructor(private readonly options: { exclusive?: boolean; receiveBufferBytes?: number } = {}) {}

  listen(host: string, port: number, handler: DatagramHandler): Promise<{ address: string; port: number }> {
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => handler(msg, rinfo as DatagramSource));
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: host, port, exclusive: this.options.exclusive ?? false }, () => {
        socket.off('error', reject);
        // Errors after binding (a failed send, an ICMP unreachable reported on Linux) are
        // counted; they must not crash the process.
        socket.on('error', () => {
          this.sendErrors++;
        });
        if (this.options.receiveBufferBytes !== undefined) {
          try {
            socket.setRecvBufferSize(this.options.receiveBufferBytes);
          } catch {
            // Capped by the system (net.core.rmem_max); the default still works.
          }
        }
        const a = socket.address();
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  send(buf: Buffer, length: number, to: DatagramSource): void {
    // No completion callback: it would cost a second call into JavaScript per datagram.
    // A failed send is reported through the socket's 'error' event, counted above.
    if (length === buf.length) this.socket?.send(buf, to.port, to.address);
    else this.socket?.send(buf, 0, length, to.port, to.address);
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
