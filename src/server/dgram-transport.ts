// The Transport over Node's dgram module: a socket wrapped, not extended. One recvmsg, one
// JS callback and one sendmsg per datagram; works on every platform Node runs on.

import { type Socket, createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { DatagramHandler, Transport, TransportStats } from './transport.js';

export class DgramTransport implements Transport {
  readonly name = 'dgram';
  private socket: Socket | undefined;
  private readonly counters: TransportStats = { received: 0, batches: 0, sendFailures: 0, truncated: 0, receiveErrors: 0 };

  constructor(private readonly options: { exclusive?: boolean; receiveBufferBytes?: number } = {}) {}

  listen(host: string, port: number, handler: DatagramHandler): Promise<{ address: string; port: number }> {
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    this.socket = socket;
    const counters = this.counters;
    socket.on('message', (msg, rinfo) => {
      counters.received++;
      counters.batches++;
      // msg is a fresh Buffer per datagram: the reply is written over it and sent from it.
      const length = handler(msg, 0, msg.length, rinfo as { address: string; port: number; family: 'IPv4' | 'IPv6' });
      // No completion callback: it would cost a second call into JavaScript per datagram.
      // A failed send is reported through the socket's 'error' event, counted below.
      if (length > 0) socket.send(msg, 0, length, rinfo.port, rinfo.address);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: host, port, exclusive: this.options.exclusive ?? false }, () => {
        socket.off('error', reject);
        // Errors after binding are counted, never allowed to crash the process: a failed
        // send (the reply is lost; the client retries) or a failed receive.
        socket.on('error', (error: NodeJS.ErrnoException) => {
          if (error.syscall === 'send') counters.sendFailures++;
          else counters.receiveErrors++;
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

  stats(): TransportStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
